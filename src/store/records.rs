//! Record ingest: duplicate and equivocation checks, yanks (early or late), rotations,
//! and the derived `packages` row (owner's latest version + FTS5 text) of each name a
//! record touches. Reads hand records back re-verified, so a damaged index is noticed.

use std::collections::{BTreeSet, HashSet};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use semver::Version;

use super::search::IndexedVersion;
use super::trust::{self, Chains};
use super::{now_ms, Equivocation, Error, IngestOutcome, Store, StoreError};
use crate::package::fields::{check_not_future, normalize_name};
use crate::package::{
    Blake3Hash, KeyRotation, PublisherId, Record, RecordBody, RecordId, VersionRecord, YankRecord,
};

impl Store {
    /// Stores a verified record (see the contract in `STORE_API.md`); one transaction.
    pub fn ingest(&self, record: &Record) -> Result<IngestOutcome, StoreError> {
        let now = now_ms();
        let outcome =
            self.write(|tx, store| ingest_one(tx, store, record, now, &mut BTreeSet::new()))?;
        self.announce_accepted(record, &outcome);
        Ok(outcome)
    }

    /// [`Store::ingest`] for a record this node's own key just signed (publish, yank,
    /// rotation): committed with `synchronous = FULL`, so once the publisher is told it
    /// is done it survives a power cut, which may not be re-fetched from anyone else.
    pub fn ingest_own(&self, record: &Record) -> Result<IngestOutcome, StoreError> {
        let now = now_ms();
        let outcome = self
            .write_durable(|tx, store| ingest_one(tx, store, record, now, &mut BTreeSet::new()))?;
        self.announce_accepted(record, &outcome);
        Ok(outcome)
    }

    /// Ingests many records in one transaction; outcomes in input order.
    pub fn ingest_many(&self, records: &[Record]) -> Result<Vec<IngestOutcome>, StoreError> {
        let now = now_ms();
        let outcomes = self.write(|tx, store| {
            let mut accepted = BTreeSet::new();
            let outcomes = records
                .iter()
                .map(|record| ingest_one(tx, store, record, now, &mut accepted))
                .collect::<Result<Vec<_>, Error>>()?;
            // A name met for the first time with competing claims in one batch has no
            // owner this node can trust on its own: it is contested.
            for norm in accepted {
                if trust::claims(tx, &norm, None)?.len() > 1 {
                    trust::mark_contested(tx, &norm)?;
                }
            }
            Ok(outcomes)
        })?;
        for (record, outcome) in records.iter().zip(&outcomes) {
            self.announce_accepted(record, outcome);
        }
        Ok(outcomes)
    }

    /// A stored record (accepted ones only), re-verified.
    pub fn record(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.read(|conn| {
            let bytes: Option<Vec<u8>> = conn
                .prepare_cached("SELECT bytes FROM records WHERE id = ?1")?
                .query_row([id.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            bytes.map(|bytes| verify_stored(*id, bytes)).transpose()
        })
    }

    /// Those of `ids` that are stored and intact, in the order asked. A damaged row (its
    /// bytes no longer verify, or are not the record its id names) is skipped with a
    /// warning, so one bad row never blocks a batch a peer asked for; `verify` reports it.
    pub fn records(&self, ids: &[RecordId]) -> Result<Vec<Record>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT bytes FROM records WHERE id = ?1")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let bytes: Option<Vec<u8>> = stmt
                    .query_row([id.as_bytes().as_slice()], |row| row.get(0))
                    .optional()?;
                let Some(bytes) = bytes else { continue };
                match Record::verify(bytes) {
                    Ok(record) if record.id() == *id => out.push(record),
                    Ok(_) => tracing::warn!(
                        "stored record {id}: its bytes are another record's; skipped (run `ggen-p2p verify`)"
                    ),
                    Err(e) => tracing::warn!(
                        "stored record {id} no longer verifies ({e}); skipped (run `ggen-p2p verify`)"
                    ),
                }
            }
            Ok(out)
        })
    }

    /// Ids of every stored record (accepted ones, not evidence), sorted ascending.
    pub fn record_ids(&self) -> Result<Vec<RecordId>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT id FROM records ORDER BY id")?;
            let rows = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
            let mut ids = Vec::new();
            for row in rows {
                if let Ok(bytes) = <[u8; 32]>::try_from(row?) {
                    ids.push(Blake3Hash(bytes));
                }
            }
            Ok(ids)
        })
    }

    /// Every refused conflicting version record, with the id of the one kept.
    pub fn equivocations(&self) -> Result<Vec<Equivocation>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT accepted, publisher, name, version, bytes FROM evidence
                 ORDER BY received_at, id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (accepted, publisher, name, version, bytes) = row?;
                let (Ok(accepted), Ok(publisher), Ok(version)) = (
                    <[u8; 32]>::try_from(accepted),
                    <[u8; 32]>::try_from(publisher),
                    Version::parse(&version),
                ) else {
                    continue;
                };
                out.push(Equivocation {
                    publisher: PublisherId::from_bytes(publisher),
                    name,
                    version,
                    accepted: Blake3Hash(accepted),
                    refused_bytes: bytes,
                });
            }
            Ok(out)
        })
    }
}

