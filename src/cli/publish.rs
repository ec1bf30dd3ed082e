//! `ggen-p2p publish DIR`: pack, sign, store and (with a running node) announce a pack.

use anyhow::Result;

use super::output::human_bytes;
use super::{Backend, Output};
use crate::registry::{PublishRequest, Registry};

pub async fn run(backend: &Backend, request: PublishRequest, out: &Output) -> Result<()> {
    let report = backend.publish(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    let verb = if report.already_published {
        "already published"
    } else {
        "published"
    };
    out.line(format!(
        "{verb} {}@{} ({}, blake3 {})",
        report.name,
        report.version,
        human_bytes(report.archive.size),
        report.archive.blake3
    ))?;
    match &report.receipt {
        Some(receipt) => out.note(format!(
            "replication: record sent to {} gossip peers and {} DHT peers; {} providers hold the archive",
            receipt.gossip_peers, receipt.dht_peers, receipt.providers
        )),
        None => out.note(
            "offline: stored locally; a running node (`ggen-p2p start`) will announce it to peers",
        ),
    }
    Ok(())
}
