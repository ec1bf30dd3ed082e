//! The on-disk state of an unfinished download, so an interrupted one resumes: a pre-sized
//! `<blake3>.part` written chunk by chunk at its offset, a `<blake3>.chunks` copy of the
//! verified chunk list and a `<blake3>.have` sidecar naming the chunks written. Nothing
//! on disk is trusted on resume: the list is checked against the record's chunks root and
//! every chunk named in `.have` is re-hashed before it counts.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::package::digest::ArchiveDigest;
use crate::package::digest::{chunks_root, ArchiveHasher};
use crate::package::{ArchiveInfo, Blake3Hash};

/// Bytes written between two fsyncs of the part file and rewrites of `.have`: 16 MiB,
/// whatever the chunk size, so an interruption loses at most that much and small chunks
/// cost no more fsyncs than large ones (counted in chunks, 128 KiB chunks synced every
/// 2 MiB: 64 fsyncs per 128 MiB instead of 8, most of the raw-speed gap between the two
/// chunk sizes in BENCHMARKS.md "Stop 31").
pub const SYNC_BYTES: u64 = 16 << 20;
/// Largest chunk accepted (the wire limit of one response is 4 MiB).
pub const MAX_CHUNK_SIZE: u32 = 4 << 20;
const HAVE_MAGIC: &str = "ggen-p2p partial v1";
/// How long `open` waits for another `PartialFile` of the same archive to close.
const BUSY_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PartialError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path}: assembled archive does not match its record ({reason}); the partial file \
         was removed, retry the download"
    )]
    Mismatch { path: PathBuf, reason: String },
    #[error("{path}: chunk {index} is still missing; the download is not finished")]
    Incomplete { path: PathBuf, index: u32 },
    #[error(
        "{path}: another download of this archive in this process did not finish within \
         {BUSY_WAIT:?}; hint: wait for it, then retry"
    )]
    Busy { path: PathBuf },
}

/// Part files open in this process. Two `PartialFile`s of one archive would clobber each
/// other's sidecars, so `open` waits for the other to close (e.g. an interrupted attempt
/// whose last write is still finishing on a blocking thread).
static OPEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static CLOSED: Condvar = Condvar::new();

#[derive(Debug)]
struct OpenGuard(PathBuf);

