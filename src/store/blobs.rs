//! Content-addressed archives: `blobs/<first 2 hex>/<hex>` named by BLAKE3, written via
//! temp files in `blobs/tmp/` (fsync file, rename, fsync directory) so a crash leaves
//! either the whole archive or none, plus their chunk lists and LRU bookkeeping.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use tempfile::NamedTempFile;

use super::{Error, Store, StoreError};
use crate::package::digest::{ArchiveDigest, ArchiveHasher};
use crate::package::{ArchiveInfo, Blake3Hash};

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes an archive straight into the store: bytes go to a temp file in `blobs/tmp/`
/// while being digested; [`BlobWriter::commit`] files it under its hash. Dropping it
/// without committing deletes the temp file.
pub struct BlobWriter {
    store: Store,
    hasher: ArchiveHasher<BufWriter<NamedTempFile>>,
}

impl Write for BlobWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.hasher.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hasher.flush()
    }
}

impl BlobWriter {
    /// Stores the bytes under their BLAKE3 and returns their digest. The archive is
    /// marked as published here (never evicted): this path is what publish uses.
    pub fn commit(self) -> Result<ArchiveDigest, StoreError> {
        let (buffered, digest) = self.hasher.finish();
        let tmp_dir = self.store.dir().join("blobs/tmp");
        let temp = buffered.into_inner().map_err(|e| StoreError::Io {
            path: tmp_dir.clone(),
            source: e.into_error(),
        })?;
        temp.as_file().sync_all().map_err(io_err(temp.path()))?;
        let final_path = self.store.blob_path(&digest.info.blake3);
        self.store.place(temp.path(), &final_path)?;
        // The temp path is gone after the rename; keep NamedTempFile from deleting a
        // file of the same name later.
        let _ = temp.into_temp_path().keep();
        self.store
            .write(|tx, _| insert_archive(tx, &digest.info, &digest.chunks, true))?;
        Ok(digest)
    }
}

impl BlobWriter {
    /// Stores the bytes only if their digest is exactly `info` (BLAKE3, size, SHA-256,
    /// chunk size and chunk root): for an archive fetched whole from an untrusted source
    /// (an HTTP mirror). On a mismatch nothing is stored and the temp file is removed.
    /// Not marked as published here (the cache may evict it).
    pub fn commit_verified(self, info: &ArchiveInfo) -> Result<(), StoreError> {
        let (buffered, digest) = self.hasher.finish_for(info.chunk_size);
        let tmp_dir = self.store.dir().join("blobs/tmp");
        let temp = buffered.into_inner().map_err(|e| StoreError::Io {
            path: tmp_dir,
            source: e.into_error(),
        })?;
        self.store
            .put_verified_archive(temp.path(), &digest, info)?;
        // Renamed into place: keep NamedTempFile from deleting a later file of that name.
        let _ = temp.into_temp_path().keep();
        Ok(())
    }
}

fn insert_archive(
    tx: &rusqlite::Transaction<'_>,
    info: &ArchiveInfo,
    chunks: &[Blake3Hash],
    published_here: bool,
) -> Result<(), Error> {
    let chunk_bytes: Vec<u8> = chunks.iter().flat_map(|c| c.0).collect();
    tx.prepare_cached(
        "INSERT INTO archives (blake3, size, chunk_size, chunks, published_here, last_used)
         VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(last_used), 0) + 1 FROM archives))
         ON CONFLICT (blake3) DO UPDATE SET
             published_here = max(published_here, excluded.published_here),
             last_used = excluded.last_used",
    )?
    .execute(params![
        info.blake3.as_bytes().as_slice(),
        info.size as i64,
        info.chunk_size,
        chunk_bytes,
        published_here
    ])?;
    Ok(())
}

/// Locks a temp file in `blobs/tmp/` for as long as it is open, so a sweep (another
/// process opening the store) can tell a live writer's file from a dead one's.
fn hold(temp: &NamedTempFile) -> Result<(), StoreError> {
    temp.as_file().lock().map_err(io_err(temp.path()))
}

impl Store {
    pub(super) fn blob_path(&self, blake3: &Blake3Hash) -> PathBuf {
        let hex = blake3.to_hex();
        self.dir().join("blobs").join(&hex[..2]).join(hex)
    }