fn verify_stored(id: RecordId, bytes: Vec<u8>) -> Result<Record, Error> {
    Record::verify(bytes).map_err(|source| StoreError::DamagedRecord { id, source }.into())
}

/// `accepted` collects the names whose owner this call accepted (first version seen).
fn ingest_one(
    tx: &Transaction<'_>,
    store: &Store,
    record: &Record,
    now: u64,
    accepted: &mut BTreeSet<String>,
) -> Result<IngestOutcome, Error> {
    let id = record.id();
    let known: Option<i64> = tx
        .prepare_cached("SELECT rid FROM records WHERE id = ?1")?
        .query_row([id.as_bytes().as_slice()], |row| row.get(0))
        .optional()?;
    if known.is_some() {
        return Ok(IngestOutcome::Duplicate);
    }
    let dated = match record.body() {
        RecordBody::Version(v) => v.published_at,
        RecordBody::Yank(y) => y.yanked_at,
        RecordBody::Rotation(r) => r.rotated_at,
    };
    if let Err(reason) = check_not_future(dated, now) {
        return Ok(IngestOutcome::Rejected { reason });
    }
    match record.body() {
        RecordBody::Version(v) => ingest_version(tx, store, record, v, now, accepted),
        RecordBody::Yank(y) => ingest_yank(tx, store, record, y, now),
        RecordBody::Rotation(r) => ingest_rotation(tx, store, record, r, now),
    }
}

fn insert_record(
    tx: &Transaction<'_>,
    record: &Record,
    kind: &str,
    now: u64,
) -> Result<i64, Error> {
    tx.prepare_cached(
        "INSERT INTO records (id, kind, bytes, received_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        record.id().as_bytes().as_slice(),
        kind,
        record.as_bytes(),
        now as i64
    ])?;
    Ok(tx.last_insert_rowid())
}

fn ingest_version(
    tx: &Transaction<'_>,
    store: &Store,
    record: &Record,
    v: &VersionRecord,
    now: u64,
    accepted: &mut BTreeSet<String>,
) -> Result<IngestOutcome, Error> {
    let norm = normalize_name(&v.name);
    let version = v.version.to_string();
    let existing: Option<(Vec<u8>, Vec<u8>)> = tx
        .prepare_cached(
            "SELECT r.id, v.archive FROM versions v JOIN records r ON r.rid = v.rid
             WHERE v.norm = ?1 AND v.version = ?2 AND v.publisher = ?3",
        )?
        .query_row(
            params![norm, version, v.publisher.as_bytes().as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((existing_id, archive)) = existing {
        if archive == v.archive.blake3.as_bytes() {
            return Ok(IngestOutcome::Duplicate);
        }
        let existing = Blake3Hash(<[u8; 32]>::try_from(existing_id).unwrap_or([0; 32]));
        let kept = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO evidence
             (id, accepted, publisher, name, version, bytes, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                record.id().as_bytes().as_slice(),
                existing.as_bytes().as_slice(),
                v.publisher.as_bytes().as_slice(),
                v.name,
                version,
                record.as_bytes(),
                now as i64
            ])?;
        // Evidence already held is no news (and is not gossiped again).
        if kept == 0 {
            return Ok(IngestOutcome::Duplicate);
        }
        return Ok(IngestOutcome::Equivocation { existing });
    }
    let rid = insert_record(tx, record, "version", now)?;
    tx.prepare_cached(
        "INSERT INTO versions (rid, publisher, norm, version, archive, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        rid,
        v.publisher.as_bytes().as_slice(),
        norm,
        version,
        v.archive.blake3.as_bytes().as_slice(),
        v.published_at as i64
    ])?;
    // Providers may have been seen for this archive before its record arrived.
    super::local::refresh_popularity(tx, &norm)?;
    if trust::accept_owner(tx, &norm, &v.publisher, now)? {
        accepted.insert(norm.clone());
    }
    refresh_name(tx, store, &norm, Some((rid, v)))?;
    Ok(IngestOutcome::Added)
}

