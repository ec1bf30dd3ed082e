//! `ggen-p2p status`: this node's identity, network and store at a glance.

use anyhow::Result;

use super::output::human_bytes;
use super::{Backend, Output};
use crate::registry::{Registry, StatusRequest};

pub async fn run(backend: &Backend, request: StatusRequest, out: &Output) -> Result<()> {
    let report = backend.status(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    let publisher = report
        .publisher
        .map(|p| p.to_string())
        .unwrap_or_else(|| "none (create one with `ggen-p2p key generate`)".into());
    let s = &report.store;
    let mut lines = vec![
        format!("data dir:     {}", report.data_dir.display()),
        format!("publisher:    {publisher}"),
    ];
    match &report.net {
        Some(net) => {
            lines.push(format!("node:         online, peer id {}", net.peer_id));
            if let Some(api) = &report.api {
                lines.push(format!("api:          http://{api}"));
            }
            for addr in &net.listen_addrs {
                lines.push(format!("listening:    {addr}"));
            }
            lines.push(format!("peers:        {} connected", net.connected_peers));
            lines.push(format!(
                "dht:          {} peers in routing table",
                net.routing_table_size
            ));
            let relay = if net.relay_server {
                ", serving as relay"
            } else {
                ""
            };
            lines.push(format!("reachability: {}{relay}", net.reachability));
            for addr in &net.relay_reservations {
                lines.push(format!("relayed at:   {addr}"));
            }
            for swarm in &net.swarms {
                let role = if swarm.downloading {
                    "downloading"
                } else {
                    "seeding"
                };
                lines.push(format!(
                    "swarm:        {} {role}, {} of {} chunks, {} peers asking, {} chunks handed out, \
                     up {}/s ({} in all), down {}/s ({} in all)",
                    &swarm.archive[..12.min(swarm.archive.len())],
                    swarm.chunks_held,
                    swarm.chunk_count,
                    swarm.peers,
                    swarm.chunks_handed_out,
                    human_bytes(swarm.upload_bytes_per_s),
                    human_bytes(swarm.bytes_uploaded),
                    human_bytes(swarm.download_bytes_per_s),
                    human_bytes(swarm.bytes_downloaded),
                ));
            }
            for boot in &net.bootstrap {
                let state = match (&boot.error, boot.connected) {
                    (_, true) => "connected".to_string(),
                    (Some(error), false) => format!("not connected: {error}"),
                    (None, false) => "not connected yet".to_string(),
                };
                lines.push(format!("bootstrap:    {} {state}", boot.addr));
            }
        }
        None => lines.push("node:         offline (start one with `ggen-p2p start`)".into()),
    }
    lines.push(format!("records:      {}", s.records));
    lines.push(format!(
        "packs:        {} ({} versions)",
        s.packages, s.versions
    ));
    lines.push(format!(
        "archives:     {} stored, {}",
        s.archives,
        human_bytes(s.archive_bytes)
    ));
    if s.equivocations > 0 {
        lines.push(format!(
            "equivocations: {} refused (conflicting records kept as evidence)",
            s.equivocations
        ));
    }
    for line in lines {
        out.line(line)?;
    }
    Ok(())
}