    /// Renames `temp` (already synced) to `dest` and syncs the directory. An existing
    /// `dest` holds the same content (it is named by it), so it is kept.
    fn place(&self, temp: &Path, dest: &Path) -> Result<(), StoreError> {
        let parent = dest.parent().unwrap_or(self.dir());
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        if dest.exists() {
            fs::remove_file(temp).map_err(io_err(temp))?;
            return Ok(());
        }
        fs::rename(temp, dest).map_err(io_err(dest))?;
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err(parent))
    }

    /// A writer whose bytes become a stored archive on `commit`.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp_dir = self.dir().join("blobs/tmp");
        let temp = NamedTempFile::new_in(&tmp_dir).map_err(io_err(&tmp_dir))?;
        hold(&temp)?;
        Ok(BlobWriter {
            store: self.clone(),
            hasher: ArchiveHasher::tee(BufWriter::with_capacity(256 * 1024, temp)),
        })
    }

    /// Moves a finished temp file into `blobs/` after checking it against `info`
    /// (BLAKE3, size, SHA-256 and chunk root), and stores its chunk list. On a mismatch
    /// the file is left where it was.
    pub fn put_archive_file(&self, temp: &Path, info: &ArchiveInfo) -> Result<(), StoreError> {
        let file = File::open(temp).map_err(io_err(temp))?;
        let digest =
            ArchiveHasher::digest_reader_with(&file, info.chunk_size).map_err(io_err(temp))?;
        drop(file);
        self.put_verified_archive(temp, &digest, info)
    }

    /// [`Store::put_archive_file`] for a file whose digest the caller has just computed
    /// over its final bytes (a finished download): the digest is compared with `info`
    /// instead of hashing the file once more.
    pub fn put_verified_archive(
        &self,
        temp: &Path,
        digest: &ArchiveDigest,
        info: &ArchiveInfo,
    ) -> Result<(), StoreError> {
        let file = File::open(temp).map_err(io_err(temp))?;
        let got = &digest.info;
        if got.blake3 != info.blake3
            || got.size != info.size
            || got.sha256 != info.sha256
            || got.chunks_root != info.chunks_root
            || got.chunk_size != info.chunk_size
        {
            return Err(StoreError::ArchiveMismatch {
                path: temp.to_path_buf(),
                expected: format!("blake3 {} size {}", info.blake3, info.size),
                actual: format!("blake3 {} size {}", got.blake3, got.size),
            });
        }
        file.sync_all().map_err(io_err(temp))?;
        drop(file);
        let dest = self.blob_path(&info.blake3);
        if let Err(e) = self.place(temp, &dest) {
            // A temp file on another filesystem cannot be renamed: copy it into blobs/tmp
            // first (keeping the original), then rename from there.
            let tmp_dir = self.dir().join("blobs/tmp");
            let copy = NamedTempFile::new_in(&tmp_dir).map_err(io_err(&tmp_dir))?;
            hold(&copy)?;
            fs::copy(temp, copy.path()).map_err(|_| e)?;
            copy.as_file().sync_all().map_err(io_err(copy.path()))?;
            self.place(copy.path(), &dest)?;
            let _ = copy.into_temp_path().keep();
        }
        self.write(|tx, _| insert_archive(tx, info, &digest.chunks, false))
    }

    /// True when both the file and its chunk list are stored (a crash between the two
    /// leaves a file that the next store of the same archive completes).
    pub fn has_archive(&self, blake3: &Blake3Hash) -> bool {
        self.blob_path(blake3).is_file() && matches!(self.archive_row(blake3), Ok(Some(_)))
    }

    pub fn archive_path(&self, blake3: &Blake3Hash) -> Option<PathBuf> {
        let path = self.blob_path(blake3);
        path.is_file().then_some(path)
    }

    /// Full re-hash of the stored file; `Corrupt` if it no longer matches `info`.
    pub fn verify_archive(&self, info: &ArchiveInfo) -> Result<(), StoreError> {
        let path = self
            .archive_path(&info.blake3)
            .ok_or(StoreError::MissingArchive {
                blake3: info.blake3,
            })?;
        let file = File::open(&path).map_err(io_err(&path))?;
        let got = ArchiveHasher::digest_reader(file)
            .map_err(io_err(&path))?
            .info;
        if got.blake3 != info.blake3 || got.size != info.size {
            return Err(StoreError::Corrupt {
                path,
                expected: format!("blake3 {} size {}", info.blake3, info.size),
                actual: format!("blake3 {} size {}", got.blake3, got.size),
            });
        }
        Ok(())
    }

    /// The chunk list stored with an archive, if it is stored.
    pub fn chunk_hashes(&self, blake3: &Blake3Hash) -> Result<Option<Vec<Blake3Hash>>, StoreError> {
        Ok(self.archive_row(blake3)?.map(|(_, _, chunks)| chunks))
    }

    fn archive_row(
        &self,
        blake3: &Blake3Hash,
    ) -> Result<Option<(u64, u32, Vec<Blake3Hash>)>, StoreError> {
        self.read(|conn| {
            let row: Option<(i64, u32, Vec<u8>)> = conn
                .prepare_cached("SELECT size, chunk_size, chunks FROM archives WHERE blake3 = ?1")?
                .query_row([blake3.as_bytes().as_slice()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            Ok(row.map(|(size, chunk_size, bytes)| {
                let chunks = bytes
                    .chunks_exact(32)
                    .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(Blake3Hash))
                    .collect();
                (size as u64, chunk_size, chunks)
            }))
        })
    }

    /// Where a stored archive's bytes are, its size and chunk size, from one query, for
    /// serving ranges of it without hashing again (the file was verified when stored;
    /// the receiver checks every chunk anyway). `None` when it is not stored.
    pub fn archive_for_serving(
        &self,
        blake3: &Blake3Hash,
    ) -> Result<Option<(PathBuf, u64, u32)>, StoreError> {
        let Some((size, chunk_size, _)) = self.archive_row(blake3)? else {
            return Ok(None);
        };
        Ok(self
            .archive_path(blake3)
            .map(|path| (path, size, chunk_size)))
    }

    /// Reads chunk `index` of a stored archive, checked against its stored chunk hash.
    pub fn read_chunk(&self, blake3: &Blake3Hash, index: u32) -> Result<Vec<u8>, StoreError> {
        let missing = || StoreError::MissingArchive { blake3: *blake3 };
        let (size, chunk_size, chunks) = self.archive_row(blake3)?.ok_or_else(missing)?;
        let path = self.archive_path(blake3).ok_or_else(missing)?;
        let expected = chunks
            .get(index as usize)
            .ok_or(StoreError::ChunkOutOfRange {
                blake3: *blake3,
                index,
                chunks: chunks.len() as u64,
            })?;
        let start = u64::from(index) * u64::from(chunk_size);
        let len = size.saturating_sub(start).min(u64::from(chunk_size));
        let mut file = File::open(&path).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(start)).map_err(io_err(&path))?;
        let mut buffer = Vec::with_capacity(len as usize);
        file.take(len)
            .read_to_end(&mut buffer)
            .map_err(io_err(&path))?;
        let got = Blake3Hash::of(&buffer);
        if buffer.len() as u64 != len || &got != expected {
            return Err(StoreError::Corrupt {
                path,
                expected: format!("chunk {index} blake3 {expected}"),
                actual: format!("blake3 {got} ({} bytes)", buffer.len()),
            });
        }
        Ok(buffer)
    }

    /// Marks an archive as just used (and, once published here, never evictable).
    pub fn touch_archive(
        &self,
        blake3: &Blake3Hash,
        published_here: bool,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "UPDATE archives SET
                     published_here = max(published_here, ?2),
                     last_used = (SELECT COALESCE(MAX(last_used), 0) + 1 FROM archives)
                 WHERE blake3 = ?1",
            )?
            .execute(params![blake3.as_bytes().as_slice(), published_here])?;
            Ok(())
        })
    }

    /// Every stored archive: those published here first, then the most recently used.
    /// The node provides these in the DHT at start.
    pub fn stored_archives(&self) -> Result<Vec<Blake3Hash>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Vec<u8>> = conn
                .prepare_cached(
                    "SELECT blake3 FROM archives ORDER BY published_here DESC, last_used DESC",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok().map(Blake3Hash))
                .collect())
        })
    }

    /// The version records of archives published on this node, re-verified (the node
    /// puts them in the DHT again at start, since DHT records expire).
    pub fn published_here_records(&self) -> Result<Vec<crate::package::Record>, StoreError> {
        let ids: Vec<crate::package::RecordId> = self.read(|conn| {
            let rows: Vec<Vec<u8>> = conn
                .prepare_cached(
                    "SELECT r.id FROM records r
                     JOIN versions v ON v.rid = r.rid
                     JOIN archives a ON a.blake3 = v.archive
                     WHERE a.published_here = 1
                     ORDER BY r.rid",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok().map(Blake3Hash))
                .collect())
        })?;
        self.records(&ids)
    }

    /// Removes the least recently used fetched archives beyond `max` of them (archives
    /// published here are kept and not counted). Returns the removed hashes.
    pub fn evict_archives(&self, max: usize) -> Result<Vec<Blake3Hash>, StoreError> {
        let removed = self.write(|tx, _| {
            let victims: Vec<Vec<u8>> = tx
                .prepare_cached(
                    "SELECT blake3 FROM archives WHERE published_here = 0
                     ORDER BY last_used DESC LIMIT -1 OFFSET ?1",
                )?
                .query_map([max.min(i64::MAX as usize) as i64], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let mut delete = tx.prepare_cached("DELETE FROM archives WHERE blake3 = ?1")?;
            let mut out = Vec::with_capacity(victims.len());
            for bytes in victims {
                delete.execute([&bytes])?;
                if let Ok(hash) = <[u8; 32]>::try_from(bytes) {
                    out.push(Blake3Hash(hash));
                }
            }
            Ok(out)
        })?;
        // Files go after the rows are committed: a crash in between leaves an orphan
        // file (harmless, overwritten by the same content later), never a row without
        // its file.
        for hash in &removed {
            let path = self.blob_path(hash);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path, source }),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::digest::ArchiveHasher as Hasher;
    use crate::package::digest::{CHUNK_SIZE, SMALL_CHUNK_SIZE};

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn put(store: &Store, data: &[u8]) -> ArchiveInfo {
        let mut writer = store.blob_writer().unwrap();
        writer.write_all(data).unwrap();
        writer.commit().unwrap().info
    }

    #[test]
    fn archives_of_records_with_the_older_chunk_size_are_stored_and_served() {
        // A record signed before chunk sizes varied: 1 MiB chunks for a small archive.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = bytes(CHUNK_SIZE as usize + 99, 3);
        let legacy = Hasher::digest_reader_with(&data[..], CHUNK_SIZE)
            .unwrap()
            .info;
        assert_eq!(legacy.chunk_size, CHUNK_SIZE);
        let mut writer = store.blob_writer().unwrap();
        writer.write_all(&data).unwrap();
        writer.commit_verified(&legacy).unwrap();
        assert_eq!(
            store.chunk_hashes(&legacy.blake3).unwrap().unwrap().len(),
            2
        );
        assert_eq!(
            store.read_chunk(&legacy.blake3, 1).unwrap(),
            &data[CHUNK_SIZE as usize..]
        );
        // The same through a finished file.
        let other = tempfile::tempdir().unwrap();
        let store = Store::open(other.path()).unwrap();
        let temp = other.path().join("blobs/tmp/legacy");
        fs::write(&temp, &data).unwrap();
        store.put_archive_file(&temp, &legacy).unwrap();
        store.verify_archive(&legacy).unwrap();
    }

    #[test]
    fn blob_writer_stores_verifies_and_serves_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = bytes(SMALL_CHUNK_SIZE as usize * 2 + 17, 1);
        let info = put(&store, &data);
        assert_eq!(info.blake3, Blake3Hash::of(&data));
        assert!(store.has_archive(&info.blake3));
        store.verify_archive(&info).unwrap();
        let chunks = store.chunk_hashes(&info.blake3).unwrap().unwrap();
        assert_eq!(chunks.len(), 3);
        let last = store.read_chunk(&info.blake3, 2).unwrap();
        assert_eq!(last, &data[2 * SMALL_CHUNK_SIZE as usize..]);
        assert_eq!(
            store.read_chunk(&info.blake3, 0).unwrap(),
            &data[..SMALL_CHUNK_SIZE as usize]
        );
        assert!(matches!(
            store.read_chunk(&info.blake3, 3),
            Err(StoreError::ChunkOutOfRange { chunks: 3, .. })
        ));
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
        // corruption is detected by both the full check and the chunk check
        let path = store.archive_path(&info.blake3).unwrap();
        let mut damaged = data.clone();
        damaged[5] ^= 0xff;
        fs::write(&path, &damaged).unwrap();
        assert!(matches!(
            store.verify_archive(&info),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.read_chunk(&info.blake3, 0),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(
            store.read_chunk(&info.blake3, 1).unwrap().len(),
            SMALL_CHUNK_SIZE as usize
        );
        // dropped writer leaves no temp file behind
        let mut abandoned = store.blob_writer().unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn put_archive_file_checks_before_moving() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = bytes(1000, 2);
        let info = ArchiveHasher::digest_reader(&data[..]).unwrap().info;
        let temp = dir.path().join("download.part");
        fs::write(&temp, b"not the archive").unwrap();
        let err = store.put_archive_file(&temp, &info).unwrap_err();
        assert!(matches!(err, StoreError::ArchiveMismatch { .. }), "{err}");
        assert!(temp.exists(), "a refused file is left in place");
        assert!(!store.has_archive(&info.blake3));
        fs::write(&temp, &data).unwrap();
        store.put_archive_file(&temp, &info).unwrap();
        assert!(!temp.exists());
        assert_eq!(
            fs::read(store.archive_path(&info.blake3).unwrap()).unwrap(),
            data
        );
        assert_eq!(store.read_chunk(&info.blake3, 0).unwrap(), data);
        let stats = store.stats().unwrap();
        assert_eq!((stats.archives, stats.archive_bytes), (1, 1000));
        // persists across reopen
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        store.verify_archive(&info).unwrap();
        assert_eq!(store.chunk_hashes(&info.blake3).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn eviction_is_lru_and_spares_published_archives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let published = put(&store, b"mine");
        let mut fetched = Vec::new();
        for seed in 0..4u8 {
            let data = bytes(100, seed + 10);
            let info = ArchiveHasher::digest_reader(&data[..]).unwrap().info;
            let temp = dir.path().join(format!("f{seed}"));
            fs::write(&temp, &data).unwrap();
            store.put_archive_file(&temp, &info).unwrap();
            fetched.push(info.blake3);
        }
        store.touch_archive(&fetched[0], false).unwrap(); // now most recent
        assert_eq!(
            store.stored_archives().unwrap(),
            vec![
                published.blake3,
                fetched[0],
                fetched[3],
                fetched[2],
                fetched[1]
            ],
            "published first, then the most recently used"
        );
        let removed = store.evict_archives(2).unwrap();
        assert_eq!(removed, vec![fetched[2], fetched[1]]);
        assert!(!store.has_archive(&fetched[1]) && !store.has_archive(&fetched[2]));
        assert!(store.has_archive(&fetched[0]) && store.has_archive(&fetched[3]));
        assert!(store.has_archive(&published.blake3));
        assert!(store.evict_archives(0).unwrap().len() == 2);
        assert!(store.has_archive(&published.blake3));
    }

    #[test]
    fn records_of_archives_published_here_are_listed_for_the_dht() {
        use crate::package::{PublisherKey, Record, RecordBody};
        use crate::store::test_util::{version, version_body};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        let mine = put(&store, b"mine");
        let mut body = version_body(&key, "mine", "1.0.0", 1);
        body.archive = mine.clone();
        let record = Record::sign(RecordBody::Version(body), &key).unwrap();
        store.ingest(&record).unwrap();
        // A record whose archive is not stored here is not this node's to re-put.
        store.ingest(&version(&key, "theirs", "1.0.0", 2)).unwrap();
        let listed = store.published_here_records().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id(), record.id());
    }
}
