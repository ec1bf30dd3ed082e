//! `ggen-p2p peers [add MULTIADDR | remove PEER | block PEER | unblock PEER]`: inspect
//! and change the running node's peers; blocks are stored and work offline too.

use anyhow::Result;
use clap::Subcommand;

use super::{Backend, Output};
use crate::registry::{
    AddPeerRequest, BlockPeerRequest, BlockReport, PeersRequest, Registry, RemovePeerRequest,
    UnblockPeerRequest,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<PeersAction>,
}

#[derive(Debug, Subcommand)]
pub enum PeersAction {
    /// Connect to a peer: /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo...
    #[command(
        after_help = "Examples:\n  ggen-p2p peers add /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW..."
    )]
    Add(AddPeerRequest),
    /// Disconnect from a peer and forget its addresses
    #[command(after_help = "Examples:\n  ggen-p2p peers remove 12D3KooW...")]
    Remove(RemovePeerRequest),
    /// Ban a peer: refuse and disconnect it, also after restarts
    #[command(after_help = "Examples:\n  ggen-p2p peers block 12D3KooW...")]
    Block(BlockPeerRequest),
    /// Lift a peer's ban (a block, or a ban for invalid records)
    #[command(after_help = "Examples:\n  ggen-p2p peers unblock 12D3KooW...")]
    Unblock(UnblockPeerRequest),
}

pub async fn run(backend: &Backend, args: Args, out: &Output) -> Result<()> {
    let report = match args.action {
        None => backend.peers(PeersRequest::default()).await?,
        Some(PeersAction::Add(request)) => backend.add_peer(request).await?,
        Some(PeersAction::Remove(request)) => backend.remove_peer(request).await?,
        Some(PeersAction::Block(request)) => {
            return print_block(backend.block_peer(request).await?, out)
        }
        Some(PeersAction::Unblock(request)) => {
            return print_block(backend.unblock_peer(request).await?, out)
        }
    };
    if out.json {
        return Ok(out.json(&report)?);
    }
    if report.peers.is_empty() {
        out.note("no connected peers; add one with `ggen-p2p peers add MULTIADDR`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .peers
        .iter()
        .map(|p| {
            vec![
                p.peer_id.clone(),
                p.rtt_ms.map(|ms| format!("{ms} ms")).unwrap_or_default(),
                p.connection.clone().unwrap_or_default(),
                p.addrs.first().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(&["PEER", "RTT", "LINK", "ADDRESS"], &rows)?;
    Ok(())
}

fn print_block(report: BlockReport, out: &Output) -> Result<()> {
    if out.json {
        return Ok(out.json(&report)?);
    }
    let state = if report.blocked {
        "blocked"
    } else {
        "unblocked"
    };
    let already = if report.changed {
        ""
    } else {
        " (it already was)"
    };
    out.line(format!("{} {state}{already}", report.peer_id))?;
    let rows: Vec<Vec<String>> = report
        .banned
        .iter()
        .map(|b| vec![b.peer_id.clone(), b.reason.clone()])
        .collect();
    if !rows.is_empty() {
        out.table(&["BANNED PEER", "REASON"], &rows)?;
    }
    Ok(())
}
