//! What registry operations return. These structs are the `--json` output of the CLI and
//! the bodies of the HTTP API, so their rustdoc is the schema: fields are only ever added,
//! and `format_version` changes if a field changes meaning. They are their own types:
//! store and network structs convert into them (the `From` impls at the end), so renaming
//! an internal field cannot silently change a published shape; `tests/json_shapes.rs`
//! pins every shape.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::net;
use crate::package::{ArchiveInfo, Blake3Hash, PublisherId, RecordId};
use crate::store;

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

/// A package version as `search`, `info` and `list` show it: the fields its publisher
/// signed, plus what this node knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageMetadata {
    pub name: String,
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub description: String,
    pub category: Option<String>,
    pub keywords: Vec<String>,
    pub authors: Vec<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
    /// Dependency name → semver requirement, as the manifest wrote them.
    pub dependencies: BTreeMap<String, String>,
    pub archive: ArchiveInfo,
    /// Milliseconds since the Unix epoch, as the publisher's clock saw it.
    pub published_at: u64,
    /// The publisher hid this version from new resolutions.
    pub yanked: bool,
    /// BLAKE3 of the signed record's exact bytes.
    pub record_id: RecordId,
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

/// One `search` hit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    /// The owner's latest non-yanked version.
    pub package: PackageMetadata,
    /// Higher ranks first; comparable only within one result list.
    pub score: f64,
    /// Live peers known to hold the archive (this node included when it has it); null
    /// when unknown: none known and the DHT not asked yet.
    pub providers: Option<usize>,
    /// More than one publisher claims this name: `info` lists them.
    pub conflict: bool,
    /// Its publisher's key signed two different archives for this version: `install`
    /// refuses it unless the archive is pinned by hash (`info` lists both).
    #[serde(default)]
    pub compromised: bool,
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
    /// The publisher's key signed two different archives for this version (listed in
    /// the report's `compromised`); `install` refuses it unless the archive is pinned.
    #[serde(default)]
    pub compromised: bool,
}

/// A version its publisher's key signed with more than one archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompromisedVersion {
    pub version: semver::Version,
    pub publisher: PublisherId,
    /// Every archive signed for it (BLAKE3), sorted.
    pub archives: Vec<Blake3Hash>,
}

/// The owner a contested name took from its peers: `peers` of the `of` distinct peers
/// that attested an owner named this one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerAttestation {
    pub owner: PublisherId,
    pub peers: usize,
    pub of: usize,
}

/// A publisher claiming a name (one per rotation chain, named by its oldest key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameClaim {
    pub publisher: PublisherId,
    /// When this node first stored a version of the name from this publisher (ms).
    pub first_seen_at: u64,
    /// Smallest `published_at` of the publisher's versions of the name (ms).
    pub earliest_published_at: u64,
    /// The key is pinned for this name (config `trusted_publishers` or `trust add`).
    pub pinned: bool,
}

