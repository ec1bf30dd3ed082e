//! Node configuration: `config.toml` in the data directory, then `GGEN_P2P_*`
//! environment variables, then command-line flags — each layer overrides the one before.
//! [`Layers`] resolves them key by key and remembers where each value came from (for
//! `config show`); every key has an environment variable named after it ([`env_var`]).
//!
//! Defaults follow DESIGN.md ("The node as a program"). The data directory itself is
//! chosen by [`data_dir`]: `--data-dir`, else `GGEN_P2P_HOME`, else the platform's data
//! dir. `docs/configuration.md` documents every key (a test keeps it complete).

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
    #[error("{var}={value:?}: {reason}; fix or unset the variable")]
    Env {
        var: String,
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
    /// Peer ids refused and disconnected (as `peers block` does, but only while listed).
    pub block: Vec<String>,
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
    /// Behind NAT (as AutoNAT finds), reserve a slot on relays among the peers so others
    /// can reach this node through them (`/p2p-circuit` addresses). Off: reachable only
    /// by its own addresses.
    pub relay_client: bool,
    /// Package name → the only publisher key accepted for it (like Nix's trusted keys).
    pub trusted_publishers: BTreeMap<String, PublisherId>,
    /// Per-peer limits on the requests this node answers (`[rate_limits.search]` ...).
    pub rate_limits: RateLimits,
    /// Chunk bytes a second this node uploads at most, 0 for no limit. Set a little
    /// below the upload link's rate, chunks leave one after another at that pace instead
    /// of queueing in the sockets and the router, which speeds up swarms.
    pub upload_limit: u64,
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
    /// Archive chunks, in MiB (`net::ratelimit::CHUNK_UNIT`), whatever their size.
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
            block: Vec::new(),
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
            relay_client: true,
            trusted_publishers: BTreeMap::new(),
            rate_limits: RateLimits::default(),
            upload_limit: 0,
            mirror_listen: None,
            mirrors: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `<dir>/config.toml` if it exists (defaults otherwise), then applies the
    /// environment.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        Ok(Layers::resolve(dir, |var| std::env::var(var).ok(), &[])?.config)
    }

    /// Applies `GGEN_P2P_*` variables (as `get` finds them) over this configuration.
    #[cfg(test)]
    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut value = to_table(self);
        for key in keys() {
            let var = env_var(&key);
            if let Some(text) = get(&var) {
                let parsed = parse_env(&var, &text, lookup(&value, &key))?;
                set(&mut value, &key, parsed);
            }
        }
        *self = without_blank_options(from_table(value, || PathBuf::from("environment"))?);
        Ok(())
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    File,
    Environment,
    Flag,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Environment => "environment",
            Source::Flag => "flag",
        }
    }
}

/// The effective configuration and, for every key, the layer that set it.
#[derive(Debug, Clone)]
pub struct Layers {
    pub config: Config,
    /// Every key ([`keys`]) with its source.
    pub sources: BTreeMap<String, Source>,
    /// The file read (it may not exist; then every value is a default or overridden).
    pub file: PathBuf,
}

