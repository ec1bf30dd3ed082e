//! `ggen-p2p uninstall NAME [--path DIR]`: remove an installed pack and its dependencies.

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{Registry, UninstallRequest};

pub async fn run(backend: &Backend, request: UninstallRequest, out: &Output) -> Result<()> {
    let report = backend.uninstall(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    if report.was_missing {
        out.warn(format!(
            "{} had already been removed; forgot its install",
            report.path.display()
        ));
    }
    let deps = if report.dependencies.is_empty() {
        String::new()
    } else {
        format!(" with {}", report.dependencies.join(", "))
    };
    out.line(format!(
        "uninstalled {}@{} from {}{deps}",
        report.name,
        report.version,
        report.path.display()
    ))?;
    Ok(())
}
