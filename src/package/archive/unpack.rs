//! Safe unpacking: an archive from anywhere becomes a directory only if every entry is
//! a plain file or directory with a safe, non-colliding relative path, and the whole
//! stays under the caps (bytes are counted as they are written, not taken from headers).
//!
//! Files land in a staging directory next to the target (same file system), are
//! fsynced, and the staging directory is renamed into place only when everything
//! succeeded; on any error it is removed, so nothing partial is ever visible.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::paths::{check_entry_path, Namespace};
use super::{ArchiveError, ZSTD_WINDOW_LOG};

/// Prefix of staging directories; a crash can leave one behind, never a half target.
pub const STAGING_PREFIX: &str = ".ggen-unpack-";
/// Most bytes allowed after the tar end-of-archive marker (tar pads to 10 KiB records);
/// they must all be zero.
const MAX_TRAILER: u64 = 64 * 1024;
const COPY_BUFFER: usize = 128 * 1024;

/// Caps that make a hostile archive fail fast instead of filling the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most entries (files and directories).
    pub max_entries: u64,
    /// Largest single file, in bytes.
    pub max_file_size: u64,
    /// Most bytes across all files.
    pub max_total_size: u64,
    /// Exactly this many bytes across all files, when the signed record declares it.
    pub exact_total: Option<u64>,
}

impl Default for UnpackLimits {
    /// 20,000 entries, 1 GiB per file, 2 GiB in total: far above any template pack,
    /// far below what a decompression bomb needs to hurt.
    fn default() -> Self {
        Self {
            max_entries: 20_000,
            max_file_size: 1 << 30,
            max_total_size: 2 << 30,
            exact_total: None,
        }
    }
}

impl UnpackLimits {
    /// The caps for an archive whose signed record declares `archive_size` bytes: it may
    /// unpack to at most `max(min_size, ratio × archive_size)` bytes (and never more than
    /// the defaults), so the record, not the archive's own headers, bounds the damage.
    /// A record that also declares its `unpacked_size` gets exactly that, never more
    /// than the ratio allows (the publisher may be the attacker).
    pub fn for_archive(
        archive_size: u64,
        unpacked_size: Option<u64>,
        ratio: u64,
        min_size: u64,
    ) -> Self {
        let defaults = Self::default();
        let total = archive_size
            .saturating_mul(ratio)
            .max(min_size)
            .min(defaults.max_total_size);
        let total = unpacked_size.map_or(total, |declared| declared.min(total));
        Self {
            max_total_size: total,
            max_file_size: defaults.max_file_size.min(total),
            exact_total: unpacked_size,
            ..defaults
        }
    }
}

/// What an unpack (or a listing) went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnpackReport {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// One entry of a checked archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// '/'-separated relative path.
    pub path: String,
    pub is_dir: bool,
    /// Content bytes (0 for directories).
    pub size: u64,
    pub executable: bool,
}

/// Checks every entry of `archive` (zstd-compressed tar) and lists them, reading all
/// content to count it, without writing anything.
pub fn list_entries(
    archive: impl Read,
    limits: &UnpackLimits,
) -> Result<Vec<EntryInfo>, ArchiveError> {
    let mut out = Vec::new();
    let mut buffer = vec![0u8; COPY_BUFFER];
    walk(archive, limits, |info, data| {
        if !info.is_dir {
            copy_capped(data, &mut io::sink(), &mut buffer, Path::new(&info.path))?;
        }
        out.push(info.clone());
        Ok(())
    })?;
    Ok(out)
}

