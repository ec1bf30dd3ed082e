//! The `ggen-p2p` command line: argument parsing and dispatch. Each subcommand lives in
//! its own file and is a thin shell over [`crate::Registry`]: the registry in this process
//! (offline) or the running daemon's API (online), chosen by [`backend::Backend::connect`].
//! Arguments parse straight into the registry's request types.
//!
//! Results go to stdout (a table, or JSON with `--json`); progress, status and warnings go
//! to stderr and respect `--quiet`. Exit codes: 0 success, 1 failure, 2 usage error.

mod backend;
mod demo;
mod info;
mod init;
mod install;
mod key;
mod list;
mod mirror;
mod outdated;
mod output;
mod peers;
mod publish;
mod search;
mod start;
mod status;
mod trust;
mod uninstall;
mod update;
mod verify;
mod yank;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::registry::{
    InfoRequest, InitRequest, InstallRequest, ListRequest, OutdatedRequest, PublishRequest,
    SearchRequest, StatusRequest, UninstallRequest, UpdateRequest, VerifyRequest, YankRequest,
};

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
    Publish(PublishRequest),
    /// Search packs by name, keyword and description
    Search(SearchRequest),
    /// Show a pack's details, versions and publishers
    Info(InfoRequest),
    /// Start a new pack: package.toml, README and a template in DIR
    Init(InitRequest),
    /// Install a pack and its dependencies (fetched from peers if not stored here)
    Install(InstallRequest),
    /// Remove an installed pack and the dependencies installed with it
    Uninstall(UninstallRequest),
    /// Show installed versions against the newest compatible and newest published
    Outdated(OutdatedRequest),
    /// Move installed packs to the newest versions their requirements allow
    Update(UpdateRequest),
    /// List installed packs and packs you published
    List(ListRequest),
    /// Hide one of your versions from new installs (lockfiles can still fetch it)
    Yank(YankRequest),
    /// Show this node: identity, peers, records and packs known, bytes stored
    Status(StatusRequest),
    /// Re-check every stored record signature and archive hash
    Verify(VerifyRequest),
    /// Run a node: the libp2p network, the local API and the dashboard
    Start(start::Args),
    /// List connected peers, or add/remove one
    Peers(peers::Args),
    /// Pin publisher keys that own names here, whoever was accepted first
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Start a small network in this process and show a pack travel across it
    Demo(demo::Args),
    /// Use HTTP mirrors: import every record of one (serve one with `start --mirror`)
    #[command(subcommand)]
    Mirror(mirror::MirrorCommand),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output::new(cli.json, cli.quiet);
    let data_dir = crate::config::data_dir(cli.data_dir.as_deref())?;
    match cli.command {
        Command::Key(command) => key::run(&data_dir, command, &out).await,
        Command::Start(args) => start::run(&data_dir, args, &out).await,
        Command::Demo(args) => demo::run(args, &out).await,
        command => {
            let backend = Backend::connect(&data_dir).await?;
            match command {
                Command::Publish(request) => publish::run(&backend, request, &out).await,
                Command::Search(request) => search::run(&backend, request, &out).await,
                Command::Info(request) => info::run(&backend, request, &out).await,
                Command::Init(request) => init::run(&backend, request, &out).await,
                Command::Install(request) => install::run(&backend, request, &out).await,
                Command::Uninstall(request) => uninstall::run(&backend, request, &out).await,
                Command::Outdated(request) => outdated::run(&backend, request, &out).await,
                Command::Update(request) => update::run(&backend, request, &out).await,
                Command::List(request) => list::run(&backend, request, &out).await,
                Command::Yank(request) => yank::run(&backend, request, &out).await,
                Command::Status(request) => status::run(&backend, request, &out).await,
                Command::Verify(request) => verify::run(&backend, request, &out).await,
                Command::Peers(args) => peers::run(&backend, args, &out).await,
                Command::Trust(command) => trust::run(&backend, command, &out).await,
                Command::Mirror(command) => mirror::run(&backend, command, &out).await,
                Command::Key(_) | Command::Start(_) | Command::Demo(_) => Ok(()),
            }
        }
    }
}
