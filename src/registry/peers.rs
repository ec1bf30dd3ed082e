//! The running node's peers: list, connect, disconnect (these need the network, so an
//! offline registry answers with [`RegistryError::NotRunning`]), and block or unblock
//! (stored, so they work offline and survive restarts).

use super::reports::{all, BlockReport, PeersReport, FORMAT_VERSION};
use super::requests::{
    AddPeerRequest, BlockPeerRequest, PeersRequest, RemovePeerRequest, UnblockPeerRequest,
};
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
    let peer = parse_peer(&request.peer)?;
    client.disconnect(peer).await?;
    report(&client).await
}

fn parse_peer(text: &str) -> Result<PeerId> {
    text.parse().map_err(|e| {
        RegistryError::Refused(format!(
            "{text:?} is not a peer id ({e}); `ggen-p2p peers` lists them"
        ))
    })
}

/// Why an operator block is stored.
const BLOCKED_REASON: &str = "blocked by the operator";

pub(super) async fn block_peer(
    registry: &P2PRegistry,
    request: BlockPeerRequest,
) -> Result<BlockReport> {
    let peer = parse_peer(&request.peer)?;
    let id = peer.to_string();
    let changed = registry
        .store()
        .call(move |store| store.ban_peer(&id, BLOCKED_REASON, crate::store::now_ms()))
        .await?;
    if let Some(client) = registry.client() {
        client.block(peer).await?;
    }
    block_report(registry, peer, true, changed).await
}

pub(super) async fn unblock_peer(
    registry: &P2PRegistry,
    request: UnblockPeerRequest,
) -> Result<BlockReport> {
    let peer = parse_peer(&request.peer)?;
    let id = peer.to_string();
    let changed = registry
        .store()
        .call(move |store| store.unban_peer(&id))
        .await?;
    if let Some(client) = registry.client() {
        client.unblock(peer).await?;
    }
    block_report(registry, peer, false, changed).await
}

async fn block_report(
    registry: &P2PRegistry,
    peer: PeerId,
    blocked: bool,
    changed: bool,
) -> Result<BlockReport> {
    let banned = registry.store().call(|store| store.banned_peers()).await?;
    Ok(BlockReport {
        format_version: FORMAT_VERSION,
        peer_id: peer.to_string(),
        blocked,
        changed,
        banned: all(banned),
    })
}

async fn report(client: &Client) -> Result<PeersReport> {
    Ok(PeersReport {
        format_version: FORMAT_VERSION,
        peers: all(client.peers().await?),
    })
}
