//! The package manifest: `package.toml` (ours) or ggen's older `gpack.toml`, read into
//! one [`Manifest`] and validated so that errors name the file, the field and the rule.
//!
//! Validation rules live here and are reused when a record arrives from the network,
//! so a peer cannot publish what `publish` would have refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest short text field (category, keyword, author, license, repository), in bytes.
pub const MAX_FIELD_LEN: usize = 256;
/// Most keywords, authors or dependencies a manifest may list.
pub const MAX_LIST_LEN: usize = 32;
/// Longest package name.
pub const MAX_NAME_LEN: usize = 64;

/// A package's metadata as its author wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    pub description: String,
    pub category: Option<String>,
    pub keywords: Vec<String>,
    pub authors: Vec<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
    pub dependencies: BTreeMap<String, VersionReq>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{dir}: no package.toml or gpack.toml; create package.toml with a [package] table (name, version, description)")]
    NotFound { dir: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{path}: field `{field}`: {rule}")]
    Invalid {
        path: PathBuf,
        field: String,
        rule: String,
    },
}

/// Why a name is not a valid package name, or `Ok` when it is.
pub fn validate_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok_first = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_rest = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
    if ok_first && ok_rest && bytes.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a package name: use 1-{MAX_NAME_LEN} lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// The form under which names are compared: '-' and '_' are the same character.
pub fn normalize_name(name: &str) -> String {
    name.replace('_', "-")
}

impl Manifest {
    /// Reads `package.toml` (or, failing that, `gpack.toml`) from a pack directory.
    pub fn from_dir(dir: &Path) -> Result<Self, ManifestError> {
        let _ = dir;
        todo!("manifest parsing")
    }
}
