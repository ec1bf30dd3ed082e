//! `ggen-p2p mirror sync URL`: import every record an HTTP mirror serves (each verified
//! as a record from a peer is) and report what was imported, already known or refused.
//! Serving a mirror is `start --mirror ADDR`.

use anyhow::{bail, Result};
use clap::Subcommand;

use super::{Backend, Output};
use crate::registry::{MirrorSyncRequest, Registry};

#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Import every record of the mirror at URL (signatures and owner rules checked)
    Sync(MirrorSyncRequest),
}

pub async fn run(backend: &Backend, command: MirrorCommand, out: &Output) -> Result<()> {
    let MirrorCommand::Sync(request) = command;
    let report = backend.mirror_sync(request).await?;
    if out.json {
        out.json(&report)?;
    } else {
        out.line(format!(
            "{}: {} names, {} records imported, {} already known, {} kept as equivocation evidence, {} refused",
            report.mirror,
            report.names,
            report.imported,
            report.already_known,
            report.evidence,
            report.rejected.len()
        ))?;
        for rejected in &report.rejected {
            let id = rejected
                .id
                .map(|id| format!(" record {id}"))
                .unwrap_or_default();
            out.line(format!(
                "refused {}{id}: {}",
                rejected.name, rejected.reason
            ))?;
        }
    }
    if !report.rejected.is_empty() {
        bail!(
            "{} item(s) from {} failed verification and were not stored; the mirror serves altered or forged data (everything valid was imported)",
            report.rejected.len(),
            report.mirror
        );
    }
    Ok(())
}
