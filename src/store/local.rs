//! Node-local bookkeeping that is not derived from records: which peers provide which
//! archive (peer ids as plain strings; the store knows nothing of libp2p) and what was
//! installed where.

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
    /// Records `peer` as a provider of an archive, confirmed now.
    pub fn add_provider(&self, blake3: &Blake3Hash, peer: &str) -> Result<(), StoreError> {
        self.confirm_provider(blake3, peer, now_ms())
    }

    /// Records `peer` as a provider of an archive, last confirmed at `at` (ms since the
    /// epoch: a DHT answer, an announcement or a chunk it served). A confirmation never
    /// moves the time backwards.
    pub fn confirm_provider(
        &self,
        blake3: &Blake3Hash,
        peer: &str,
        at: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "INSERT INTO providers (blake3, peer, added_at, confirmed_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (blake3, peer) DO UPDATE SET
                     confirmed_at = max(confirmed_at, excluded.confirmed_at)",
            )?
            .execute(params![blake3.as_bytes().as_slice(), peer, at as i64])?;
            Ok(())
        })
    }

    pub fn remove_provider(&self, blake3: &Blake3Hash, peer: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached("DELETE FROM providers WHERE blake3 = ?1 AND peer = ?2")?
                .execute(params![blake3.as_bytes().as_slice(), peer])?;
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
            let removed = tx
                .prepare_cached("DELETE FROM providers WHERE confirmed_at < ?1")?
                .execute([since as i64])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_installs_persist() {
        let dir = tempfile::tempdir().unwrap();
        let hash = Blake3Hash::of(b"archive");
        {
            let store = Store::open(dir.path()).unwrap();
            store.add_provider(&hash, "peer-a").unwrap();
            store.add_provider(&hash, "peer-b").unwrap();
            store.add_provider(&hash, "peer-a").unwrap();
            store.remove_provider(&hash, "peer-b").unwrap();
            store.add_provider(&hash, "peer-c").unwrap();
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
        store.confirm_provider(&hash, "old", 1_000).unwrap();
        store.confirm_provider(&hash, "fresh", 5_000).unwrap();
        store.confirm_provider(&hash, "revived", 1_000).unwrap();
        store.confirm_provider(&hash, "revived", 6_000).unwrap();
        // An older confirmation arriving late does not make a provider look stale.
        store.confirm_provider(&hash, "revived", 2_000).unwrap();
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
