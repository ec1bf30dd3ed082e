//! Deterministic archives: a pack directory becomes a tar stream compressed with zstd,
//! and the same files always give the same bytes on any machine (entries sorted by path
//! bytes, owner, times and modes normalised, fixed zstd parameters).
//!
//! Packing streams: file contents flow from disk through tar and zstd into the caller's
//! writer (usually an [`ArchiveHasher`](super::digest::ArchiveHasher) tee), never whole
//! in memory. Safe unpacking lives in [`unpack`]; the rules for entry paths that both
//! sides share (relative, no `..`, no case-insensitive collisions) live here.

#[cfg(any(test, feature = "test-support"))]
mod corpus;
mod pipe;
mod unpack;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

#[doc(hidden)]
#[cfg(any(test, feature = "test-support"))]
pub use corpus::{malicious_corpus, CORPUS_ESCAPE_DIR};
pub use unpack::{list_entries, unpack, EntryInfo, UnpackLimits, UnpackReport, STAGING_PREFIX};

use super::manifest::{Manifest, ManifestError};

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
/// Longest entry path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest single path component accepted, in bytes (what common file systems allow).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Deepest directory nesting accepted.
pub const MAX_DEPTH: usize = 32;

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
    #[error("archive is corrupt or truncated: {0}")]
    Corrupt(#[source] io::Error),
    #[error("{path}: already exists; remove it or choose another --to")]
    TargetExists { path: PathBuf },
}

/// What a pack will contain, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// Path inside the archive, '/'-separated, relative.
    pub path: String,
    /// Where the bytes come from.
    pub source: PathBuf,
    pub kind: PackKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackKind {
    Dir,
    File { size: u64, executable: bool },
}