fn ingest_yank(
    tx: &Transaction<'_>,
    store: &Store,
    record: &Record,
    y: &YankRecord,
    now: u64,
) -> Result<IngestOutcome, Error> {
    let norm = normalize_name(&y.name);
    let version = y.version.to_string();
    let mut chains = Chains::new(tx);
    let signer = chains.canonical(y.publisher)?;
    let mut stmt =
        tx.prepare_cached("SELECT publisher FROM versions WHERE norm = ?1 AND version = ?2")?;
    let targets: Vec<Vec<u8>> = stmt
        .query_map(params![norm, version], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut authors = Vec::new();
    for key in targets {
        if let Ok(key) = <[u8; 32]>::try_from(key) {
            authors.push(PublisherId::from_bytes(key));
        }
    }
    let mut signed_by_author = authors.is_empty();
    for author in &authors {
        signed_by_author |= chains.canonical(*author)? == signer;
    }
    if !signed_by_author {
        let names: Vec<String> = authors.iter().map(|a| a.to_string()).collect();
        return Ok(IngestOutcome::Rejected {
            reason: format!(
                "yank of {}@{} is signed by {}, but that version was published by {}",
                y.name,
                y.version,
                y.publisher,
                names.join(", ")
            ),
        });
    }
    let rid = insert_record(tx, record, "yank", now)?;
    tx.prepare_cached("INSERT INTO yanks (rid, publisher, norm, version) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            rid,
            y.publisher.as_bytes().as_slice(),
            norm,
            version
        ])?;
    refresh_name(tx, store, &norm, None)?;
    Ok(IngestOutcome::Added)
}

