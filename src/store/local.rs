//! Node-local bookkeeping that is not derived from records: which peers provide which
//! archive (peer ids as plain strings; the store knows nothing of libp2p) and what was
//! installed where.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use semver::Version;

use super::{now_ms, Install, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::Blake3Hash;

/// One install to record: what, where, the digest of the tree written, and (for a
/// dependency) the pack directory it belongs to.
pub struct InstallRow<'a> {
    pub name: &'a str,
    pub version: &'a Version,
    pub path: &'a Path,
    pub tree_hash: Option<Blake3Hash>,
    pub root: Option<&'a Path>,
}

impl Store {
    /// The one way provider observations enter the store: each `(archive, peer)` pair
    /// was seen providing that archive at `at` (ms since the epoch: a DHT answer, an
    /// announcement, a chunk it served, this node storing it). A confirmation never moves
    /// the time backwards. The network calls this, and so does the search benchmark (it
    /// maps the npm corpus's downloads onto providers); every observation also refreshes
    /// the popularity prior of the packages that use the archive (see `search.rs`). All
    /// pairs go in one transaction.
    pub fn observe_providers<'a>(
        &self,
        sightings: impl IntoIterator<Item = (&'a Blake3Hash, &'a str)>,
        at: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO providers (blake3, peer, added_at, confirmed_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (blake3, peer) DO UPDATE SET
                     confirmed_at = max(confirmed_at, excluded.confirmed_at)",
            )?;
            let mut archives = BTreeSet::new();
            for (blake3, peer) in sightings {
                upsert.execute(params![blake3.as_bytes().as_slice(), peer, at as i64])?;
                archives.insert(*blake3.as_bytes());
            }
            refresh_archives(tx, &archives)?;
            Ok(())
        })
    }

    pub fn remove_provider(&self, blake3: &Blake3Hash, peer: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached("DELETE FROM providers WHERE blake3 = ?1 AND peer = ?2")?
                .execute(params![blake3.as_bytes().as_slice(), peer])?;
            refresh_archives(tx, &BTreeSet::from([*blake3.as_bytes()]))?;
            Ok(())
        })
    }

    /// Known providers of an archive, most recently confirmed first.
    pub fn providers(&self, blake3: &Blake3Hash) -> Result<Vec<String>, StoreError> {
        self.live_providers(blake3, 0)
    }

    /// Providers of an archive confirmed at or after `since` (ms since the epoch), most
    /// recently confirmed first.
    pub fn live_providers(
        &self,
        blake3: &Blake3Hash,
        since: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT peer FROM providers WHERE blake3 = ?1 AND confirmed_at >= ?2
                 ORDER BY confirmed_at DESC, peer",
            )?;
            let peers = stmt
                .query_map(params![blake3.as_bytes().as_slice(), since as i64], |row| {
                    row.get(0)
                })?
                .collect::<Result<_, _>>()?;
            Ok(peers)
        })
    }

    /// Remembers that the DHT was asked for an archive's providers at `at` (ms since the
    /// epoch), whatever it answered.
    pub fn provider_lookup_done(&self, blake3: &Blake3Hash, at: u64) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "INSERT INTO provider_lookups (blake3, asked_at) VALUES (?1, ?2)
                 ON CONFLICT (blake3) DO UPDATE SET asked_at = max(asked_at, excluded.asked_at)",
            )?
            .execute(params![blake3.as_bytes().as_slice(), at as i64])?;
            Ok(())
        })
    }

    /// Whether the DHT was asked for an archive's providers at or after `since`.
    pub fn provider_lookup_since(
        &self,
        blake3: &Blake3Hash,
        since: u64,
    ) -> Result<bool, StoreError> {
        self.read(|conn| {
            let asked: Option<i64> = conn
                .prepare_cached("SELECT asked_at FROM provider_lookups WHERE blake3 = ?1")?
                .query_row(params![blake3.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            Ok(asked.is_some_and(|at| at >= since as i64))
        })
    }

    /// Forgets every provider last confirmed before `since` (ms since the epoch); returns
    /// how many rows went.
    pub fn forget_providers_before(&self, since: u64) -> Result<usize, StoreError> {
        self.write(|tx, _| {
            let archives = tx
                .prepare_cached("SELECT DISTINCT blake3 FROM providers WHERE confirmed_at < ?1")?
                .query_map([since as i64], |row| row.get::<_, Vec<u8>>(0))?
                .filter_map(|a| a.map(|a| <[u8; 32]>::try_from(a).ok()).transpose())
                .collect::<Result<BTreeSet<_>, _>>()?;
            let removed = tx
                .prepare_cached("DELETE FROM providers WHERE confirmed_at < ?1")?
                .execute([since as i64])?;
            refresh_archives(tx, &archives)?;
            // A lookup as old as a forgotten provider says nothing about today either.
            tx.prepare_cached("DELETE FROM provider_lookups WHERE asked_at < ?1")?
                .execute([since as i64])?;
            Ok(removed)
        })
    }

    /// Remembers that `name@version` was installed into `path` (again: time updated).
    pub fn record_install(
        &self,
        name: &str,
        version: &Version,
        path: &Path,
    ) -> Result<(), StoreError> {
        self.record_installs(&[InstallRow {
            name,
            version,
            path,
            tree_hash: None,
            root: None,
        }])
    }

    /// Remembers several installs in one transaction (a pack and its dependencies).
    pub fn record_installs(&self, rows: &[InstallRow<'_>]) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO installs (norm, name, version, path, installed_at, tree_hash, root)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (norm, version, path) DO UPDATE SET
                     name = excluded.name, installed_at = excluded.installed_at,
                     tree_hash = excluded.tree_hash, root = excluded.root",
            )?;
            for row in rows {
                stmt.execute(params![
                    normalize_name(row.name),
                    row.name,
                    row.version.to_string(),
                    row.path.to_string_lossy(),
                    now_ms() as i64,
                    row.tree_hash.map(|h| h.to_hex()),
                    row.root.map(|r| r.to_string_lossy().into_owned()),
                ])?;
            }
            Ok(())
        })
    }

    /// Forgets every install at `path` or below it (an uninstalled tree); returns how
    /// many rows went.
    pub fn forget_installs_under(&self, path: &Path) -> Result<usize, StoreError> {
        let exact = path.to_string_lossy().into_owned();
        let below = format!("{}{}", exact, std::path::MAIN_SEPARATOR);
        self.write(|tx, _| {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM installs WHERE path = ?1 OR substr(path, 1, length(?2)) = ?2",
                )?
                .execute(params![exact, below])?;
            Ok(removed)
        })
    }

    /// Every recorded install, by name then version.
    pub fn installs(&self) -> Result<Vec<Install>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, path, installed_at, tree_hash, root FROM installs
                 ORDER BY norm, path",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, Option<String>>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, version, path, installed_at, tree_hash, root) = row?;
                let Ok(version) = Version::parse(&version) else {
                    continue;
                };
                out.push(Install {
                    name,
                    version,
                    path: PathBuf::from(path),
                    installed_at: installed_at as u64,
                    tree_hash: tree_hash.and_then(|h| h.parse().ok()),
                    root: root.map(PathBuf::from),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
            Ok(out)
        })
    }
}

