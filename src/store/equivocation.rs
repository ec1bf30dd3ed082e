//! Equivocation after ingest: which versions are compromised (one key signed two
//! different archives for one name and version), read from the accepted records and the
//! evidence kept beside them; the record set anti-entropy exchanges (accepted records
//! plus evidence, so a node that knows one side learns the other); and the lookups an
//! install pinned by archive hash needs. Detection at ingest is `records.rs`'s.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection, OptionalExtension};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::search::IndexedVersion;
use super::trust::Chains;
use super::{records, Error, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::{Blake3Hash, PublisherId, Record, RecordBody, RecordId, VersionRecord};

/// A version its publisher's key signed with more than one archive: nothing installs it
/// unless the archive is pinned by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compromised {
    pub publisher: PublisherId,
    pub version: Version,
    /// Every archive signed for this version, sorted (two or more).
    pub archives: Vec<Blake3Hash>,
}

/// One signed version record of a name, reduced to what equivocation compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Signed {
    pub publisher: PublisherId,
    pub version: Version,
    pub archive: Blake3Hash,
}

/// The compromised versions among `seen` (records of one name, accepted and evidence
/// alike), sorted by publisher then version. A set function of its input: the same
/// records in any order, or repeated, give the same answer, so nodes that hold the same
/// records agree whatever order they arrived in.
pub(super) fn compromised(seen: impl IntoIterator<Item = Signed>) -> Vec<Compromised> {
    let mut groups: BTreeMap<(PublisherId, Version), BTreeSet<Blake3Hash>> = BTreeMap::new();
    for s in seen {
        groups
            .entry((s.publisher, s.version))
            .or_default()
            .insert(s.archive);
    }
    groups
        .into_iter()
        .filter(|(_, archives)| archives.len() > 1)
        .map(|((publisher, version), archives)| Compromised {
            publisher,
            version,
            archives: archives.into_iter().collect(),
        })
        .collect()
}

/// Evidence records of `norm` (parsed, not re-verified: they were verified on arrival),
/// with their ids.
fn name_evidence(conn: &Connection, norm: &str) -> Result<Vec<(RecordId, VersionRecord)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, bytes FROM evidence
         WHERE publisher IN (SELECT DISTINCT publisher FROM versions WHERE norm = ?1)",
    )?;
    let rows = stmt.query_map([norm], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, bytes) = row?;
        if normalize_name(&name) != norm {
            continue;
        }
        let Ok(id) = <[u8; 32]>::try_from(id) else {
            continue;
        };
        if let Ok(RecordBody::Version(v)) = Record::parse_unverified(&bytes) {
            out.push((Blake3Hash(id), v));
        }
    }
    Ok(out)
}

