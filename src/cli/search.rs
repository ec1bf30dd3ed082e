//! `ggen-p2p search TERMS...`: ranked search over the local replica (and peers with
//! `--network`).

use anyhow::Result;

use super::output::truncate;
use super::{Backend, Output};
use crate::registry::{Registry, SearchRequest};

pub async fn run(backend: &Backend, request: SearchRequest, out: &Output) -> Result<()> {
    if request.terms.is_empty() && request.category.is_none() && request.keyword.is_none() {
        return Err(super::error::usage(
            "search needs words, --category or --keyword",
            "example: ggen-p2p search rust web",
        ));
    }
    let network = request.network;
    let report = backend.search(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    if network {
        out.note(format!("asked {} peers", report.peers_asked));
    }
    if report.results.is_empty() {
        if network {
            out.note("no packs found here or at the peers asked; try fewer words");
        } else {
            out.note("no packs found; try fewer words, or `--network` to ask peers");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .results
        .iter()
        .map(|hit| {
            let p = &hit.package;
            let name = if hit.conflict {
                format!("{} (!)", p.name)
            } else {
                p.name.clone()
            };
            let version = if hit.compromised {
                format!("{} (compromised)", p.version)
            } else {
                p.version.to_string()
            };
            vec![
                name,
                version,
                p.category.clone().unwrap_or_default(),
                super::output::providers(hit.providers),
                truncate(&p.description, 60),
            ]
        })
        .collect();
    out.table(
        &["NAME", "VERSION", "CATEGORY", "PROVIDERS", "DESCRIPTION"],
        &rows,
    )?;
    if report.results.iter().any(|hit| hit.conflict) {
        out.note("(!) more than one publisher claims this name; `ggen-p2p info NAME` lists them");
    }
    if report.results.iter().any(|hit| hit.compromised) {
        out.note("(compromised) its publisher's key signed two different archives for that version; `ggen-p2p info NAME` lists both");
    }
    Ok(())
}