/// Unpacks `archive` (zstd-compressed tar) into the new directory `target`, all or
/// nothing. `target` must not exist; its parent is created if needed.
pub fn unpack(
    archive: impl Read,
    target: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackReport, ArchiveError> {
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { path, source }
    };
    if fs::symlink_metadata(target).is_ok() {
        return Err(ArchiveError::TargetExists {
            path: target.to_path_buf(),
        });
    }
    let parent = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if target.file_name().is_none() {
        return Err(io_at(target)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory name to unpack into",
        )));
    }
    fs::create_dir_all(parent).map_err(io_at(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(parent)
        .map_err(io_at(parent))?;
    let root = staging.path().to_path_buf();
    let mut dirs = vec![root.clone()];
    // Files are fsynced once the whole archive has passed, so a hostile archive fails
    // before paying for thousands of fsyncs.
    let mut files = Vec::new();
    let mut buffer = vec![0u8; COPY_BUFFER];
    let report = walk(archive, limits, |info, data| {
        let dest = root.join(&info.path);
        if info.is_dir {
            fs::create_dir_all(&dest).map_err(io_at(&dest))?;
            set_mode(&dest, 0o755)?;
            dirs.push(dest);
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            if !parent.is_dir() {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
                dirs.push(parent.to_path_buf());
            }
        }
        // create_new: an entry can never reuse or follow anything already there.
        let mut options = File::options();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            // Set at creation (subject to the umask, as tar does) to spare a chmod per file.
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if info.executable { 0o755 } else { 0o644 });
        }
        let mut file = options.open(&dest).map_err(io_at(&dest))?;
        copy_capped(data, &mut file, &mut buffer, &dest)?;
        files.push(dest);
        Ok(())
    })?;
    set_mode(&root, 0o755)?;
    for path in &files {
        File::open(path)
            .and_then(|file| file.sync_all())
            .map_err(io_at(path))?;
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    // Checked again just before the rename: on Linux a rename onto an empty directory
    // would silently replace it.
    if fs::symlink_metadata(target).is_ok() {
        return Err(ArchiveError::TargetExists {
            path: target.to_path_buf(),
        });
    }
    let staged = staging.keep();
    if let Err(source) = fs::rename(&staged, target) {
        let _ = fs::remove_dir_all(&staged);
        return Err(io_at(target)(source));
    }
    sync_dir(parent)?;
    Ok(report)
}

/// Drives the tar reader: checks each entry's type, path, collisions and caps, then
/// hands it to `visit` with a reader that counts real bytes against the caps.
fn walk<R: Read>(
    archive: R,
    limits: &UnpackLimits,
    mut visit: impl FnMut(&EntryInfo, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<UnpackReport, ArchiveError> {
    let mut decoder = zstd::Decoder::new(archive).map_err(ArchiveError::Corrupt)?;
    // Bounds decoder memory to the window our encoder uses.
    decoder
        .window_log_max(ZSTD_WINDOW_LOG)
        .map_err(ArchiveError::Corrupt)?;
    let mut tar = tar::Archive::new(decoder);
    let mut names = Namespace::default();
    let mut report = UnpackReport::default();
    let mut entries_seen = 0u64;
    let mut total = 0u64;
    for entry in tar.entries().map_err(ArchiveError::Corrupt)? {
        let mut entry = entry.map_err(ArchiveError::Corrupt)?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(ArchiveError::Limit {
                what: "entry count",
                limit: limits.max_entries,
            });
        }
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let refuse = |reason: String| ArchiveError::Refused {
            entry: shown.clone(),
            reason,
        };
        let is_dir = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => false,
            tar::EntryType::Directory => true,
            other => {
                return Err(refuse(format!(
                    "{} entries are not allowed",
                    kind_name(other)
                )))
            }
        };
        let mut path =
            String::from_utf8(raw_path).map_err(|_| refuse("name is not UTF-8".into()))?;
        if is_dir && path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        check_entry_path(&path).map_err(&refuse)?;
        names.insert(&path, is_dir).map_err(&refuse)?;
        let size = entry.size();
        if is_dir && size != 0 {
            return Err(refuse("directory entry carries data".into()));
        }
        // Header sizes let a bomb fail before any byte is inflated; the counting reader
        // below is what actually enforces the caps.
        check_caps(size, total.saturating_add(size), limits)?;
        let executable = entry.header().mode().map_err(ArchiveError::Corrupt)? & 0o111 != 0;
        let info = EntryInfo {
            path,
            is_dir,
            size,
            executable,
        };
        let mut counted = Counted {
            inner: &mut entry,
            file_bytes: 0,
            total: &mut total,
            limits,
            exceeded: None,
        };
        let result = visit(&info, &mut counted);
        if let Some(limit) = counted.exceeded.take() {
            return Err(limit);
        }
        result?;
        if is_dir {
            report.dirs += 1;
        } else {
            report.files += 1;
        }
    }
    report.bytes = total;
    if let Some(declared) = limits.exact_total {
        if total != declared {
            return Err(ArchiveError::SizeMismatch {
                declared,
                actual: total,
            });
        }
    }
    // Read to the end of the zstd frame: verifies its checksum and refuses data hidden
    // after the tar end marker.
    let mut rest = tar.into_inner().take(MAX_TRAILER + 1);
    let mut trailer = Vec::new();
    rest.read_to_end(&mut trailer)
        .map_err(ArchiveError::Corrupt)?;
    if trailer.len() as u64 > MAX_TRAILER || trailer.iter().any(|&b| b != 0) {
        return Err(ArchiveError::Corrupt(io::Error::new(
            io::ErrorKind::InvalidData,
            "data after the end of the tar archive",
        )));
    }
    Ok(report)
}

