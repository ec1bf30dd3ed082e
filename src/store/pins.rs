//! Keys trusted with the `trust` command, persisted in `trusted_keys`: for one name, or
//! (name '') for every name the key claims. They override the accepted owner; config
//! `trusted_publishers` (in memory, see `Store::set_pins`) overrides them. How a pin
//! ranks claims is `trust.rs`'s job, not this file's.

use rusqlite::{params, Connection};

use super::trust::Chains;
use super::{now_ms, records, Error, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::PublisherId;

/// One persisted pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub key: PublisherId,
    /// The name it is trusted for (normalized); `None` = every name it claims.
    pub name: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub added_at: u64,
}

/// The persisted pin for `norm`, mapped to its oldest key: a pin for this name (oldest
/// first), else a key trusted for every name that has a claim (`claimants`, oldest keys).
pub(super) fn persisted_pin(
    chains: &mut Chains<'_>,
    norm: &str,
    claimants: &[PublisherId],
) -> Result<Option<PublisherId>, rusqlite::Error> {
    let rows: Vec<(Vec<u8>, String)> = chains
        .conn()
        .prepare_cached(
            "SELECT key, norm FROM trusted_keys WHERE norm = ?1 OR norm = ''
             ORDER BY norm = '', added_at, key",
        )?
        .query_map([norm], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (key, pinned_norm) in rows {
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            continue;
        };
        let root = chains.canonical(PublisherId::from_bytes(key))?;
        if !pinned_norm.is_empty() || claimants.contains(&root) {
            return Ok(Some(root));
        }
    }
    Ok(None)
}

fn list(conn: &Connection) -> Result<Vec<TrustedKey>, Error> {
    let rows: Vec<(Vec<u8>, String, i64)> = conn
        .prepare_cached("SELECT key, norm, added_at FROM trusted_keys ORDER BY norm, added_at")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, norm, added_at)| {
            let key = PublisherId::from_bytes(<[u8; 32]>::try_from(key).ok()?);
            Some(TrustedKey {
                key,
                name: (!norm.is_empty()).then_some(norm),
                added_at: added_at as u64,
            })
        })
        .collect())
}

/// Names whose owner a pin change may move: the pinned name, or every name with more
/// than one claim (a key trusted everywhere only matters where claims compete).
fn affected(conn: &Connection, norm: &str) -> Result<Vec<String>, rusqlite::Error> {
    if !norm.is_empty() {
        return Ok(vec![norm.to_string()]);
    }
    conn.prepare_cached(
        "SELECT norm FROM versions GROUP BY norm HAVING COUNT(DISTINCT publisher) > 1",
    )?
    .query_map([], |row| row.get(0))?
    .collect()
}

impl Store {
    /// Trusts `key` for `name` (or every name it claims); true when it was new.
    pub fn trust_add(&self, key: PublisherId, name: Option<&str>) -> Result<bool, StoreError> {
        let norm = name.map(normalize_name).unwrap_or_default();
        let now = now_ms();
        self.write(|tx, store| {
            let added = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO trusted_keys (key, norm, added_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key.as_bytes().as_slice(), norm, now as i64])?;
            for affected in affected(tx, &norm)? {
                records::refresh_name(tx, store, &affected, None)?;
            }
            Ok(added > 0)
        })
    }

    /// Removes the pin of `key` for `name` (or its every-name pin); true when one existed.
    pub fn trust_remove(&self, key: PublisherId, name: Option<&str>) -> Result<bool, StoreError> {
        let norm = name.map(normalize_name).unwrap_or_default();
        self.write(|tx, store| {
            let removed = tx
                .prepare_cached("DELETE FROM trusted_keys WHERE key = ?1 AND norm = ?2")?
                .execute(params![key.as_bytes().as_slice(), norm])?;
            for affected in affected(tx, &norm)? {
                records::refresh_name(tx, store, &affected, None)?;
            }
            Ok(removed > 0)
        })
    }

    /// Every persisted pin, by name ('' first: keys trusted everywhere).
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKey>, StoreError> {
        self.read(list)
    }
}

#[cfg(test)]
mod tests {
    use semver::{Version, VersionReq};

    use super::*;
    use crate::package::PublisherKey;
    use crate::store::test_util::version;

    #[test]
    fn trusted_keys_override_the_accepted_owner_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (first, second) = (PublisherKey::generate(), PublisherKey::generate());
        store.ingest(&version(&first, "tool", "1.0.0", 10)).unwrap();
        store
            .ingest(&version(&second, "tool", "2.0.0", 20))
            .unwrap();
        let any = VersionReq::STAR;
        let owner = |store: &Store| store.resolve("tool", &any, None).unwrap().publisher;
        assert_eq!(owner(&store), first.id(), "accepted first");

        assert!(store.trust_add(second.id(), Some("tool")).unwrap());
        assert!(!store.trust_add(second.id(), Some("tool")).unwrap(), "once");
        assert_eq!(owner(&store), second.id());
        assert!(store.claims("tool").unwrap()[0].pinned);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(owner(&store), second.id(), "persisted");
        let hits = store
            .search(&crate::store::Query::new(vec!["tool".into()]))
            .unwrap();
        assert_eq!(hits[0].package.version, Version::new(2, 0, 0));

        assert!(store.trust_remove(second.id(), Some("tool")).unwrap());
        assert!(!store.trust_remove(second.id(), Some("tool")).unwrap());
        assert_eq!(owner(&store), first.id());

        // Trusted for every name: wins where it has a claim, takes no other name.
        store.ingest(&version(&first, "other", "1.0.0", 5)).unwrap();
        assert!(store.trust_add(second.id(), None).unwrap());
        assert_eq!(owner(&store), second.id());
        let other = store.resolve("other", &any, None).unwrap();
        assert_eq!(other.publisher, first.id());
        let listed = store.trusted_keys().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].key, listed[0].name.as_deref()),
            (second.id(), None)
        );
    }
}
