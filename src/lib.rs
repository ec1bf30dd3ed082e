//! ggen-p2p: a peer-to-peer package registry for ggen packs.
//!
//! Publishers sign what they publish with their own Ed25519 key; every node keeps a
//! replica of the metadata and searches it locally; archives travel peer to peer and are
//! verified chunk by chunk. See `docs/` for the design decisions.
//!
//! # Layout
//! - [`package`]: manifests, deterministic archives, digests, keys, signed records (pure).
//! - [`store`]: the blob store and the SQLite index with search and trust state.
//! - [`net`]: the libp2p node: behaviour, protocol, event loop, sync and transfer.
//! - [`registry`]: the façade used by the CLI, the API and library users.
//! - [`api`]: the daemon's local HTTP API.
//! - [`mirror`]: the hybrid registry's HTTP mirror: serving a store, reading a mirror.
//! - [`cli`]: the `ggen-p2p` command line.
//! - [`tasks`]: the one shutdown root every task is spawned on.

pub mod api;
pub mod cli;
pub mod config;
#[cfg(feature = "test-support")]
pub mod fuzzing;
pub mod mirror;
pub mod net;
pub mod package;
pub mod registry;
pub mod store;
pub mod tasks;

pub use package::{Manifest, PublisherId, PublisherKey};
pub use registry::{
    InfoRequest, InstallRequest, P2PRegistry, P2PRegistryBuilder, Package, PackageMetadata,
    PackageSpec, PublishRequest, Registry, RegistryError, SearchRequest, SearchResult,
};
pub use store::Query;
