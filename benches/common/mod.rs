//! Helpers only the benchmarks need: generated packs, percentiles and the load line.
//! Nodes, waits and daemons come from the tests' harness (`tests/support/mod.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use rand::{RngCore, SeedableRng};

pub const MIB: u64 = 1 << 20;

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
    // Written in blocks, so a 1 GiB pack does not take 1 GiB of memory.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(pack.join("blob.bin"))?);
    let mut block = vec![0u8; 8 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len());
        rng.fill_bytes(&mut block[..n]);
        std::io::Write::write_all(&mut file, &block[..n])?;
        left -= n;
    }
    std::io::Write::flush(&mut file)?;
    Ok(pack)
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
