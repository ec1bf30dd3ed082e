//! `ggen-p2p publish DIR`: pack, sign, store and (with a running node) announce a pack.

use anyhow::Result;

use super::output::human_bytes;
use super::{Backend, Output};
use crate::registry::{PublishRequest, Registry};

/// Packs smaller than this publish in well under a second: no spinner.
const SPINNER_FROM: u64 = 16 << 20;

pub async fn run(backend: &Backend, request: PublishRequest, out: &Output) -> Result<()> {
    let size = dir_size(&request.dir);
    let spinner = (size >= SPINNER_FROM)
        .then(|| {
            super::output::spinner(
                out,
                format!(
                    "packing, hashing and signing {} ({} of files)",
                    request.dir.display(),
                    human_bytes(size)
                ),
            )
        })
        .flatten();
    let result = backend.publish(request).await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let report = result?;
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

/// Bytes of regular files under `dir` (`.git` left out), to decide whether publishing
/// will take long enough to show progress; unreadable entries count as nothing.
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && entry.file_name() != ".git" {
                stack.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}
