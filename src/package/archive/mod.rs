//! Deterministic archives: a pack directory becomes a tar stream compressed with zstd,
//! and the same files always give the same bytes on any machine (entries sorted by path
//! bytes, owner, times and modes normalised, fixed zstd parameters).
//!
//! Packing streams: file contents flow from disk through tar and zstd into the caller's
//! writer (usually an [`ArchiveHasher`](super::digest::ArchiveHasher) tee), never whole
//! in memory. This file holds the format's constants, the error type and the public
//! surface; packing is in `pack.rs`, safe unpacking in `unpack.rs`, and the entry-path
//! rules both sides share (relative, no `..`, no case-insensitive collisions) in
//! `paths.rs`.

#[cfg(any(test, feature = "test-support"))]
mod corpus;
mod pack;
mod paths;
mod pipe;
mod unpack;

use std::io;
use std::path::PathBuf;

#[doc(hidden)]
#[cfg(any(test, feature = "test-support"))]
pub use corpus::{malicious_corpus, CORPUS_ESCAPE_DIR};
pub use pack::{pack_dir, pack_dir_at_level, pack_dir_counted, pack_entries, PackEntry, PackKind};
pub use paths::{MAX_COMPONENT_LEN, MAX_DEPTH, MAX_PATH_LEN};
pub use unpack::{list_entries, unpack, EntryInfo, UnpackLimits, UnpackReport, STAGING_PREFIX};

use super::manifest::ManifestError;

/// zstd level used for every archive. On the publish benchmark (`benches/publish.rs`)
/// levels -5, -1, 1 and 3 pack at the same speed within noise (the streaming tar/zstd
/// path and hashing dominate, not the match finder), so zstd's default level 3 is kept
/// for the smallest output of the four. Changing it changes every archive's bytes.
pub const ZSTD_LEVEL: i32 = 3;
/// zstd window, pinned (rather than left to the level's default) so the output does not
/// move if a future zstd retunes its levels. 8 MiB: within every decoder's default limit.
pub const ZSTD_WINDOW_LOG: u32 = 23;
/// Ignore file read in every directory of a pack, in addition to `.gitignore`.
pub const IGNORE_FILE: &str = ".ggenignore";
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the archive: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: the pack's manifest is excluded by .gitignore or {IGNORE_FILE}; a pack must include it (remove the rule)")]
    ManifestIgnored { path: PathBuf },
    #[error("{dir}: reading the pack directory: {reason}")]
    Walk { dir: PathBuf, reason: String },
    #[error("{path}: is a symbolic link; packs hold only regular files and directories (replace it with a copy, or list it in {IGNORE_FILE})")]
    Symlink { path: PathBuf },
    #[error("{path}: is not a regular file or directory (socket, fifo or device); remove it or list it in {IGNORE_FILE}")]
    SpecialFile { path: PathBuf },
    #[error("{path}: {reason}")]
    BadPackPath { path: PathBuf, reason: String },
    #[error(
        "{path}: changed size while being packed; publish again once nothing writes to the pack"
    )]
    Changed { path: PathBuf },
    #[error("archive entry {entry:?}: {reason}; the archive is refused")]
    Refused { entry: String, reason: String },
    #[error("archive exceeds the {what} limit of {limit}; the archive is refused (possible decompression bomb)")]
    Limit { what: &'static str, limit: u64 },
    #[error("archive unpacks to {actual} bytes but its signed record declares {declared}; the archive is refused (ask the publisher to publish it again)")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("archive is corrupt or truncated: {0}")]
    Corrupt(#[source] io::Error),
    #[error("{path}: already exists; remove it or choose another --to")]
    TargetExists { path: PathBuf },
}
