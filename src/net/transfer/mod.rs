//! Downloads one archive from several providers at once, verifying every chunk on arrival
//! against a chunk list that is itself checked against the record, and resuming from the
//! partial file an interrupted attempt left. The network is behind [`ChunkSource`]; the
//! decisions live in [`schedule`], the disk format in the store's
//! [`partial`](crate::store::partial), whose files the [`Store`](crate::store::Store) owns.

mod choke;
mod client;
mod download;
pub(crate) mod pace;
pub mod schedule;
pub mod stream;
pub(crate) mod swarm;

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::path::Path;
use std::time::Duration;

use futures::{Stream, StreamExt};

use crate::package::Blake3Hash;
use crate::store::partial::{Layout, PartialError};
use crate::store::StoreError;
pub use client::download_to_store;
pub use download::{download, download_verified, download_with};
pub use schedule::{Failure, Limits, Schedule, Stuck};

/// Where chunks come from: the peer side of the chunk protocol. The libp2p client
/// implements it with `Request::ChunkList` and streamed ranges (`stream.rs`, falling
/// back to `Request::Chunk` for older peers); tests use in-memory peers.
pub trait ChunkSource: Send + Sync {
    type Peer: Clone + Eq + Hash + Debug + Send + Sync;

    /// The provider's chunk list of `archive` (checked by the caller).
    fn chunk_list(
        &self,
        peer: &Self::Peer,
        archive: &Blake3Hash,
    ) -> impl Future<Output = Result<Vec<Blake3Hash>, ListError>> + Send;

    /// Chunk `index` of `archive` (checked by the caller).
    fn chunk(
        &self,
        peer: &Self::Peer,
        archive: &Blake3Hash,
        index: u32,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;

    /// Chunks `first..first + count` of `archive` as they arrive, in order (checked by
    /// the caller); an error ends the range. By default each chunk is one [`chunk`]
    /// request, all sent at once; the libp2p client streams the range instead.
    ///
    /// [`chunk`]: ChunkSource::chunk
    fn chunk_range(
        &self,
        peer: Self::Peer,
        archive: Blake3Hash,
        first: u32,
        count: u32,
    ) -> impl Stream<Item = Result<(u32, Vec<u8>), String>> + Send + '_ {
        futures::stream::iter(first..first.saturating_add(count))
            .map(move |index| {
                let peer = peer.clone();
                async move { self.chunk(&peer, &archive, index).await.map(|b| (index, b)) }
            })
            .buffered(count.max(1) as usize)
    }

    /// What the download concluded about `peer` (the libp2p client feeds it to the
    /// peer's reputation). Nothing by default.
    fn judged(&self, _peer: &Self::Peer, _verdict: Verdict) {}

    /// Which chunks of `archive` `peer` offers this node, which holds `mine` (an offer
    /// with `chunks: None`: every chunk). Asked at the start, every
    /// [`TransferConfig::refresh`], and at once after an answer with [`Offer::again`]
    /// (see there). By default every provider offers everything.
    fn offers(
        &self,
        _peer: &Self::Peer,
        _archive: &Blake3Hash,
        _mine: Vec<bool>,
    ) -> impl Future<Output = Result<Offer, String>> + Send {
        async { Ok(Offer::default()) }
    }

    /// Providers of `archive` (complete or partial) known now; asked every
    /// [`TransferConfig::discover`] while the download runs, new ones join it. None by
    /// default.
    fn discover(&self, _archive: &Blake3Hash) -> impl Future<Output = Vec<Self::Peer>> + Send {
        async { Vec::new() }
    }

    /// Peers that providers' offers answers named as fetching `archive` too (peer
    /// exchange), not returned before; asked after every offers answer, so a swarm's
    /// members find each other within a round trip instead of at the next
    /// [`TransferConfig::discover`]. No lookup: none by default.
    fn named(&self, _archive: &Blake3Hash) -> Vec<Self::Peer> {
        Vec::new()
    }

    /// The download's partial file: `have` verified so far (so this node can serve
    /// them to others while it downloads). Nothing by default.
    fn joined(&self, _archive: &Blake3Hash, _path: &Path, _layout: Layout, _have: Vec<bool>) {}

    /// Chunk `index` was verified and written to the partial file.
    fn held(&self, _archive: &Blake3Hash, _index: u32) {}

    /// The download ended, whatever the outcome.
    fn left(&self, _archive: &Blake3Hash) {}
}

/// What a provider offers a downloader (an answer to [`ChunkSource::offers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// The chunks offered; `None`: every chunk.
    pub chunks: Option<Vec<bool>>,
    /// A seeder's window, held for this downloader for a moment (super-seeding): asked
    /// whole at once, past the download's caps, or the seeder's link idles meanwhile.
    pub window: bool,
    /// Ask again at once: the provider (a node still downloading) holds the next offers
    /// request until it has verified a chunk it has not told of yet, so chunks are
    /// announced as they arrive rather than at the next [`TransferConfig::refresh`].
    pub again: bool,
}

/// Why a provider gave no chunk list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// It answered without one ("not found", a refusal): its word, not asked again.
    Answered(String),
    /// The request failed on its way (the connection closed, the stream broke): worth
    /// asking again.
    Failed(String),
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListError::Answered(why) => write!(f, "{why}"),
            ListError::Failed(why) => write!(f, "chunk list request failed: {why}"),
        }
    }
}

/// What a download learned about one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent a chunk, or a chunk list, that does not match the record.
    Bad,
    /// Held a chunk request past its deadline.
    Stalled,
    /// Sent this many verified bytes.
    Good { bytes: u64 },
}

/// Tuning of one download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferConfig {
    pub limits: Limits,
    /// How long a provider may take to send the chunk list.
    pub list_deadline: Duration,
    /// How often each provider is asked what it offers (a partial holder offers more as
    /// it downloads; a seeder offers what it sent least).
    pub refresh: Duration,
    /// How often providers are looked up again while the download runs.
    pub discover: Duration,
    /// How long to wait with nothing received and nothing to ask before giving up.
    pub starve: Duration,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            list_deadline: Duration::from_secs(30),
            refresh: Duration::from_millis(250),
            discover: Duration::from_secs(2),
            starve: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("archive {archive}: the record cannot be downloaded: {reason}")]
    BadRecord { archive: Blake3Hash, reason: String },
    #[error(
        "archive {archive}: no provider sent a chunk list matching the record ({tried}); \
         hint: retry when other providers are online"
    )]
    NoChunkList { archive: Blake3Hash, tried: String },
    #[error(
        "archive {archive}: {stuck}; hint: retry later, the {done} verified chunks are kept \
         and the download resumes"
    )]
    Stuck {
        archive: Blake3Hash,
        stuck: String,
        missing: u32,
        done: u32,
    },
    #[error(transparent)]
    Partial(#[from] PartialError),
    #[error("archive {archive}: downloaded and verified, but the store refused it: {reason}")]
    Store { archive: Blake3Hash, reason: String },
    #[error("archive {archive}: a disk task failed: {reason}")]
    Task { archive: Blake3Hash, reason: String },
    /// The store's blocking task failed (see [`Store::call`](crate::store::Store::call)).
    #[error("download: {0}")]
    Disk(#[from] StoreError),
}
