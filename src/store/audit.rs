//! Whole-store checks and per-publisher listings, for `ggen-p2p verify` and `list`:
//! every stored record re-verified from its exact bytes, every stored archive re-hashed.

use std::fs::File;

use super::{IndexedVersion, Store, StoreError};
use crate::package::digest::ArchiveHasher;
use crate::package::{Blake3Hash, PublisherId, Record, RecordBody};

/// Table holding the exact bytes of every accepted record (`id` = BLAKE3 of `bytes`).
pub const RECORDS_TABLE: &str = "records";

impl Store {
    /// Re-verifies every stored record. Returns how many were checked and, for each that
    /// fails, its id and why.
    #[allow(clippy::type_complexity)]
    pub fn check_records(&self) -> Result<(u64, Vec<(Blake3Hash, String)>), StoreError> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, bytes FROM records ORDER BY id")?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        let checked = rows.len() as u64;
        let mut bad = Vec::new();
        for (id, bytes) in rows {
            let id = <[u8; 32]>::try_from(id.as_slice())
                .map(Blake3Hash)
                .unwrap_or_else(|_| Blake3Hash::of(&id));
            if Blake3Hash::of(&bytes) != id {
                bad.push((id, "bytes no longer match the record id".to_string()));
            } else if let Err(e) = Record::verify(bytes) {
                bad.push((id, e.to_string()));
            }
        }
        Ok((checked, bad))
    }

    /// Re-hashes every stored archive against the hash it is stored under.
    #[allow(clippy::type_complexity)]
    pub fn check_archives(&self) -> Result<(u64, Vec<(Blake3Hash, String)>), StoreError> {
        let hashes: Vec<Vec<u8>> = self.read(|conn| {
            let mut stmt = conn.prepare("SELECT blake3 FROM archives ORDER BY blake3")?;
            let rows = stmt
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        let mut checked = 0;
        let mut bad = Vec::new();
        for hash in hashes {
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()).map(Blake3Hash) else {
                continue;
            };
            let Some(path) = self.archive_path(&hash) else {
                continue; // evicted or never fetched: nothing to check
            };
            checked += 1;
            let digest = File::open(&path).and_then(ArchiveHasher::digest_reader);
            match digest {
                Ok(digest) if digest.info.blake3 == hash => {}
                Ok(digest) => bad.push((hash, format!("content hashes to {}", digest.info.blake3))),
                Err(e) => bad.push((hash, format!("{}: {e}", path.display()))),
            }
        }
        Ok((checked, bad))
    }

    /// Every version signed by `publisher`, by name then version.
    pub fn published_by(&self, publisher: &PublisherId) -> Result<Vec<IndexedVersion>, StoreError> {
        let rows: Vec<(Vec<u8>, bool)> = self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT r.bytes, v.yanked FROM versions v JOIN records r ON r.rid = v.rid
                 WHERE v.publisher = ?1 ORDER BY v.norm, v.published_at",
            )?;
            let rows = stmt
                .query_map([publisher.as_bytes().as_slice()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (bytes, yanked) in rows {
            let id = Blake3Hash::of(&bytes);
            let record =
                Record::verify(bytes).map_err(|source| StoreError::DamagedRecord { id, source })?;
            if let RecordBody::Version(v) = record.body() {
                out.push(IndexedVersion::from_record(v, yanked, id));
            }
        }
        Ok(out)
    }
}
