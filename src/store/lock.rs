//! One daemon per data directory: `DATA_DIR/daemon.lock`, an OS file lock that `start`
//! holds for its whole life, with its PID written inside. It does not keep offline
//! commands out of the store (SQLite serialises them); it lets them see that a daemon
//! owns the directory, so they talk to it instead of working beside it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "daemon.lock";

/// How long `acquire` retries: a command probing the lock ([`holder`]) holds a shared
/// lock for an instant, which must not make a starting daemon fail.
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(500);
/// How long [`holder`] waits for a daemon that has just taken the lock to write its PID.
const PID_PATIENCE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is held by a running node (pid {pid}); stop it first (kill -TERM {pid}) or pass another --data-dir")]
    Held { path: PathBuf, pid: String },
    #[error(
        "{path}: cannot take the daemon lock: {source}; check the data directory's permissions"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or the process ending, however it ends) releases it. The
/// file itself stays: deleting a lock file races with the next process opening it.
#[derive(Debug)]
pub struct DaemonLock {
    /// The open file is the lock: the OS releases it when this handle closes.
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes `dir/daemon.lock` exclusively and writes this process's PID into it, or
    /// says which PID holds it.
    pub fn acquire(dir: &Path) -> Result<DaemonLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let begun = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if begun.elapsed() < ACQUIRE_PATIENCE => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    let pid = read_pid(&mut file).unwrap_or_else(|| "unknown".into());
                    return Err(LockError::Held { path, pid });
                }
                Err(TryLockError::Error(source)) => return Err(io(source)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DaemonLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The PID of the daemon holding `dir/daemon.lock`, or `None` when no process holds it
/// (including when the file does not exist). Probes with a shared lock, released at once.
pub fn holder(dir: &Path) -> Result<Option<String>, LockError> {
    let path = dir.join(LOCK_FILE);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LockError::Io { path, source }),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => {
            let begun = Instant::now();
            loop {
                if let Some(pid) = read_pid(&mut file) {
                    return Ok(Some(pid));
                }
                if begun.elapsed() >= PID_PATIENCE {
                    return Ok(Some("unknown".into()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

/// The PID written in the lock file, if one is there yet.
fn read_pid(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let pid = text.trim();
    pid.parse::<u32>().ok().map(|_| pid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within one process a second open file description still conflicts (flock
    /// semantics), so this exercises the same path a second process takes.
    #[test]
    fn second_acquire_names_the_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        let lock = DaemonLock::acquire(dir.path()).unwrap();
        let me = std::process::id().to_string();
        assert_eq!(holder(dir.path()).unwrap(), Some(me.clone()));
        match DaemonLock::acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, me),
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        drop(lock);
        assert_eq!(holder(dir.path()).unwrap(), None);
        DaemonLock::acquire(dir.path()).unwrap();
    }
}
