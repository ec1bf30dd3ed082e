//! One pass over an archive's bytes yields everything a record needs to describe it:
//! the BLAKE3 and SHA-256 of the whole, its size, and the BLAKE3 of each fixed-size
//! chunk (so a downloader can check every chunk the moment it arrives).
//!
//! The chunk size is a function of the archive's size ([`chunk_size_for`]): 128 KiB up
//! to 1 GiB, 1 MiB above. A chunk is also what a swarm passes on (only verified chunks
//! are served), so small chunks let a new pack spread through many nodes in hops of an
//! eighth of the time (with 1 MiB chunks a 64 MiB release to sixteen nodes took 1.7–2.0
//! × the bound: docs/decisions.md "Stop 31" and "Stop 32"); only archives over 1 GiB
//! keep 1 MiB chunks, so their chunk lists stay small. See docs/decisions.md "Chunk size
//! follows the archive's size" and "Stop 20: 128 KiB chunks".

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::hash::{Blake3Hash, Sha256Hash};
use super::record::ArchiveInfo;

/// Chunk size of archives over [`SMALL_ARCHIVE_MAX`], and of every archive published
/// before sizes varied (records with it stay valid at any size).
pub const CHUNK_SIZE: u32 = 1 << 20;
/// Chunk size of archives up to [`SMALL_ARCHIVE_MAX`]: a swarm passes on only whole
/// verified chunks, so a chunk is the unit of every hop (docs/decisions.md "Chunk size
/// follows the archive's size").
pub const SMALL_CHUNK_SIZE: u32 = 1 << 17;
/// The chunk size of small archives in records signed before 128 KiB (still valid up to
/// [`LEGACY_SMALL_ARCHIVE_MAX`]).
pub const LEGACY_SMALL_CHUNK_SIZE: u32 = 1 << 18;
/// The largest archive published with [`SMALL_CHUNK_SIZE`] chunks (8192 of them).
pub const SMALL_ARCHIVE_MAX: u64 = 1 << 30;
/// The largest archive that had small chunks before stop 32 (512 of 128 KiB, or 256 of
/// [`LEGACY_SMALL_CHUNK_SIZE`]); larger archives had 1 MiB chunks, which stay valid.
pub const LEGACY_SMALL_ARCHIVE_MAX: u64 = 64 << 20;

/// The chunk size an archive of `size` bytes is published with. A function of the size
/// alone, so the same archive always has the same chunk list on every node.
pub fn chunk_size_for(size: u64) -> u32 {
    if size <= SMALL_ARCHIVE_MAX {
        SMALL_CHUNK_SIZE
    } else {
        CHUNK_SIZE
    }
}

/// Whether a record may describe an archive of `size` bytes with `chunk_size` chunks:
/// the size's own chunk size, 1 MiB (records signed before sizes varied, and archives
/// over 64 MiB before stop 32), or up to 64 MiB 256 KiB (records signed before small
/// chunks were 128 KiB).
pub fn chunk_size_allowed(size: u64, chunk_size: u32) -> bool {
    chunk_size == chunk_size_for(size)
        || chunk_size == CHUNK_SIZE
        || (size <= LEGACY_SMALL_ARCHIVE_MAX && chunk_size == LEGACY_SMALL_CHUNK_SIZE)
}

/// BLAKE3 of the concatenated chunk hashes: the value a record commits to.
pub fn chunks_root(chunks: &[Blake3Hash]) -> Blake3Hash {
    let mut hasher = blake3::Hasher::new();
    for chunk in chunks {
        hasher.update(chunk.as_bytes());
    }
    hasher.finalize().into()
}

/// An archive's digests and its chunk list, as computed by [`ArchiveHasher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveDigest {
    pub info: ArchiveInfo,
    pub chunks: Vec<Blake3Hash>,
}

/// The chunk hashes at one chunk size, as the bytes pass.
struct ChunkList {
    size: u32,
    hasher: blake3::Hasher,
    filled: u32,
    chunks: Vec<Blake3Hash>,
}