fn check_caps(file: u64, total: u64, limits: &UnpackLimits) -> Result<(), ArchiveError> {
    if file > limits.max_file_size {
        return Err(ArchiveError::Limit {
            what: "file size",
            limit: limits.max_file_size,
        });
    }
    if total > limits.max_total_size {
        return Err(ArchiveError::Limit {
            what: "total unpacked size (for installs: unpack_ratio x the record's archive size, at least unpack_min_size, in config.toml)",
            limit: limits.max_total_size,
        });
    }
    Ok(())
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::GNUSparse => "sparse file",
        tar::EntryType::XGlobalHeader => "global PAX header",
        _ => "unknown-type",
    }
}

/// Counts the bytes an entry really yields and stops at the first one over a cap.
struct Counted<'a, R> {
    inner: R,
    file_bytes: u64,
    total: &'a mut u64,
    limits: &'a UnpackLimits,
    exceeded: Option<ArchiveError>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(out)?;
        self.file_bytes += read as u64;
        *self.total += read as u64;
        if let Err(limit) = check_caps(self.file_bytes, *self.total, self.limits) {
            self.exceeded = Some(limit);
            return Err(io::Error::other("unpack limit exceeded"));
        }
        Ok(read)
    }
}

/// Copies an entry's content; read failures mean a corrupt archive, write failures are
/// reported against `dest`.
fn copy_capped(
    data: &mut dyn Read,
    out: &mut dyn Write,
    buffer: &mut [u8],
    dest: &Path,
) -> Result<(), ArchiveError> {
    loop {
        let read = match data.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::Corrupt(e)),
        };
        out.write_all(&buffer[..read])
            .map_err(|source| ArchiveError::Io {
                path: dest.to_path_buf(),
                source,
            })?;
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), ArchiveError> {
    Ok(())
}