impl Layers {
    /// Defaults, then `<dir>/config.toml`, then the environment (`get`), then `flags`
    /// (key, value) — each as `start` would apply them.
    pub fn resolve(
        dir: &Path,
        get: impl Fn(&str) -> Option<String>,
        flags: &[(&str, toml::Value)],
    ) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let file: Option<toml::Table> = match std::fs::read_to_string(&path) {
            Ok(text) => {
                // Parsed as a `Config` first, so unknown keys and wrong types are refused.
                let _: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: path.clone(),
                    reason: e.message().to_string(),
                })?;
                Some(toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: path.clone(),
                    reason: e.message().to_string(),
                })?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let mut value = to_table(&Config::default());
        let mut sources = BTreeMap::new();
        for key in keys() {
            let mut source = Source::Default;
            if let Some(found) = file.as_ref().and_then(|f| lookup_table(f, &key)) {
                set(&mut value, &key, found.clone());
                source = Source::File;
            }
            let var = env_var(&key);
            if let Some(text) = get(&var) {
                let parsed = parse_env(&var, &text, lookup(&value, &key))?;
                set(&mut value, &key, parsed);
                source = Source::Environment;
            }
            if let Some((_, flag)) = flags.iter().find(|(k, _)| *k == key) {
                set(&mut value, &key, flag.clone());
                source = Source::Flag;
            }
            sources.insert(key, source);
        }
        let config = without_blank_options(from_table(value, || path.clone())?);
        Ok(Self {
            config,
            sources,
            file: path,
        })
    }

    /// Every key with its effective value (as TOML) and source, in key order.
    pub fn entries(&self) -> Vec<(String, toml::Value, Source)> {
        let value = to_table(&self.config);
        self.sources
            .iter()
            .map(|(key, source)| {
                let v = lookup(&value, key).cloned().unwrap_or_else(|| {
                    if OPTIONAL_KEYS.contains(&key.as_str()) {
                        toml::Value::String(String::new())
                    } else {
                        toml::Value::Table(Default::default())
                    }
                });
                (key.clone(), v, *source)
            })
            .collect()
    }
}

/// Every configuration key, dotted for nested tables (`gossip.mesh_n`,
/// `rate_limits.search.burst`), sorted. Maps chosen by the user (`trusted_publishers`)
/// are one key.
pub fn keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                toml::Value::Table(inner) if !USER_MAPS.contains(&key.as_str()) => {
                    walk(&key, inner, out)
                }
                _ => out.push(key),
            }
        }
    }
    let mut out = Vec::new();
    if let toml::Value::Table(table) = to_table(&Config::default()) {
        walk("", &table, &mut out);
    }
    out.extend(OPTIONAL_KEYS.iter().map(|k| k.to_string()));
    out.sort();
    out
}

/// Keys unset by default (TOML has no null, so the default table leaves them out); an
/// empty value turns them off again.
const OPTIONAL_KEYS: &[&str] = &["mirror_listen"];

/// A configuration with every optional key that holds only blanks unset.
fn without_blank_options(mut config: Config) -> Config {
    config.mirror_listen = config.mirror_listen.filter(|v| !v.trim().is_empty());
    config
}

/// Keys whose value is a table of the user's own names, not of settings.
const USER_MAPS: &[&str] = &["trusted_publishers"];

/// The environment variable for a key: `GGEN_P2P_` and the key in capitals, a nested
/// table's dot as `__` (`gossip.mesh_n` → `GGEN_P2P_GOSSIP__MESH_N`).
pub fn env_var(key: &str) -> String {
    format!("GGEN_P2P_{}", key.replace('.', "__").to_ascii_uppercase())
}

fn to_table(config: &Config) -> toml::Value {
    toml::Value::try_from(config).expect("a Config always serialises to a TOML table")
}

fn from_table(value: toml::Value, path: impl Fn() -> PathBuf) -> Result<Config, ConfigError> {
    value
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            path: path(),
            reason: e.message().to_string(),
        })
}

fn lookup<'a>(value: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(value, |v, part| v.get(part))
}

fn lookup_table<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let (first, rest) = match key.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (key, None),
    };
    let value = table.get(first)?;
    match rest {
        Some(rest) => lookup(value, rest),
        None => Some(value),
    }
}

