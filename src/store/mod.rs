//! The node's local state: a SQLite index (exact record bytes plus the tables derived from
//! them: versions, yanks, rotations, evidence, packages and their FTS5 search index,
//! archives, providers, installs), a content-addressed blob directory for archives and the
//! partial files of unfinished downloads ([`partial`]). Everything here is synchronous; async code reaches it only through [`Store::call`], the
//! one boundary that runs SQLite and blob work on the blocking pool.

mod attest;
mod audit;
mod bans;
mod blobs;
#[cfg(any(test, feature = "test-support"))]
pub mod corpus;
mod equivocation;
mod feedback;
mod hygiene;
mod local;
pub mod lock;
mod mirror;
mod owner;
pub mod partial;
mod pins;
mod records;
mod reputation;
mod schema;
mod search;
mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::package::{ArchiveInfo, Blake3Hash, PublisherId, RecordError, RecordId};

/// Accepted records a slow watcher of [`Store::subscribe_records`] may lag behind.
const FEED_CAPACITY: usize = 256;

pub use attest::NameStanding;
pub use audit::RECORDS_TABLE;
pub use bans::BannedPeer;
pub use blobs::BlobWriter;
pub use equivocation::Compromised;
pub use hygiene::{Orphan, PARTIAL_MAX_AGE, STAGING_MAX_AGE};
pub use local::InstallRow;
pub use mirror::{mirror_etag, MirrorKind};
pub use owner::AttestedOwner;
pub use pins::TrustedKey;
pub use reputation::StoredScore;
pub use search::{IndexedVersion, Query, Ranking, SearchHit};

/// File name of the index inside the store directory.
pub const INDEX_FILE: &str = "index.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: index database error: {source}; if it persists, move the file away and resync from peers")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: index schema version {found} is newer than this build understands ({supported}); upgrade ggen-p2p")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("stored record {id} no longer verifies ({source}); the index is damaged: move it away and resync")]
    DamagedRecord {
        id: RecordId,
        #[source]
        source: RecordError,
    },
    #[error(
        "no package named {name:?} is known here; check the spelling or sync with peers first"
    )]
    UnknownName { name: String },
    #[error("{name}: no version matches {req}{publisher}; available: {available}")]
    NoMatch {
        name: String,
        req: String,
        /// Empty or " from <publisher>".
        publisher: String,
        available: String,
    },
    #[error(
        "{name}: claimed by several publishers: {claimants}; pass --publisher <id> to choose one"
    )]
    Ambiguous { name: String, claimants: String },
    #[error("{name}: no publisher of it starts with {prefix}; claimants: {claimants}")]
    NoPublisherPrefix {
        name: String,
        prefix: String,
        claimants: String,
    },
    #[error("{name}: {prefix} starts several publisher ids ({matches}); type more of the id")]
    AmbiguousPublisherPrefix {
        name: String,
        prefix: String,
        matches: String,
    },
    #[error(
        "{name}: publisher {publisher} has published no version of it; claimants: {claimants}"
    )]
    NotPublishedBy {
        name: String,
        publisher: PublisherId,
        claimants: String,
    },
    #[error("{path}: archive does not match its record: expected {expected}, got {actual}; the file was left in place")]
    ArchiveMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: stored archive is corrupt: expected {expected}, got {actual}; delete it and fetch it again")]
    Corrupt {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{name}@{version} is compromised: its publisher {publisher} signed two different archives for it ({archives}); the publisher's key may be leaked, so install another version, or pin the archive you trust with --archive <hash>")]
    Compromised {
        name: String,
        version: Version,
        publisher: PublisherId,
        archives: String,
    },
    #[error("{name}@{req}: no version of it here has archive {archive}; check the pinned hash, or let this node sync with its peers first")]
    NoSuchArchive {
        name: String,
        req: String,
        archive: Blake3Hash,
    },
    #[error("archive {blake3} is not stored here; fetch it from a provider first")]
    MissingArchive { blake3: Blake3Hash },
    #[error("store task failed: {0}")]
    Task(String),
    #[error("archive {blake3}: chunk {index} is out of range (it has {chunks} chunks)")]
    ChunkOutOfRange {
        blake3: Blake3Hash,
        index: u32,
        chunks: u64,
    },
}

