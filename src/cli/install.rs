//! `ggen-p2p install NAME[@REQ] [--to DIR]`: resolve, fetch if needed, verify, unpack.

use std::sync::Arc;

use anyhow::Result;

use super::output::human_bytes;
use super::{Backend, Output};
use crate::registry::{InstallRequest, Progress, Registry};

pub async fn run(backend: &Backend, request: InstallRequest, out: &Output) -> Result<()> {
    let bar = super::output::bytes_bar(out, "fetching");
    let progress: Option<Progress> = bar.clone().map(|bar| {
        Arc::new(move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }) as Progress
    });
    let result = backend.install(request, progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result?;
    for warning in &report.warnings {
        out.warn(warning);
    }
    if out.json {
        return Ok(out.json(&report)?);
    }
    if report.already_installed {
        out.line(format!(
            "{}@{} is already installed in {}",
            report.name,
            report.version,
            report.path.display()
        ))?;
        return Ok(());
    }
    let source = if report.fetched_from.is_empty() {
        "from the local store".to_string()
    } else {
        format!("from {} peer(s)", report.fetched_from.len())
    };
    out.line(format!(
        "installed {}@{} into {} ({} files, {}, {source}, verified)",
        report.name,
        report.version,
        report.path.display(),
        report.files,
        human_bytes(report.size),
    ))?;
    for dep in &report.dependencies {
        out.line(format!(
            "  with {}@{} in {}",
            dep.name,
            dep.version,
            dep.path.display()
        ))?;
    }
    Ok(())
}
