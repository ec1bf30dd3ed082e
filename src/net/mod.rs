//! The libp2p node: one event-loop task owns the swarm (gossip, DHT, request-response,
//! anti-entropy) and a cloneable [`Client`] sends it commands. This module holds the
//! configuration, the error type, the report types and [`spawn`].
//!
//! Layout: `protocol` (the wire spec), `behaviour` (swarm construction), `event_loop`
//! (the owner of the swarm, translation only), `command` (what the loop is asked),
//! `policy` (its decisions, socket-free), `nat` (reachability, relay reservations and
//! connection kinds, socket-free), `pending` (its ledger of waiting callers),
//! `inbound` (answers to requests), `client` (the handle), `sync` (anti-entropy),
//! `discovery` (bootstrap redial), `peers` (penalties and bans), `reputation` (per-peer
//! scores, socket-free), `ratelimit` (per-peer token buckets on inbound requests),
//! `providing` (the provider lifecycle: provide at start, forget stale), `transfer`
//! (archive download), `metrics` (the Prometheus registry the node counts into),
//! `explain` (libp2p errors in words).

pub(crate) mod behaviour;
pub(crate) mod client;
pub(crate) mod command;
pub(crate) mod discovery;
pub(crate) mod event_loop;
pub mod explain;
#[cfg(feature = "test-support")]
pub mod hostile;
pub(crate) mod inbound;
pub mod metrics;
pub(crate) mod nat;
pub(crate) mod peers;
pub(crate) mod pending;
pub(crate) mod policy;
pub(crate) mod protocol;
pub(crate) mod providing;
pub(crate) mod ratelimit;
pub mod reputation;
pub(crate) mod sync;
pub mod transfer;

use std::time::Duration;

pub use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

pub use client::Client;
pub use metrics::Metrics;
pub use nat::{Reachability, RelayLimits};
pub use pending::ProvidersFound;
pub use protocol::{Request, Response};

use crate::config::Config;
use crate::store::Store;
use crate::tasks::Tasks;

/// How the node runs: built from the node's [`Config`] (the one place defaults are
/// written) by [`NetConfig::from_config`]; [`NetConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Node identity (persisted `node.key`, loaded by the caller).
    pub keypair: libp2p::identity::Keypair,
    pub listen: Vec<Multiaddr>,
    /// Peers dialed at start and redialed with backoff; each must end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// When non-empty, the only peers allowed to connect (config `allow`).
    pub allow: Vec<PeerId>,
    /// Peers refused and disconnected, like `peers block` but from config (`block`).
    pub block: Vec<PeerId>,
    pub mdns: bool,
    /// AutoNAT probing. Off for loopback-only nodes: with QUIC on localhost its probes
    /// drop connections (rust-libp2p #3308).
    pub autonat: bool,
    /// Circuit relay v2 server bounds; `None` turns the server off. libp2p only
    /// advertises it once AutoNAT has confirmed an external address.
    pub relay_server: Option<RelayLimits>,
    /// Behind NAT, reserve slots on relays among the peers (`Config::relay_client`).
    pub relay_client: bool,
    pub max_connections: u32,
    /// Dial/negotiation and single request-response exchange timeout.
    pub connection_timeout: Duration,
    /// How long a connection with no active stream stays open.
    pub idle_timeout: Duration,
    /// DHT query timeout.
    pub query_timeout: Duration,
    pub replication_factor: usize,
    /// Gossipsub mesh degree (n, low, high).
    pub gossip_mesh: (usize, usize, usize),
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// Period of anti-entropy with a few random connected peers (also run once on each
    /// new connection).
    pub sync_interval: Duration,
    /// Whether this node runs anti-entropy at all (see `Config::anti_entropy`).
    pub anti_entropy: bool,
    /// How often connections are pruned down to twice the gossip mesh degree.
    pub prune_interval: Duration,
    /// Connections younger than this are never pruned (DHT queries and the first sync
    /// need them).
    pub prune_grace: Duration,
    /// Per-peer limits on the requests this node answers.
    pub rate_limits: crate::config::RateLimits,
    /// Chunk bytes a second this node uploads at most, paced (`Config::upload_limit`);
    /// 0: no limit.
    pub upload_limit: u64,
    /// Where the node counts what it does (`/metrics`); the registry hands in its own.
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// Test hook: answer inbound requests as an attacker would (`tests/hostile.rs`).
    #[cfg(feature = "test-support")]
    pub hostile: Option<hostile::Hostile>,
}

impl NetConfig {
    /// The defaults of [`Config::default`] with this identity.
    pub fn new(keypair: libp2p::identity::Keypair) -> Self {
        Self::from_config(&Config::default(), keypair)
            .expect("the default configuration's addresses are valid multiaddrs")
    }

