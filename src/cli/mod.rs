//! The `ggen-p2p` command line: argument parsing and dispatch. Each subcommand lives in
//! its own file and is a thin shell over [`crate::Registry`]: the registry in this process
//! (offline) or the running daemon's API (online), chosen by [`backend::Backend::connect`].
//! Arguments parse straight into the registry's request types.
//!
//! Results go to stdout (a table, or JSON with `--json`); progress, status and warnings go
//! to stderr and respect `--quiet`. Exit codes: 0 success, 1 failure, 2 usage error;
//! errors are printed by [`error`] (JSON on stdout under `--json`).

mod backend;
mod completions;
mod config;
mod demo;
pub mod error;
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

use std::ffi::OsString;
use std::io::IsTerminal;
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
#[command(
    name = "ggen-p2p",
    version,
    propagate_version = true,
    after_help = "Examples:\n  ggen-p2p key generate\n  ggen-p2p publish ./my-pack\n  ggen-p2p search rust web\n  ggen-p2p install rust-axum-service@^1 --to ./service\n  ggen-p2p start\n  ggen-p2p demo\n\nDocs: docs/user-guide.md (errors, troubleshooting), docs/configuration.md"
)]
pub struct Cli {
    /// Data directory (keys, config.toml, index, archives) [default: $GGEN_P2P_HOME, else
    /// the platform data dir]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (documented shapes with `format_version`)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing on stderr but errors
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log more on stderr: -v info, -vv debug, -vvv trace (overrides RUST_LOG)
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or show your publisher key
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  ggen-p2p key generate\n  ggen-p2p key show\n  ggen-p2p key rotate"
    )]
    Key(key::KeyCommand),
    /// Pack, sign and publish the pack in DIR
    #[command(
        after_help = "Examples:\n  ggen-p2p publish\n  ggen-p2p publish ./my-pack\n  ggen-p2p publish ./my-pack --json"
    )]
    Publish(PublishRequest),
    /// Search packs by name, keyword and description
    #[command(
        after_help = "Examples:\n  ggen-p2p search rust web\n  ggen-p2p search --category web --limit 5\n  ggen-p2p search axum --network"
    )]
    Search(SearchRequest),
    /// Show a pack's details, versions and publishers
    #[command(
        after_help = "Examples:\n  ggen-p2p info rust-axum-service\n  ggen-p2p info rust-axum-service@^1\n  ggen-p2p info rust-axum-service --publisher gp1abc"
    )]
    Info(InfoRequest),
    /// Start a new pack: package.toml, README and a template in DIR
    #[command(
        after_help = "Examples:\n  ggen-p2p init ./my-pack\n  ggen-p2p init ./my-pack --name my-pack --category web --yes"
    )]
    Init(InitRequest),
    /// Install a pack and its dependencies (fetched from peers if not stored here)
    #[command(
        after_help = "Examples:\n  ggen-p2p install rust-axum-service\n  ggen-p2p install rust-axum-service@^1 --to ./service\n  ggen-p2p install rust-axum-service --to ./service --locked"
    )]
    Install(InstallRequest),
    /// Remove an installed pack and the dependencies installed with it
    #[command(
        after_help = "Examples:\n  ggen-p2p uninstall rust-axum-service\n  ggen-p2p uninstall rust-axum-service --path ./service"
    )]
    Uninstall(UninstallRequest),
    /// Show installed versions against the newest compatible and newest published
    #[command(after_help = "Examples:\n  ggen-p2p outdated\n  ggen-p2p outdated --json")]
    Outdated(OutdatedRequest),
    /// Move installed packs to the newest versions their requirements allow
    #[command(
        after_help = "Examples:\n  ggen-p2p update\n  ggen-p2p update rust-tracing-setup --path ./service"
    )]
    Update(UpdateRequest),
    /// List installed packs and packs you published
    #[command(after_help = "Examples:\n  ggen-p2p list\n  ggen-p2p list --json")]
    List(ListRequest),
    /// Hide one of your versions from new installs (lockfiles can still fetch it)
    #[command(after_help = "Examples:\n  ggen-p2p yank rust-axum-service@1.2.0")]
    Yank(YankRequest),
    /// Show this node: identity, peers, records and packs known, bytes stored
    #[command(after_help = "Examples:\n  ggen-p2p status\n  ggen-p2p status --json")]
    Status(StatusRequest),
    /// Re-check every stored record signature and archive hash
    #[command(after_help = "Examples:\n  ggen-p2p verify\n  ggen-p2p verify --repair")]
    Verify(VerifyRequest),
    /// Run a node: the libp2p network, the local API and the dashboard
    #[command(
        after_help = "Examples:\n  ggen-p2p start\n  ggen-p2p start --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...\n  ggen-p2p -v start --no-mdns --api 127.0.0.1:8080"
    )]
    Start(start::Args),
    /// List connected peers, or add/remove one
    #[command(
        after_help = "Examples:\n  ggen-p2p peers\n  ggen-p2p peers add /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...\n  ggen-p2p peers block 12D3KooW..."
    )]
    Peers(peers::Args),
    /// Pin publisher keys that own names here, whoever was accepted first
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  ggen-p2p trust add gp1abc... --name rust-axum-service\n  ggen-p2p trust list"
    )]
    Trust(trust::TrustCommand),
    /// Start a small network in this process and show a pack travel across it
    #[command(
        after_help = "Examples:\n  ggen-p2p demo\n  ggen-p2p demo --nodes 3 --fast\n  ggen-p2p demo --json --data-dir ./tour"
    )]
    Demo(demo::Args),
    /// Use HTTP mirrors: import every record of one (serve one with `start --mirror`)
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  ggen-p2p mirror sync http://127.0.0.1:8080\n  ggen-p2p mirror sync http://127.0.0.1:8080 --json"
    )]
    Mirror(mirror::MirrorCommand),
    /// Show the effective configuration and where each value comes from
    #[command(subcommand)]
    #[command(after_help = "Examples:\n  ggen-p2p config show\n  ggen-p2p config show --json")]
    Config(config::ConfigCommand),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    #[command(
        after_help = "Examples:\n  ggen-p2p completions bash > ~/.local/share/bash-completion/completions/ggen-p2p\n  ggen-p2p completions zsh > ~/.zfunc/_ggen-p2p\n  ggen-p2p completions fish > ~/.config/fish/completions/ggen-p2p.fish"
    )]
    Completions(completions::Args),
}

