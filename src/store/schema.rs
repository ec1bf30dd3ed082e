//! The SQLite schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! `records` keeps the exact signed bytes and is the only source of truth; every other
//! table (versions, yanks, rotations, evidence, packages, the FTS5 index) is derived from
//! it, while archives, providers and installs are local bookkeeping.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = 10;

const SCHEMA_V1: &str = "
CREATE TABLE records (
    rid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('version', 'yank', 'rotation')),
    bytes BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE versions (
    rid INTEGER PRIMARY KEY REFERENCES records(rid),
    publisher BLOB NOT NULL,
    norm TEXT NOT NULL,
    version TEXT NOT NULL,
    archive BLOB NOT NULL,
    published_at INTEGER NOT NULL,
    yanked INTEGER NOT NULL DEFAULT 0,
    UNIQUE (norm, version, publisher)
);
CREATE INDEX versions_publisher ON versions(publisher);
CREATE INDEX versions_archive ON versions(archive);
CREATE TABLE yanks (
    rid INTEGER PRIMARY KEY REFERENCES records(rid),
    publisher BLOB NOT NULL,
    norm TEXT NOT NULL,
    version TEXT NOT NULL
);
CREATE INDEX yanks_target ON yanks(norm, version);
CREATE TABLE rotations (
    rid INTEGER PRIMARY KEY REFERENCES records(rid),
    old BLOB NOT NULL,
    new BLOB NOT NULL,
    rotated_at INTEGER NOT NULL
);
CREATE INDEX rotations_old ON rotations(old);
CREATE INDEX rotations_new ON rotations(new);
CREATE TABLE evidence (
    id BLOB PRIMARY KEY,
    accepted BLOB NOT NULL,
    publisher BLOB NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    bytes BLOB NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE packages (
    pid INTEGER PRIMARY KEY,
    norm TEXT NOT NULL UNIQUE,
    rid INTEGER NOT NULL REFERENCES records(rid),
    category TEXT,
    conflict INTEGER NOT NULL
);
CREATE INDEX packages_category ON packages(category);
CREATE TABLE package_keywords (
    keyword TEXT NOT NULL,
    pid INTEGER NOT NULL REFERENCES packages(pid) ON DELETE CASCADE,
    PRIMARY KEY (keyword, pid)
) WITHOUT ROWID;
CREATE INDEX package_keywords_pid ON package_keywords(pid);
CREATE VIRTUAL TABLE packages_fts USING fts5(joined, words, keywords, description);
-- Names alone, so name matches (and name prefixes) of common words cost only their own
-- posting lists, not a column filter over every description hit.
CREATE VIRTUAL TABLE names_fts USING fts5(words, prefix = '2 3');
CREATE TABLE archives (
    blake3 BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunks BLOB NOT NULL,
    published_here INTEGER NOT NULL DEFAULT 0,
    last_used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX archives_lru ON archives(published_here, last_used);
CREATE TABLE providers (
    blake3 BLOB NOT NULL,
    peer TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (blake3, peer)
) WITHOUT ROWID;
CREATE TABLE installs (
    norm TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    path TEXT NOT NULL,
    installed_at INTEGER NOT NULL,
    PRIMARY KEY (norm, version, path)
) WITHOUT ROWID;
";

/// Version 2: each provider row also says when it was last confirmed (a DHT answer, an
/// announcement, a chunk served), so stale providers can be told apart and forgotten.
const SCHEMA_V2: &str = "
ALTER TABLE providers ADD COLUMN confirmed_at INTEGER NOT NULL DEFAULT 0;
UPDATE providers SET confirmed_at = added_at;
CREATE INDEX providers_confirmed ON providers(confirmed_at);
";

/// Version 3: the owner this node first accepted for each name (trust on first use; a
/// later claim never displaces it), and whether it met the name with competing claims.
/// An existing index adopts, per name, the publisher of the version it received first.
/// `trusted_keys` holds the pins of the `trust` command (`norm` '' = every name).
const SCHEMA_V3: &str = "
CREATE TABLE name_owners (
    norm TEXT PRIMARY KEY,
    owner BLOB NOT NULL,
    accepted_at INTEGER NOT NULL,
    contested INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE trusted_keys (
    key BLOB NOT NULL,
    norm TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (key, norm)
) WITHOUT ROWID;
INSERT INTO name_owners (norm, owner, accepted_at)
    SELECT v.norm, v.publisher, MIN(r.received_at)
    FROM versions v JOIN records r ON r.rid = v.rid GROUP BY v.norm;
";

/// Version 4: peers banned for invalid input or blocked by the operator, so a ban
/// survives a restart.
const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS banned_peers (
    peer TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    banned_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 5: evidence found by its publisher and version (compromised versions are
/// looked up per name on every `info` and `search`), and the owner each peer attests for
/// the names this node met contested (one row per name and peer; majority adopts).
const SCHEMA_V5: &str = "
CREATE INDEX IF NOT EXISTS evidence_target ON evidence(publisher, version);
CREATE TABLE IF NOT EXISTS owner_attestations (
    norm TEXT NOT NULL,
    peer TEXT NOT NULL,
    owner BLOB NOT NULL,
    attested_at INTEGER NOT NULL,
    PRIMARY KEY (norm, peer)
) WITHOUT ROWID;
";

/// Version 6: each
/// peer's reputation score as last saved (decayed from `updated_at` when loaded), and an
/// end to bans a low score earned (`NULL`: until lifted, as operator blocks are).
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS peer_scores (
    peer TEXT PRIMARY KEY,
    score REAL NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE banned_peers ADD COLUMN expires_at INTEGER;
";

/// Version 7: each install remembers the BLAKE3 digest of the tree it wrote (so `list`
/// notices a directory that vanished or changed) and, for a dependency, the directory of
/// the pack it was installed for (`root`, NULL for a pack installed by name).
const SCHEMA_V7: &str = "
ALTER TABLE installs ADD COLUMN tree_hash TEXT;
ALTER TABLE installs ADD COLUMN root TEXT;
";

/// Version 8 (search, issue 9): the popularity
/// prior, distinct live providers per name (capped, kept by `local.rs` whenever provider
/// rows change), and the text index rebuilt with the Porter stemmer so "images" finds
/// "image" and "hashing" finds "hash" (its content is copied over, not re-derived).
const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS popularity (
    norm TEXT PRIMARY KEY,
    peers INTEGER NOT NULL,
    lift REAL NOT NULL
) WITHOUT ROWID;
CREATE VIRTUAL TABLE packages_fts_stemmed USING fts5(
    joined, words, keywords, description, tokenize = 'porter unicode61'
);
INSERT INTO packages_fts_stemmed (rowid, joined, words, keywords, description)
    SELECT rowid, joined, words, keywords, description FROM packages_fts;
DROP TABLE packages_fts;
ALTER TABLE packages_fts_stemmed RENAME TO packages_fts;
";

/// Version 9: when this node last
/// asked the DHT for an archive's providers, so "no live provider" (asked, none found)
/// differs from "unknown" (never asked).
const SCHEMA_V9: &str = "
CREATE TABLE IF NOT EXISTS provider_lookups (
    blake3 BLOB PRIMARY KEY,
    asked_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 10: one row the health check (`/health`) rewrites and reads back, so a
/// store that can no longer be written is reported, not discovered at the next publish.
const SCHEMA_V10: &str = "
CREATE TABLE IF NOT EXISTS health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
";

/// Opens the index, sets the connection pragmas and brings the schema up to date.
///
/// WAL with `synchronous = NORMAL`: a commit is durable once the WAL is synced at the
/// next checkpoint; a power cut can lose the last transactions but never corrupts the
/// database, and every record lost that way is re-fetched from peers by anti-entropy
/// (archives are fsynced separately). That trade makes bulk ingest and gossip cheap.
/// Reads go through a memory map (up to 1 GiB) and a 64 MiB page cache: search touches
/// scattered FTS pages, and a `pread` per page miss was a large part of its latency.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    set_wal(&conn).map_err(sql)?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 1073741824;",
    )
    .map_err(sql)?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        migrate(&conn).map_err(sql)?;
    }
    Ok(conn)
}

/// Switches a fresh database to WAL. SQLite does not call the busy handler when that
/// switch meets another connection's lock (two processes opening a fresh directory), so
/// it is retried here for as long as the busy timeout would have waited.
fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let begun = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        }) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && begun.elapsed() < std::time::Duration::from_secs(5) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.map(drop),
        }
    }
}

