//! Crash hygiene: what an interrupted publish, download or install leaves behind (temp
//! files in `blobs/tmp/`, stale or unknown partial downloads, `.ggen-unpack-*` staging
//! directories beside recorded installs) is swept on open, and `verify` finds and repairs
//! orphans (blobs without a row, rows without a blob, rows with a damaged chunk list).
//! Re-verifying records and re-hashing archives is in `audit.rs`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Store, StoreError};
use crate::package::archive::STAGING_PREFIX;
use crate::package::Blake3Hash;

/// Partial downloads untouched this long are abandoned and swept.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Unpack staging directories untouched this long belong to a dead install (an unpack
/// takes seconds; another process's live staging directory is younger).
pub const STAGING_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// Temp files younger than this are left alone even when unlocked: a writer takes its
/// lock just after creating the file.
const TEMP_MIN_AGE: Duration = Duration::from_secs(2);

/// One leftover found (and, when sweeping or repairing, removed or fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// `temp_file`, `partial_download`, `unpack_staging`, `blob_without_row`,
    /// `row_without_blob` or `damaged_row`.
    pub kind: &'static str,
    /// The file's path or the archive's BLAKE3 (hex).
    pub id: String,
}

impl Store {
    /// Removes what interrupted work left behind: temp files in `blobs/tmp/` no live
    /// writer holds (each writer holds an OS lock on its file), partial downloads older
    /// than [`PARTIAL_MAX_AGE`] or of archives no record names, and unpack staging
    /// directories older than [`STAGING_MAX_AGE`] beside recorded install targets.
    /// Best effort: a file that cannot be removed is logged and left for next time.
    pub fn sweep(&self) -> Vec<Orphan> {
        let found = self.leftovers(SystemTime::now());
        let mut removed = Vec::with_capacity(found.len());
        for (orphan, path) in found {
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed.push(orphan),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::debug!("sweep: cannot remove {}: {e}", path.display()),
            }
        }
        removed
    }

    /// The leftovers [`Store::sweep`] would remove, with their paths.
    fn leftovers(&self, now: SystemTime) -> Vec<(Orphan, PathBuf)> {
        let mut out = Vec::new();
        let tmp_dir = self.dir().join("blobs/tmp");
        for path in entries(&tmp_dir) {
            let settled = age(&path, now).is_none_or(|age| age >= TEMP_MIN_AGE);
            if path.is_file() && settled && !held_by_writer(&path) {
                out.push(orphan("temp_file", path));
            }
        }
        let partial_dir = self.partial_dir();
        for path in entries(&partial_dir) {
            if !path.is_file() {
                continue;
            }
            let stale = age(&path, now).is_some_and(|age| age > PARTIAL_MAX_AGE);
            let unknown = partial_archive(&path).is_none_or(|hash| !self.archive_named(&hash));
            if stale || unknown {
                out.push(orphan("partial_download", path));
            }
        }
        if let Ok(installs) = self.installs() {
            let mut parents: Vec<PathBuf> = installs
                .iter()
                .filter_map(|i| i.path.parent().map(Path::to_path_buf))
                .collect();
            parents.sort();
            parents.dedup();
            for parent in parents {
                for path in entries(&parent) {
                    let staging = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(STAGING_PREFIX));
                    if staging
                        && path.is_dir()
                        && age(&path, now).is_some_and(|age| age > STAGING_MAX_AGE)
                    {
                        out.push(orphan("unpack_staging", path));
                    }
                }
            }
        }
        out
    }

    /// Temp files and partial downloads a sweep would remove, blobs with no archive row,
    /// archive rows with no blob and archive rows whose chunk list is damaged. With
    /// `repair`, each is removed (a row without its blob is forgotten, so the archive is
    /// fetched again when needed) and the returned list is what was fixed.
    pub fn orphans(&self, repair: bool) -> Result<Vec<Orphan>, StoreError> {
        let mut out = Vec::new();
        if repair {
            out.extend(self.sweep());
        } else {
            out.extend(
                self.leftovers(SystemTime::now())
                    .into_iter()
                    .map(|(o, _)| o),
            );
        }
        let rows: Vec<(Vec<u8>, i64, u32, usize)> = self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT blake3, size, chunk_size, length(chunks) FROM archives")?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        let mut known = std::collections::BTreeSet::new();
        let mut forget = Vec::new();
        for (key, size, chunk_size, chunks_len) in rows {
            let Ok(hash) = <[u8; 32]>::try_from(key.as_slice()).map(Blake3Hash) else {
                out.push(Orphan {
                    kind: "damaged_row",
                    id: hex(&key),
                });
                forget.push((key, None));
                continue;
            };
            known.insert(hash);
            let expected_chunks = if size < 0 || chunk_size == 0 {
                None
            } else {
                Some((size as u64).div_ceil(chunk_size as u64).max(1) as usize * 32)
            };
            let path = self.blob_path(&hash);
            if expected_chunks != Some(chunks_len) {
                out.push(Orphan {
                    kind: "damaged_row",
                    id: hash.to_string(),
                });
                forget.push((key, Some(path)));
            } else if !path.is_file() {
                out.push(Orphan {
                    kind: "row_without_blob",
                    id: hash.to_string(),
                });
                forget.push((key, None));
            }
        }
        let blobs_dir = self.dir().join("blobs");
        let mut stray = Vec::new();
        for shard in entries(&blobs_dir) {
            let shard_name = shard.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if shard_name.len() != 2 || !shard.is_dir() {
                continue; // tmp/, partial/
            }
            for path in entries(&shard) {
                let named = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<Blake3Hash>().ok());
                if named.is_none_or(|hash| !known.contains(&hash)) {
                    out.push(orphan("blob_without_row", path.clone()).0);
                    stray.push(path);
                }
            }
        }
        if repair {
            self.write(|tx, _| {
                let mut delete = tx.prepare_cached("DELETE FROM archives WHERE blake3 = ?1")?;
                for (key, _) in &forget {
                    delete.execute([key])?;
                }
                Ok(())
            })?;
            for path in forget.into_iter().filter_map(|(_, p)| p).chain(stray) {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(StoreError::Io { path, source }),
                }
            }
        }
        Ok(out)
    }

    /// True when some version record names `hash` as its archive.
    fn archive_named(&self, hash: &Blake3Hash) -> bool {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT 1 FROM versions WHERE archive = ?1 LIMIT 1")?
                .exists([hash.as_bytes().as_slice()])?)
        })
        .unwrap_or(true) // unsure: keep the file
    }
}