/// `info`: the resolved version in full, every known version, and who claims the name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoReport {
    pub format_version: u32,
    pub package: PackageMetadata,
    pub versions: Vec<VersionLine>,
    pub claims: Vec<NameClaim>,
    /// Live peers known to hold the archive (this node included when it has it); null
    /// when unknown: none known and the DHT not asked yet.
    pub providers: Option<usize>,
    /// The archive is in this node's blob store.
    pub local: bool,
    /// Versions of the name that are compromised (two archives signed by one key).
    #[serde(default)]
    pub compromised: Vec<CompromisedVersion>,
    /// This node met the name with competing claims at once (no owner of its own).
    #[serde(default)]
    pub contested: bool,
    /// For a contested name: the owner a majority of the attesting peers agree on.
    #[serde(default)]
    pub owner_attested: Option<OwnerAttestation>,
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
    /// Bytes of file content unpacked (0 when `already_installed`); capped by the
    /// record's archive size (`unpack_ratio`, `unpack_min_size` in config.toml).
    #[serde(default)]
    pub unpacked_size: u64,
    /// Providers the download was spread over; empty when the archive was already
    /// stored here.
    pub fetched_from: Vec<String>,
    /// The same archive was already installed at `path`; nothing was written.
    pub already_installed: bool,
    /// The resolved dependencies, each installed in `PATH/.ggen-p2p/deps/NAME`.
    #[serde(default)]
    pub dependencies: Vec<DependencyInstall>,
    /// The lockfile written (`PATH/ggen-p2p.lock`).
    #[serde(default)]
    pub lockfile: Option<PathBuf>,
    /// Things the user should know (a yanked version installed because it was pinned).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One dependency installed with a pack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DependencyInstall {
    pub name: String,
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub archive: Blake3Hash,
    pub size: u64,
    pub path: PathBuf,
    /// Files unpacked (0 when already installed).
    pub files: u64,
    /// Providers the download was spread over; empty when already stored here.
    pub fetched_from: Vec<String>,
    /// Yanked by its publisher (installed because a lockfile pins it).
    pub yanked: bool,
}

/// `init`: the pack created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitReport {
    pub format_version: u32,
    pub name: String,
    pub dir: PathBuf,
    /// Files written, relative to `dir`.
    pub files: Vec<PathBuf>,
}

/// `uninstall`: what was removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UninstallReport {
    pub format_version: u32,
    pub name: String,
    pub version: semver::Version,
    pub path: PathBuf,
    /// Dependencies removed with it (`name@version`).
    pub dependencies: Vec<String>,
    /// The directory had already vanished; only the records were forgotten.
    pub was_missing: bool,
}

/// One pack in `outdated`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutdatedPack {
    pub name: String,
    pub installed: semver::Version,
    /// Newest version every requirement of its tree allows (what `update` installs);
    /// `null` when the tree no longer resolves.
    pub compatible: Option<semver::Version>,
    /// Newest version published (not yanked).
    pub latest: Option<semver::Version>,
    /// Directory of the tree (the pack installed by name).
    pub tree: PathBuf,
    /// A dependency of the tree's pack rather than the pack itself.
    pub dependency: bool,
}

/// `outdated`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutdatedReport {
    pub format_version: u32,
    pub packs: Vec<OutdatedPack>,
    /// Trees whose dependencies no longer resolve, with the reason.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One version change made by `update`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionChange {
    pub name: String,
    /// `null`: newly added.
    pub from: Option<semver::Version>,
    /// `null`: no longer needed.
    pub to: Option<semver::Version>,
}

/// One tree `update` looked at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeUpdate {
    pub path: PathBuf,
    pub changes: Vec<VersionChange>,
}

/// `update`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateReport {
    pub format_version: u32,
    pub trees: Vec<TreeUpdate>,
    /// Trees kept as they are because only yanked versions fit them, with the reason.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One pack installed by this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: semver::Version,
    pub path: PathBuf,
    /// Milliseconds since the Unix epoch.
    pub installed_at: u64,
    /// `ok`, `missing` (the directory vanished), `changed` (its files differ from what
    /// was installed) or `unknown` (installed before digests were kept).
    #[serde(default)]
    pub status: String,
    /// For a dependency: the directory of the pack it was installed with.
    #[serde(default)]
    pub dependency_of: Option<PathBuf>,
}

/// `list`: what this node has installed, and what it has published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListReport {
    pub format_version: u32,
    pub installed: Vec<Installed>,
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

/// `start`: printed once the node listens, before it runs until stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartReport {
    pub format_version: u32,
    pub peer_id: String,
    /// Bound listen addresses (without the `/p2p/` suffix).
    pub listen_addrs: Vec<String>,
    /// Address of the local HTTP API and dashboard.
    pub api: String,
    /// Base URL of the HTTP mirror this node serves (`start --mirror`); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
}