impl OpenGuard {
    fn acquire(path: &Path) -> Result<Self, PartialError> {
        let open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let (mut open, _) = CLOSED
            .wait_timeout_while(open, BUSY_WAIT, |open| open.contains(path))
            .unwrap_or_else(|e| e.into_inner());
        if !open.insert(path.to_path_buf()) {
            return Err(PartialError::Busy {
                path: path.to_path_buf(),
            });
        }
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        OPEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
        CLOSED.notify_all();
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PartialError + '_ {
    move |source| PartialError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How an archive of `size` bytes splits into chunks of `chunk_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    pub chunk_size: u32,
    pub count: u32,
}

impl Layout {
    /// The layout a record describes; an empty archive still has one (empty) chunk.
    pub fn of(info: &ArchiveInfo) -> Result<Self, String> {
        if info.chunk_size == 0 || info.chunk_size > MAX_CHUNK_SIZE {
            return Err(format!(
                "chunk size {} is outside 1..={MAX_CHUNK_SIZE}",
                info.chunk_size
            ));
        }
        let count = info.size.div_ceil(u64::from(info.chunk_size)).max(1);
        let count = u32::try_from(count)
            .map_err(|_| format!("size {} needs more than 2^32 chunks", info.size))?;
        Ok(Self {
            size: info.size,
            chunk_size: info.chunk_size,
            count,
        })
    }

    pub fn offset(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.chunk_size)
    }

    /// Length of chunk `index` (every chunk is full but the last).
    pub fn len(&self, index: u32) -> u64 {
        let start = self.offset(index).min(self.size);
        (self.size - start).min(u64::from(self.chunk_size))
    }

    /// Checks received bytes for chunk `index` against `chunks` (already verified).
    pub fn check_chunk(
        &self,
        chunks: &[Blake3Hash],
        index: u32,
        bytes: &[u8],
    ) -> Result<(), String> {
        let Some(expected) = chunks.get(index as usize) else {
            return Err(format!("chunk {index} does not exist"));
        };
        if bytes.len() as u64 != self.len(index) {
            return Err(format!(
                "chunk {index} is {} bytes, expected {}",
                bytes.len(),
                self.len(index)
            ));
        }
        let got = Blake3Hash::of(bytes);
        if got != *expected {
            return Err(format!(
                "chunk {index} hashes to {got}, expected {expected}"
            ));
        }
        Ok(())
    }
}

/// Checks a chunk list received from a provider against the record.
pub fn check_chunk_list(info: &ArchiveInfo, chunks: &[Blake3Hash]) -> Result<(), String> {
    let root = chunks_root(chunks);
    if root != info.chunks_root {
        return Err(format!(
            "chunk list of {} entries has root {root}, the record says {}",
            chunks.len(),
            info.chunks_root
        ));
    }
    let layout = Layout::of(info)?;
    if chunks.len() != layout.count as usize {
        // The root matches, so the record itself is inconsistent.
        return Err(format!(
            "the record's chunk list has {} entries but its size needs {}",
            chunks.len(),
            layout.count
        ));
    }
    Ok(())
}

/// Paths of one archive's partial-download files inside `dir`.
fn paths(dir: &Path, archive: &Blake3Hash) -> [PathBuf; 3] {
    ["part", "chunks", "have"].map(|ext| dir.join(format!("{archive}.{ext}")))
}

/// The chunk list saved by an earlier attempt, if it is still there and matches `info`.
pub fn saved_chunk_list(dir: &Path, info: &ArchiveInfo) -> Option<Vec<Blake3Hash>> {
    let chunks = partial_chunk_list(dir, &info.blake3)?;
    check_chunk_list(info, &chunks).ok()?;
    Some(chunks)
}

/// The chunk list a download of `archive` (running or interrupted) saved, unchecked: what
/// a node still downloading answers a chunk-list request with (the asker checks it
/// against the signed record's root, as it checks every provider's list).
pub fn partial_chunk_list(dir: &Path, archive: &Blake3Hash) -> Option<Vec<Blake3Hash>> {
    let [_, chunks_path, _] = paths(dir, archive);
    let bytes = fs::read(chunks_path).ok()?;
    if bytes.len() % 32 != 0 {
        return None;
    }
    let chunks: Vec<Blake3Hash> = bytes
        .chunks_exact(32)
        .map(|c| {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(c);
            Blake3Hash(hash)
        })
        .collect();
    Some(chunks)
}

/// An open partial download. Dropping it saves `.have` (best effort, no fsync): whatever
/// it claims is re-verified on the next open anyway.
#[derive(Debug)]
pub struct PartialFile {
    part_path: PathBuf,
    have_path: PathBuf,
    chunks_path: PathBuf,
    file: File,
    info: ArchiveInfo,
    layout: Layout,
    have: Vec<bool>,
    have_count: u32,
    /// Bytes written since the last `sync`.
    unsynced: u64,
    /// The verified chunk list.
    chunks: Vec<Blake3Hash>,
    /// The whole-archive hashes over the verified prefix `0..hashed_to`, fed as chunks
    /// are written, so `finish_with_digest` need not read the file again.
    prefix: PrefixHasher,
    /// Declared last: released only after `Drop` saved `.have`.
    _guard: OpenGuard,
}

impl PartialFile {
    /// Opens or creates the partial download of `info` in `dir` with its verified chunk
    /// list, keeping the chunks of an earlier attempt that still hash right.
    pub fn open(
        dir: &Path,
        info: &ArchiveInfo,
        chunks: &[Blake3Hash],
    ) -> Result<Self, PartialError> {
        let [part_path, chunks_path, have_path] = paths(dir, &info.blake3);
        let layout = Layout::of(info).map_err(|reason| PartialError::Mismatch {
            path: part_path.clone(),
            reason,
        })?;
        if let Err(reason) = check_chunk_list(info, chunks) {
            return Err(PartialError::Mismatch {
                path: chunks_path,
                reason,
            });
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let guard = OpenGuard::acquire(&part_path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(io_err(&part_path))?;
        file.set_len(info.size).map_err(io_err(&part_path))?;
        if saved_chunk_list(dir, info).is_none() {
            let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.0).collect();
            write_atomically(&chunks_path, &bytes, true)?;
        }
        let mut partial = Self {
            part_path,
            have_path,
            chunks_path,
            file,
            info: info.clone(),
            layout,
            have: vec![false; layout.count as usize],
            have_count: 0,
            unsynced: 0,
            chunks: chunks.to_vec(),
            prefix: PrefixHasher::default(),
            _guard: guard,
        };
        partial.reverify(chunks)?;
        Ok(partial)
    }

    /// Marks the chunks `.have` names whose bytes on disk still match the list.
    fn reverify(&mut self, chunks: &[Blake3Hash]) -> Result<(), PartialError> {
        let Some(claimed) = self.read_have() else {
            return Ok(());
        };
        let mut buffer = Vec::new();
        for index in claimed {
            let len = self.layout.len(index) as usize;
            buffer.resize(len, 0);
            read_at(&self.file, &mut buffer, self.layout.offset(index))
                .map_err(io_err(&self.part_path))?;
            if self.layout.check_chunk(chunks, index, &buffer).is_ok() && !self.have[index as usize]
            {
                self.have[index as usize] = true;
                self.have_count += 1;
            }
        }
        Ok(())
    }

    /// Chunk indices `.have` lists, if it exists and describes this archive.
    fn read_have(&self) -> Option<Vec<u32>> {
        let text = fs::read_to_string(&self.have_path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HAVE_MAGIC || lines.next()? != self.have_header() {
            tracing::warn!(path = %self.have_path.display(), "ignoring a foreign sidecar");
            return None;
        }
        let bitmap = hex::decode(lines.next()?).ok()?;
        Some(
            (0..self.layout.count)
                .filter(|&i| {
                    bitmap
                        .get(i as usize / 8)
                        .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
                })
                .collect(),
        )
    }

    fn have_header(&self) -> String {
        format!(
            "{} {} {} {}",
            self.info.blake3, self.layout.size, self.layout.chunk_size, self.layout.count
        )
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn path(&self) -> &Path {
        &self.part_path
    }

    /// Indices of the chunks on disk and verified.
    pub fn verified(&self) -> Vec<u32> {
        (0..self.layout.count)
            .filter(|&i| self.have[i as usize])
            .collect()
    }

    pub fn verified_bytes(&self) -> u64 {
        self.verified()
            .into_iter()
            .map(|i| self.layout.len(i))
            .sum()
    }

    pub fn is_complete(&self) -> bool {
        self.have_count == self.layout.count
    }

    /// Writes chunk `index` (already checked by the caller with `Layout::check_chunk`)
    /// at its offset; every [`SYNC_BYTES`] fsyncs and saves `.have`.
    pub fn write_chunk(&mut self, index: u32, bytes: &[u8]) -> Result<(), PartialError> {
        if index >= self.layout.count || bytes.len() as u64 != self.layout.len(index) {
            return Err(PartialError::Mismatch {
                path: self.part_path.clone(),
                reason: format!("chunk {index} of {} bytes does not fit", bytes.len()),
            });
        }
        write_at(&self.file, bytes, self.layout.offset(index)).map_err(io_err(&self.part_path))?;
        if !self.have[index as usize] {
            self.have[index as usize] = true;
            self.have_count += 1;
        }
        self.hash_prefix(index, bytes)?;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= SYNC_BYTES {
            self.sync()?;
        }
        Ok(())
    }

    /// Extends the hashed prefix over every verified chunk that follows it: `bytes` for
    /// chunk `index`, chunks that arrived earlier out of order read back from the file.
    fn hash_prefix(&mut self, index: u32, bytes: &[u8]) -> Result<(), PartialError> {
        let mut buffer = Vec::new();
        while self.prefix.next < self.layout.count && self.have[self.prefix.next as usize] {
            let next = self.prefix.next;
            if next == index {
                self.prefix.update(bytes);
            } else {
                buffer.resize(self.layout.len(next) as usize, 0);
                read_at(&self.file, &mut buffer, self.layout.offset(next))
                    .map_err(io_err(&self.part_path))?;
                self.prefix.update(&buffer);
            }
            self.prefix.next += 1;
        }
        Ok(())
    }

    /// Fsyncs the part file, then saves `.have` (so it never names unsynced data).
    pub fn sync(&mut self) -> Result<(), PartialError> {
        self.file.sync_data().map_err(io_err(&self.part_path))?;
        self.save_have(true)?;
        self.unsynced = 0;
        Ok(())
    }

    fn save_have(&self, durable: bool) -> Result<(), PartialError> {
        let mut bitmap = vec![0u8; (self.layout.count as usize).div_ceil(8)];
        for i in self.verified() {
            bitmap[i as usize / 8] |= 1 << (i % 8);
        }
        let text = format!(
            "{HAVE_MAGIC}\n{}\n{}\n",
            self.have_header(),
            hex::encode(bitmap)
        );
        write_atomically(&self.have_path, text.as_bytes(), durable)
    }

    /// Checks the whole file against the record (BLAKE3, SHA-256, size) and returns its
    /// path, removing the sidecars. On a mismatch everything is removed so the next
    /// attempt starts clean.
    pub fn finish(self) -> Result<PathBuf, PartialError> {
        self.finish_with_digest().map(|(path, _)| path)
    }

    /// [`PartialFile::finish`], also returning the digest it computed (with the chunk
    /// list), so the store can take the file without hashing it again.
    pub fn finish_with_digest(mut self) -> Result<(PathBuf, ArchiveDigest), PartialError> {
        if let Some(index) = self.have.iter().position(|h| !h) {
            return Err(PartialError::Incomplete {
                path: self.part_path.clone(),
                index: index as u32,
            });
        }
        self.file.sync_all().map_err(io_err(&self.part_path))?;
        self.unsynced = 0;
        let digest = if self.prefix.next == self.layout.count {
            // Every chunk was hashed as it was written (the usual case).
            let prefix = std::mem::take(&mut self.prefix);
            prefix.finish(&self.layout, std::mem::take(&mut self.chunks))
        } else {
            let reader = File::open(&self.part_path).map_err(io_err(&self.part_path))?;
            ArchiveHasher::digest_reader_with(reader, self.layout.chunk_size)
                .map_err(io_err(&self.part_path))?
        };
        let got = &digest.info;
        let reason = if got.size != self.info.size {
            Some(format!("size {} instead of {}", got.size, self.info.size))
        } else if got.blake3 != self.info.blake3 {
            Some(format!(
                "blake3 {} instead of {}",
                got.blake3, self.info.blake3
            ))
        } else if got.sha256 != self.info.sha256 {
            Some(format!(
                "sha256 {} instead of {}",
                got.sha256, self.info.sha256
            ))
        } else {
            None
        };
        let _ = fs::remove_file(&self.have_path);
        let _ = fs::remove_file(&self.chunks_path);
        if let Some(reason) = reason {
            let _ = fs::remove_file(&self.part_path);
            return Err(PartialError::Mismatch {
                path: self.part_path.clone(),
                reason,
            });
        }
        Ok((self.part_path.clone(), digest))
    }

    /// Removes every file of this partial download.
    pub fn discard(mut self) {
        self.unsynced = 0;
        for path in [&self.part_path, &self.have_path, &self.chunks_path] {
            let _ = fs::remove_file(path);
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.unsynced > 0 {
            if let Err(e) = self.save_have(false) {
                tracing::warn!("saving download progress: {e}");
            }
        }
    }
}

/// BLAKE3 and SHA-256 of a download's verified prefix, fed in chunk order.
#[derive(Default, Debug)]
struct PrefixHasher {
    whole: blake3::Hasher,
    sha256: sha2::Sha256,
    size: u64,
    /// The first chunk not hashed yet.
    next: u32,
}

impl PrefixHasher {
    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.whole.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The digest of the whole archive, whose chunk hashes are `chunks` (each chunk was
    /// checked against them before it was written).
    fn finish(self, layout: &Layout, chunks: Vec<Blake3Hash>) -> ArchiveDigest {
        use sha2::Digest;
        ArchiveDigest {
            info: ArchiveInfo {
                blake3: self.whole.finalize().into(),
                sha256: crate::package::Sha256Hash(self.sha256.finalize().into()),
                size: self.size,
                chunk_size: layout.chunk_size,
                chunks_root: chunks_root(&chunks),
            },
            chunks,
        }
    }
}

/// Replaces `path` with `bytes` via a temp file and rename, fsyncing first if `durable`.
fn write_atomically(path: &Path, bytes: &[u8], durable: bool) -> Result<(), PartialError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = File::create(&temp).map_err(io_err(&temp))?;
    file.write_all(bytes).map_err(io_err(&temp))?;
    if durable {
        file.sync_data().map_err(io_err(&temp))?;
    }
    fs::rename(&temp, path).map_err(io_err(path))
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(unix)]
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        let n = file.seek_write(bytes, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn read_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buffer.is_empty() {
        let n = file.seek_read(buffer, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer = &mut buffer[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::package::digest::ArchiveDigest;

    /// A small-chunked archive (chunk size 1 KiB keeps test files small).
    pub(crate) fn sample(size: usize, chunk_size: u32) -> (Vec<u8>, ArchiveDigest) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let full = ArchiveHasher::digest_reader(&data[..]).unwrap();
        let chunks: Vec<Blake3Hash> = if data.is_empty() {
            vec![Blake3Hash::of(b"")]
        } else {
            data.chunks(chunk_size as usize)
                .map(Blake3Hash::of)
                .collect()
        };
        let info = ArchiveInfo {
            chunk_size,
            chunks_root: chunks_root(&chunks),
            ..full.info
        };
        (data, ArchiveDigest { info, chunks })
    }

    fn chunk(data: &[u8], layout: Layout, index: u32) -> &[u8] {
        let start = layout.offset(index) as usize;
        &data[start..start + layout.len(index) as usize]
    }

    #[test]
    fn layout_and_chunk_checks() {
        let (data, d) = sample(2500, 1024);
        let layout = Layout::of(&d.info).unwrap();
        assert_eq!((layout.count, layout.len(0), layout.len(2)), (3, 1024, 452));
        assert!(layout.check_chunk(&d.chunks, 2, &data[2048..]).is_ok());
        let short = layout
            .check_chunk(&d.chunks, 1, &data[1024..2000])
            .unwrap_err();
        assert!(short.contains("976 bytes, expected 1024"), "{short}");
        let mut bad = data[..1024].to_vec();
        bad[5] ^= 1;
        assert!(layout
            .check_chunk(&d.chunks, 0, &bad)
            .unwrap_err()
            .contains("hashes to"));
        assert!(layout.check_chunk(&d.chunks, 3, b"").is_err());
        assert!(check_chunk_list(&d.info, &d.chunks).is_ok());
        assert!(check_chunk_list(&d.info, &d.chunks[..2])
            .unwrap_err()
            .contains("root"));
        let empty = sample(0, 1024).1;
        assert_eq!(Layout::of(&empty.info).unwrap().count, 1);
        let zero = ArchiveInfo {
            chunk_size: 0,
            ..d.info.clone()
        };
        assert!(Layout::of(&zero).is_err());
    }

    #[test]
    fn writes_resumes_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let (data, d) = sample(5000, 1024);
        let mut partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        let layout = partial.layout();
        assert!(partial.verified().is_empty());
        assert_eq!(std::fs::metadata(partial.path()).unwrap().len(), 5000);
        for index in [4, 1, 3] {
            partial
                .write_chunk(index, chunk(&data, layout, index))
                .unwrap();
        }
        drop(partial); // saves .have without fsync

        assert_eq!(saved_chunk_list(dir.path(), &d.info).unwrap(), d.chunks);
        assert_eq!(
            partial_chunk_list(dir.path(), &d.info.blake3).unwrap(),
            d.chunks
        );
        let mut partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        assert_eq!(partial.verified(), vec![1, 3, 4]);
        assert_eq!(partial.verified_bytes(), 1024 * 2 + 904);
        assert!(matches!(
            PartialFile::open(dir.path(), &d.info, &d.chunks[..1]),
            Err(PartialError::Mismatch { .. })
        ));
        for index in [0, 2] {
            partial
                .write_chunk(index, chunk(&data, layout, index))
                .unwrap();
        }
        assert!(partial.is_complete());
        let path = partial.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "sidecars removed");
    }

    /// Progress is made durable every `SYNC_BYTES`, not every so many chunks: 128 KiB
    /// chunks are synced as seldom as 1 MiB ones.
    #[test]
    fn progress_is_saved_every_sync_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let chunk_size = 128 << 10;
        let (data, d) = sample(SYNC_BYTES as usize + (1 << 20), chunk_size);
        let mut partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        let layout = partial.layout();
        let per_sync = (SYNC_BYTES / u64::from(chunk_size)) as u32;
        let have = dir.path().join(format!("{}.have", d.info.blake3));
        for index in 0..per_sync - 1 {
            partial
                .write_chunk(index, chunk(&data, layout, index))
                .unwrap();
        }
        assert!(!have.exists(), "synced before {SYNC_BYTES} bytes");
        let last = per_sync - 1;
        partial
            .write_chunk(last, chunk(&data, layout, last))
            .unwrap();
        assert!(have.exists(), "not synced after {SYNC_BYTES} bytes");
        assert_eq!(partial.read_have().unwrap().len(), per_sync as usize);
    }

    #[test]
    fn resume_rejects_chunks_that_no_longer_hash_right() {
        let dir = tempfile::tempdir().unwrap();
        let (data, d) = sample(4096, 1024);
        let mut partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        let layout = partial.layout();
        for index in 0..3 {
            partial
                .write_chunk(index, chunk(&data, layout, index))
                .unwrap();
        }
        partial.sync().unwrap();
        drop(partial);
        // Damage chunk 1 on disk behind the sidecar's back.
        let path = dir.path().join(format!("{}.part", d.info.blake3));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        write_at(&file, b"garbage", 1030).unwrap();
        let partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        assert_eq!(partial.verified(), vec![0, 2]);

        // A sidecar for something else is ignored, not trusted.
        drop(partial);
        let have = dir.path().join(format!("{}.have", d.info.blake3));
        std::fs::write(&have, format!("{HAVE_MAGIC}\nnonsense\nff\n")).unwrap();
        let partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        assert!(partial.verified().is_empty());
    }

    #[test]
    fn finish_refuses_incomplete_and_wrong_files() {
        let dir = tempfile::tempdir().unwrap();
        let (data, d) = sample(2048, 1024);
        let mut partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        partial.write_chunk(0, &data[..1024]).unwrap();
        assert!(matches!(
            partial.write_chunk(1, &data[..10]),
            Err(PartialError::Mismatch { .. })
        ));
        let err = partial.finish().unwrap_err();
        assert!(
            matches!(err, PartialError::Incomplete { index: 1, .. }),
            "{err}"
        );

        // A record whose whole-file hash disagrees with its (matching) chunk list.
        let lying = ArchiveInfo {
            blake3: Blake3Hash::of(b"other"),
            ..d.info.clone()
        };
        let mut partial = PartialFile::open(dir.path(), &lying, &d.chunks).unwrap();
        partial.write_chunk(0, &data[..1024]).unwrap();
        partial.write_chunk(1, &data[1024..]).unwrap();
        let err = partial.finish().unwrap_err();
        assert!(
            err.to_string().contains("does not match its record"),
            "{err}"
        );
        assert!(!dir.path().join(format!("{}.part", lying.blake3)).exists());
    }

    #[test]
    fn empty_archive_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (_, d) = sample(0, 1024);
        let mut partial = PartialFile::open(dir.path(), &d.info, &d.chunks).unwrap();
        partial.write_chunk(0, b"").unwrap();
        let path = partial.finish().unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
    }
}
