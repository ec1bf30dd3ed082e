//! What registry operations return. These structs are also the `--json` output of the
//! CLI and the bodies of the HTTP API, so their rustdoc is the schema: fields are only
//! ever added, and `format_version` changes if a field changes meaning.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::net::{NetStatus, PeerInfo, Receipt};
use crate::package::{ArchiveInfo, Blake3Hash, PublisherId, RecordId};
use crate::store::{Install, NameClaim, PackageMetadata, StoreStats};

/// Version of every JSON shape below.
pub const FORMAT_VERSION: u32 = 1;

/// `publish`: the signed version record now in the local index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishReport {
    pub format_version: u32,
    pub name: String,
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub archive: ArchiveInfo,
    pub record_id: RecordId,
    /// True when this exact version and archive had been published before (nothing new).
    pub already_published: bool,
    /// Replication receipt; absent when no node is running (offline publish).
    pub receipt: Option<Receipt>,
}

/// One `search` hit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    /// The owner's latest non-yanked version.
    pub package: PackageMetadata,
    /// Higher ranks first; comparable only within one result list.
    pub score: f64,
    /// Peers known to hold the archive (this node included when it has it).
    pub providers: usize,
    /// More than one publisher claims this name: `info` lists them.
    pub conflict: bool,
}

/// `search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchReport {
    pub format_version: u32,
    /// Peers that answered a `--network` search (0 for local search).
    pub peers_asked: usize,
    pub results: Vec<SearchResult>,
}

/// One line of a package's version history in `info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionLine {
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub published_at: u64,
    pub yanked: bool,
}

/// `info`: the resolved version in full, every known version, and who claims the name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoReport {
    pub format_version: u32,
    pub package: PackageMetadata,
    pub versions: Vec<VersionLine>,
    pub claims: Vec<NameClaim>,
    pub providers: usize,
    /// The archive is in this node's blob store.
    pub local: bool,
}

/// `install`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallReport {
    pub format_version: u32,
    pub name: String,
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub archive: Blake3Hash,
    pub size: u64,
    pub path: PathBuf,
    pub files: u64,
    /// Providers the download was spread over; empty when the archive was already
    /// stored here.
    pub fetched_from: Vec<String>,
    /// The same archive was already installed at `path`; nothing was written.
    pub already_installed: bool,
}

/// `list`: what this node has installed, and what it has published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListReport {
    pub format_version: u32,
    pub installed: Vec<Install>,
    pub published: Vec<PackageMetadata>,
}

/// `yank`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct YankReport {
    pub format_version: u32,
    pub name: String,
    pub version: semver::Version,
    pub record_id: RecordId,
    pub receipt: Option<Receipt>,
}

/// `key generate` / `key show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyReport {
    pub format_version: u32,
    pub publisher: PublisherId,
    pub path: PathBuf,
    pub created: bool,
}

/// `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub format_version: u32,
    pub data_dir: PathBuf,
    pub publisher: Option<PublisherId>,
    /// A node (daemon) is running and answered.
    pub online: bool,
    pub api: Option<String>,
    pub store: StoreStats,
    pub net: Option<NetStatus>,
}

/// `peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeersReport {
    pub format_version: u32,
    pub peers: Vec<PeerInfo>,
}

/// One damaged item found by `verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DamagedItem {
    /// Record id or archive BLAKE3, hex.
    pub id: String,
    pub reason: String,
}

/// `verify`: every stored record re-verified, every stored archive re-hashed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    pub format_version: u32,
    pub records_checked: u64,
    pub archives_checked: u64,
    pub bad_records: Vec<DamagedItem>,
    pub bad_archives: Vec<DamagedItem>,
}
