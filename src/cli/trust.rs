//! `ggen-p2p trust add KEY [--name NAME]`, `trust list`, `trust remove KEY [--name NAME]`:
//! pins that make a publisher key own a name here. The rule they feed is the store's.

use anyhow::Result;
use clap::Subcommand;

use super::{Backend, Output};
use crate::registry::{
    Registry, TrustAddRequest, TrustListRequest, TrustRemoveRequest, TrustReport,
};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a key for one name (--name) or for every name it claims
    #[command(
        after_help = "Examples:\n  ggen-p2p trust add gp1abc... --name rust-axum-service\n  ggen-p2p trust add gp1abc..."
    )]
    Add(TrustAddRequest),
    /// List pinned keys (from `trust add` and config `trusted_publishers`)
    #[command(after_help = "Examples:\n  ggen-p2p trust list\n  ggen-p2p trust list --json")]
    List(TrustListRequest),
    /// Stop trusting a key for one name (--name) or everywhere
    #[command(
        after_help = "Examples:\n  ggen-p2p trust remove gp1abc... --name rust-axum-service"
    )]
    Remove(TrustRemoveRequest),
}

pub async fn run(backend: &Backend, command: TrustCommand, out: &Output) -> Result<()> {
    let (report, what) = match command {
        TrustCommand::Add(request) => {
            let what = describe("trusted", &request.key, request.name.as_deref());
            (backend.trust_add(request).await?, Some(what))
        }
        TrustCommand::Remove(request) => {
            let what = describe("no longer trusted", &request.key, request.name.as_deref());
            (backend.trust_remove(request).await?, Some(what))
        }
        TrustCommand::List(request) => (backend.trust_list(request).await?, None),
    };
    if out.json {
        return Ok(out.json(&report)?);
    }
    if let Some(what) = what {
        if report.changed {
            out.line(what)?;
        } else {
            out.line("nothing changed (already so)")?;
        }
        return Ok(());
    }
    print_list(&report, out)
}

fn describe(verb: &str, key: &crate::package::PublisherId, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{key} {verb} for {name}"),
        None => format!("{key} {verb} for every name it claims"),
    }
}

fn print_list(report: &TrustReport, out: &Output) -> Result<()> {
    if report.trusted.is_empty() {
        out.line("no trusted keys; add one with `ggen-p2p trust add KEY [--name NAME]`")?;
        return Ok(());
    }
    for t in &report.trusted {
        let name = t.name.as_deref().unwrap_or("*");
        out.line(format!("{name}\t{}\t{}", t.key, t.source))?;
    }
    Ok(())
}
