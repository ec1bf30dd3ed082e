//! The `ggen-p2p` command line: argument parsing and dispatch. Each subcommand lives in
//! its own file and is a thin shell over the registry (offline) or the running daemon's
//! API (online), chosen by [`backend::Backend::connect`].
//!
//! Results go to stdout (a table, or JSON with `--json`); progress, status and warnings go
//! to stderr and respect `--quiet`. Exit codes: 0 success, 1 failure, 2 usage error.

mod backend;
mod demo;
mod info;
mod install;
mod key;
mod list;
mod output;
mod peers;
mod publish;
mod search;
mod start;
mod status;
mod verify;
mod yank;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use backend::Backend;
pub use output::Output;

/// A peer-to-peer registry for ggen packs: publish signed packs, search every pack
/// locally, install them verified from peers.
#[derive(Debug, Parser)]
#[command(name = "ggen-p2p", version, propagate_version = true)]
pub struct Cli {
    /// Data directory (keys, config.toml, index, archives) [default: $GGEN_P2P_HOME, else
    /// the platform data dir]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (documented shapes with `format_version`)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing on stderr but errors
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or show your publisher key
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Pack, sign and publish the pack in DIR
    Publish(publish::Args),
    /// Search packs by name, keyword and description
    Search(search::Args),
    /// Show a pack's details, versions and publishers
    Info(info::Args),
    /// Install a pack (fetched from peers if it is not stored here)
    Install(install::Args),
    /// List installed packs and packs you published
    List,
    /// Hide one of your versions from new installs (lockfiles can still fetch it)
    Yank(yank::Args),
    /// Show this node: identity, peers, records and packs known, bytes stored
    Status,
    /// Re-check every stored record signature and archive hash
    Verify,
    /// Run a node: the libp2p network, the local API and the dashboard
    Start(start::Args),
    /// List connected peers, or add/remove one
    Peers(peers::Args),
    /// Start a small network in this process and show a pack travel across it
    Demo(demo::Args),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output::new(cli.json, cli.quiet);
    let data_dir = crate::config::data_dir(cli.data_dir.as_deref())?;
    match cli.command {
        Command::Key(command) => key::run(&data_dir, command, &out),
        Command::Start(args) => start::run(&data_dir, args, &out).await,
        Command::Demo(args) => demo::run(args, &out).await,
        command => {
            let backend = Backend::connect(&data_dir).await?;
            match command {
                Command::Publish(args) => publish::run(&backend, args, &out).await,
                Command::Search(args) => search::run(&backend, args, &out).await,
                Command::Info(args) => info::run(&backend, args, &out).await,
                Command::Install(args) => install::run(&backend, args, &out).await,
                Command::List => list::run(&backend, &out).await,
                Command::Yank(args) => yank::run(&backend, args, &out).await,
                Command::Status => status::run(&backend, &out).await,
                Command::Verify => verify::run(&backend, &out).await,
                Command::Peers(args) => peers::run(&backend, args, &out).await,
                Command::Key(_) | Command::Start(_) | Command::Demo(_) => Ok(()),
            }
        }
    }
}

/// Splits `name@req` (the requirement may be empty).
pub(crate) fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once('@') {
        Some((name, req)) => (name, req),
        None => (spec, ""),
    }
}