/// Creates or upgrades the schema unless another process did so first: the version is
/// read again inside one `IMMEDIATE` transaction (the busy timeout makes a second process
/// wait for the first one's), so processes opening a fresh or old directory at once all
/// succeed and each step runs once.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let created = conn
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .and_then(|found| {
            if found < 1 {
                conn.execute_batch(&format!("{SCHEMA_V1} PRAGMA user_version = 1;"))?;
            }
            if found < 2 {
                conn.execute_batch(&format!("{SCHEMA_V2} PRAGMA user_version = 2;"))?;
            }
            if found < 3 {
                conn.execute_batch(&format!("{SCHEMA_V3} PRAGMA user_version = 3;"))?;
            }
            if found < 4 {
                conn.execute_batch(&format!("{SCHEMA_V4} PRAGMA user_version = 4;"))?;
            }
            if found < 5 {
                conn.execute_batch(&format!("{SCHEMA_V5} PRAGMA user_version = 5;"))?;
            }
            if found < 6 {
                conn.execute_batch(&format!("{SCHEMA_V6} PRAGMA user_version = 6;"))?;
            }
            if found < 7 {
                conn.execute_batch(&format!("{SCHEMA_V7} PRAGMA user_version = 7;"))?;
            }
            if found < 8 {
                conn.execute_batch(SCHEMA_V8)?;
                super::local::refresh_all_popularity(conn)?;
                conn.execute_batch("PRAGMA user_version = 8;")?;
            }
            if found < 9 {
                conn.execute_batch(&format!("{SCHEMA_V9} PRAGMA user_version = 9;"))?;
            }
            if found < 10 {
                conn.execute_batch(&format!("{SCHEMA_V10} PRAGMA user_version = 10;"))?;
            }
            Ok(())
        });
    match created {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_schema_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        drop(open(&path).unwrap());
        let conn = open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('providers')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(columns.iter().any(|c| c == "confirmed_at"));
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = open(&path).unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }));
    }

    #[test]
    fn version_1_providers_migrate_with_their_time_as_last_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{SCHEMA_V1} PRAGMA user_version = 1;
                 INSERT INTO providers (blake3, peer, added_at) VALUES (x'00', 'peer-a', 1234);"
            ))
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let confirmed: i64 = conn
            .query_row(
                "SELECT confirmed_at FROM providers WHERE peer = 'peer-a'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(confirmed, 1234);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn version_2_names_adopt_the_publisher_received_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{SCHEMA_V1} {SCHEMA_V2} PRAGMA user_version = 2;
                 INSERT INTO records (rid, id, kind, bytes, received_at)
                     VALUES (1, x'01', 'version', x'00', 500), (2, x'02', 'version', x'00', 100);
                 INSERT INTO versions (rid, publisher, norm, version, archive, published_at)
                     VALUES (1, x'aa', 'tool', '1.0.0', x'00', 1), (2, x'bb', 'tool', '2.0.0', x'00', 900);"
            ))
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let owner: Vec<u8> = conn
            .query_row(
                "SELECT owner FROM name_owners WHERE norm = 'tool'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(owner, vec![0xbb], "received first, not dated first");
    }

    /// Threads each with their own connection race to create one fresh index (without
    /// the second look inside the transaction this fails with "table records already
    /// exists"); the process-level version runs in `tests/daemon_lock.rs`.
    #[test]
    fn concurrent_opens_of_a_fresh_index_all_succeed() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("index.sqlite");
            let barrier = std::sync::Barrier::new(4);
            std::thread::scope(|scope| {
                let opened: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            open(&path).map(drop)
                        })
                    })
                    .collect();
                for handle in opened {
                    handle.join().unwrap().unwrap();
                }
            });
        }
    }
}