/// Most distinct providers counted for one package: the popularity prior's cap (see
/// docs/decisions.md). Counting stops there, so a name flooded with fake providers costs
/// no more to refresh than a popular one.
pub const PROVIDER_CAP: i64 = 32;

/// Recounts the providers of every package with a version whose archive is in `archives`.
fn refresh_archives(
    tx: &rusqlite::Transaction<'_>,
    archives: &BTreeSet<[u8; 32]>,
) -> rusqlite::Result<()> {
    let mut norms = tx.prepare_cached("SELECT DISTINCT norm FROM versions WHERE archive = ?1")?;
    let mut seen = BTreeSet::new();
    for archive in archives {
        for norm in norms.query_map([archive.as_slice()], |row| row.get::<_, String>(0))? {
            let norm = norm?;
            if seen.insert(norm.clone()) {
                refresh_popularity(tx, &norm)?;
            }
        }
    }
    Ok(())
}

/// Recounts the distinct peers providing any archive of `norm` (up to [`PROVIDER_CAP`])
/// into `popularity`, the table search reads its prior from. Liveness is kept by the
/// providers table itself: stale rows are forgotten (`forget_providers_before`), which
/// recounts too.
pub(super) fn refresh_popularity(tx: &rusqlite::Connection, norm: &str) -> rusqlite::Result<()> {
    let peers: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT DISTINCT pr.peer FROM versions v
                 JOIN providers pr ON pr.blake3 = v.archive
                 WHERE v.norm = ?1 LIMIT ?2)",
        )?
        .query_row(params![norm, PROVIDER_CAP], |row| row.get(0))?;
    if peers == 0 {
        tx.prepare_cached("DELETE FROM popularity WHERE norm = ?1")?
            .execute([norm])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO popularity (norm, peers, lift) VALUES (?1, ?2, ?3)
             ON CONFLICT (norm) DO UPDATE SET peers = excluded.peers, lift = excluded.lift",
        )?
        .execute(params![norm, peers, lift(peers)])?;
    }
    Ok(())
}