/// What [`Store::ingest`] did with a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    Added,
    Duplicate,
    /// The publisher already signed another archive for the same name and version; the
    /// new record was refused and kept as evidence.
    Equivocation {
        existing: RecordId,
    },
    Rejected {
        reason: String,
    },
}

/// A publisher claiming a name (one per rotation chain, named by its oldest key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameClaim {
    pub publisher: PublisherId,
    /// When this node first stored a version of the name from this publisher (ms).
    pub first_seen_at: u64,
    /// Smallest `published_at` of the publisher's versions of the name (ms).
    pub earliest_published_at: u64,
    pub pinned: bool,
}

/// Two version records by one key for the same name and version but different archives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    pub publisher: PublisherId,
    pub name: String,
    pub version: Version,
    pub accepted: RecordId,
    pub refused_bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Install {
    pub name: String,
    pub version: Version,
    pub path: PathBuf,
    pub installed_at: u64,
    /// Digest of the tree written there (`None` for installs made before it was kept).
    pub tree_hash: Option<Blake3Hash>,
    /// For a dependency: the directory of the pack it was installed for.
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    pub records: u64,
    pub packages: u64,
    pub versions: u64,
    pub archives: u64,
    pub archive_bytes: u64,
    pub equivocations: u64,
}

/// Handle to a store directory. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db_path: PathBuf,
    /// One connection for reads and writes: SQLite serialises writers anyway, and every
    /// call here is short and synchronous, so the lock is never held across an await.
    conn: Mutex<Connection>,
    /// Configured `trusted_publishers`, keyed by normalized name.
    pins: RwLock<BTreeMap<String, PublisherId>>,
    /// Every record newly accepted (committed), for live watchers (the dashboard's feed);
    /// a watcher that falls behind loses the oldest, the store never waits for it.
    feed: tokio::sync::broadcast::Sender<crate::package::Record>,
}

