//! `ggen-p2p demo`: the thirty-second tour. Starts N real nodes in this process on
//! loopback TCP, joined in a line (each knows only its neighbour, so records must be
//! forwarded hop by hop), publishes sample packs at one end and shows which node got each
//! when, searches and installs at the far end, then says what to try next. The sample
//! packs are embedded in the binary, so the tour works from any directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::Output;
use crate::net::explain::short_peer;
use crate::package::PublisherKey;
use crate::registry::{
    InstallRequest, P2PRegistry, P2PRegistryBuilder, Package, PackageSpec, Progress, Registry,
    SearchRequest, FORMAT_VERSION, PUBLISHER_KEY_FILE,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes (at least 2)
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Publish the packs in DIR (pack directories) instead of the built-in samples
    #[arg(long, value_name = "DIR")]
    pub packs: Option<PathBuf>,
    /// No pauses between steps (for scripts and tests)
    #[arg(long)]
    pub fast: bool,
}

/// The built-in sample packs, in publish order (a dependency before its dependant).
const SAMPLES: &[(&str, &str)] = &[
    (
        "rust-tracing-setup/README.md",
        include_str!("../../examples/packs/rust-tracing-setup/README.md"),
    ),
    (
        "rust-tracing-setup/package.toml",
        include_str!("../../examples/packs/rust-tracing-setup/package.toml"),
    ),
    (
        "rust-tracing-setup/templates/Cargo.toml.snippet",
        include_str!("../../examples/packs/rust-tracing-setup/templates/Cargo.toml.snippet"),
    ),
    (
        "rust-tracing-setup/templates/src/main.rs.snippet",
        include_str!("../../examples/packs/rust-tracing-setup/templates/src/main.rs.snippet"),
    ),
    (
        "rust-tracing-setup/templates/src/telemetry.rs",
        include_str!("../../examples/packs/rust-tracing-setup/templates/src/telemetry.rs"),
    ),
    (
        "rust-axum-service/README.md",
        include_str!("../../examples/packs/rust-axum-service/README.md"),
    ),
    (
        "rust-axum-service/package.toml",
        include_str!("../../examples/packs/rust-axum-service/package.toml"),
    ),
    (
        "rust-axum-service/templates/Cargo.toml",
        include_str!("../../examples/packs/rust-axum-service/templates/Cargo.toml"),
    ),
    (
        "rust-axum-service/templates/src/config.rs",
        include_str!("../../examples/packs/rust-axum-service/templates/src/config.rs"),
    ),
    (
        "rust-axum-service/templates/src/main.rs",
        include_str!("../../examples/packs/rust-axum-service/templates/src/main.rs"),
    ),
    (
        "rust-axum-service/templates/src/routes/health.rs",
        include_str!("../../examples/packs/rust-axum-service/templates/src/routes/health.rs"),
    ),
    (
        "rust-axum-service/templates/src/routes/mod.rs",
        include_str!("../../examples/packs/rust-axum-service/templates/src/routes/mod.rs"),
    ),
    (
        "python-fastapi-service/README.md",
        include_str!("../../examples/packs/python-fastapi-service/README.md"),
    ),
    (
        "python-fastapi-service/package.toml",
        include_str!("../../examples/packs/python-fastapi-service/package.toml"),
    ),
    (
        "python-fastapi-service/templates/Dockerfile",
        include_str!("../../examples/packs/python-fastapi-service/templates/Dockerfile"),
    ),
    (
        "python-fastapi-service/templates/requirements.txt",
        include_str!("../../examples/packs/python-fastapi-service/templates/requirements.txt"),
    ),
    (
        "python-fastapi-service/templates/app/__init__.py",
        include_str!("../../examples/packs/python-fastapi-service/templates/app/__init__.py"),
    ),
    (
        "python-fastapi-service/templates/app/main.py",
        include_str!("../../examples/packs/python-fastapi-service/templates/app/main.py"),
    ),
    (
        "python-fastapi-service/templates/app/settings.py",
        include_str!("../../examples/packs/python-fastapi-service/templates/app/settings.py"),
    ),
    (
        "python-fastapi-service/templates/tests/test_health.py",
        include_str!("../../examples/packs/python-fastapi-service/templates/tests/test_health.py"),
    ),
];