/// Lists what [`pack_dir`] would put in the archive of `dir`, sorted by path bytes:
/// every file and directory except `.git`, a top-level `target/`, and what
/// `.gitignore`/`.ggenignore` files inside the pack exclude. Fails on symlinks, special
/// files, non-UTF-8 names, unsafe or colliding names, and a missing or ignored manifest.
pub fn pack_entries(dir: &Path) -> Result<Vec<PackEntry>, ArchiveError> {
    let (manifest_path, _) = Manifest::locate(dir)?;
    // The directory named on the command line may itself be a symlink; links inside it
    // are refused below.
    let dir = &std::fs::canonicalize(dir).map_err(|source| ArchiveError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let manifest_path = dir.join(manifest_path.file_name().unwrap_or_default());
    let mut walker = ignore::WalkBuilder::new(dir);
    walker
        .standard_filters(false)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(|entry| {
            let name = entry.file_name();
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            // `.git` is a file in git worktrees and submodules.
            name != ".git" && !(is_dir && entry.depth() == 1 && name == "target")
        });
    let mut entries = Vec::new();
    let mut names = Namespace::default();
    for item in walker.build() {
        let entry = item.map_err(|e| ArchiveError::Walk {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let source = entry.path().to_path_buf();
        let bad_path = |reason: String| ArchiveError::BadPackPath {
            path: source.clone(),
            reason,
        };
        let relative = source
            .strip_prefix(dir)
            .map_err(|_| bad_path("is outside the pack directory".into()))?;
        let mut path = String::new();
        for component in relative.components() {
            let part = component.as_os_str().to_str().ok_or_else(|| {
                bad_path("file name is not UTF-8; rename it so every system can install it".into())
            })?;
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
        }
        let file_type = entry
            .file_type()
            .ok_or_else(|| bad_path("unknown file type".into()))?;
        let kind = if file_type.is_symlink() {
            return Err(ArchiveError::Symlink { path: source });
        } else if file_type.is_dir() {
            PackKind::Dir
        } else if file_type.is_file() {
            let metadata = entry.metadata().map_err(|e| ArchiveError::Walk {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
            PackKind::File {
                size: metadata.len(),
                executable: is_executable(&metadata),
            }
        } else {
            return Err(ArchiveError::SpecialFile { path: source });
        };
        check_entry_path(&path).map_err(bad_path)?;
        names
            .insert(&path, matches!(kind, PackKind::Dir))
            .map_err(bad_path)?;
        entries.push(PackEntry { path, source, kind });
    }
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    if !entries.iter().any(|entry| entry.source == manifest_path) {
        return Err(ArchiveError::ManifestIgnored {
            path: manifest_path,
        });
    }
    Ok(entries)
}

/// Packs `dir` into `out` as a deterministic tar + zstd stream and returns `out`.
///
/// Entries are sorted by path bytes; each header has uid/gid 0, empty user and group
/// names, mtime 0, mode 0644 (0755 for directories and files with any execute bit); no
/// PAX or extended attributes (paths over 100 bytes use GNU long-name entries). The zstd
/// frame uses [`ZSTD_LEVEL`], [`ZSTD_WINDOW_LOG`], a content checksum and one thread,
/// so the bytes depend only on the files' paths, contents and execute bits.
///
/// Compression runs on the calling thread and `out` is written from a second thread
/// (so hashing in a tee overlaps with compression); hence `W: Send`.
pub fn pack_dir<W: Write + Send>(dir: &Path, out: W) -> Result<W, ArchiveError> {
    pack_dir_at_level(dir, out, ZSTD_LEVEL)
}

/// [`pack_dir`] at another zstd level, for benchmarks comparing levels. Archives made
/// this way are deterministic too but differ from [`pack_dir`]'s; publish never uses it.
#[doc(hidden)]
pub fn pack_dir_at_level<W: Write + Send>(
    dir: &Path,
    out: W,
    level: i32,
) -> Result<W, ArchiveError> {
    let entries = pack_entries(dir)?;
    pipe::piped(
        out,
        |pipe| {
            let encoder = deterministic_encoder(pipe, level).map_err(ArchiveError::Write)?;
            let mut builder = tar::Builder::new(encoder);
            for entry in &entries {
                append_entry(&mut builder, entry)?;
            }
            let encoder = builder.into_inner().map_err(ArchiveError::Write)?;
            let pipe = encoder.finish().map_err(ArchiveError::Write)?;
            pipe.close().map_err(ArchiveError::Write)
        },
        ArchiveError::Write,
    )
}

fn deterministic_encoder<W: Write>(out: W, level: i32) -> io::Result<zstd::Encoder<'static, W>> {
    let mut encoder = zstd::Encoder::new(out, level)?;
    encoder.window_log(ZSTD_WINDOW_LOG)?;
    encoder.include_checksum(true)?;
    encoder.include_dictid(false)?;
    encoder.include_contentsize(false)?;
    encoder.long_distance_matching(false)?;
    Ok(encoder)
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    entry: &PackEntry,
) -> Result<(), ArchiveError> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_username("").map_err(ArchiveError::Write)?;
    header.set_groupname("").map_err(ArchiveError::Write)?;
    match entry.kind {
        PackKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &entry.path, io::empty())
                .map_err(ArchiveError::Write)
        }
        PackKind::File { size, executable } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(size);
            let io_err = |source| ArchiveError::Io {
                path: entry.source.clone(),
                source,
            };
            let file = File::open(&entry.source).map_err(io_err)?;
            let mut reader = ExactReader {
                file,
                remaining: size,
                failure: None,
            };
            let result = builder.append_data(&mut header, &entry.path, &mut reader);
            match (result, reader.failure.take()) {
                (_, Some(SourceFailure::Shrank)) => Err(ArchiveError::Changed {
                    path: entry.source.clone(),
                }),
                (_, Some(SourceFailure::Io(e))) => Err(io_err(e)),
                (Err(e), None) => Err(ArchiveError::Write(e)),
                (Ok(()), None) => {
                    // One more byte means the file grew after it was measured.
                    let mut probe = [0u8; 1];
                    match reader.file.read(&mut probe) {
                        Ok(0) => Ok(()),
                        Ok(_) => Err(ArchiveError::Changed {
                            path: entry.source.clone(),
                        }),
                        Err(e) => Err(io_err(e)),
                    }
                }
            }
        }
    }
}

enum SourceFailure {
    Shrank,
    Io(io::Error),
}

/// Yields exactly `remaining` bytes of `file` (the size written in the tar header) and
/// records, rather than hides, a source that fails or ends early.
struct ExactReader {
    file: File,
    remaining: u64,
    failure: Option<SourceFailure>,
}

impl Read for ExactReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = out
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        loop {
            match self.file.read(&mut out[..want]) {
                Ok(0) => {
                    self.failure = Some(SourceFailure::Shrank);
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
                }
                Ok(read) => {
                    self.remaining -= read as u64;
                    return Ok(read);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let kind = e.kind();
                    self.failure = Some(SourceFailure::Io(e));
                    return Err(io::Error::new(kind, "reading a pack file"));
                }
            }
        }
    }
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &std::fs::Metadata) -> bool {
    false
}

