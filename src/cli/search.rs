//! `ggen-p2p search TERMS...`: ranked search over the local replica (and peers with
//! `--network`).

use anyhow::Result;

use super::output::truncate;
use super::{Backend, Output};
use crate::store::Query;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words to look for in names, keywords and descriptions
    pub terms: Vec<String>,
    /// Only packs of this category
    #[arg(long)]
    pub category: Option<String>,
    /// Only packs with this keyword
    #[arg(long)]
    pub keyword: Option<String>,
    /// Most results to show
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Results to skip (for paging)
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Also ask connected peers, and merge what they know
    #[arg(long)]
    pub network: bool,
}

pub async fn run(backend: &Backend, args: Args, out: &Output) -> Result<()> {
    if args.terms.is_empty() && args.category.is_none() && args.keyword.is_none() {
        anyhow::bail!(
            "search needs words, --category or --keyword; example: ggen-p2p search rust web"
        );
    }
    let mut query = Query::new(args.terms)
        .with_limit(args.limit)
        .with_offset(args.offset);
    if let Some(category) = args.category {
        query = query.with_category(category);
    }
    if let Some(keyword) = args.keyword {
        query = query.with_keyword(keyword);
    }
    let report = backend.search(&query, args.network).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    if args.network {
        out.note(format!("asked {} peers", report.peers_asked));
    }
    if report.results.is_empty() {
        out.note("no packs found; try fewer words, or `--network` to ask peers");
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
            vec![
                name,
                p.version.to_string(),
                p.category.clone().unwrap_or_default(),
                hit.providers.to_string(),
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
    Ok(())
}
