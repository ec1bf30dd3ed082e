//! The running node's peers: list, connect, disconnect. They need the network, so an
//! offline registry answers with [`RegistryError::NotRunning`].

use super::reports::{all, PeersReport, FORMAT_VERSION};
use super::requests::{AddPeerRequest, PeersRequest, RemovePeerRequest};
use super::{P2PRegistry, RegistryError, Result};
use crate::net::{Client, Multiaddr, PeerId};

pub(super) async fn peers(registry: &P2PRegistry, _request: PeersRequest) -> Result<PeersReport> {
    report(&registry.network("peers")?).await
}

pub(super) async fn add_peer(
    registry: &P2PRegistry,
    request: AddPeerRequest,
) -> Result<PeersReport> {
    let client = registry.network("peers add")?;
    let addr: Multiaddr = request.addr.parse().map_err(|e| {
        RegistryError::Refused(format!(
            "{:?} is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...",
            request.addr
        ))
    })?;
    client.dial(addr).await?;
    report(&client).await
}

pub(super) async fn remove_peer(
    registry: &P2PRegistry,
    request: RemovePeerRequest,
) -> Result<PeersReport> {
    let client = registry.network("peers remove")?;
    let peer: PeerId = request.peer.parse().map_err(|e| {
        RegistryError::Refused(format!(
            "{:?} is not a peer id ({e}); `ggen-p2p peers` lists them",
            request.peer
        ))
    })?;
    client.disconnect(peer).await?;
    report(&client).await
}

async fn report(client: &Client) -> Result<PeersReport> {
    Ok(PeersReport {
        format_version: FORMAT_VERSION,
        peers: all(client.peers().await?),
    })
}