/// Why `path` may not name an archive entry: it must be relative, '/'-separated, made
/// of normal components (no `.`, `..` or empty ones), free of `\`, `:` and control
/// characters (separators or devices on Windows), and within the length and depth caps.
pub(crate) fn check_entry_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("path is over {MAX_PATH_LEN} bytes"));
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut depth = 0;
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component ('//')".into()),
            "." | ".." => return Err(format!("path component {component:?}")),
            _ => {}
        }
        if component.len() > MAX_COMPONENT_LEN {
            return Err(format!(
                "a path component is over {MAX_COMPONENT_LEN} bytes"
            ));
        }
        if let Some(c) = component
            .chars()
            .find(|c| matches!(c, '\\' | ':') || c.is_control())
        {
            return Err(format!("path holds {c:?}, unsafe on some systems"));
        }
        depth += 1;
    }
    if depth > MAX_DEPTH {
        return Err(format!("path is nested over {MAX_DEPTH} levels deep"));
    }
    Ok(())
}

/// Names seen so far, compared the way case-insensitive file systems (macOS, Windows)
/// compare them, so two entries can never land on the same file there. Parents of every
/// path count as directories, so a file cannot also be used as a directory. Folding is
/// Unicode lowercase only: NFC/NFD variants of one name (which macOS treats as equal)
/// are not detected, since that needs normalization tables this crate does not carry.
#[derive(Default)]
pub(crate) struct Namespace {
    /// Folded path → (path as written, is a directory).
    seen: HashMap<String, (String, bool)>,
}

impl Namespace {
    /// Records `path` (already passed [`check_entry_path`]).
    pub(crate) fn insert(&mut self, path: &str, is_dir: bool) -> Result<(), String> {
        let mut end = 0;
        for component in path.split('/') {
            end += component.len();
            let prefix = &path[..end];
            let last = end == path.len();
            self.insert_one(prefix, if last { is_dir } else { true }, last)?;
            end += 1;
        }
        Ok(())
    }