/// `key generate` / `key show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyReport {
    pub format_version: u32,
    pub publisher: PublisherId,
    pub path: PathBuf,
    pub created: bool,
}

/// Counts from this node's index and blob store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreStats {
    pub records: u64,
    pub packages: u64,
    pub versions: u64,
    pub archives: u64,
    pub archive_bytes: u64,
    /// Conflicting records refused and kept as evidence.
    pub equivocations: u64,
}

/// The running node's network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub connected_peers: usize,
    pub routing_table_size: usize,
    pub gossip_mesh_peers: usize,
    /// What AutoNAT concluded about this node: "public", "private" or "unknown".
    pub reachability: String,
    /// This node's circuit addresses, one per relay holding a reservation for it.
    pub relay_reservations: Vec<String>,
    /// This node serves as a circuit relay now (configured and publicly reachable).
    pub relay_server: bool,
    /// The configured bootstrap peers: whether each is connected and, if not, why the
    /// last dial failed (one sentence with a hint).
    #[serde(default)]
    pub bootstrap: Vec<BootstrapPeer>,
    /// Archives fetched by many nodes through this one now: downloading (serving the
    /// chunks held meanwhile) or seeding a whole copy to peers that asked lately.
    #[serde(default)]
    pub swarms: Vec<net::SwarmStatus>,
}

/// One configured bootstrap peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapPeer {
    pub addr: String,
    pub connected: bool,
    /// Why the last dial failed, while not connected.
    pub error: Option<String>,
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

/// Network traffic since the node started, every transport and protocol summed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One archive download in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferLine {
    pub name: String,
    pub version: semver::Version,
    pub archive: Blake3Hash,
    /// Bytes verified and stored so far.
    pub done: u64,
    /// The archive's size.
    pub total: u64,
    /// When the download began (ms since the Unix epoch).
    pub started_at: u64,
}

/// `GET /api/v1/activity` (the dashboard): what the node is doing now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivityReport {
    pub format_version: u32,
    /// `null` when no node runs.
    pub traffic: Option<Traffic>,
    pub transfers: Vec<TransferLine>,
}

/// One `record` event of `GET /api/v1/events` (server-sent events): a record this node
/// has just accepted, from any path (its own publish, gossip, sync, DHT, a mirror).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordEvent {
    pub format_version: u32,
    /// `version`, `yank` or `rotation`.
    pub kind: String,
    /// The pack it is about (`null` for a key rotation).
    pub name: Option<String>,
    /// The version published or yanked (`null` for a key rotation).
    pub version: Option<semver::Version>,
    /// The signing key.
    pub publisher: PublisherId,
    /// The version's description (`null` unless `kind` is `version`).
    pub description: Option<String>,
    pub record_id: RecordId,
    /// When this node accepted it (ms since the Unix epoch).
    pub received_at: u64,
}

impl From<&crate::package::Record> for RecordEvent {
    fn from(record: &crate::package::Record) -> Self {
        use crate::package::RecordBody;
        let body = record.body();
        let (kind, version, description) = match body {
            RecordBody::Version(v) => (
                "version",
                Some(v.version.clone()),
                Some(v.description.clone()),
            ),
            RecordBody::Yank(y) => ("yank", Some(y.version.clone()), None),
            RecordBody::Rotation(_) => ("rotation", None, None),
        };
        Self {
            format_version: FORMAT_VERSION,
            kind: kind.into(),
            name: body.name().map(String::from),
            version,
            publisher: body.signer(),
            description,
            record_id: record.id(),
            received_at: store::now_ms(),
        }
    }
}

/// One check of `/health` or `/ready`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `store`, `event_loop` or `peers`.
    pub name: String,
    pub ok: bool,
    /// What was found, or what failed and what to do.
    pub detail: String,
}

/// `GET /health` and `GET /ready` (503 when `ok` is false).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthReport {
    pub format_version: u32,
    pub ok: bool,
    pub checks: Vec<HealthCheck>,
}

