//! Node configuration: `config.toml` in the data directory, then `GGEN_P2P_*`
//! environment variables, then command-line flags — each layer overrides the one before.
//!
//! Defaults follow DESIGN.md ("The node as a program"). The data directory itself is
//! chosen by [`data_dir`]: `--data-dir`, else `GGEN_P2P_HOME`, else the platform's data dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::package::PublisherId;

pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}; fix the file or delete it to use the defaults")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{var}={value:?}: {reason}")]
    Env {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("no data directory could be determined; pass --data-dir DIR or set GGEN_P2P_HOME")]
    NoDataDir,
}

/// Everything a node can be told. Unknown keys in the file are refused so typos surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Multiaddrs (with `/p2p/<peer id>`) to dial at start and redial with backoff.
    pub bootstrap: Vec<String>,
    /// Peer ids allowed to connect; when non-empty, every other peer is refused.
    pub allow: Vec<String>,
    pub mdns: bool,
    /// AutoNAT probes; off is the right choice for loopback-only test networks.
    pub autonat: bool,
    /// Address of the local HTTP API; port 0 picks a free one.
    pub api: String,
    pub max_connections: u32,
    pub connection_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub query_timeout_secs: u64,
    pub replication_factor: usize,
    pub sync_interval_secs: u64,
    /// Anti-entropy: this node asks peers for the records it lacks (on each new
    /// connection and every `sync_interval_secs`). Off only to test or diagnose the other
    /// paths (gossip, DHT); peers still sync from this node.
    pub anti_entropy: bool,
    /// Fetched archives kept (least recently used go first); published ones are kept.
    pub cache_size: usize,
    /// An installed archive may unpack to at most `unpack_ratio` times its size (as its
    /// signed record declares it), and never less than `unpack_min_size` bytes is
    /// allowed: a 33 KiB bomb cannot fill the disk, a genuine pack always fits.
    pub unpack_ratio: u64,
    pub unpack_min_size: u64,
    pub gossip: GossipConfig,
    /// Serve as a circuit relay v2 for nodes behind NAT; it only takes effect once AutoNAT
    /// has confirmed this node is publicly reachable.
    pub relay_server: bool,
    /// Bounds of the relay server.
    pub relay: RelayConfig,
    /// Package name → the only publisher key accepted for it (like Nix's trusted keys).
    pub trusted_publishers: BTreeMap<String, PublisherId>,
    /// Per-peer limits on the requests this node answers (`[rate_limits.search]` ...).
    pub rate_limits: RateLimits,
    /// Serve this node's records and archives read-only over plain HTTP on this address
    /// (`HOST:PORT`) as a mirror (`start --mirror`); unset, no mirror is served.
    pub mirror_listen: Option<String>,
    /// HTTP mirrors (`http://HOST:PORT`) asked, in order, when no peer has a name's
    /// records or an archive; what they send is verified as from peers.
    pub mirrors: Vec<String>,
}

/// A token bucket: up to `burst` requests at once, refilled at `per_sec` a second;
/// `per_sec = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub burst: u32,
    pub per_sec: u32,
}

