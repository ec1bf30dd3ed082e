//! `ggen-p2p update [NAME]`: newest versions the requirements allow, lockfiles rewritten.

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{Registry, UpdateRequest};

pub async fn run(backend: &Backend, request: UpdateRequest, out: &Output) -> Result<()> {
    let report = backend.update(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    for problem in &report.problems {
        out.warn(problem);
    }
    let show = |v: &Option<semver::Version>| v.as_ref().map_or("-".into(), |v| v.to_string());
    for tree in &report.trees {
        if tree.changes.is_empty() {
            out.line(format!("{}: up to date", tree.path.display()))?;
            continue;
        }
        for change in &tree.changes {
            out.line(format!(
                "{}: {} {} -> {}",
                tree.path.display(),
                change.name,
                show(&change.from),
                show(&change.to)
            ))?;
        }
    }
    Ok(())
}