/// One connected peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    /// The connection's remote address first, then the addresses the peer listens on.
    pub addrs: Vec<String>,
    pub agent: Option<String>,
    /// Last ping round trip.
    pub rtt_ms: Option<u64>,
    /// "direct" or "relayed" (through a circuit relay; DCUtR upgrades it when it can).
    pub connection: Option<String>,
    /// This node's reputation score of the peer, from -100 to 25 (0: nothing known; at
    /// -50 it is banned). Bad chunks and records cost most; verified bytes earn a little;
    /// it decays toward 0 with a half-life of an hour.
    #[serde(default)]
    pub score: f64,
    /// Gossipsub's score of the peer (below -80 its gossip is ignored).
    #[serde(default)]
    pub gossip_score: Option<f64>,
}

/// `peers`, `peers add` and `peers remove`: the connected peers afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeersReport {
    pub format_version: u32,
    pub peers: Vec<PeerInfo>,
}

/// One banned peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BannedPeerInfo {
    pub peer_id: String,
    pub reason: String,
    /// When the ban began (ms since the Unix epoch).
    pub banned_at: u64,
    /// When it ends (ms since the Unix epoch): bans earned by a low reputation last a
    /// day; `null` for operator blocks, which last until `peers unblock`.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl From<store::BannedPeer> for BannedPeerInfo {
    fn from(ban: store::BannedPeer) -> Self {
        Self {
            peer_id: ban.peer,
            reason: ban.reason,
            banned_at: ban.banned_at,
            expires_at: ban.expires_at,
        }
    }
}

/// `peers block` / `peers unblock`: what changed, and every peer banned now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockReport {
    pub format_version: u32,
    pub peer_id: String,
    /// Whether the peer is banned now.
    pub blocked: bool,
    /// False when it already was in that state.
    pub changed: bool,
    pub banned: Vec<BannedPeerInfo>,
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
    /// Leftovers of interrupted work and index/blob mismatches: `id` is the path or the
    /// archive BLAKE3, `reason` the kind (`temp_file`, `partial_download`,
    /// `unpack_staging`, `blob_without_row`, `row_without_blob`, `damaged_row`).
    #[serde(default)]
    pub orphans: Vec<DamagedItem>,
    /// True when `--repair` removed or fixed the orphans listed.
    #[serde(default)]
    pub repaired: bool,
}

/// `mirror sync URL`: what importing a mirror's records did. Every record went through
/// the same checks as one from a peer (signature, owner rules, immutability).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorSyncReport {
    pub format_version: u32,
    /// The mirror's base URL.
    pub mirror: String,
    /// Names the mirror listed (each one's index was fetched).
    pub names: u64,
    /// Records new to this node and stored.
    pub imported: u64,
    /// Records this node already had.
    pub already_known: u64,
    /// Records kept as evidence of equivocation (a second archive signed for a version).
    pub evidence: u64,
    /// Records (or index lines, or whole names) refused, each with the reason.
    pub rejected: Vec<MirrorRejection>,
}

/// One thing refused during `mirror sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorRejection {
    /// The name whose index held it.
    pub name: String,
    /// The record's id (BLAKE3 of the bytes served), when the line could be read.
    pub id: Option<RecordId>,
    pub reason: String,
}

impl From<store::Compromised> for CompromisedVersion {
    fn from(c: store::Compromised) -> Self {
        Self {
            version: c.version,
            publisher: c.publisher,
            archives: c.archives,
        }
    }
}

impl From<store::AttestedOwner> for OwnerAttestation {
    fn from(a: store::AttestedOwner) -> Self {
        Self {
            owner: a.owner,
            peers: a.peers,
            of: a.of,
        }
    }
}