/// `demo --json`: what happened, with times in milliseconds from the tour's start.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub format_version: u32,
    /// Where the nodes' data directories are, when kept (`--data-dir`); otherwise they
    /// were temporary and are gone.
    pub data_dir: Option<PathBuf>,
    pub nodes: Vec<DemoNode>,
    pub published: Vec<DemoPublish>,
    pub search: DemoSearch,
    pub install: DemoInstall,
    pub elapsed_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct DemoNode {
    pub index: usize,
    pub peer_id: String,
    /// When it was connected to its neighbour.
    pub joined_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct DemoPublish {
    pub name: String,
    pub version: semver::Version,
    /// One per node that received the record, in order of arrival.
    pub arrivals: Vec<DemoArrival>,
}

#[derive(Debug, Serialize)]
pub struct DemoArrival {
    pub node: usize,
    /// Links between the publishing node and this one.
    pub hops: usize,
    /// From the moment publish began.
    pub after_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct DemoSearch {
    pub node: usize,
    pub words: Vec<String>,
    pub results: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DemoInstall {
    pub node: usize,
    pub name: String,
    pub version: semver::Version,
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub fetched_from: Vec<String>,
    pub dependencies: Vec<String>,
    pub took_ms: u64,
}

/// Pauses between steps so a person can read along, none with `--fast` or `--json`.
struct Pace(Option<Duration>);

impl Pace {
    async fn step(&self) {
        if let Some(pause) = self.0 {
            tokio::time::sleep(pause).await;
        }
    }

    async fn beat(&self) {
        if let Some(pause) = self.0 {
            tokio::time::sleep(pause / 4).await;
        }
    }
}

/// Human lines on stdout, none under `--json` (the report says it all at the end).
fn say(out: &Output, text: impl std::fmt::Display) -> Result<()> {
    if !out.json {
        out.line(text)?;
    }
    Ok(())
}

pub async fn run(args: Args, data_dir: Option<&Path>, out: &Output) -> Result<()> {
    if args.nodes < 2 {
        return Err(super::error::usage(
            format!(
                "--nodes must be at least 2 (one to publish, one to install), not {}",
                args.nodes
            ),
            "example: ggen-p2p demo --nodes 3",
        ));
    }
    let pace = Pace((!args.fast && !out.json).then(|| Duration::from_millis(2500)));
    // Kept under --data-dir (to look at afterwards); a temporary directory otherwise.
    let temp;
    let root: PathBuf = match data_dir {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
                return Err(super::error::usage(
                    format!(
                        "{} is not empty; the tour needs a fresh directory",
                        dir.display()
                    ),
                    "pass a new --data-dir (it is created), or leave it out for a temporary one",
                ));
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the demo directory", dir.display()))?;
            dir.to_path_buf()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory for the demo")?;
            temp.path().to_path_buf()
        }
    };
    let packs = match &args.packs {
        Some(dir) => pack_dirs(dir)?,
        None => write_samples(&root.join("packs"))?,
    };
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;

    say(
        out,
        format!(
            "The tour: {} ggen-p2p nodes on 127.0.0.1, each linked only to its neighbour:",
            args.nodes
        ),
    )?;
    say(
        out,
        format!(
            "  {}",
            (0..args.nodes)
                .map(|i| format!("node{i}"))
                .collect::<Vec<_>>()
                .join(" — ")
        ),
    )?;
    say(
        out,
        "so everything node0 publishes must be passed along, hop by hop, to reach the far end.",
    )?;
    pace.step().await;

    say(out, "")?;
    say(out, "1. Peers join")?;
    let mut nodes: Vec<P2PRegistry> = Vec::with_capacity(args.nodes);
    let mut joined = Vec::new();
    for index in 0..args.nodes {
        let node = start_node(&root, index, nodes.last()).await?;
        let peer = node.client().context("node not started")?.peer_id();
        if index > 0 {
            wait_connected(&node).await?;
            say(
                out,
                format!(
                    "   node{index} ({}) joined, connected to node{}",
                    short_peer(&peer),
                    index - 1
                ),
            )?;
        } else {
            say(
                out,
                format!("   node0 ({}) is up, alone", short_peer(&peer)),
            )?;
        }
        joined.push(DemoNode {
            index,
            peer_id: peer.to_string(),
            joined_ms: ms(),
        });
        nodes.push(node);
        pace.beat().await;
    }
    pace.step().await;

    say(out, "")?;
    say(
        out,
        "2. node0 publishes (signs each pack with a new publisher key) and the records travel",
    )?;
    let publisher = &nodes[0];
    PublisherKey::generate().save(&publisher.data_dir().join(PUBLISHER_KEY_FILE), false)?;
    let mut published = Vec::new();
    for dir in &packs {
        let package = Package::from_dir(dir)?;
        let (name, version) = (
            package.manifest.name.clone(),
            package.manifest.version.clone(),
        );
        // Arrival times count from the moment publish starts.
        let begun = Instant::now();
        let (report, arrivals) = tokio::join!(
            publisher.publish(package.into()),
            wait_everywhere(&nodes, &name, &version, begun)
        );
        let (report, arrivals) = (report?, arrivals?);
        say(
            out,
            format!("   {}@{} published at node0", report.name, report.version),
        )?;
        for arrival in arrivals.iter().filter(|a| a.node > 0) {
            say(
                out,
                format!(
                    "     node{} has it after {:>6.1} ms  ({} hop{})",
                    arrival.node,
                    arrival.after_ms,
                    arrival.hops,
                    if arrival.hops == 1 { "" } else { "s" }
                ),
            )?;
        }
        published.push(DemoPublish {
            name: report.name,
            version: report.version,
            arrivals,
        });
        pace.step().await;
    }

    let far_index = nodes.len() - 1;
    let far = &nodes[far_index];
    say(out, "")?;
    let words = vec!["axum".to_string()];
    say(
        out,
        format!(
            "3. node{far_index} searches its own replica for \"{}\" (no network round trip)",
            words.join(" ")
        ),
    )?;
    let found = far
        .search(SearchRequest::new(words.clone()).with_limit(5))
        .await?;
    let mut results = Vec::new();
    for hit in &found.results {
        say(
            out,
            format!(
                "     {}@{}  {}",
                hit.package.name,
                hit.package.version,
                super::output::truncate(&hit.package.description, 60)
            ),
        )?;
        results.push(format!("{}@{}", hit.package.name, hit.package.version));
    }
    if found.results.is_empty() {
        say(out, "     (nothing: try another word)")?;
    }
    pace.step().await;

    let first = found
        .results
        .first()
        .map(|hit| (hit.package.name.clone(), hit.package.version.to_string()))
        .or_else(|| {
            published
                .first()
                .map(|p| (p.name.clone(), p.version.to_string()))
        })
        .context("no packs published")?;
    say(out, "")?;
    say(
        out,
        format!(
            "4. node{far_index} installs {}@{}: archive fetched from peers, every chunk verified",
            first.0, first.1
        ),
    )?;
    let target = root.join("installed").join(&first.0);
    let bar = super::output::bytes_bar(out, "     fetching");
    let progress: Option<Progress> = bar.clone().map(|bar| {
        Arc::new(move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }) as Progress
    });
    let begun = Instant::now();
    let result = far
        .install(
            InstallRequest::new(PackageSpec::new(&first.0, first.1.clone())).with_target(&target),
            progress,
        )
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result?;
    let took_ms = begun.elapsed().as_millis() as u64;
    say(
        out,
        format!(
            "     {} files, {} from {} peer(s) in {took_ms} ms, into {}",
            report.files,
            super::output::human_bytes(report.size),
            report.fetched_from.len(),
            report.path.display()
        ),
    )?;
    for dep in &report.dependencies {
        say(
            out,
            format!("     with dependency {}@{}", dep.name, dep.version),
        )?;
    }
    let install = DemoInstall {
        node: far_index,
        name: report.name.clone(),
        version: report.version.clone(),
        path: report.path.clone(),
        files: report.files,
        bytes: report.size,
        fetched_from: report.fetched_from.clone(),
        dependencies: report
            .dependencies
            .iter()
            .map(|d| format!("{}@{}", d.name, d.version))
            .collect(),
        took_ms,
    };

    for node in &nodes {
        node.stop().await?;
    }
    let kept = data_dir.map(Path::to_path_buf);
    say(out, "")?;
    say(
        out,
        format!(
            "Done in {:.1} s; every node stopped cleanly.",
            started.elapsed().as_secs_f64()
        ),
    )?;
    say(out, "")?;
    say(out, "Try next:")?;
    if let Some(dir) = &kept {
        let far_dir = dir.join(format!("node{far_index}"));
        say(
            out,
            format!(
                "  ggen-p2p --data-dir {} list          # what the far node installed",
                far_dir.display()
            ),
        )?;
        say(
            out,
            format!(
                "  ggen-p2p --data-dir {} search rust   # its replica of every record",
                far_dir.display()
            ),
        )?;
    }
    say(
        out,
        "  ggen-p2p key generate && ggen-p2p init ./my-pack && ggen-p2p publish ./my-pack",
    )?;
    say(
        out,
        "  ggen-p2p start                  # a real node; then open the dashboard it prints",
    )?;
    say(
        out,
        "  ggen-p2p help                   # every command, each with examples",
    )?;
    if out.json {
        out.json(&DemoReport {
            format_version: FORMAT_VERSION,
            data_dir: kept,
            nodes: joined,
            published,
            search: DemoSearch {
                node: far_index,
                words,
                results,
            },
            install,
            elapsed_ms: ms(),
        })?;
    }
    Ok(())
}

/// Writes the embedded sample packs under `dir`; returns their directories in publish order.
fn write_samples(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut packs: Vec<PathBuf> = Vec::new();
    for (path, text) in SAMPLES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot write the sample packs", parent.display()))?;
        }
        std::fs::write(&file, text)
            .with_context(|| format!("{}: cannot write the sample packs", file.display()))?;
        let pack = dir.join(path.split('/').next().unwrap_or(path));
        if !packs.contains(&pack) {
            packs.push(pack);
        }
    }
    Ok(packs)
}