/// Makes a directory's entries durable (a no-op where directories cannot be opened).
fn sync_dir(path: &Path) -> Result<(), ArchiveError> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| ArchiveError::Io {
                path: PathBuf::from(path),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{malicious_corpus, pack_dir};
    use super::*;

    fn sample(dir: &Path) {
        fs::create_dir_all(dir.join("templates/nested")).unwrap();
        fs::create_dir_all(dir.join("empty")).unwrap();
        fs::write(
            dir.join("package.toml"),
            "[package]\nname = \"demo\"\nversion = \"0.1.0\"\ndescription = \"demo\"\n",
        )
        .unwrap();
        fs::write(dir.join("templates/nested/a.txt"), "hello {{name}}\n").unwrap();
        fs::write(dir.join("big.bin"), vec![7u8; 300_000]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::write(dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
            fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn leftovers(parent: &Path) -> Vec<String> {
        fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn limits_follow_the_records_archive_size() {
        let floor = UnpackLimits::for_archive(33 * 1024, None, 200, 64 << 20);
        assert_eq!(floor.max_total_size, 64 << 20);
        assert_eq!(floor.max_file_size, 64 << 20);
        let ratio = UnpackLimits::for_archive(1 << 20, None, 200, 64 << 20);
        assert_eq!(ratio.max_total_size, 200 << 20);
        assert_eq!(ratio.max_file_size, 200 << 20);
        let capped = UnpackLimits::for_archive(u64::MAX, None, 200, 64 << 20);
        assert_eq!(capped, UnpackLimits::default());
        // A declared size is enforced exactly, but cannot raise the cap.
        let declared = UnpackLimits::for_archive(1 << 20, Some(1000), 200, 64 << 20);
        assert_eq!(
            (declared.max_total_size, declared.exact_total),
            (1000, Some(1000))
        );
        let inflated = UnpackLimits::for_archive(33 * 1024, Some(1 << 30), 200, 64 << 20);
        assert_eq!(inflated.max_total_size, 64 << 20);
    }

    #[test]
    fn a_declared_unpacked_size_is_enforced_exactly() {
        let source = tempfile::tempdir().unwrap();
        sample(source.path());
        let (bytes, unpacked) = super::super::pack_dir_counted(source.path(), Vec::new()).unwrap();
        for wrong in [unpacked - 1, unpacked + 1] {
            let out = tempfile::tempdir().unwrap();
            let limits = UnpackLimits::for_archive(bytes.len() as u64, Some(wrong), 200, 1 << 20);
            let error = unpack(&bytes[..], &out.path().join("demo"), &limits).unwrap_err();
            assert!(
                matches!(
                    error,
                    ArchiveError::Limit { .. } | ArchiveError::SizeMismatch { .. }
                ),
                "{error}"
            );
            assert!(leftovers(out.path()).is_empty(), "declared {wrong}");
        }
        let out = tempfile::tempdir().unwrap();
        let limits = UnpackLimits::for_archive(bytes.len() as u64, Some(unpacked), 200, 1 << 20);
        let report = unpack(&bytes[..], &out.path().join("demo"), &limits).unwrap();
        assert_eq!(report.bytes, unpacked);
    }

    #[test]
    fn round_trip_restores_files_and_modes() {
        let source = tempfile::tempdir().unwrap();
        sample(source.path());
        let bytes = pack_dir(source.path(), Vec::new()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("installs/demo");
        let report = unpack(&bytes[..], &target, &UnpackLimits::default()).unwrap();
        assert_eq!(
            fs::read(target.join("templates/nested/a.txt")).unwrap(),
            b"hello {{name}}\n"
        );
        assert_eq!(fs::read(target.join("big.bin")).unwrap().len(), 300_000);
        assert!(target.join("empty").is_dir());
        assert!(report.files >= 3 && report.dirs >= 3, "{report:?}");
        assert_eq!(leftovers(&out.path().join("installs")), ["demo"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| fs::metadata(target.join(p)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("run.sh"), 0o755);
            assert_eq!(mode("package.toml"), 0o644);
            assert_eq!(mode(""), 0o755);
        }
        // Repacking what was unpacked gives the same bytes.
        assert_eq!(pack_dir(&target, Vec::new()).unwrap(), bytes);
        // The target now exists: a second unpack is refused and changes nothing.
        let error = unpack(&bytes[..], &target, &UnpackLimits::default()).unwrap_err();
        assert!(
            matches!(error, ArchiveError::TargetExists { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--to"), "{error}");
        assert_eq!(leftovers(&out.path().join("installs")), ["demo"]);
    }

    #[test]
    fn caps_refuse_and_leave_nothing() {
        let source = tempfile::tempdir().unwrap();
        sample(source.path());
        let bytes = pack_dir(source.path(), Vec::new()).unwrap();
        let cases = [
            UnpackLimits {
                max_file_size: 299_999,
                ..UnpackLimits::default()
            },
            UnpackLimits {
                max_total_size: 300_010,
                ..UnpackLimits::default()
            },
            UnpackLimits {
                max_entries: 3,
                ..UnpackLimits::default()
            },
        ];
        for limits in cases {
            let out = tempfile::tempdir().unwrap();
            let target = out.path().join("demo");
            let error = unpack(&bytes[..], &target, &limits).unwrap_err();
            assert!(matches!(error, ArchiveError::Limit { .. }), "{error}");
            assert!(leftovers(out.path()).is_empty(), "{limits:?}");
        }
    }

    #[test]
    fn counting_reader_enforces_caps_on_real_bytes() {
        let limits = UnpackLimits {
            max_entries: 10,
            max_file_size: 10,
            max_total_size: 15,
            exact_total: None,
        };
        let mut total = 0;
        let data = [0u8; 12];
        let mut counted = Counted {
            inner: &data[..],
            file_bytes: 0,
            total: &mut total,
            limits: &limits,
            exceeded: None,
        };
        let mut sink = Vec::new();
        assert!(io::copy(&mut counted, &mut sink).is_err());
        assert!(matches!(
            counted.exceeded,
            Some(ArchiveError::Limit {
                what: "file size",
                ..
            })
        ));
    }

    #[test]
    fn list_entries_matches_the_pack() {
        let source = tempfile::tempdir().unwrap();
        sample(source.path());
        let bytes = pack_dir(source.path(), Vec::new()).unwrap();
        let entries = list_entries(&bytes[..], &UnpackLimits::default()).unwrap();
        let big = entries.iter().find(|e| e.path == "big.bin").unwrap();
        assert_eq!(big.size, 300_000);
        assert!(!big.is_dir);
        assert!(entries
            .iter()
            .any(|e| e.path == "templates/nested" && e.is_dir));
    }

    #[test]
    fn every_malicious_archive_is_refused_without_trace() {
        for (name, bytes) in malicious_corpus() {
            let out = tempfile::tempdir().unwrap();
            let target = out.path().join("site/pack");
            let result = unpack(&bytes[..], &target, &UnpackLimits::default());
            assert!(result.is_err(), "{name}: accepted");
            assert!(!target.exists(), "{name}: target left behind");
            assert!(
                leftovers(&out.path().join("site")).is_empty(),
                "{name}: staging left behind"
            );
            assert_eq!(leftovers(out.path()), ["site"], "{name}: wrote outside");
            assert!(
                list_entries(&bytes[..], &UnpackLimits::default()).is_err(),
                "{name}: listed"
            );
        }
    }
}
