//! `ggen-p2p init [DIR]`: start a pack — a valid package.toml, a README and a template.
//! Asks for what the flags leave out when stdin is a terminal, unless `--yes`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{InitRequest, Registry};

pub async fn run(backend: &Backend, mut request: InitRequest, out: &Output) -> Result<()> {
    if !request.yes && !out.json && std::io::stdin().is_terminal() {
        ask(&mut request)?;
    }
    let report = backend.init(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    out.line(format!(
        "created pack {} in {} ({}); edit package.toml, then `ggen-p2p publish {}`",
        report.name,
        report.dir.display(),
        report
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        report.dir.display()
    ))?;
    Ok(())
}

/// One prompt per field not given as a flag; an empty answer keeps the default.
fn ask(request: &mut InitRequest) -> Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut prompt = |label: &str, default: &str| -> Result<Option<String>> {
        eprint!("{label} [{default}]: ");
        std::io::stderr().flush()?;
        let answer = lines.next().transpose()?.unwrap_or_default();
        let answer = answer.trim();
        Ok((!answer.is_empty()).then(|| answer.to_string()))
    };
    if request.name.is_none() {
        request.name = prompt("name", "the directory's name")?;
    }
    if request.description.is_none() {
        request.description = prompt("description", "NAME: a ggen pack")?;
    }
    if request.category.is_none() {
        request.category = prompt("category", "none")?;
    }
    if request.license.is_none() {
        request.license = prompt("license", "MIT")?;
    }
    Ok(())
}