impl ChunkList {
    fn new(size: u32) -> Self {
        Self {
            size,
            hasher: blake3::Hasher::new(),
            filled: 0,
            chunks: Vec::new(),
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = ((self.size - self.filled) as usize).min(bytes.len());
            self.hasher.update(&bytes[..take]);
            self.filled += take as u32;
            bytes = &bytes[take..];
            if self.filled == self.size {
                self.chunks.push(self.hasher.finalize().into());
                self.hasher.reset();
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<Blake3Hash> {
        if self.filled > 0 || self.chunks.is_empty() {
            self.chunks.push(self.hasher.finalize().into());
        }
        self.chunks
    }
}

/// A `Write` sink that digests what passes through it, so packing and hashing share one
/// pass over the bytes. Wrap the real destination with [`ArchiveHasher::tee`].
pub struct ArchiveHasher<W> {
    inner: W,
    whole: blake3::Hasher,
    sha256: Sha256,
    /// The chunk lists still possible: one for a fixed chunk size; for a new archive
    /// (size unknown until the end) both sizes until it outgrows the small one.
    lists: Vec<ChunkList>,
    fixed: bool,
    size: u64,
}

impl ArchiveHasher<io::Sink> {
    pub fn new() -> Self {
        Self::tee(io::sink())
    }

    /// Digests all of `reader` (e.g. an archive file already on disk) with the chunk
    /// size its size calls for.
    pub fn digest_reader(reader: impl Read) -> io::Result<ArchiveDigest> {
        Self::new().read_all(reader)
    }

    /// Digests all of `reader` with `chunk_size` chunks (to check a file against a
    /// record, whose chunk size may be the older 1 MiB).
    pub fn digest_reader_with(reader: impl Read, chunk_size: u32) -> io::Result<ArchiveDigest> {
        Self::with_chunk_size(io::sink(), chunk_size).read_all(reader)
    }

    fn read_all(mut self, mut reader: impl Read) -> io::Result<ArchiveDigest> {
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.update(&buffer[..read]);
        }
        Ok(self.finish().1)
    }
}

impl Default for ArchiveHasher<io::Sink> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Write> ArchiveHasher<W> {
    /// Digests what is written to `inner`; the chunk size follows the final size.
    pub fn tee(inner: W) -> Self {
        Self {
            inner,
            whole: blake3::Hasher::new(),
            sha256: Sha256::new(),
            lists: vec![
                ChunkList::new(SMALL_CHUNK_SIZE),
                ChunkList::new(LEGACY_SMALL_CHUNK_SIZE),
                ChunkList::new(CHUNK_SIZE),
            ],
            fixed: false,
            size: 0,
        }
    }

    /// Digests what is written to `inner` with `chunk_size` chunks whatever the size.
    pub fn with_chunk_size(inner: W, chunk_size: u32) -> Self {
        Self {
            lists: vec![ChunkList::new(chunk_size.max(1))],
            fixed: true,
            ..Self::tee(inner)
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.whole.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
        if !self.fixed && self.size > LEGACY_SMALL_ARCHIVE_MAX {
            // Too large for the sizes that no record may have now: stop hashing for them.
            let small = self.size <= SMALL_ARCHIVE_MAX;
            self.lists
                .retain(|list| list.size == CHUNK_SIZE || (small && list.size == SMALL_CHUNK_SIZE));
        }
        for list in &mut self.lists {
            list.update(bytes);
        }
    }

    /// The wrapped writer and the digest of everything written.
    pub fn finish(self) -> (W, ArchiveDigest) {
        let wanted = if self.fixed {
            self.lists[0].size
        } else {
            chunk_size_for(self.size)
        };
        self.finish_for(wanted)
    }

    /// [`ArchiveHasher::finish`] with `chunk_size` chunks if they were hashed (a record's
    /// 1 MiB always is), else with the size's own (or the one hashed): to compare with a
    /// record, which then differs in its chunk size.
    pub fn finish_for(self, chunk_size: u32) -> (W, ArchiveDigest) {
        let own = chunk_size_for(self.size);
        let mut lists = self.lists;
        let at = (lists.iter().position(|list| list.size == chunk_size))
            .or_else(|| lists.iter().position(|list| list.size == own))
            .unwrap_or(0);
        let list = lists.swap_remove(at);
        let chunk_size = list.size;
        let chunks = list.finish();
        let info = ArchiveInfo {
            blake3: self.whole.finalize().into(),
            sha256: Sha256Hash(self.sha256.finalize().into()),
            size: self.size,
            chunk_size,
            chunks_root: chunks_root(&chunks),
        };
        (self.inner, ArchiveDigest { info, chunks })
    }
}

impl<W: Write> Write for ArchiveHasher<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_bytes() {
        let data: Vec<u8> = (0..(SMALL_CHUNK_SIZE as usize * 2 + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        let digest = ArchiveHasher::digest_reader(&data[..]).unwrap();
        assert_eq!(digest.info.size, data.len() as u64);
        assert_eq!(digest.info.blake3, Blake3Hash::of(&data));
        assert_eq!(digest.info.chunk_size, SMALL_CHUNK_SIZE);
        assert_eq!(digest.chunks.len(), 3);
        assert_eq!(
            digest.chunks[2],
            Blake3Hash::of(&data[2 * SMALL_CHUNK_SIZE as usize..])
        );
        assert_eq!(digest.info.chunks_root, chunks_root(&digest.chunks));
        let sha: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(digest.info.sha256, Sha256Hash(sha));
    }

    #[test]
    fn the_chunk_size_follows_the_size_and_a_fixed_one_is_kept() {
        let data = vec![7u8; CHUNK_SIZE as usize + 3];
        let auto = ArchiveHasher::digest_reader(&data[..]).unwrap();
        assert_eq!(auto.info.chunk_size, SMALL_CHUNK_SIZE);
        assert_eq!(auto.chunks.len(), 9);
        // A record signed with the older 256 KiB chunks is checked with its own list.
        let mut older = ArchiveHasher::new();
        older.write_all(&data).unwrap();
        let (_, older) = older.finish_for(LEGACY_SMALL_CHUNK_SIZE);
        assert_eq!(older.info.chunk_size, LEGACY_SMALL_CHUNK_SIZE);
        assert_eq!(older.chunks.len(), 5);
        assert_eq!(older.info.blake3, auto.info.blake3);
        let legacy = ArchiveHasher::digest_reader_with(&data[..], CHUNK_SIZE).unwrap();
        assert_eq!(legacy.info.chunk_size, CHUNK_SIZE);
        assert_eq!(legacy.chunks.len(), 2);
        assert_eq!(
            legacy.chunks[1],
            Blake3Hash::of(&data[CHUNK_SIZE as usize..])
        );
        assert_eq!(legacy.info.blake3, auto.info.blake3);
        // Asked for a size it did not hash: the one it did (the caller's check then fails).
        let mut fixed = ArchiveHasher::with_chunk_size(io::sink(), CHUNK_SIZE);
        fixed.write_all(&data).unwrap();
        assert_eq!(fixed.finish_for(SMALL_CHUNK_SIZE).1, legacy);
        // Over the old 64 MiB limit: still 128 KiB chunks (written in pieces, as packing
        // does), and a record's 1 MiB list is still there to compare with.
        let mut big = ArchiveHasher::new();
        let piece = vec![1u8; 1 << 20];
        for _ in 0..(LEGACY_SMALL_ARCHIVE_MAX >> 20) + 1 {
            big.write_all(&piece).unwrap();
        }
        let (_, big) = big.finish_for(CHUNK_SIZE);
        assert_eq!(big.info.chunk_size, CHUNK_SIZE);
        assert_eq!(
            big.chunks.len() as u64,
            (LEGACY_SMALL_ARCHIVE_MAX >> 20) + 1
        );
        let mut big = ArchiveHasher::new();
        for _ in 0..(LEGACY_SMALL_ARCHIVE_MAX >> 20) + 1 {
            big.write_all(&piece).unwrap();
        }
        let (_, big) = big.finish();
        assert_eq!(big.info.chunk_size, SMALL_CHUNK_SIZE);
        assert_eq!(
            big.chunks.len() as u64,
            (LEGACY_SMALL_ARCHIVE_MAX >> 17) + 8
        );
        // Over 1 GiB: 1 MiB chunks (not hashed here: a gigabyte is slow in a debug test).
        assert_eq!(chunk_size_for(SMALL_ARCHIVE_MAX), SMALL_CHUNK_SIZE);
        assert_eq!(chunk_size_for(SMALL_ARCHIVE_MAX + 1), CHUNK_SIZE);
        assert!(chunk_size_allowed(100, CHUNK_SIZE));
        assert!(chunk_size_allowed(SMALL_ARCHIVE_MAX, CHUNK_SIZE));
        assert!(!chunk_size_allowed(SMALL_ARCHIVE_MAX + 1, SMALL_CHUNK_SIZE));
        assert!(chunk_size_allowed(
            LEGACY_SMALL_ARCHIVE_MAX,
            LEGACY_SMALL_CHUNK_SIZE
        ));
        assert!(!chunk_size_allowed(
            LEGACY_SMALL_ARCHIVE_MAX + 1,
            LEGACY_SMALL_CHUNK_SIZE
        ));
    }

    #[test]
    fn empty_input_has_one_empty_chunk() {
        let digest = ArchiveHasher::digest_reader(&b""[..]).unwrap();
        assert_eq!(digest.chunks, vec![Blake3Hash::of(b"")]);
    }
}
