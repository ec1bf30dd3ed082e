//! `ggen-p2p list`: installed packs, and packs published with your key.

use anyhow::Result;

use super::output::truncate;
use super::{Backend, Output};
use crate::registry::{ListRequest, Registry};

pub async fn run(backend: &Backend, request: ListRequest, out: &Output) -> Result<()> {
    let report = backend.list(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    if report.installed.is_empty() && report.published.is_empty() {
        out.note(
            "nothing installed or published yet; try `ggen-p2p search` and `ggen-p2p install`",
        );
        return Ok(());
    }
    if !report.installed.is_empty() {
        out.line("installed:")?;
        let rows: Vec<Vec<String>> = report
            .installed
            .iter()
            .map(|i| {
                vec![
                    i.name.clone(),
                    i.version.to_string(),
                    i.status.clone(),
                    i.path.display().to_string(),
                ]
            })
            .collect();
        out.table(&["NAME", "VERSION", "STATE", "PATH"], &rows)?;
        for i in &report.installed {
            match i.status.as_str() {
                "missing" => out.warn(format!(
                    "{}@{}: {} has vanished; `ggen-p2p uninstall {}` forgets it, `install` puts it back",
                    i.name, i.version, i.path.display(), i.name
                )),
                "changed" => out.warn(format!(
                    "{}@{}: files in {} differ from what was installed",
                    i.name, i.version, i.path.display()
                )),
                _ => {}
            }
        }
    }
    if !report.published.is_empty() {
        out.line("published:")?;
        let rows: Vec<Vec<String>> = report
            .published
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.version.to_string(),
                    if p.yanked {
                        "yanked".into()
                    } else {
                        String::new()
                    },
                    truncate(&p.description, 50),
                ]
            })
            .collect();
        out.table(&["NAME", "VERSION", "STATE", "DESCRIPTION"], &rows)?;
    }
    Ok(())
}