fn ingest_rotation(
    tx: &Transaction<'_>,
    store: &Store,
    record: &Record,
    r: &KeyRotation,
    now: u64,
) -> Result<IngestOutcome, Error> {
    let rid = insert_record(tx, record, "rotation", now)?;
    tx.prepare_cached("INSERT INTO rotations (rid, old, new, rotated_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            rid,
            r.old.as_bytes().as_slice(),
            r.new.as_bytes().as_slice(),
            r.rotated_at as i64
        ])?;
    // Every key connected to this rotation may change owner or yanks on its names.
    let mut keys: HashSet<[u8; 32]> = HashSet::new();
    let mut todo = vec![*r.old.as_bytes(), *r.new.as_bytes()];
    let mut linked = tx.prepare_cached(
        "SELECT new FROM rotations WHERE old = ?1 UNION SELECT old FROM rotations WHERE new = ?1",
    )?;
    while let Some(key) = todo.pop() {
        if !keys.insert(key) {
            continue;
        }
        let next: Vec<Vec<u8>> = linked
            .query_map([key.as_slice()], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        todo.extend(
            next.into_iter()
                .filter_map(|k| <[u8; 32]>::try_from(k).ok()),
        );
    }
    let mut names = BTreeSet::new();
    let mut stmt = tx.prepare_cached("SELECT DISTINCT norm FROM versions WHERE publisher = ?1")?;
    for key in &keys {
        let found: Vec<String> = stmt
            .query_map([key.as_slice()], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        names.extend(found);
    }
    for norm in names {
        refresh_name(tx, store, &norm, None)?;
    }
    Ok(IngestOutcome::Added)
}

/// Recomputes everything derived for one name: the yanked flags of its versions, and
/// its `packages` row (owner's highest non-yanked version, conflict flag, FTS text).
/// `fresh` is a version record just inserted, to skip re-reading it.
pub(super) fn refresh_name(
    tx: &Transaction<'_>,
    store: &Store,
    norm: &str,
    fresh: Option<(i64, &VersionRecord)>,
) -> Result<(), Error> {
    let pin = store.pin(norm);
    let mut chains = Chains::new(tx);
    let rows: Vec<(i64, Vec<u8>, String, bool)> = tx
        .prepare_cached("SELECT rid, publisher, version, yanked FROM versions WHERE norm = ?1")?
        .query_map([norm], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let yanks: Vec<(Vec<u8>, String)> = tx
        .prepare_cached("SELECT publisher, version FROM yanks WHERE norm = ?1")?
        .query_map([norm], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut yank_roots = Vec::with_capacity(yanks.len());
    for (key, version) in yanks {
        if let Ok(key) = <[u8; 32]>::try_from(key) {
            yank_roots.push((chains.canonical(PublisherId::from_bytes(key))?, version));
        }
    }
    let claims = trust::claims(tx, norm, pin)?;
    let owner = trust::owner(tx, norm, &claims, pin)?;
    let mut latest: Option<(Version, i64)> = None;
    let mut set_yanked = tx.prepare_cached("UPDATE versions SET yanked = ?2 WHERE rid = ?1")?;
    for (rid, key, version_text, yanked) in rows {
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            continue;
        };
        let root = chains.canonical(PublisherId::from_bytes(key))?;
        let should = yank_roots
            .iter()
            .any(|(r, v)| *r == root && *v == version_text);
        if should != yanked {
            set_yanked.execute(params![rid, should])?;
        }
        let Ok(version) = Version::parse(&version_text) else {
            continue;
        };
        if !should && Some(root) == owner && latest.as_ref().is_none_or(|(l, _)| version > *l) {
            latest = Some((version, rid));
        }
    }
    let conflict = claims.len() > 1;
    let existing: Option<(i64, i64, bool)> = tx
        .prepare_cached("SELECT pid, rid, conflict FROM packages WHERE norm = ?1")?
        .query_row([norm], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((_, rid)) = latest else {
        if let Some((pid, _, _)) = existing {
            tx.prepare_cached("DELETE FROM packages_fts WHERE rowid = ?1")?
                .execute([pid])?;
            tx.prepare_cached("DELETE FROM names_fts WHERE rowid = ?1")?
                .execute([pid])?;
            tx.prepare_cached("DELETE FROM packages WHERE pid = ?1")?
                .execute([pid])?;
        }
        return Ok(());
    };
    if existing.is_some_and(|(_, old_rid, old_conflict)| old_rid == rid && old_conflict == conflict)
    {
        return Ok(());
    }
    let loaded;
    let v = match fresh {
        Some((fresh_rid, v)) if fresh_rid == rid => v,
        _ => {
            loaded = load_version(tx, rid)?;
            &loaded
        }
    };
    let category = v.category.as_ref().map(|c| c.to_lowercase());
    let pid = match existing {
        Some((pid, _, _)) => {
            tx.prepare_cached(
                "UPDATE packages SET rid = ?2, category = ?3, conflict = ?4 WHERE pid = ?1",
            )?
            .execute(params![pid, rid, category, conflict])?;
            tx.prepare_cached("DELETE FROM packages_fts WHERE rowid = ?1")?
                .execute([pid])?;
            tx.prepare_cached("DELETE FROM names_fts WHERE rowid = ?1")?
                .execute([pid])?;
            tx.prepare_cached("DELETE FROM package_keywords WHERE pid = ?1")?
                .execute([pid])?;
            pid
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO packages (pid, norm, rid, category, conflict)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                package_id(norm, rid),
                norm,
                rid,
                category,
                conflict
            ])?;
            tx.last_insert_rowid()
        }
    };
    let words = norm.replace('-', " ");
    let joined = norm.replace('-', "");
    tx.prepare_cached(
        "INSERT INTO packages_fts (rowid, joined, words, keywords, description)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        pid,
        joined,
        &words,
        v.keywords.join(" "),
        v.description
    ])?;
    tx.prepare_cached("INSERT INTO names_fts (rowid, words) VALUES (?1, ?2)")?
        .execute(params![pid, words])?;
    let mut keyword =
        tx.prepare_cached("INSERT OR IGNORE INTO package_keywords (keyword, pid) VALUES (?1, ?2)")?;
    for k in &v.keywords {
        keyword.execute(params![k.to_lowercase(), pid])?;
    }
    Ok(())
}

/// A package row id that sorts shorter names first: `(name length << 40) | rid` (the rid
/// of the version that created the row, unique to this name). FTS5 walks matches in
/// rowid order, so a broad query can rank its first matches (shortest names) without
/// scoring every match; see `search.rs`.
fn package_id(norm: &str, rid: i64) -> i64 {
    ((norm.len() as i64) << 40) | (rid & ((1 << 40) - 1))
}