impl Store {
    /// Opens (creating if needed) `<dir>/index.sqlite` (WAL, FTS5) and `<dir>/blobs/`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        for sub in [dir.to_path_buf(), dir.join("blobs"), dir.join("blobs/tmp")] {
            std::fs::create_dir_all(&sub).map_err(|source| StoreError::Io { path: sub, source })?;
        }
        let db_path = dir.join(INDEX_FILE);
        let conn = schema::open(&db_path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db_path,
                conn: Mutex::new(conn),
                pins: RwLock::new(BTreeMap::new()),
                feed: tokio::sync::broadcast::channel(FEED_CAPACITY).0,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The health check's probe: rewrites one row and reads it back in one committed
    /// transaction, so a store that cannot be written (read-only, disk full, locked
    /// past the busy timeout) fails here with the reason.
    pub fn probe(&self) -> Result<(), StoreError> {
        let at = now_ms() as i64;
        let read = self.write(|tx, _| {
            tx.execute(
                "INSERT INTO health_probe (id, at) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET at = excluded.at",
                [at],
            )?;
            Ok(
                tx.query_row("SELECT at FROM health_probe WHERE id = 1", [], |row| {
                    row.get::<_, i64>(0)
                })?,
            )
        })?;
        if read != at {
            return Err(StoreError::Task(format!(
                "health probe read back {read}, wrote {at}; run `ggen-p2p verify`"
            )));
        }
        Ok(())
    }

    /// Test hook: makes the connection refuse every write (SQLite's `query_only`), as a
    /// read-only database would.
    #[cfg(feature = "test-support")]
    pub fn set_read_only(&self, read_only: bool) -> Result<(), StoreError> {
        (self.conn())
            .pragma_update(None, "query_only", read_only)
            .map_err(|e| self.sql_err(e))
    }

    /// Records newly accepted from now on (any path: publish, gossip, sync, DHT, mirror),
    /// each once, after its transaction committed.
    pub fn subscribe_records(&self) -> tokio::sync::broadcast::Receiver<crate::package::Record> {
        self.inner.feed.subscribe()
    }

    /// Tells watchers about `record`, accepted just now (no-op when nobody watches).
    fn announce_accepted(&self, record: &crate::package::Record, outcome: &IngestOutcome) {
        if matches!(outcome, IngestOutcome::Added) && self.inner.feed.receiver_count() > 0 {
            let _ = self.inner.feed.send(record.clone());
        }
    }

    /// Where unfinished downloads keep their state (`blobs/partial/`).
    pub fn partial_dir(&self) -> PathBuf {
        self.inner.dir.join("blobs").join("partial")
    }

    /// The partial download of `info`'s archive with chunk list `chunks` (checked by the
    /// caller against the record): created, or resumed from what an earlier attempt left.
    /// Blocking: async code opens it through [`Store::call`].
    pub fn partial(
        &self,
        info: &ArchiveInfo,
        chunks: &[Blake3Hash],
    ) -> Result<partial::PartialFile, partial::PartialError> {
        partial::PartialFile::open(&self.partial_dir(), info, chunks)
    }

    /// The chunk list an earlier attempt at `info`'s archive saved, if still valid.
    pub fn saved_chunk_list(&self, info: &ArchiveInfo) -> Option<Vec<Blake3Hash>> {
        partial::saved_chunk_list(&self.partial_dir(), info)
    }

    /// The chunk list of a download of `archive` this node has under way (or left
    /// unfinished), unchecked; see [`partial::partial_chunk_list`].
    pub fn partial_chunk_list(&self, archive: &Blake3Hash) -> Option<Vec<Blake3Hash>> {
        partial::partial_chunk_list(&self.partial_dir(), archive)
    }

    /// The async boundary: runs `work` (SQLite queries, blob reads and writes) on the
    /// blocking pool so it never stalls a runtime thread, and hands back its result.
    /// Async code calls the store only through here.
    pub async fn call<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Store) -> Result<T, E> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Task(e.to_string()).into()),
        }
    }

    /// Pinned keys (from config `trusted_publishers`): name -> key. A pinned key owns its
    /// name whatever else was seen. Derived package rows are recomputed for the names
    /// whose pin changed; a database failure there is logged (the next ingest of the
    /// name recomputes it again).
    pub fn set_pins(&self, pins: BTreeMap<String, PublisherId>) {
        let pins: BTreeMap<String, PublisherId> = pins
            .into_iter()
            .map(|(name, key)| (crate::package::fields::normalize_name(&name), key))
            .collect();
        let changed: Vec<String> = {
            let mut current = self.inner.pins.write().unwrap_or_else(|e| e.into_inner());
            let mut changed: Vec<String> = current
                .iter()
                .filter(|(name, key)| pins.get(*name) != Some(key))
                .map(|(name, _)| name.clone())
                .collect();
            changed.extend(
                pins.iter()
                    .filter(|(name, key)| current.get(*name) != Some(key))
                    .map(|(name, _)| name.clone()),
            );
            *current = pins;
            changed
        };
        if changed.is_empty() {
            return;
        }
        let result = self.write(|tx, store| {
            for norm in &changed {
                records::refresh_name(tx, store, norm, None)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!("applying publisher pins: {e}");
        }
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        self.read(|conn| {
            let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0));
            Ok(StoreStats {
                records: count("SELECT COUNT(*) FROM records")? as u64,
                packages: count("SELECT COUNT(*) FROM packages")? as u64,
                versions: count("SELECT COUNT(*) FROM versions")? as u64,
                archives: count("SELECT COUNT(*) FROM archives")? as u64,
                archive_bytes: count("SELECT COALESCE(SUM(size), 0) FROM archives")? as u64,
                equivocations: count("SELECT COUNT(*) FROM evidence")? as u64,
            })
        })
    }

    fn pin(&self, norm: &str) -> Option<PublisherId> {
        self.inner
            .pins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(norm)
            .copied()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done transaction behind (rusqlite
        // rolls back on drop), so a poisoned lock is safe to reuse.
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sql_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.inner.db_path.clone(),
            source,
        }
    }

    /// Runs `f` on the connection, mapping SQLite errors to [`StoreError::Sqlite`].
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, StoreError> {
        let conn = self.conn();
        f(&conn).map_err(|e| e.into_store(self))
    }

    /// Runs `f` in one immediate transaction, committed only if `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Store) -> Result<T, Error>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.sql_err(e))?;
        let value = f(&tx, self).map_err(|e| e.into_store(self))?;
        tx.commit().map_err(|e| self.sql_err(e))?;
        Ok(value)
    }
}

