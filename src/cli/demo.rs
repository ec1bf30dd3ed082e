//! `ggen-p2p demo`: the thirty-second tour. Starts N real nodes in this process on
//! loopback TCP, joined in a line (each knows only its neighbour, so records must be
//! forwarded), publishes the sample packs at one end, shows them arriving at every node,
//! installs one at the far end, and prints the timings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Output;
use crate::package::PublisherKey;
use crate::registry::{
    InstallRequest, P2PRegistry, P2PRegistryBuilder, Package, PackageSpec, Registry,
    PUBLISHER_KEY_FILE,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Directory of pack directories to publish
    #[arg(long, default_value = "examples/packs")]
    pub packs: PathBuf,
}

pub async fn run(args: Args, out: &Output) -> Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2 (one to publish, one to install)");
    }
    let packs = pack_dirs(&args.packs)?;
    let root = tempfile::tempdir().context("creating a temporary directory for the demo")?;
    out.line(format!(
        "starting {} nodes on 127.0.0.1 in a line…",
        args.nodes
    ))?;
    let started = Instant::now();
    let nodes = start_line(root.path(), args.nodes).await?;
    out.line(format!(
        "  {} nodes up and linked in {} ms",
        nodes.len(),
        started.elapsed().as_millis()
    ))?;

    let publisher = &nodes[0];
    PublisherKey::generate().save(&publisher.data_dir().join(PUBLISHER_KEY_FILE), false)?;
    let mut published = Vec::new();
    for dir in &packs {
        let package = Package::from_dir(dir)?;
        let (name, version) = (
            package.manifest.name.clone(),
            package.manifest.version.clone(),
        );
        // Publish and watch the other indexes at the same time: arrival times count from
        // the moment publish starts, not from when its replication receipt is ready.
        let begun = Instant::now();
        let (report, arrivals) = tokio::join!(
            publisher.publish(package.into()),
            wait_everywhere(&nodes, &name, &version, begun)
        );
        let (report, arrivals) = (report?, arrivals?);
        let receipt = report
            .receipt
            .as_ref()
            .map(|r| {
                format!(
                    "receipt: {} gossip peers, {} providers",
                    r.gossip_peers, r.providers
                )
            })
            .unwrap_or_default();
        out.line(format!(
            "published {}@{}: in every index after {:.1} ms (per node: {}); {receipt}",
            report.name,
            report.version,
            arrivals.iter().copied().fold(0.0, f64::max),
            arrivals
                .iter()
                .map(|ms| format!("{ms:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        published.push(report);
    }

    let far = nodes.last().context("no nodes")?;
    let first = published.first().context("no packs published")?;
    let begun = Instant::now();
    let target = root.path().join("installed").join(&first.name);
    let spec = PackageSpec::new(&first.name, first.version.to_string());
    let report = far
        .install(InstallRequest::new(spec).with_target(target), None)
        .await?;
    out.line(format!(
        "installed {}@{} at node {} (the far end) in {} ms: {} files from {} peer(s), verified",
        report.name,
        report.version,
        nodes.len() - 1,
        begun.elapsed().as_millis(),
        report.files,
        report.fetched_from.len()
    ))?;
    for node in &nodes {
        node.stop().await?;
    }
    out.line(format!(
        "done in {:.1} s; every node stopped cleanly",
        started.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

fn pack_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "{}: cannot read the sample packs; run the demo from the repository root or pass --packs DIR",
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

/// Starts `count` nodes; node i bootstraps from node i-1 only.
async fn start_line(root: &Path, count: usize) -> Result<Vec<P2PRegistry>> {
    let mut nodes: Vec<P2PRegistry> = Vec::with_capacity(count);
    for index in 0..count {
        let bootstrap = match nodes.last() {
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
        nodes.push(node);
    }
    // Wait until each node has its neighbour connected.
    for node in &nodes {
        let client = node.client().context("node not started")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.status().await?.connected_peers == 0 {
            if Instant::now() > deadline {
                bail!("a demo node did not connect to its neighbour within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(nodes)
}

async fn dial_addr(node: &P2PRegistry) -> Result<String> {
    let client = node.client().context("node not started")?;
    // `net::spawn` returns once every listener is bound.
    let addrs = client.listen_addrs().await?;
    let addr = addrs
        .first()
        .context("a demo node reported no listen address")?;
    Ok(format!("{addr}/p2p/{}", client.peer_id()))
}

/// Milliseconds from `begun` until each node's index holds `name@version`.
async fn wait_everywhere(
    nodes: &[P2PRegistry],
    name: &str,
    version: &semver::Version,
    begun: Instant,
) -> Result<Vec<f64>> {
    let mut arrived: Vec<Option<f64>> = vec![None; nodes.len()];
    while arrived.iter().any(Option::is_none) {
        for (node, slot) in nodes.iter().zip(arrived.iter_mut()) {
            if slot.is_none() && node.store().version(name, version, None)?.is_some() {
                *slot = Some(begun.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if begun.elapsed() > Duration::from_secs(30) {
            bail!("{name}@{version} did not reach every node within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(arrived.into_iter().flatten().collect())
}