/// Per-peer, per-kind limits on inbound requests. A peer over one is answered "rate
/// limited: retry in N ms" and loses a little reputation. The defaults are far above
/// what syncing, searching and installing need (a fresh sync lists up to 256 buckets at
/// once; a download asks a provider for at most a few chunks at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Sync summaries and bucket listings.
    pub sync: Rate,
    /// `GetRecords` batches.
    pub records: Rate,
    pub search: Rate,
    pub chunk_list: Rate,
    pub chunk: Rate,
    /// DHT records and provider records peers ask this node to store.
    pub dht: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        let rate = |burst, per_sec| Rate { burst, per_sec };
        Self {
            sync: rate(600, 100),
            records: rate(200, 50),
            search: rate(30, 10),
            chunk_list: rate(64, 20),
            chunk: rate(512, 1000),
            dht: rate(2000, 500),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GossipConfig {
    pub mesh_n: usize,
    pub mesh_n_low: usize,
    pub mesh_n_high: usize,
    pub heartbeat_ms: u64,
}

/// Bounds of the circuit relay v2 server: reservations, circuits, and each circuit's
/// bytes and duration (bulk transfers use the direct connection DCUtR opens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub max_reservations: usize,
    pub max_reservations_per_peer: usize,
    pub reservation_duration_secs: u64,
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub max_circuit_duration_secs: u64,
    pub max_circuit_bytes: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_duration_secs: 3600,
            max_circuits: 16,
            max_circuits_per_peer: 4,
            max_circuit_duration_secs: 120,
            max_circuit_bytes: 1 << 20,
        }
    }
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            mesh_n: 6,
            mesh_n_low: 4,
            mesh_n_high: 12,
            heartbeat_ms: 1000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            allow: Vec::new(),
            mdns: true,
            autonat: true,
            api: "127.0.0.1:0".into(),
            max_connections: 100,
            connection_timeout_secs: 30,
            idle_timeout_secs: 60,
            query_timeout_secs: 60,
            replication_factor: 20,
            sync_interval_secs: 30,
            anti_entropy: true,
            cache_size: 1000,
            unpack_ratio: 200,
            unpack_min_size: 64 << 20,
            gossip: GossipConfig::default(),
            relay_server: true,
            relay: RelayConfig::default(),
            trusted_publishers: BTreeMap::new(),
            rate_limits: RateLimits::default(),
            mirror_listen: None,
            mirrors: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `<dir>/config.toml` if it exists (defaults otherwise), then applies the
    /// environment.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                reason: e.message().to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        config.apply_env(|var| std::env::var(var).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let list = |value: String| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(value) = get("GGEN_P2P_LISTEN") {
            self.listen = list(value);
        }
        if let Some(value) = get("GGEN_P2P_BOOTSTRAP") {
            self.bootstrap = list(value);
        }
        if let Some(value) = get("GGEN_P2P_API") {
            self.api = value;
        }
        if let Some(value) = get("GGEN_P2P_MIRRORS") {
            self.mirrors = list(value);
        }
        if let Some(value) = get("GGEN_P2P_MIRROR_LISTEN") {
            self.mirror_listen = Some(value).filter(|v| !v.trim().is_empty());
        }
        if let Some(value) = get("GGEN_P2P_MDNS") {
            self.mdns = parse_bool("GGEN_P2P_MDNS", value)?;
        }
        Ok(())
    }
}

fn parse_bool(var: &'static str, value: String) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Env {
            var,
            value,
            reason: "expected true or false".into(),
        }),
    }
}

/// The data directory: the flag, else `GGEN_P2P_HOME`, else the platform's data dir.
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(home) = std::env::var_os("GGEN_P2P_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("io", "ggen", "ggen-p2p")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or(ConfigError::NoDataDir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "bootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\ncache_size = 5\n[gossip]\nmesh_n = 8\n",
        )
        .unwrap();
        let mut config = Config::load(dir.path()).unwrap();
        assert_eq!(config.cache_size, 5);
        assert_eq!(config.gossip.mesh_n, 8);
        assert_eq!(config.gossip.mesh_n_low, 4);
        config
            .apply_env(|var| (var == "GGEN_P2P_LISTEN").then(|| "/ip4/127.0.0.1/tcp/0, ".into()))
            .unwrap();
        assert_eq!(config.listen, vec!["/ip4/127.0.0.1/tcp/0"]);
    }

    #[test]
    fn mirrors_come_from_the_file_then_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "mirrors = [\"http://a:1\"]\nmirror_listen = \"127.0.0.1:8080\"\n",
        )
        .unwrap();
        let mut config = Config::load(dir.path()).unwrap();
        assert_eq!(config.mirrors, vec!["http://a:1"]);
        assert_eq!(config.mirror_listen.as_deref(), Some("127.0.0.1:8080"));
        config
            .apply_env(|var| match var {
                "GGEN_P2P_MIRRORS" => Some("http://b:2, http://c:3".into()),
                "GGEN_P2P_MIRROR_LISTEN" => Some(String::new()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.mirrors, vec!["http://b:2", "http://c:3"]);
        assert_eq!(config.mirror_listen, None, "an empty variable turns it off");
    }

    #[test]
    fn unknown_keys_and_bad_env_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "cache_sise = 5\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cache_sise"), "{err}");
        let mut config = Config::default();
        assert!(config
            .apply_env(|var| (var == "GGEN_P2P_MDNS").then(|| "maybe".into()))
            .is_err());
    }
}