impl Store {
    /// [`Store::write`] with `synchronous = FULL` for this one transaction (the WAL is
    /// synced at commit), then back to `NORMAL`.
    fn write_durable<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Store) -> Result<T, Error>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.sql_err(e))?;
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.sql_err(e))?;
            let value = f(&tx, self).map_err(|e| e.into_store(self))?;
            tx.commit().map_err(|e| self.sql_err(e))?;
            Ok(value)
        })();
        let reset = conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.sql_err(e));
        let value = result?;
        reset?;
        Ok(value)
    }

    /// The connection's current `synchronous` level (0 OFF, 1 NORMAL, 2 FULL).
    #[cfg(test)]
    fn synchronous(&self) -> i64 {
        self.conn()
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap()
    }
}

/// Internal error: SQLite errors carry no path until they leave the store.
#[derive(Debug)]
enum Error {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl Error {
    fn into_store(self, store: &Store) -> StoreError {
        match self {
            Error::Sql(e) => store.sql_err(e),
            Error::Store(e) => e,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_util {

    use semver::Version;

    use crate::package::{
        ArchiveInfo, Blake3Hash, PublisherKey, Record, RecordBody, Sha256Hash, VersionRecord,
        YankRecord,
    };

    pub fn archive(seed: &str) -> ArchiveInfo {
        ArchiveInfo {
            blake3: Blake3Hash::of(seed.as_bytes()),
            sha256: Sha256Hash([1; 32]),
            size: 10,
            chunk_size: 1 << 20,
            chunks_root: Blake3Hash::of(b"root"),
        }
    }

    pub fn version_body(
        key: &PublisherKey,
        name: &str,
        version: &str,
        published_at: u64,
    ) -> VersionRecord {
        VersionRecord {
            description: format!("the {name} package"),
            published_at,
            ..VersionRecord::fixture(key, name, version, archive(&format!("{name}@{version}")))
        }
    }

    pub fn version(key: &PublisherKey, name: &str, version: &str, published_at: u64) -> Record {
        Record::sign(
            RecordBody::Version(version_body(key, name, version, published_at)),
            key,
        )
        .unwrap()
    }

    pub fn yank(key: &PublisherKey, name: &str, version: &str) -> Record {
        Record::sign(
            RecordBody::Yank(YankRecord {
                publisher: key.id(),
                name: name.into(),
                version: Version::parse(version).unwrap(),
                yanked_at: 99,
            }),
            key,
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_a_shareable_handle() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Store>();
        fn sendable<T: Send>() {}
        sendable::<BlobWriter>();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clone = store.clone();
        let handle = std::thread::spawn(move || clone.stats().unwrap());
        assert_eq!(handle.join().unwrap(), StoreStats::default());
        assert_eq!(store.dir(), dir.path());
        assert!(dir.path().join(INDEX_FILE).is_file());
        assert!(dir.path().join("blobs/tmp").is_dir());
    }

    #[test]
    fn own_records_commit_with_full_sync_then_back_to_normal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.synchronous(), 1);
        let seen = store
            .write_durable(|tx, _| {
                Ok(tx.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?)
            })
            .unwrap();
        assert_eq!(seen, 2);
        assert_eq!(store.synchronous(), 1);
        let key = crate::package::PublisherKey::generate();
        let record = test_util::version(&key, "own", "1.0.0", 1);
        assert_eq!(store.ingest_own(&record).unwrap(), IngestOutcome::Added);
        assert_eq!(store.synchronous(), 1);
    }
}
