//! Helpers shared by the network benchmarks: real registry nodes on loopback TCP (built
//! exactly as `tests/registry_network.rs` builds them), generated packs, waits and
//! percentiles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ggen_p2p::package::PublisherKey;
use ggen_p2p::registry::{P2PRegistry, P2PRegistryBuilder};
use rand::{RngCore, SeedableRng};

pub const MIB: u64 = 1 << 20;
const DEADLINE: Duration = Duration::from_secs(120);

pub async fn node(root: &Path, name: &str, bootstrap: Vec<String>) -> Result<P2PRegistry> {
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(root.join(name))
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".into()])
        .with_bootstrap_peers(bootstrap)
        .with_mdns(false)
        .with_autonat(false)
        .build()?;
    registry.start().await?;
    Ok(registry)
}

/// `/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>` of a started node.
pub async fn address(node: &P2PRegistry) -> Result<String> {
    let client = node.client().context("node not started")?;
    let begun = Instant::now();
    loop {
        if let Some(addr) = client.listen_addrs().await?.first() {
            return Ok(format!("{addr}/p2p/{}", client.peer_id()));
        }
        if begun.elapsed() > DEADLINE {
            bail!("node never reported a listen address");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn with_key(node: &P2PRegistry) -> Result<()> {
    PublisherKey::generate().save(&node.publisher_key_path(), false)?;
    Ok(())
}

/// A pack `name` holding `bytes` random (incompressible) bytes.
pub fn random_pack(dir: &Path, name: &str, bytes: usize, seed: u64) -> Result<PathBuf> {
    let pack = dir.join(name);
    std::fs::create_dir_all(&pack)?;
    std::fs::write(
        pack.join("package.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"benchmark pack\"\n"
        ),
    )?;
    let mut data = vec![0u8; bytes];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    std::fs::write(pack.join("blob.bin"), data)?;
    Ok(pack)
}

pub async fn wait_for(node: &P2PRegistry, name: &str, version: &semver::Version) -> Result<()> {
    let begun = Instant::now();
    while node.store().version(name, version, None)?.is_none() {
        if begun.elapsed() > DEADLINE {
            bail!(
                "{name}@{version} never reached {}",
                node.data_dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until `node` is connected to at least `count` peers.
pub async fn wait_connected(node: &P2PRegistry, count: usize) -> Result<()> {
    let client = node.client().context("node not started")?;
    let begun = Instant::now();
    while client.connected_peers().await?.len() < count {
        if begun.elapsed() > DEADLINE {
            bail!("{} never reached {count} peers", node.data_dir().display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `uptime`'s load line, for the report.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