/// Parses `args` and runs the command; returns the process exit code (0 success, 1
/// failure, 2 usage error). Errors are printed here, once, as `--json` asks.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return clap_error(err, &args),
    };
    let json = cli.json;
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = anyhow::Error::new(err).context("cannot start the async runtime");
            return error::print(&err, json);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(err) if error::is_broken_pipe(&err) => 0,
        Err(err) => error::print(&err, json),
    }
}

/// clap's own outcome: help and version are printed as asked (exit 0); a usage error is
/// printed by clap (exit 2), or as the JSON error object when `--json` was among the
/// arguments (the parse failed, so the flag is looked for in the raw arguments).
fn clap_error(err: clap::Error, args: &[OsString]) -> u8 {
    use clap::error::ErrorKind;
    let informational = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let wants_json = args.iter().skip(1).any(|a| a == "--json");
    if informational || !wants_json {
        let _ = err.print();
        return if err.use_stderr() {
            error::EXIT_USAGE
        } else {
            0
        };
    }
    let text = err.render().to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    error::print(
        &error::usage(
            message,
            "`ggen-p2p help COMMAND` shows the arguments and examples",
        ),
        true,
    )
}

/// Whether colour may be used on stderr: a terminal, and `NO_COLOR` unset or empty
/// (https://no-color.org).
pub fn color_on_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Logging on stderr. `-v`/`-vv`/`-vvv` choose info/debug/trace for every command and
/// override `RUST_LOG`; without them `RUST_LOG` decides, else the daemon logs at info
/// (libp2p's noisiest parts, and the resolver's step-by-step trace, which `pubgrub`
/// logs at info, quieter) and other commands log only errors. `--quiet`
/// logs errors only. Writes that fail (a closed stderr) are dropped silently.
fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let daemon = matches!(cli.command, Command::Start(_));
    let filter = match cli.verbose {
        0 if cli.quiet => EnvFilter::new("error"),
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(if daemon {
                "info,libp2p_kad=error,libp2p_swarm=warn,pubgrub=warn"
            } else {
                "error"
            })
        }),
        1 => EnvFilter::new("info,libp2p_kad=error,libp2p_swarm=warn,pubgrub=warn"),
        2 => EnvFilter::new("debug,libp2p_kad=info,libp2p_swarm=info,hyper=info,pubgrub=info"),
        _ => EnvFilter::new("trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color_on_stderr())
        .with_writer(QuietStderr)
        .log_internal_errors(false)
        .try_init();
}

/// stderr for the log that never fails: a closed stderr (`start 2>&1 | head`) must not
/// turn a log line into a panic.
struct QuietStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QuietStderr {
    type Writer = output::QuietWriter<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        output::QuietWriter(std::io::stderr())
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output::new(cli.json, cli.quiet);
    let data_dir = crate::config::data_dir(cli.data_dir.as_deref())?;
    match cli.command {
        Command::Key(command) => key::run(&data_dir, command, &out).await,
        Command::Start(args) => start::run(&data_dir, args, &out).await,
        Command::Demo(args) => demo::run(args, cli.data_dir.as_deref(), &out).await,
        Command::Completions(args) => completions::run(args),
        Command::Config(command) => config::run(&data_dir, command, &out),
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
                Command::Key(_)
                | Command::Start(_)
                | Command::Demo(_)
                | Command::Completions(_)
                | Command::Config(_) => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command and subcommand shows examples in its `--help`.
    #[test]
    fn every_command_has_examples() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            let has = command
                .get_after_help()
                .is_some_and(|text| text.to_string().starts_with("Examples:"));
            if !has && command.get_name() != "help" {
                missing.push(path.clone());
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no Examples: in {missing:?}");
        Cli::command().debug_assert();
    }
}
