//! `ggen-p2p outdated`: installed versions against the newest compatible and the newest.

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{OutdatedRequest, Registry};

pub async fn run(backend: &Backend, request: OutdatedRequest, out: &Output) -> Result<()> {
    let report = backend.outdated(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    for problem in &report.problems {
        out.warn(problem);
    }
    if report.packs.is_empty() {
        out.note("nothing installed with a lockfile; install a pack first");
        return Ok(());
    }
    let show = |v: &Option<semver::Version>| v.as_ref().map_or("-".into(), |v| v.to_string());
    let rows: Vec<Vec<String>> = report
        .packs
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.installed.to_string(),
                show(&p.compatible),
                show(&p.latest),
                if p.dependency {
                    "dependency"
                } else {
                    "installed"
                }
                .into(),
                p.tree.display().to_string(),
            ]
        })
        .collect();
    out.table(
        &["NAME", "INSTALLED", "COMPATIBLE", "LATEST", "KIND", "TREE"],
        &rows,
    )?;
    Ok(())
}