    /// The network part of a node's configuration; addresses are parsed here, so a bad
    /// one is reported before anything listens.
    pub fn from_config(
        config: &Config,
        keypair: libp2p::identity::Keypair,
    ) -> Result<Self, NetError> {
        let gossip = &config.gossip;
        Ok(Self {
            keypair,
            listen: parse_addrs("listen", &config.listen)?,
            bootstrap: parse_addrs("bootstrap", &config.bootstrap)?,
            allow: parse_peers("allow", &config.allow)?,
            block: parse_peers("block", &config.block)?,
            mdns: config.mdns,
            autonat: config.autonat,
            relay_server: config.relay_server.then(|| {
                let relay = &config.relay;
                RelayLimits {
                    max_reservations: relay.max_reservations,
                    max_reservations_per_peer: relay.max_reservations_per_peer,
                    reservation_duration: Duration::from_secs(relay.reservation_duration_secs),
                    max_circuits: relay.max_circuits,
                    max_circuits_per_peer: relay.max_circuits_per_peer,
                    max_circuit_duration: Duration::from_secs(relay.max_circuit_duration_secs),
                    max_circuit_bytes: relay.max_circuit_bytes,
                }
            }),
            relay_client: config.relay_client,
            max_connections: config.max_connections,
            connection_timeout: Duration::from_secs(config.connection_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            query_timeout: Duration::from_secs(config.query_timeout_secs),
            replication_factor: config.replication_factor,
            gossip_mesh: (gossip.mesh_n, gossip.mesh_n_low, gossip.mesh_n_high),
            heartbeat: Duration::from_millis(gossip.heartbeat_ms.max(10)),
            sync_interval: Duration::from_secs(config.sync_interval_secs.max(1)),
            anti_entropy: config.anti_entropy,
            prune_interval: Duration::from_secs(1),
            prune_grace: Duration::from_secs(3),
            rate_limits: config.rate_limits.clone(),
            upload_limit: config.upload_limit,
            metrics: Default::default(),
            #[cfg(feature = "test-support")]
            hostile: None,
        })
    }
}

fn parse_peers(field: &str, peers: &[String]) -> Result<Vec<PeerId>, NetError> {
    peers
        .iter()
        .map(|peer| {
            peer.parse::<PeerId>().map_err(|e| {
                NetError::Config(format!(
                    "{field} entry {peer:?} is not a peer id ({e}); `ggen-p2p status` prints a node's id"
                ))
            })
        })
        .collect()
}

fn parse_addrs(field: &str, addrs: &[String]) -> Result<Vec<Multiaddr>, NetError> {
    addrs
        .iter()
        .map(|addr| {
            addr.parse::<Multiaddr>().map_err(|e| {
                NetError::Address(format!(
                    "{field} address {addr:?} is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4001"
                ))
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Address(String),
    #[error("listen on {addr}: {reason} (is the port in use? pick another with --listen)")]
    Listen { addr: Multiaddr, reason: String },
    #[error("the network task has stopped (the node is shutting down)")]
    Shutdown,
    #[error("{what}: timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    /// A dial the transport could not complete, told by [`explain::dial_error`] (the
    /// sentence names the address and what to check).
    #[error("{reason}")]
    Unreachable { addr: Multiaddr, reason: String },
    #[error("request to {peer}: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("dht: {0}")]
    Dht(String),
    #[error("store: {0}")]
    Store(String),
    #[error("too many {what} waiting at once (at most {limit}); retry when some have finished")]
    Overloaded { what: String, limit: usize },
}

impl From<crate::store::StoreError> for NetError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// What an announcement reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    /// Peers subscribed to the records topic when the record was gossiped.
    pub gossip_peers: usize,
    /// Peers that stored the DHT record.
    pub dht_peers: usize,
    /// Providers of the archive found afterwards, this node included.
    pub providers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub connected_peers: usize,
    pub routing_table_size: usize,
    pub gossip_mesh_peers: usize,
    /// What AutoNAT concluded: public, private or unknown.
    pub reachability: Reachability,
    /// Our circuit addresses, one per relay holding a reservation for us.
    pub relay_reservations: Vec<String>,
    /// Whether this node serves as a relay now (configured and publicly reachable).
    pub relay_server: bool,
    /// The configured bootstrap peers: connected, or why the last dial failed.
    pub bootstrap: Vec<discovery::BootstrapPeer>,
    /// Archives many nodes fetch through this one now (`transfer::swarm`).
    #[serde(default)]
    pub swarms: Vec<SwarmStatus>,
}

/// One archive this node downloads (serving what it holds) or seeds to a swarm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SwarmStatus {
    pub archive: String,
    /// Still downloading it (else: seeding a whole copy).
    pub downloading: bool,
    /// Verified chunks held, of `chunk_count`.
    pub chunks_held: u32,
    pub chunk_count: u32,
    /// Peers that asked what this node offers in the last minute.
    pub peers: usize,
    /// Chunks offered to askers as a seeder (super-seeding windows).
    pub chunks_handed_out: u64,
    /// Bytes of it sent to peers, and verified from peers, since the node started.
    #[serde(default)]
    pub bytes_uploaded: u64,
    #[serde(default)]
    pub bytes_downloaded: u64,
    /// Bytes per second sent and verified over the last 5 s.
    #[serde(default)]
    pub upload_bytes_per_s: u64,
    #[serde(default)]
    pub download_bytes_per_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub agent: Option<String>,
    pub rtt_ms: Option<u64>,
    /// "direct" or "relayed" (through a circuit relay).
    pub connection: Option<String>,
    /// This node's reputation score of the peer (see `reputation`).
    pub score: f64,
    /// Gossipsub's score of the peer, when it has one.
    pub gossip_score: Option<f64>,
}

/// Starts the event loop task (which alone owns the swarm) on `tasks` once every
/// listener is bound. The loop, and every task it spawns, ends when `tasks` is cancelled.
pub async fn spawn(config: NetConfig, store: Store, tasks: &Tasks) -> Result<Client, NetError> {
    event_loop::spawn(config, store, tasks.clone()).await
}