/// The prior's shape: `log2(1 + peers)`, 0 for no provider, 1 for one, about 5 at the
/// cap; search multiplies it by its weight.
pub fn lift(peers: i64) -> f64 {
    ((1 + peers.clamp(0, PROVIDER_CAP)) as f64).log2()
}

/// Recounts every name that has a known provider (the schema step that adds the table).
pub(super) fn refresh_all_popularity(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let norms: Vec<String> = conn
        .prepare(
            "SELECT DISTINCT v.norm FROM versions v
             WHERE EXISTS (SELECT 1 FROM providers pr WHERE pr.blake3 = v.archive)",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for norm in norms {
        refresh_popularity(conn, &norm)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_installs_persist() {
        let dir = tempfile::tempdir().unwrap();
        let hash = Blake3Hash::of(b"archive");
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .observe_providers([(&hash, "peer-a")], now_ms())
                .unwrap();
            store
                .observe_providers([(&hash, "peer-b")], now_ms())
                .unwrap();
            store
                .observe_providers([(&hash, "peer-a")], now_ms())
                .unwrap();
            store.remove_provider(&hash, "peer-b").unwrap();
            store
                .observe_providers([(&hash, "peer-c")], now_ms())
                .unwrap();
            store
                .record_install("my_pack", &Version::new(1, 0, 0), Path::new("/tmp/x"))
                .unwrap();
            store
                .record_install("my_pack", &Version::new(1, 0, 0), Path::new("/tmp/x"))
                .unwrap();
            store
                .record_install("my-pack", &Version::new(2, 0, 0), Path::new("/tmp/y"))
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut peers = store.providers(&hash).unwrap();
        peers.sort();
        assert_eq!(peers, ["peer-a", "peer-c"]);
        assert!(store
            .providers(&Blake3Hash::of(b"other"))
            .unwrap()
            .is_empty());
        let installs = store.installs().unwrap();
        assert_eq!(installs.len(), 2);
        assert_eq!(installs[0].path, PathBuf::from("/tmp/y"));
        assert_eq!(installs[0].version, Version::new(2, 0, 0));
        assert!(installs[1].installed_at > 0);
    }

    #[test]
    fn stale_providers_are_not_live_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let hash = Blake3Hash::of(b"archive");
        let store = Store::open(dir.path()).unwrap();
        store.observe_providers([(&hash, "old")], 1_000).unwrap();
        store.observe_providers([(&hash, "fresh")], 5_000).unwrap();
        store
            .observe_providers([(&hash, "revived")], 1_000)
            .unwrap();
        store
            .observe_providers([(&hash, "revived")], 6_000)
            .unwrap();
        // An older confirmation arriving late does not make a provider look stale.
        store
            .observe_providers([(&hash, "revived")], 2_000)
            .unwrap();
        assert_eq!(
            store.live_providers(&hash, 4_000).unwrap(),
            ["revived", "fresh"]
        );
        assert_eq!(store.providers(&hash).unwrap().len(), 3);
        assert_eq!(store.forget_providers_before(4_000).unwrap(), 1);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.providers(&hash).unwrap(), ["revived", "fresh"]);
    }

    /// Popularity follows provider sightings whatever their order against the record,
    /// counts distinct peers over every version's archive, stops at the cap (a flood of
    /// fake providers buys no more than a popular package has), and drops with the
    /// providers that are removed or forgotten; search ranks the popular twin first.
    #[test]
    fn provider_sightings_feed_a_capped_popularity_prior() {
        use crate::package::{PublisherKey, Record, RecordBody};
        use crate::store::test_util::version_body;
        use crate::store::Query;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        let record = |name: &str, version: &str| {
            let mut body = version_body(&key, name, version, 1);
            body.description = "resize images quickly".into();
            Record::sign(RecordBody::Version(body), &key).unwrap()
        };
        let archive = |r: &Record| match r.body() {
            RecordBody::Version(v) => v.archive.blake3,
            _ => unreachable!(),
        };
        let popular = [record("popular", "1.0.0"), record("popular", "2.0.0")];
        let quiet = record("quiet", "1.0.0");
        let peers = |store: &Store, norm: &str| -> i64 {
            store
                .read(|conn| {
                    Ok(conn
                        .query_row(
                            "SELECT coalesce((SELECT peers FROM popularity WHERE norm = ?1), 0)",
                            [norm],
                            |row| row.get(0),
                        )
                        .unwrap())
                })
                .unwrap()
        };
        // Seen before its record arrives: counted when the record comes.
        let first = archive(&popular[0]);
        store
            .observe_providers([(&first, "a"), (&first, "b")], 1_000)
            .unwrap();
        store.ingest(&popular[0]).unwrap();
        assert_eq!(peers(&store, "popular"), 2);
        // Distinct peers over both versions: "b" twice is one.
        store.ingest(&popular[1]).unwrap();
        let second = archive(&popular[1]);
        store
            .observe_providers([(&second, "b"), (&second, "c")], 2_000)
            .unwrap();
        assert_eq!(peers(&store, "popular"), 3);
        store.ingest(&quiet).unwrap();
        let hits = store
            .search(&Query::new(vec!["resize".into(), "images".into()]))
            .unwrap();
        let names: Vec<&str> = hits.iter().map(|h| h.package.name.as_str()).collect();
        assert_eq!(names, ["popular", "quiet"]);
        // A Sybil flood on "quiet" stops at the cap: it ties "popular" at best.
        let fakes: Vec<String> = (0..500).map(|i| format!("sybil-{i}")).collect();
        let quiet_archive = archive(&quiet);
        store
            .observe_providers(fakes.iter().map(|p| (&quiet_archive, p.as_str())), 3_000)
            .unwrap();
        assert_eq!(peers(&store, "quiet"), PROVIDER_CAP);
        assert_eq!(lift(500), lift(PROVIDER_CAP));
        // Withdrawn and stale providers leave the count.
        store.remove_provider(&first, "a").unwrap();
        assert_eq!(peers(&store, "popular"), 2);
        store.forget_providers_before(2_500).unwrap();
        assert_eq!(peers(&store, "popular"), 0);
        assert_eq!(peers(&store, "quiet"), PROVIDER_CAP);
    }

    #[test]
    fn provider_lookups_are_remembered_until_they_go_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (asked, never) = (Blake3Hash::of(b"asked"), Blake3Hash::of(b"never"));
        let store = Store::open(dir.path()).unwrap();
        store.provider_lookup_done(&asked, 5_000).unwrap();
        store.provider_lookup_done(&asked, 3_000).unwrap();
        assert!(
            store.provider_lookup_since(&asked, 5_000).unwrap(),
            "never moves back"
        );
        assert!(!store.provider_lookup_since(&asked, 5_001).unwrap());
        assert!(!store.provider_lookup_since(&never, 0).unwrap());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(
            store.provider_lookup_since(&asked, 4_000).unwrap(),
            "persisted"
        );
        store.forget_providers_before(6_000).unwrap();
        assert!(
            !store.provider_lookup_since(&asked, 0).unwrap(),
            "forgotten when stale"
        );
    }
}
