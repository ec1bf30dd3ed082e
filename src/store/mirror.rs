//! What an HTTP mirror serves from the store: every name it knows, and per name every
//! signed record that touches it (versions, yanks, the rotations of its publishers, and
//! equivocation evidence), as the exact bytes stored. Serving them is `mirror::serve`'s.

use std::collections::BTreeSet;

use rusqlite::Connection;

use super::{Error, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::Blake3Hash;

/// The kind of one line of a mirror's index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorKind {
    Version,
    Yank,
    Rotation,
    /// The refused side of an equivocation (a second archive signed for one version).
    Evidence,
}

impl MirrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorKind::Version => "version",
            MirrorKind::Yank => "yank",
            MirrorKind::Rotation => "rotation",
            MirrorKind::Evidence => "evidence",
        }
    }
}

impl Store {
    /// Every name with at least one stored version record (normalised), sorted.
    pub fn mirror_names(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT DISTINCT norm FROM versions ORDER BY norm")?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Every record that touches `name`, in a stable order (versions, yanks, rotations,
    /// evidence; each by id): its kind and exact signed bytes. Empty for an unknown name.
    pub fn mirror_records(&self, name: &str) -> Result<Vec<(MirrorKind, Vec<u8>)>, StoreError> {
        let norm = normalize_name(name);
        self.read(|conn| {
            let mut out = Vec::new();
            let mut publishers = BTreeSet::new();
            for (table, kind) in [
                ("versions", MirrorKind::Version),
                ("yanks", MirrorKind::Yank),
            ] {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT r.bytes, t.publisher FROM records r JOIN {table} t ON t.rid = r.rid
                     WHERE t.norm = ?1 ORDER BY r.id"
                ))?;
                let rows = stmt.query_map([&norm], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?;
                for row in rows {
                    let (bytes, publisher) = row?;
                    publishers.insert(publisher);
                    out.push((kind, bytes));
                }
            }
            for bytes in rotations_of(conn, publishers)? {
                out.push((MirrorKind::Rotation, bytes));
            }
            let mut stmt = conn.prepare_cached("SELECT name, bytes FROM evidence ORDER BY id")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (evidence_name, bytes) = row?;
                if normalize_name(&evidence_name) == norm {
                    out.push((MirrorKind::Evidence, bytes));
                }
            }
            Ok(out)
        })
    }
}

/// Rotations whose old or new key is in `keys`, followed through whole chains (a key
/// that published nothing for the name may still link two that did).
fn rotations_of(conn: &Connection, mut keys: BTreeSet<Vec<u8>>) -> Result<Vec<Vec<u8>>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.bytes, t.old, t.new FROM records r JOIN rotations t ON t.rid = r.rid
         WHERE t.old = ?1 OR t.new = ?1",
    )?;
    let mut queue: Vec<Vec<u8>> = keys.iter().cloned().collect();
    let mut found: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    while let Some(key) = queue.pop() {
        let rows = stmt.query_map([&key], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, bytes, old, new) = row?;
            found.entry(id).or_insert(bytes);
            for other in [old, new] {
                if keys.insert(other.clone()) {
                    queue.push(other);
                }
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The entity tag of an index file: BLAKE3 over its records' ids in order, so it changes
/// exactly when a record is added (or evidence arrives).
pub fn mirror_etag(records: &[(MirrorKind, Vec<u8>)]) -> String {
    let mut hasher = blake3::Hasher::new();
    for (_, bytes) in records {
        hasher.update(Blake3Hash::of(bytes).as_bytes());
    }
    format!("\"{}\"", hasher.finalize().to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::PublisherKey;
    use crate::package::{Record, RecordBody};
    use crate::store::test_util::{archive, version, version_body, yank};

    #[test]
    fn a_name_lists_its_versions_yanks_and_evidence_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        let v1 = version(&key, "web-kit", "1.0.0", 1_000);
        let other = version(&key, "other", "1.0.0", 1_000);
        let y1 = yank(&key, "web-kit", "1.0.0");
        store.ingest_many(&[v1.clone(), other, y1.clone()]).unwrap();
        let names = store.mirror_names().unwrap();
        assert_eq!(names, vec!["other".to_string(), "web-kit".to_string()]);
        let before = store.mirror_records("web_kit").unwrap();
        let kinds: Vec<_> = before.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, vec![MirrorKind::Version, MirrorKind::Yank]);
        assert_eq!(before[0].1, v1.as_bytes());
        assert_eq!(before[1].1, y1.as_bytes());
        assert!(store.mirror_records("nobody").unwrap().is_empty());

        // Another archive for the same version: evidence, served with the name, and
        // the ETag changes.
        let mut body = version_body(&key, "web-kit", "1.0.0", 2_000);
        body.archive = archive("other bytes");
        let evil = Record::sign(RecordBody::Version(body), &key).unwrap();
        store.ingest(&evil).unwrap();
        let after = store.mirror_records("web-kit").unwrap();
        assert_eq!(after.len(), 3);
        assert_eq!(after[2], (MirrorKind::Evidence, evil.as_bytes().to_vec()));
        assert_ne!(mirror_etag(&before), mirror_etag(&after));
        assert_eq!(mirror_etag(&after), mirror_etag(&after.clone()));
    }
}