fn orphan(kind: &'static str, path: PathBuf) -> (Orphan, PathBuf) {
    (
        Orphan {
            kind,
            id: path.display().to_string(),
        },
        path,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entries of `dir` (none if it cannot be read).
fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn age(path: &Path, now: SystemTime) -> Option<Duration> {
    let modified = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    now.duration_since(modified).ok()
}

/// The archive a partial-download file (`<blake3>.part`, `.chunks`, `.have`, or one of
/// their `.tmp` siblings) belongs to.
fn partial_archive(path: &Path) -> Option<Blake3Hash> {
    let name = path.file_name()?.to_str()?;
    name.split('.').next()?.parse().ok()
}

/// True while a live writer holds `path` (writers lock their temp file for their whole
/// life; the OS drops the lock when the process dies, however it dies).
fn held_by_writer(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => false,
        Err(fs::TryLockError::WouldBlock) => true,
        Err(fs::TryLockError::Error(_)) => true, // unsure: keep the file
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn kinds(orphans: &[Orphan]) -> Vec<&'static str> {
        let mut kinds: Vec<_> = orphans.iter().map(|o| o.kind).collect();
        kinds.sort();
        kinds
    }

    fn backdate(path: &Path, by: Duration) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn sweep_keeps_live_writers_and_removes_dead_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut live = store.blob_writer().unwrap();
        live.write_all(b"still being written").unwrap();
        let dead = dir.path().join("blobs/tmp/.tmpDEAD");
        fs::write(&dead, b"half an archive").unwrap();
        backdate(&dead, Duration::from_secs(10));
        let live_path = fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| *p != dead)
            .unwrap();
        backdate(&live_path, Duration::from_secs(10));
        // A partial download of an archive no record names.
        let unknown = store
            .partial_dir()
            .join(format!("{}.part", Blake3Hash::of(b"x")));
        fs::create_dir_all(store.partial_dir()).unwrap();
        fs::write(&unknown, b"").unwrap();

        let removed = store.sweep();
        assert_eq!(kinds(&removed), ["partial_download", "temp_file"]);
        assert!(!dead.exists() && !unknown.exists());
        assert!(live_path.exists(), "a live writer's temp file was swept");
        live.commit().unwrap();
        assert!(store.sweep().is_empty());
        assert!(store.orphans(false).unwrap().is_empty());
    }

    #[test]
    fn repair_removes_orphan_blobs_and_forgets_rows_without_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut kept = store.blob_writer().unwrap();
        kept.write_all(b"kept archive").unwrap();
        let kept = kept.commit().unwrap().info.blake3;
        let mut lost = store.blob_writer().unwrap();
        lost.write_all(b"lost archive").unwrap();
        let lost = lost.commit().unwrap().info.blake3;
        fs::remove_file(store.blob_path(&lost)).unwrap();
        let planted = store.blob_path(&Blake3Hash::of(b"planted"));
        fs::create_dir_all(planted.parent().unwrap()).unwrap();
        fs::write(&planted, b"planted").unwrap();

        let found = store.orphans(false).unwrap();
        assert_eq!(kinds(&found), ["blob_without_row", "row_without_blob"]);
        assert!(found.iter().any(|o| o.id == lost.to_string()));
        assert!(planted.exists(), "a report-only verify removed a file");

        let fixed = store.orphans(true).unwrap();
        assert_eq!(kinds(&fixed), kinds(&found));
        assert!(!planted.exists());
        assert!(store.chunk_hashes(&lost).unwrap().is_none());
        assert!(store.has_archive(&kept));
        assert!(store.orphans(false).unwrap().is_empty());
    }
}
