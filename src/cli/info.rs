//! `ggen-p2p info NAME[@REQ]`: one pack in full, its versions and who claims the name.

use anyhow::Result;

use super::output::human_bytes;
use super::{Backend, Output};
use crate::registry::{InfoRequest, Registry};

pub async fn run(backend: &Backend, request: InfoRequest, out: &Output) -> Result<()> {
    let report = backend.info(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    let p = &report.package;
    let mut lines = vec![
        format!(
            "{}@{}{}",
            p.name,
            p.version,
            if p.yanked { " (yanked)" } else { "" }
        ),
        format!("  {}", p.description),
        format!("publisher:   {}", p.publisher),
    ];
    let optional = [
        ("category", p.category.clone()),
        ("license", p.license.clone()),
        ("repository", p.repository.clone()),
        (
            "keywords",
            (!p.keywords.is_empty()).then(|| p.keywords.join(", ")),
        ),
        (
            "authors",
            (!p.authors.is_empty()).then(|| p.authors.join(", ")),
        ),
    ];
    for (label, value) in optional {
        if let Some(value) = value {
            lines.push(format!("{:<12} {value}", format!("{label}:")));
        }
    }
    lines.push(format!("size:        {}", human_bytes(p.archive.size)));
    lines.push(format!("blake3:      {}", p.archive.blake3));
    lines.push(format!("sha256:      {}", p.archive.sha256));
    lines.push(format!(
        "providers:   {}{}",
        super::output::providers(report.providers),
        if report.local { " (stored here)" } else { "" }
    ));
    for (dep, req) in &p.dependencies {
        lines.push(format!("depends on:  {dep} {req}"));
    }
    for line in lines {
        out.line(line)?;
    }
    out.line("versions:")?;
    for v in &report.versions {
        out.line(format!(
            "  {:<12} {}{}",
            v.version.to_string(),
            v.publisher.short(),
            match (v.yanked, v.compromised) {
                (_, true) => "  compromised",
                (true, false) => "  yanked",
                (false, false) => "",
            }
        ))?;
    }
    for c in &report.compromised {
        out.warn(format!(
            "{}@{} is compromised: publisher {} signed two different archives for it ({}); its key may be leaked, and install refuses it unless you pin one with --archive",
            p.name,
            c.version,
            c.publisher,
            c.archives
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    if let Some(a) = &report.owner_attested {
        out.line(format!(
            "owner:       {} (contested here; owner attested by {} of {} peers)",
            a.owner.short(),
            a.peers,
            a.of
        ))?;
    } else if report.contested {
        out.line("owner:       contested here (no majority of peers attests one)")?;
    }
    if report.claims.len() > 1 {
        out.warn(format!(
            "{} publishers claim {}: {}; pass --publisher ID to choose",
            report.claims.len(),
            p.name,
            report
                .claims
                .iter()
                .map(|c| c.publisher.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}