    fn insert_one(&mut self, path: &str, is_dir: bool, explicit: bool) -> Result<(), String> {
        let folded = path.to_lowercase();
        match self.seen.get(&folded) {
            None => {
                self.seen.insert(folded, (path.to_string(), is_dir));
                Ok(())
            }
            Some((earlier, _)) if earlier != path => Err(format!(
                "collides with {earlier:?} on case-insensitive file systems; rename one"
            )),
            Some((_, earlier_dir)) if *earlier_dir != is_dir => {
                Err("is both a file and a directory".into())
            }
            // A directory named again (explicitly or as a parent) is fine.
            Some(_) if is_dir && !explicit => Ok(()),
            Some((_, true)) => Ok(()),
            Some(_) => Err("appears twice".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    fn sample_pack(root: &Path) {
        write(
            &root.join("package.toml"),
            "[package]\nname = \"demo\"\nversion = \"0.1.0\"\ndescription = \"demo\"\n",
        );
        write(&root.join("templates/main.rs.tmpl"), "fn main() {}\n");
        write(&root.join("templates/zz/deep.txt"), "deep\n");
        write(&root.join("README.md"), "# demo\n");
        write(&root.join(".gitignore"), "*.log\n/build/\n");
        write(&root.join(".ggenignore"), "secret.txt\n");
        write(&root.join("debug.log"), "noise\n");
        write(&root.join("secret.txt"), "key\n");
        write(&root.join("build/out.bin"), "x");
        write(&root.join("target/debug/x"), "x");
        write(&root.join(".git/HEAD"), "ref: refs/heads/main\n");
        write(&root.join(".hidden/kept"), "hidden files are packed\n");
        write(
            &root.join(format!("long/{}/file.txt", "n".repeat(120))),
            "long path",
        );
        std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    }

    fn pack_bytes(dir: &Path) -> Vec<u8> {
        pack_dir(dir, Vec::new()).unwrap()
    }

    fn listed(bytes: &[u8]) -> Vec<String> {
        list_entries(bytes, &UnpackLimits::default())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn packs_only_what_is_not_ignored_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        sample_pack(dir.path());
        let paths = listed(&pack_bytes(dir.path()));
        let mut sorted = paths.clone();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(paths, sorted);
        for kept in [
            "package.toml",
            "README.md",
            ".gitignore",
            ".ggenignore",
            ".hidden/kept",
            "empty-dir",
            "templates/zz/deep.txt",
        ] {
            assert!(paths.iter().any(|p| p == kept), "{kept} missing: {paths:?}");
        }
        assert!(paths.iter().any(|p| p.ends_with("/file.txt")));
        for gone in ["debug.log", "secret.txt", "build", "target", ".git"] {
            assert!(
                !paths
                    .iter()
                    .any(|p| p == gone || p.starts_with(&format!("{gone}/"))),
                "{gone} packed: {paths:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn same_files_give_identical_bytes_regardless_of_metadata() {
        use std::os::unix::fs::PermissionsExt;
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        sample_pack(first.path());
        // Create the copy in a different order so directory order differs too.
        write(&second.path().join("README.md"), "# demo\n");
        sample_pack(second.path());
        let file = second.path().join("templates/main.rs.tmpl");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(
            second.path().join("templates"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(pack_bytes(first.path()), pack_bytes(second.path()));

        // The execute bit is content: it changes the bytes.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700)).unwrap();
        let changed = pack_bytes(second.path());
        assert_ne!(pack_bytes(first.path()), changed);
        let entries = list_entries(&changed[..], &UnpackLimits::default()).unwrap();
        let entry = entries
            .iter()
            .find(|e| e.path == "templates/main.rs.tmpl")
            .unwrap();
        assert!(entry.executable);
    }

    #[test]
    fn headers_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        sample_pack(dir.path());
        let tar_bytes = zstd::decode_all(&pack_bytes(dir.path())[..]).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            assert_eq!(header.groupname_bytes(), Some(&b""[..]));
            let mode = header.mode().unwrap();
            assert!(mode == 0o644 || mode == 0o755, "{mode:o}");
            assert!(entry.pax_extensions().unwrap().is_none());
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        sample_pack(dir.path());
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let error = pack_dir(dir.path(), Vec::new()).unwrap_err();
        assert!(matches!(error, ArchiveError::Symlink { .. }), "{error}");
        assert!(error.to_string().contains(IGNORE_FILE), "{error}");
        // An ignored symlink is simply left out.
        write(&dir.path().join(".ggenignore"), "secret.txt\nlink\n");
        pack_dir(dir.path(), Vec::new()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_pack_dir_and_a_git_file_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        sample_pack(&real);
        write(&real.join("sub/.git"), "gitdir: ../../.git/worktrees/sub\n");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let paths = listed(&pack_bytes(&link));
        assert!(paths.iter().any(|p| p == "package.toml"), "{paths:?}");
        assert!(!paths.iter().any(|p| p.ends_with(".git")), "{paths:?}");
        assert_eq!(pack_bytes(&link), pack_bytes(&real));
    }

    #[test]
    fn manifest_must_be_present_and_packed() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("README.md"), "x");
        assert!(matches!(
            pack_dir(dir.path(), Vec::new()),
            Err(ArchiveError::Manifest(ManifestError::NotFound { .. }))
        ));
        sample_pack(dir.path());
        write(&dir.path().join(".ggenignore"), "package.toml\n");
        let error = pack_dir(dir.path(), Vec::new()).unwrap_err();
        assert!(
            matches!(error, ArchiveError::ManifestIgnored { .. }),
            "{error}"
        );
    }

    #[test]
    fn case_collisions_are_refused_when_packing() {
        let dir = tempfile::tempdir().unwrap();
        sample_pack(dir.path());
        write(&dir.path().join("readme.md"), "other");
        let error = pack_dir(dir.path(), Vec::new()).unwrap_err();
        assert!(error.to_string().contains("case-insensitive"), "{error}");
    }

    #[test]
    fn example_packs_read_pack_and_round_trip() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs");
        let mut names = Vec::new();
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            let manifest = Manifest::from_dir(&dir).unwrap();
            let bytes = pack_bytes(&dir);
            assert_eq!(bytes, pack_bytes(&dir), "{}", dir.display());
            let out = tempfile::tempdir().unwrap();
            let target = out.path().join("pack");
            let report = unpack(&bytes[..], &target, &UnpackLimits::default()).unwrap();
            assert!(report.files >= 3, "{}: {report:?}", dir.display());
            assert_eq!(Manifest::from_dir(&target).unwrap(), manifest);
            names.push(manifest.name);
        }
        names.sort();
        assert_eq!(
            names,
            [
                "github-actions-ci",
                "python-fastapi-service",
                "readme-generator",
                "rust-axum-service",
                "rust-cli-subcommand",
                "rust-tracing-setup"
            ]
        );
    }

    #[test]
    fn entry_paths_are_checked() {
        assert!(check_entry_path("a/b.txt").is_ok());
        for bad in [
            "", "/etc", "a/../b", "..", "./a", "a//b", "a\\b", "c:x", "a\u{7}",
        ] {
            assert!(check_entry_path(bad).is_err(), "{bad:?}");
        }
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert!(check_entry_path(&deep).is_err());
    }

    #[test]
    fn namespace_catches_collisions() {
        let mut names = Namespace::default();
        names.insert("a/b", false).unwrap();
        names.insert("a", true).unwrap();
        assert!(names.insert("A/c", false).is_err());
        assert!(names.insert("a/b", false).is_err());
        assert!(names.insert("a/b/c", false).is_err());
        assert!(names.insert("a", false).is_err());
        names.insert("x/y", true).unwrap();
        names.insert("x/y", true).unwrap();
    }
}
