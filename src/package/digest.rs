//! One pass over an archive's bytes yields everything a record needs to describe it:
//! the BLAKE3 and SHA-256 of the whole, its size, and the BLAKE3 of each fixed-size
//! chunk (so a downloader can check every chunk the moment it arrives).

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::hash::{Blake3Hash, Sha256Hash};
use super::record::ArchiveInfo;

/// Chunk size for transfer and verification. Fixed so that the same archive always has
/// the same chunk list on every node.
pub const CHUNK_SIZE: u32 = 1 << 20;

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

/// A `Write` sink that digests what passes through it, so packing and hashing share one
/// pass over the bytes. Wrap the real destination with [`ArchiveHasher::tee`].
pub struct ArchiveHasher<W> {
    inner: W,
    whole: blake3::Hasher,
    sha256: Sha256,
    chunk: blake3::Hasher,
    chunk_filled: u32,
    chunks: Vec<Blake3Hash>,
    size: u64,
}

impl ArchiveHasher<io::Sink> {
    pub fn new() -> Self {
        Self::tee(io::sink())
    }

    /// Digests all of `reader` (e.g. an archive file already on disk).
    pub fn digest_reader(mut reader: impl Read) -> io::Result<ArchiveDigest> {
        let mut hasher = Self::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buffer[..read]);
        }
        Ok(hasher.finish().1)
    }
}

impl Default for ArchiveHasher<io::Sink> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Write> ArchiveHasher<W> {
    pub fn tee(inner: W) -> Self {
        Self {
            inner,
            whole: blake3::Hasher::new(),
            sha256: Sha256::new(),
            chunk: blake3::Hasher::new(),
            chunk_filled: 0,
            chunks: Vec::new(),
            size: 0,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.whole.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = (CHUNK_SIZE - self.chunk_filled) as usize;
            let take = room.min(bytes.len());
            self.chunk.update(&bytes[..take]);
            self.chunk_filled += take as u32;
            bytes = &bytes[take..];
            if self.chunk_filled == CHUNK_SIZE {
                self.chunks.push(self.chunk.finalize().into());
                self.chunk.reset();
                self.chunk_filled = 0;
            }
        }
    }

    /// The wrapped writer and the digest of everything written.
    pub fn finish(mut self) -> (W, ArchiveDigest) {
        if self.chunk_filled > 0 || self.chunks.is_empty() {
            self.chunks.push(self.chunk.finalize().into());
        }
        let info = ArchiveInfo {
            blake3: self.whole.finalize().into(),
            sha256: Sha256Hash(self.sha256.finalize().into()),
            size: self.size,
            chunk_size: CHUNK_SIZE,
            chunks_root: chunks_root(&self.chunks),
        };
        (
            self.inner,
            ArchiveDigest {
                info,
                chunks: self.chunks,
            },
        )
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
        let data: Vec<u8> = (0..(CHUNK_SIZE as usize * 2 + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        let digest = ArchiveHasher::digest_reader(&data[..]).unwrap();
        assert_eq!(digest.info.size, data.len() as u64);
        assert_eq!(digest.info.blake3, Blake3Hash::of(&data));
        assert_eq!(digest.chunks.len(), 3);
        assert_eq!(
            digest.chunks[2],
            Blake3Hash::of(&data[2 * CHUNK_SIZE as usize..])
        );
        assert_eq!(digest.info.chunks_root, chunks_root(&digest.chunks));
        let sha: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(digest.info.sha256, Sha256Hash(sha));
    }

    #[test]
    fn empty_input_has_one_empty_chunk() {
        let digest = ArchiveHasher::digest_reader(&b""[..]).unwrap();
        assert_eq!(digest.chunks, vec![Blake3Hash::of(b"")]);
    }
}