fn pack_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "{}: cannot read the pack directories; leave out --packs to use the built-in samples",
            dir.display()
        )
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("package.toml").exists() || p.join("gpack.toml").exists())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "{}: no pack directories (with package.toml) inside",
            dir.display()
        );
    }
    Ok(dirs)
}

/// Starts node `index` under `root`, bootstrapping from `previous` only.
async fn start_node(
    root: &Path,
    index: usize,
    previous: Option<&P2PRegistry>,
) -> Result<P2PRegistry> {
    let bootstrap = match previous {
        Some(previous) => vec![dial_addr(previous).await?],
        None => Vec::new(),
    };
    let node = P2PRegistryBuilder::new()
        .with_data_dir(root.join(format!("node{index}")))
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".into()])
        .with_bootstrap_peers(bootstrap)
        .with_mdns(false)
        .with_autonat(false)
        .build()?;
    node.start().await?;
    Ok(node)
}

async fn wait_connected(node: &P2PRegistry) -> Result<()> {
    let client = node.client().context("node not started")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.status().await?.connected_peers == 0 {
        if Instant::now() > deadline {
            bail!("a demo node did not connect to its neighbour within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn dial_addr(node: &P2PRegistry) -> Result<String> {
    let client = node.client().context("node not started")?;
    // `start` returns once every listener is bound.
    let addrs = client.listen_addrs().await?;
    let addr = addrs
        .first()
        .context("a demo node reported no listen address")?;
    Ok(format!("{addr}/p2p/{}", client.peer_id()))
}

/// When each node's index holds `name@version`, in order of arrival.
async fn wait_everywhere(
    nodes: &[P2PRegistry],
    name: &str,
    version: &semver::Version,
    begun: Instant,
) -> Result<Vec<DemoArrival>> {
    let mut arrived: Vec<DemoArrival> = Vec::new();
    while arrived.len() < nodes.len() {
        for (index, node) in nodes.iter().enumerate() {
            if !arrived.iter().any(|a| a.node == index)
                && node.store().version(name, version, None)?.is_some()
            {
                arrived.push(DemoArrival {
                    node: index,
                    hops: index,
                    after_ms: begun.elapsed().as_secs_f64() * 1000.0,
                });
            }
        }
        if begun.elapsed() > Duration::from_secs(30) {
            bail!("{name}@{version} did not reach every node within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(arrived)
}