fn set(value: &mut toml::Value, key: &str, new: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut at = value;
    for part in parts {
        let Some(table) = at.as_table_mut() else {
            return;
        };
        at = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    if let Some(table) = at.as_table_mut() {
        table.insert(last.to_string(), new);
    }
}

/// An environment value read as the key's type: true/false, a number, a comma-separated
/// list, `name=value` pairs for a map, else text.
fn parse_env(
    var: &str,
    text: &str,
    current: Option<&toml::Value>,
) -> Result<toml::Value, ConfigError> {
    let err = |reason: &str| ConfigError::Env {
        var: var.to_string(),
        value: text.to_string(),
        reason: reason.to_string(),
    };
    let items = || {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    Ok(match current {
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(parse_bool(var, text.to_string())?),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            text.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| err("expected a whole number, 0 or more"))?,
        ),
        Some(toml::Value::Array(_)) => {
            toml::Value::Array(items().map(toml::Value::String).collect())
        }
        Some(toml::Value::Table(_)) => {
            let mut table = toml::Table::new();
            for item in items() {
                let (name, value) = item
                    .split_once('=')
                    .ok_or_else(|| err("expected name=value pairs separated by commas"))?;
                table.insert(
                    name.trim().to_string(),
                    toml::Value::String(value.trim().to_string()),
                );
            }
            toml::Value::Table(table)
        }
        _ => toml::Value::String(text.to_string()),
    })
}

fn parse_bool(var: &str, value: String) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Env {
            var: var.to_string(),
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
        let layers = Layers::resolve(
            dir.path(),
            |var| (var == "GGEN_P2P_MIRROR_LISTEN").then(|| "127.0.0.1:9090".to_string()),
            &[],
        )
        .unwrap();
        assert_eq!(
            layers.config.mirror_listen.as_deref(),
            Some("127.0.0.1:9090")
        );
        assert_eq!(layers.sources["mirror_listen"], Source::Environment);
    }

    #[test]
    fn every_layer_is_told_apart_and_every_key_has_a_variable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "max_connections = 50\n[rate_limits.search]\nburst = 3\nper_sec = 1\n",
        )
        .unwrap();
        let key = crate::package::PublisherKey::generate().id().to_string();
        let pins = format!("web-kit={key}");
        let env = |var: &str| match var {
            "GGEN_P2P_MAX_CONNECTIONS" => Some("60".to_string()),
            "GGEN_P2P_RELAY__MAX_CIRCUITS" => Some("3".to_string()),
            "GGEN_P2P_TRUSTED_PUBLISHERS" => Some(pins.clone()),
            "GGEN_P2P_BLOCK" => Some("a, b".to_string()),
            _ => None,
        };
        let flags = [("mdns", toml::Value::Boolean(false))];
        let layers = Layers::resolve(dir.path(), env, &flags).unwrap();
        let c = &layers.config;
        assert_eq!(c.max_connections, 60);
        assert_eq!(
            c.rate_limits.search,
            Rate {
                burst: 3,
                per_sec: 1
            }
        );
        assert_eq!(c.relay.max_circuits, 3);
        assert_eq!(c.block, vec!["a", "b"]);
        assert_eq!(c.trusted_publishers["web-kit"].to_string(), key);
        assert!(!c.mdns);
        let source = |k: &str| layers.sources[k];
        assert_eq!(source("max_connections"), Source::Environment);
        assert_eq!(source("rate_limits.search.burst"), Source::File);
        assert_eq!(source("rate_limits.chunk.burst"), Source::Default);
        assert_eq!(source("mdns"), Source::Flag);
        assert_eq!(source("trusted_publishers"), Source::Environment);
        assert_eq!(layers.sources.len(), keys().len());
        assert!(keys().contains(&"gossip.mesh_n".to_string()));
        assert_eq!(env_var("gossip.mesh_n"), "GGEN_P2P_GOSSIP__MESH_N");
        // The variables that existed before every key had one keep their names.
        for old in ["listen", "bootstrap", "api", "mdns"] {
            assert!(keys().contains(&old.to_string()), "{old}");
        }
        let wrong = Layers::resolve(
            dir.path(),
            |var| (var == "GGEN_P2P_CACHE_SIZE").then(|| "-1".to_string()),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(wrong.contains("GGEN_P2P_CACHE_SIZE"), "{wrong}");
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
