//! Publisher keys: the Ed25519 key a person signs records with, kept apart from the
//! node's libp2p identity so one person can publish from many machines.
//!
//! A [`PublisherId`] is the public half, shown as `gp` followed by the base58 of the
//! 32-byte key: short enough to copy, unambiguous enough to pin in a config file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ID_PREFIX: &str = "gp";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{path}: a publisher key already exists; pass --force to replace it (the old key is lost)"
    )]
    Exists { path: PathBuf },
    #[error("{path}: no publisher key; create one with `ggen-p2p key generate`")]
    Missing { path: PathBuf },
    #[error("{path}: not a publisher key file (expected 64 hex digits): {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{input:?} is not a publisher id: expected `gp` followed by a base58 Ed25519 key")]
    BadId { input: String },
}

/// The public key that identifies a publisher.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublisherId([u8; 32]);

impl PublisherId {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first characters of the id, for tables where the full id does not fit.
    pub fn short(&self) -> String {
        self.to_string().chars().take(12).collect()
    }

    /// Checks `signature` over `message` against this key.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        key.verify(message, &signature).is_ok()
    }
}

impl fmt::Display for PublisherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ID_PREFIX}{}", bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for PublisherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublisherId({self})")
    }
}

impl FromStr for PublisherId {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || KeyError::BadId {
            input: s.to_string(),
        };
        let body = s.strip_prefix(ID_PREFIX).ok_or_else(bad)?;
        let bytes = bs58::decode(body).into_vec().map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        Ok(Self(bytes))
    }
}

impl Serialize for PublisherId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublisherId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A publisher as a user types it: a full id, or any prefix of one (`gp` and at least one
/// more character), such as the 12-character short form `info` prints. Which key a prefix
/// names depends on the claims known (`Store::find_publisher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherRef(String);

impl PublisherRef {
    /// The full id, when the text is one.
    pub fn exact(&self) -> Option<PublisherId> {
        self.0.parse().ok()
    }

    /// Whether `id` starts with this text.
    pub fn matches(&self, id: &PublisherId) -> bool {
        id.to_string().starts_with(&self.0)
    }
}

impl From<PublisherId> for PublisherRef {
    fn from(id: PublisherId) -> Self {
        Self(id.to_string())
    }
}

impl fmt::Display for PublisherRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PublisherRef {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix(ID_PREFIX).unwrap_or("");
        let base58 = |c: char| c.is_ascii_alphanumeric() && !matches!(c, '0' | 'O' | 'I' | 'l');
        if body.is_empty() || !body.chars().all(base58) {
            return Err(KeyError::BadId {
                input: s.to_string(),
            });
        }
        Ok(Self(s.to_string()))
    }
}

impl Serialize for PublisherRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublisherRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The secret half: signs version, yank and rotation records.
pub struct PublisherKey {
    signing: SigningKey,
}

impl PublisherKey {
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    pub fn id(&self) -> PublisherId {
        PublisherId(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Reads a key file written by [`PublisherKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KeyError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                KeyError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret).map_err(|e| KeyError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_secret(secret))
    }

    /// Writes the key with mode 0600, atomically; refuses to replace an existing key
    /// unless `force` is set, because a lost key cannot publish new versions of its names.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), KeyError> {
        if path.exists() && !force {
            return Err(KeyError::Exists {
                path: path.to_path_buf(),
            });
        }
        let text = format!("{}\n", hex::encode(self.signing.to_bytes()));
        write_private(path, text.as_bytes()).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Writes a secret file atomically (temp file with mode 0600, fsync, rename), so a crash
/// never leaves a half-written key and the secret is never readable by others.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    set_private(file.path())?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(unix)]
fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_and_signs() {
        let key = PublisherKey::generate();
        let id = key.id();
        let text = id.to_string();
        assert!(text.starts_with("gp"));
        assert_eq!(text.parse::<PublisherId>().unwrap(), id);
        let sig = key.sign(b"hello");
        assert!(id.verify(b"hello", &sig));
        assert!(!id.verify(b"hellp", &sig));
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in ["", "gp", "xx123", "gp0OIl", "gp1111"] {
            assert!(bad.parse::<PublisherId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn save_is_private_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("publisher.key");
        let key = PublisherKey::generate();
        key.save(&path, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            PublisherKey::generate().save(&path, false),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(PublisherKey::load(&path).unwrap().id(), key.id());
        let other = PublisherKey::generate();
        other.save(&path, true).unwrap();
        assert_eq!(PublisherKey::load(&path).unwrap().id(), other.id());
    }
}
