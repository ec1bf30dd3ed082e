//! `ggen-p2p yank NAME@VERSION`: sign a yank of one of your versions.

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{Registry, YankRequest};

pub async fn run(backend: &Backend, request: YankRequest, out: &Output) -> Result<()> {
    let report = backend.yank(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    out.line(format!(
        "yanked {}@{}: hidden from new installs, still fetchable by exact version",
        report.name, report.version
    ))?;
    Ok(())
}
