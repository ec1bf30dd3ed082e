//! `ggen-p2p yank NAME@VERSION`: sign a yank of one of your versions.

use anyhow::{Context, Result};

use super::{Backend, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The exact version to yank: name@1.2.0
    pub spec: String,
}

pub async fn run(backend: &Backend, args: Args, out: &Output) -> Result<()> {
    let Some((name, version)) = args.spec.split_once('@') else {
        anyhow::bail!(
            "yank needs an exact version: ggen-p2p yank {}@1.2.0",
            args.spec
        );
    };
    let version = semver::Version::parse(version)
        .with_context(|| format!("{version:?} is not an exact version (example: {name}@1.2.0)"))?;
    let report = backend.yank(name, &version).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    out.line(format!(
        "yanked {}@{}: hidden from new installs, still fetchable by exact version",
        report.name, report.version
    ))?;
    Ok(())
}
