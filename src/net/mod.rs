//! The libp2p node: one event-loop task owns the swarm (gossip, DHT, request-response,
//! anti-entropy) and a cloneable [`Client`] sends it commands. This module holds the
//! configuration, the error type, the report types and [`spawn`].
//!
//! Layout: `protocol` (the wire spec), `behaviour` (swarm construction), `event_loop`
//! (the owner of the swarm), `inbound` (answers to requests), `client` (the handle), `sync` (anti-entropy digests),
//! `discovery` (bootstrap redial), `peers` (penalties), `transfer` (archive download).

pub mod behaviour;
pub mod client;
pub mod discovery;
pub mod event_loop;
pub mod inbound;
pub mod peers;
pub mod protocol;
pub mod sync;
pub mod transfer;

use std::time::Duration;

pub use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use client::Client;
pub use protocol::{Request, Response};

use crate::store::Store;

/// How the node runs. [`NetConfig::new`] gives the daemon's defaults.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Node identity (persisted `node.key`, loaded by the caller).
    pub keypair: libp2p::identity::Keypair,
    /// Default: tcp/4001 and udp/4001/quic-v1 on 0.0.0.0.
    pub listen: Vec<Multiaddr>,
    /// Peers dialed at start and redialed with backoff; each must end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    /// AutoNAT probing. Off for loopback-only nodes: with QUIC on localhost its probes
    /// drop connections (rust-libp2p #3308).
    pub autonat: bool,
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
    /// How often connections are pruned down to twice the gossip mesh's upper bound.
    pub prune_interval: Duration,
    /// Connections younger than this are never pruned (DHT queries and the first sync
    /// need them).
    pub prune_grace: Duration,
    /// Archives kept by the LRU cache (used by the registry/transfer layer).
    pub cache_size: usize,
}

impl NetConfig {
    pub fn new(keypair: libp2p::identity::Keypair) -> Self {
        let listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        Self {
            keypair,
            listen,
            bootstrap: Vec::new(),
            mdns: true,
            autonat: true,
            max_connections: 100,
            connection_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            query_timeout: Duration::from_secs(60),
            replication_factor: 20,
            gossip_mesh: (6, 4, 12),
            heartbeat: Duration::from_secs(1),
            sync_interval: Duration::from_secs(30),
            prune_interval: Duration::from_secs(10),
            prune_grace: Duration::from_secs(10),
            cache_size: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network configuration: {0}")]
    Config(String),
    #[error("listen on {addr}: {reason} (is the port in use? pick another with --listen)")]
    Listen { addr: Multiaddr, reason: String },
    #[error("the network task has stopped (the node is shutting down)")]
    Shutdown,
    #[error("{what}: timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("request to {peer}: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("dht: {0}")]
    Dht(String),
    #[error("store: {0}")]
    Store(String),
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub agent: Option<String>,
    pub rtt_ms: Option<u64>,
}

/// Starts the event loop task (which alone owns the swarm) once every listener is bound.
/// The loop ends when `shutdown` is cancelled.
pub async fn spawn(
    config: NetConfig,
    store: Store,
    shutdown: CancellationToken,
) -> Result<(Client, tokio::task::JoinHandle<()>), NetError> {
    event_loop::spawn(config, store, shutdown).await
}