/// The version record stored under `rid`, re-verified.
fn load_version(conn: &Connection, rid: i64) -> Result<VersionRecord, Error> {
    let (id, bytes): (Vec<u8>, Vec<u8>) = conn
        .prepare_cached("SELECT id, bytes FROM records WHERE rid = ?1")?
        .query_row([rid], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let id = Blake3Hash(<[u8; 32]>::try_from(id).unwrap_or([0; 32]));
    match verify_stored(id, bytes)?.body() {
        RecordBody::Version(v) => Ok(v.clone()),
        _ => Err(StoreError::DamagedRecord {
            id,
            source: crate::package::RecordError::Malformed("expected a version record".into()),
        }
        .into()),
    }
}

/// Metadata of the version stored under `rid`, its record signature re-verified.
pub(super) fn metadata(conn: &Connection, rid: i64) -> Result<IndexedVersion, Error> {
    let (id, bytes, yanked) = version_row(conn, rid)?;
    let record = verify_stored(id, bytes)?;
    version_metadata(id, record.body(), yanked)
}

/// Metadata of the version stored under `rid` for display only: the record was verified
/// when it was ingested and is not re-verified here (search hits; installs re-verify).
pub(super) fn display_metadata(conn: &Connection, rid: i64) -> Result<IndexedVersion, Error> {
    let (id, bytes, yanked) = version_row(conn, rid)?;
    let body = Record::parse_unverified(&bytes)
        .map_err(|source| StoreError::DamagedRecord { id, source })?;
    version_metadata(id, &body, yanked)
}

fn version_row(conn: &Connection, rid: i64) -> Result<(RecordId, Vec<u8>, bool), Error> {
    let (id, bytes, yanked): (Vec<u8>, Vec<u8>, bool) = conn
        .prepare_cached(
            "SELECT r.id, r.bytes, v.yanked FROM records r JOIN versions v ON v.rid = r.rid
             WHERE r.rid = ?1",
        )?
        .query_row([rid], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    let id = Blake3Hash(<[u8; 32]>::try_from(id).unwrap_or([0; 32]));
    Ok((id, bytes, yanked))
}

fn version_metadata(
    id: RecordId,
    body: &RecordBody,
    yanked: bool,
) -> Result<IndexedVersion, Error> {
    match body {
        RecordBody::Version(v) => Ok(IndexedVersion::from_record(v, yanked, id)),
        _ => Err(StoreError::DamagedRecord {
            id,
            source: crate::package::RecordError::Malformed("expected a version record".into()),
        }
        .into()),
    }
}

/// Every version of `norm`, newest first (then earliest published, then publisher).
pub(super) fn name_versions(conn: &Connection, norm: &str) -> Result<Vec<IndexedVersion>, Error> {
    let rids: Vec<i64> = conn
        .prepare_cached("SELECT rid FROM versions WHERE norm = ?1")?
        .query_map([norm], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = rids
        .into_iter()
        .map(|rid| metadata(conn, rid))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| {
        b.version
            .cmp(&a.version)
            .then(a.published_at.cmp(&b.published_at))
            .then(a.publisher.cmp(&b.publisher))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::PublisherKey;
    use crate::store::test_util::{archive, version, version_body, yank};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn ingest_duplicate_and_equivocation_evidence() {
        let (_dir, store) = open();
        let key = PublisherKey::generate();
        let first = version(&key, "demo", "1.0.0", 5);
        assert_eq!(store.ingest(&first).unwrap(), IngestOutcome::Added);
        assert_eq!(store.ingest(&first).unwrap(), IngestOutcome::Duplicate);
        // same archive, different bytes (another timestamp): first one wins
        let resigned = version(&key, "demo", "1.0.0", 6);
        assert_eq!(store.ingest(&resigned).unwrap(), IngestOutcome::Duplicate);
        // another archive for the same version: refused, kept as evidence
        let mut body = version_body(&key, "demo", "1.0.0", 7);
        body.archive = archive("evil");
        let evil = Record::sign(RecordBody::Version(body), &key).unwrap();
        assert_eq!(
            store.ingest(&evil).unwrap(),
            IngestOutcome::Equivocation {
                existing: first.id()
            }
        );
        let evidence = store.equivocations().unwrap();
        assert_eq!(evidence.len(), 1);
        assert_eq!(evidence[0].accepted, first.id());
        assert_eq!(evidence[0].refused_bytes, evil.as_bytes());
        assert_eq!(store.record_ids().unwrap(), vec![first.id()]);
        assert_eq!(store.record(&first.id()).unwrap().unwrap(), first);
        assert!(store.record(&evil.id()).unwrap().is_none());
        let resolved = store
            .resolve("demo", &semver::VersionReq::STAR, None)
            .unwrap();
        assert_eq!(resolved.record_id, first.id());
        let stats = store.stats().unwrap();
        assert_eq!(
            (stats.records, stats.versions, stats.equivocations),
            (1, 1, 1)
        );
    }

    #[test]
    fn yank_before_and_after_its_version() {
        let (_dir, store) = open();
        let key = PublisherKey::generate();
        // early yank: kept, applied when the version arrives
        assert_eq!(
            store.ingest(&yank(&key, "pkg", "1.0.0")).unwrap(),
            IngestOutcome::Added
        );
        store.ingest(&version(&key, "pkg", "1.0.0", 1)).unwrap();
        store.ingest(&version(&key, "pkg", "1.1.0", 2)).unwrap();
        let versions = store.versions("pkg").unwrap();
        assert_eq!(versions.len(), 2);
        assert!(!versions[0].yanked && versions[1].yanked);
        // late yank
        store.ingest(&yank(&key, "pkg", "1.1.0")).unwrap();
        assert!(store.versions("pkg").unwrap().iter().all(|m| m.yanked));
        // nothing left to show in search, but lockfiles still get exact versions
        let hits = store
            .search(&crate::store::Query::new(vec!["pkg".into()]))
            .unwrap();
        assert!(hits.is_empty());
        assert!(store
            .version("pkg", &Version::new(1, 1, 0), None)
            .unwrap()
            .is_some());
    }

    #[test]
    fn yank_by_a_wrong_key_is_refused() {
        let (_dir, store) = open();
        let owner = PublisherKey::generate();
        let mallory = PublisherKey::generate();
        store.ingest(&version(&owner, "pkg", "1.0.0", 1)).unwrap();
        let outcome = store.ingest(&yank(&mallory, "pkg", "1.0.0")).unwrap();
        let IngestOutcome::Rejected { reason } = outcome else {
            panic!("expected a rejection, got {outcome:?}");
        };
        assert!(reason.contains(&owner.id().to_string()), "{reason}");
        assert!(!store.versions("pkg").unwrap()[0].yanked);
        assert_eq!(store.stats().unwrap().records, 1);
    }

    #[test]
    fn records_survive_reopen_and_are_reverified() {
        let dir = tempfile::tempdir().unwrap();
        let key = PublisherKey::generate();
        let record = version(&key, "keep", "0.1.0", 1);
        {
            let store = Store::open(dir.path()).unwrap();
            let outcomes = store
                .ingest_many(&[record.clone(), record.clone()])
                .unwrap();
            assert_eq!(
                outcomes,
                vec![IngestOutcome::Added, IngestOutcome::Duplicate]
            );
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.records(&[record.id()]).unwrap(), vec![record.clone()]);
        assert_eq!(store.versions("keep").unwrap().len(), 1);
        // damage the stored bytes behind the store's back: reads refuse them
        {
            let conn = Connection::open(dir.path().join("index.sqlite")).unwrap();
            conn.execute(
                "UPDATE records SET bytes = CAST(zeroblob(100) AS BLOB) WHERE id = ?1",
                [record.id().as_bytes().as_slice()],
            )
            .unwrap();
        }
        let err = store.record(&record.id()).unwrap_err();
        assert!(matches!(err, StoreError::DamagedRecord { .. }), "{err}");
        // a batch skips the damaged row and still serves the intact ones
        let intact = version(&key, "keep", "0.2.0", 2);
        store.ingest(&intact).unwrap();
        assert_eq!(
            store.records(&[record.id(), intact.id()]).unwrap(),
            vec![intact.clone()]
        );
        // bytes of another (valid) record under this id are damage too
        {
            let conn = Connection::open(dir.path().join("index.sqlite")).unwrap();
            conn.execute(
                "UPDATE records SET bytes = ?1 WHERE id = ?2",
                (intact.as_bytes(), record.id().as_bytes().as_slice()),
            )
            .unwrap();
        }
        assert_eq!(
            store.records(&[record.id(), intact.id()]).unwrap(),
            vec![intact]
        );
    }
}
