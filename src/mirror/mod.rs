//! The hybrid registry's HTTP side: a node can serve its store as a read-only mirror
//! ([`serve`]) and fetch from mirrors ([`client`]). This module is the wire spec; what
//! is done with fetched bytes (verification, ingest, providing) is the registry's
//! (`registry/mirror.rs`), on the same path as bytes from peers.
//!
//! # URL layout (plain HTTP, no token, GET and HEAD only)
//! - `/names`: every name the mirror holds a version record of, normalised, one per line
//!   (`text/plain`), with an `ETag`.
//! - `/index/<name>`: the sparse index of one name (`application/x-ndjson`), one
//!   [`IndexLine`] per record that touches it: its versions, its yanks, the key rotations
//!   of its publishers, and equivocation evidence, each as the exact signed bytes stored
//!   (base64). `ETag` is BLAKE3 over the record ids in order, so it changes when a record
//!   is added; `If-None-Match` answers `304`. Caches revalidate (`no-cache`).
//! - `/archives/<blake3 hex>`: an archive by its hash (`application/zstd`), streamed from
//!   the store, `Cache-Control: public, max-age=31536000, immutable`.
//!
//! # Limits and trust
//! A mirror is untrusted transport: a client believes nothing but signatures and
//! hashes. Every fetched body is capped ([`MAX_INDEX_BYTES`], [`MAX_NAMES_BYTES`], an
//! archive at the size its signed record declares).

pub mod client;
pub mod serve;

use serde::{Deserialize, Serialize};

pub use client::MirrorClient;
pub use serve::{serve, MirrorServer};

/// Largest index file a client reads (a name with thousands of versions fits).
pub const MAX_INDEX_BYTES: usize = 32 << 20;
/// Largest `/names` listing a client reads.
pub const MAX_NAMES_BYTES: usize = 16 << 20;

/// One line of an index file. Only `record` is believed (after verification); `kind`
/// and `id` are there for people and tools reading the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLine {
    /// `version`, `yank`, `rotation` or `evidence` (the refused side of an equivocation).
    pub kind: String,
    /// BLAKE3 of the record's bytes, hex.
    pub id: String,
    /// The exact signed bytes, standard base64.
    pub record: String,
}

/// Errors of serving or reaching a mirror; each names the mirror and what to do.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror address {addr:?}: {reason}; pass --mirror HOST:PORT, e.g. 0.0.0.0:8080")]
    BadAddress { addr: String, reason: String },
    #[error("cannot serve the mirror on {addr}: {source}; pass --mirror with a free port")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mirror URL {url:?}: {reason}; a mirror URL looks like http://mirror.example:8080")]
    BadUrl { url: String, reason: String },
    /// The mirror could not be reached or answered with an error status.
    #[error("mirror {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The mirror sent something that fails verification: it is refused.
    #[error("mirror {url} refused: {reason}")]
    Refused { url: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