impl From<store::IndexedVersion> for PackageMetadata {
    fn from(meta: store::IndexedVersion) -> Self {
        let p = meta.record;
        Self {
            name: p.name,
            version: p.version,
            publisher: p.publisher,
            description: p.description,
            category: p.category,
            keywords: p.keywords,
            authors: p.authors,
            license: p.license,
            repository: p.repository,
            dependencies: p.dependencies,
            archive: p.archive,
            published_at: p.published_at,
            yanked: meta.yanked,
            record_id: meta.record_id,
        }
    }
}

/// `key rotate`: the rotation record signed by both keys, and where the old key was kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateKeyReport {
    pub format_version: u32,
    pub old: PublisherId,
    pub new: PublisherId,
    pub record_id: RecordId,
    /// The old key's file (`publisher.key.old-<ms>`), kept in case it is still needed.
    pub old_key_path: PathBuf,
    pub receipt: Option<Receipt>,
}

/// One pinned publisher key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustedPublisher {
    pub key: PublisherId,
    /// The (normalized) name it owns here; `null` = every name it claims.
    pub name: Option<String>,
    /// Where the pin comes from: `"trust"` (the command) or `"config"`
    /// (`trusted_publishers`, which wins).
    pub source: String,
    /// When `trust add` made it (ms since the Unix epoch); 0 for config pins.
    pub added_at: u64,
}

/// `trust add`, `trust remove` and `trust list`: the pins in force afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustReport {
    pub format_version: u32,
    /// `add` made a new pin, or `remove` dropped one (always false for `list`).
    pub changed: bool,
    pub trusted: Vec<TrustedPublisher>,
}

impl From<store::NameClaim> for NameClaim {
    fn from(c: store::NameClaim) -> Self {
        Self {
            publisher: c.publisher,
            first_seen_at: c.first_seen_at,
            earliest_published_at: c.earliest_published_at,
            pinned: c.pinned,
        }
    }
}

impl From<store::Install> for Installed {
    fn from(i: store::Install) -> Self {
        Self {
            name: i.name,
            version: i.version,
            status: String::new(),
            dependency_of: i.root,
            path: i.path,
            installed_at: i.installed_at,
        }
    }
}

impl From<store::StoreStats> for StoreStats {
    fn from(s: store::StoreStats) -> Self {
        Self {
            records: s.records,
            packages: s.packages,
            versions: s.versions,
            archives: s.archives,
            archive_bytes: s.archive_bytes,
            equivocations: s.equivocations,
        }
    }
}

impl From<net::Receipt> for Receipt {
    fn from(r: net::Receipt) -> Self {
        Self {
            gossip_peers: r.gossip_peers,
            dht_peers: r.dht_peers,
            providers: r.providers,
        }
    }
}

impl From<net::NetStatus> for NetStatus {
    fn from(n: net::NetStatus) -> Self {
        Self {
            peer_id: n.peer_id,
            listen_addrs: n.listen_addrs,
            connected_peers: n.connected_peers,
            routing_table_size: n.routing_table_size,
            gossip_mesh_peers: n.gossip_mesh_peers,
            reachability: n.reachability.as_str().to_string(),
            relay_reservations: n.relay_reservations,
            relay_server: n.relay_server,
            bootstrap: n
                .bootstrap
                .into_iter()
                .map(|b| BootstrapPeer {
                    addr: b.addr,
                    connected: b.connected,
                    error: b.error,
                })
                .collect(),
            swarms: n.swarms,
        }
    }
}

impl From<net::PeerInfo> for PeerInfo {
    fn from(p: net::PeerInfo) -> Self {
        Self {
            peer_id: p.peer_id,
            addrs: p.addrs,
            agent: p.agent,
            rtt_ms: p.rtt_ms,
            connection: p.connection,
            score: p.score,
            gossip_score: p.gossip_score,
        }
    }
}

/// Converts each element of a list of internal values into its report type.
pub(crate) fn all<T, R: From<T>>(items: Vec<T>) -> Vec<R> {
    items.into_iter().map(R::from).collect()
}
