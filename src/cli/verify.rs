//! `ggen-p2p verify`: re-check every stored record's signature and every stored archive's
//! hash, like `npm audit signatures`. Exits 1 if anything is damaged.

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{Registry, VerifyRequest};

pub async fn run(backend: &Backend, request: VerifyRequest, out: &Output) -> Result<()> {
    let report = backend.verify(request).await?;
    if out.json {
        out.json(&report)?;
    } else {
        out.line(format!(
            "checked {} records and {} archives",
            report.records_checked, report.archives_checked
        ))?;
        for bad in &report.bad_records {
            out.line(format!("bad record {}: {}", bad.id, bad.reason))?;
        }
        for bad in &report.bad_archives {
            out.line(format!("bad archive {}: {}", bad.id, bad.reason))?;
        }
        let verb = if report.repaired {
            "repaired"
        } else {
            "orphan"
        };
        for orphan in &report.orphans {
            out.line(format!("{verb} {}: {}", orphan.reason, orphan.id))?;
        }
    }
    let damaged = report.bad_records.len() + report.bad_archives.len();
    if damaged > 0 {
        return Err(super::error::reported(format!("{damaged} damaged item(s) in the store; republish or reinstall them (their data cannot be trusted)")));
    }
    if !report.repaired && !report.orphans.is_empty() {
        return Err(super::error::reported(format!(
            "{} orphan(s) in the store (leftovers of interrupted work or index/blob mismatches); run `ggen-p2p verify --repair` to remove them",
            report.orphans.len()
        )));
    }
    Ok(())
}