/// The compromised versions of `norm` (see [`compromised`]).
pub(super) fn name_compromised(conn: &Connection, norm: &str) -> Result<Vec<Compromised>, Error> {
    let evidence = name_evidence(conn, norm)?;
    if evidence.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen: Vec<Signed> = evidence
        .iter()
        .map(|(_, v)| Signed {
            publisher: v.publisher,
            version: v.version.clone(),
            archive: v.archive.blake3,
        })
        .collect();
    let targets: BTreeSet<(PublisherId, Version)> = seen
        .iter()
        .map(|s| (s.publisher, s.version.clone()))
        .collect();
    let mut accepted = conn.prepare_cached(
        "SELECT archive FROM versions WHERE norm = ?1 AND version = ?2 AND publisher = ?3",
    )?;
    for (publisher, version) in targets {
        let archive: Option<Vec<u8>> = accepted
            .query_row(
                params![norm, version.to_string(), publisher.as_bytes().as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(Ok(archive)) = archive.map(<[u8; 32]>::try_from) {
            seen.push(Signed {
                publisher,
                version,
                archive: Blake3Hash(archive),
            });
        }
    }
    Ok(compromised(seen))
}

fn verified(id: &RecordId, bytes: Vec<u8>) -> Option<Record> {
    match Record::verify(bytes) {
        Ok(record) if record.id() == *id => Some(record),
        Ok(_) => {
            tracing::warn!("stored record {id}: its bytes are another record's; skipped (run `ggen-p2p verify`)");
            None
        }
        Err(e) => {
            tracing::warn!(
                "stored record {id} no longer verifies ({e}); skipped (run `ggen-p2p verify`)"
            );
            None
        }
    }
}

impl Store {
    /// Ids anti-entropy compares and serves: every accepted record and every piece of
    /// evidence, sorted ascending. Evidence travels like any record, so the conflict
    /// reaches every node that syncs with one that knows it.
    pub fn sync_ids(&self) -> Result<Vec<RecordId>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id FROM records UNION SELECT id FROM evidence")?;
            let rows = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
            let mut ids = Vec::new();
            for row in rows {
                if let Ok(bytes) = <[u8; 32]>::try_from(row?) {
                    ids.push(Blake3Hash(bytes));
                }
            }
            ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            ids.dedup();
            Ok(ids)
        })
    }

    /// Those of `ids` stored here as accepted records or as evidence, re-verified, in the
    /// order asked; a damaged row is skipped with a warning, as [`Store::records`] does.
    pub fn sync_records(&self, ids: &[RecordId]) -> Result<Vec<Record>, StoreError> {
        self.read(|conn| {
            let mut accepted = conn.prepare_cached("SELECT bytes FROM records WHERE id = ?1")?;
            let mut evidence = conn.prepare_cached("SELECT bytes FROM evidence WHERE id = ?1")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let key = id.as_bytes().as_slice();
                let bytes: Option<Vec<u8>> =
                    match accepted.query_row([key], |row| row.get(0)).optional()? {
                        Some(bytes) => Some(bytes),
                        None => evidence.query_row([key], |row| row.get(0)).optional()?,
                    };
                if let Some(record) = bytes.and_then(|bytes| verified(id, bytes)) {
                    out.push(record);
                }
            }
            Ok(out)
        })
    }

    /// A stored record, accepted or evidence, re-verified (an install pinned to the
    /// archive of an evidence record checks that record's signature through here).
    pub fn signed_record(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        Ok(self.sync_records(std::slice::from_ref(id))?.pop())
    }

    /// The compromised versions of a name (normalized compare), by publisher and version.
    pub fn compromised(&self, name: &str) -> Result<Vec<Compromised>, StoreError> {
        let norm = normalize_name(name);
        self.read(|conn| name_compromised(conn, &norm))
    }

    /// Whether `meta`'s version is compromised, and how.
    pub fn compromise_of(&self, meta: &IndexedVersion) -> Result<Option<Compromised>, StoreError> {
        Ok(self
            .compromised(&meta.name)?
            .into_iter()
            .find(|c| c.publisher == meta.publisher && c.version == meta.version))
    }

    /// Refuses a compromised version with the sentence `install` shows.
    pub fn ensure_not_compromised(&self, meta: &IndexedVersion) -> Result<(), StoreError> {
        match self.compromise_of(meta)? {
            None => Ok(()),
            Some(c) => Err(StoreError::Compromised {
                name: meta.name.clone(),
                version: c.version,
                publisher: c.publisher,
                archives: c
                    .archives
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
            }),
        }
    }

    /// The newest version of `name` matching `req` whose signed archive is exactly
    /// `archive`, from `publisher`'s rotation chain when given: an accepted record or a
    /// piece of evidence (so one side of a compromised version can be installed when a
    /// lockfile pins its hash). Yanked versions count, as lockfiles need them.
    pub fn version_with_archive(
        &self,
        name: &str,
        req: &VersionReq,
        publisher: Option<&PublisherId>,
        archive: &Blake3Hash,
    ) -> Result<IndexedVersion, StoreError> {
        let norm = normalize_name(name);
        self.read(|conn| {
            let mut found: Vec<IndexedVersion> = records::name_versions(conn, &norm)?
                .into_iter()
                .filter(|m| m.archive.blake3 == *archive)
                .collect();
            let mut yanked = conn.prepare_cached(
                "SELECT yanked FROM versions WHERE norm = ?1 AND version = ?2 AND publisher = ?3",
            )?;
            for (id, v) in name_evidence(conn, &norm)? {
                if v.archive.blake3 != *archive {
                    continue;
                }
                let is_yanked: bool = yanked
                    .query_row(
                        params![
                            norm,
                            v.version.to_string(),
                            v.publisher.as_bytes().as_slice()
                        ],
                        |row| row.get(0),
                    )
                    .optional()?
                    .unwrap_or(false);
                found.push(IndexedVersion::from_record(&v, is_yanked, id));
            }
            let mut chains = Chains::new(conn);
            let wanted = publisher.map(|p| chains.canonical(*p)).transpose()?;
            let mut best: Option<IndexedVersion> = None;
            for meta in found {
                if !req.matches(&meta.version) {
                    continue;
                }
                if let Some(wanted) = wanted {
                    if chains.canonical(meta.publisher)? != wanted {
                        continue;
                    }
                }
                if best.as_ref().is_none_or(|b| meta.version > b.version) {
                    best = Some(meta);
                }
            }
            best.ok_or_else(|| {
                StoreError::NoSuchArchive {
                    name: name.to_string(),
                    req: req.to_string(),
                    archive: *archive,
                }
                .into()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::package::PublisherKey;
    use crate::store::test_util::{archive, version, version_body};
    use crate::store::IngestOutcome;

    fn signed(key: &PublisherKey, v: &str, seed: &str) -> Record {
        let mut body = version_body(key, "demo", v, 5);
        body.archive = archive(seed);
        Record::sign(RecordBody::Version(body), key).unwrap()
    }

    #[test]
    fn two_archives_for_one_version_are_compromised_three_are_listed() {
        let key = PublisherKey::generate();
        let other = PublisherKey::generate();
        let s = |key: &PublisherKey, v: &str, a: &str| Signed {
            publisher: key.id(),
            version: Version::parse(v).unwrap(),
            archive: Blake3Hash::of(a.as_bytes()),
        };
        let found = compromised([
            s(&key, "1.0.0", "a"),
            s(&key, "1.0.0", "b"),
            s(&key, "1.0.0", "a"),
            s(&key, "1.0.0", "c"),
            s(&key, "1.1.0", "a"),
            s(&other, "1.0.0", "z"),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].publisher, key.id());
        assert_eq!(found[0].archives.len(), 3);
        // Another publisher's record for the same version is a competing claim, not
        // equivocation.
        assert!(compromised([s(&key, "2.0.0", "a"), s(&other, "2.0.0", "b")]).is_empty());
    }

    #[test]
    fn evidence_is_synced_served_and_installable_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        let good = signed(&key, "1.0.0", "good");
        let evil = signed(&key, "1.0.0", "evil");
        let older = version(&key, "demo", "0.9.0", 1);
        for r in [&older, &good] {
            assert_eq!(store.ingest(r).unwrap(), IngestOutcome::Added);
        }
        assert!(store.compromised("demo").unwrap().is_empty());
        assert!(matches!(
            store.ingest(&evil).unwrap(),
            IngestOutcome::Equivocation { .. }
        ));
        let mut ids = vec![older.id(), good.id(), evil.id()];
        ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(store.sync_ids().unwrap(), ids);
        assert_eq!(
            store.sync_records(&[evil.id(), good.id()]).unwrap(),
            vec![evil.clone(), good.clone()]
        );
        assert_eq!(store.signed_record(&evil.id()).unwrap(), Some(evil.clone()));

        let found = store.compromised("demo").unwrap();
        assert_eq!(found.len(), 1);
        let mut both = vec![archive("good").blake3, archive("evil").blake3];
        both.sort();
        assert_eq!(found[0].archives, both);

        // Newest skips the compromised version; the exact one is refused with both hashes.
        let newest = store.resolve("demo", &VersionReq::STAR, None).unwrap();
        assert_eq!(newest.version, Version::new(0, 9, 0));
        let exact = VersionReq::parse("=1.0.0").unwrap();
        let only = store.resolve("demo", &exact, None).unwrap();
        let err = store.ensure_not_compromised(&only).unwrap_err().to_string();
        for hash in &both {
            assert!(err.contains(&hash.to_string()), "{err}");
        }
        assert!(err.contains("leaked"), "{err}");
        assert!(store.ensure_not_compromised(&newest).is_ok());

        // Pinned by hash: either side, accepted or evidence.
        let pinned = store
            .version_with_archive("demo", &exact, None, &archive("evil").blake3)
            .unwrap();
        assert_eq!(pinned.record_id, evil.id());
        let pinned = store
            .version_with_archive(
                "demo",
                &VersionReq::STAR,
                Some(&key.id()),
                &archive("good").blake3,
            )
            .unwrap();
        assert_eq!(pinned.record_id, good.id());
        let err = store
            .version_with_archive("demo", &exact, None, &Blake3Hash::of(b"nope"))
            .unwrap_err();
        assert!(matches!(err, StoreError::NoSuchArchive { .. }), "{err}");
    }

    /// The records two equivocating nodes and a bystander hold, ingested one by one or
    /// in batches, in any order: every store ends with the same compromised versions and
    /// the same set of ids to sync.
    fn scenario() -> (PublisherKey, Vec<Record>) {
        let key = PublisherKey::generate();
        let other = PublisherKey::generate();
        let records = vec![
            signed(&key, "1.0.0", "a"),
            signed(&key, "1.0.0", "b"),
            signed(&key, "1.0.0", "c"),
            signed(&key, "1.1.0", "a"),
            signed(&other, "1.0.0", "z"),
        ];
        (key, records)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn compromised_is_the_same_whatever_the_arrival_order(
            order in Just((0..5usize).collect::<Vec<_>>()).prop_shuffle(),
            batch in 0..5usize,
        ) {
            let (key, records) = scenario();
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let arrived: Vec<Record> = order.iter().map(|&i| records[i].clone()).collect();
            // The first `batch` arrive one by one (gossip), the rest as one sync batch.
            for record in &arrived[..batch] {
                store.ingest(record).unwrap();
            }
            store.ingest_many(&arrived[batch..]).unwrap();
            let found = store.compromised("demo").unwrap();
            prop_assert_eq!(found.len(), 1);
            prop_assert_eq!(found[0].publisher, key.id());
            prop_assert_eq!(&found[0].version, &Version::new(1, 0, 0));
            let mut expected: Vec<Blake3Hash> =
                ["a", "b", "c"].iter().map(|s| archive(s).blake3).collect();
            expected.sort();
            prop_assert_eq!(&found[0].archives, &expected);
            let mut all: Vec<RecordId> = records.iter().map(|r| r.id()).collect();
            all.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(store.sync_ids().unwrap(), all);
            // The pure rule agrees with the store on the same records in this order.
            let pure = compromised(arrived.iter().filter_map(|r| match r.body() {
                RecordBody::Version(v) => Some(Signed {
                    publisher: v.publisher,
                    version: v.version.clone(),
                    archive: v.archive.blake3,
                }),
                _ => None,
            }));
            prop_assert_eq!(pure, found);
        }
    }
}
