//! Packing: the files of a pack directory (minus ignored ones) streamed through a
//! deterministic tar and zstd into the caller's writer. Unpacking is in `unpack.rs`, the
//! entry-path rules both sides apply in `paths.rs`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::paths::{check_entry_path, Namespace};
use super::pipe;
use super::{ArchiveError, IGNORE_FILE, ZSTD_LEVEL, ZSTD_WINDOW_LOG};
use crate::package::manifest::Manifest;

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
    pack_entries_at_level(&pack_entries(dir)?, out, level)
}

/// [`pack_dir`], also returning the bytes of file content packed (what unpacking will
/// write; publish signs it as the record's `unpacked_size`).
pub fn pack_dir_counted<W: Write + Send>(dir: &Path, out: W) -> Result<(W, u64), ArchiveError> {
    let entries = pack_entries(dir)?;
    let unpacked = entries
        .iter()
        .map(|entry| match entry.kind {
            PackKind::File { size, .. } => size,
            PackKind::Dir => 0,
        })
        .sum();
    // Every file is checked to still have its listed size as it is packed.
    Ok((pack_entries_at_level(&entries, out, ZSTD_LEVEL)?, unpacked))
}

fn pack_entries_at_level<W: Write + Send>(
    entries: &[PackEntry],
    out: W,
    level: i32,
) -> Result<W, ArchiveError> {
    pipe::piped(
        out,
        |pipe| {
            let encoder = deterministic_encoder(pipe, level).map_err(ArchiveError::Write)?;
            let mut builder = tar::Builder::new(encoder);
            for entry in entries {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::archive::{list_entries, unpack, UnpackLimits};
    use crate::package::manifest::ManifestError;

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
}
