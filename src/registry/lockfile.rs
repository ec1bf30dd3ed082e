//! `ggen-p2p.lock`: the exact result of one install — every pack's version, publisher
//! and both archive hashes — written as sorted, stable TOML inside the install target,
//! beside the root pack's `package.toml` (as `Cargo.lock` sits beside `Cargo.toml`).
//!
//! This file owns the format (write, parse, compare); deciding what goes in it is
//! `install.rs`'s job.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{RegistryError, Result};
use crate::package::fields::normalize_name;
use crate::package::{Blake3Hash, PublisherId, Sha256Hash};

/// File name of the lockfile inside an install target.
pub const LOCKFILE: &str = "ggen-p2p.lock";
/// Version of the lockfile format written here.
pub const LOCK_VERSION: u32 = 1;

/// What was requested, and every pack the request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    /// The requested pack and requirement (`*` for "the latest").
    pub root: LockRoot,
    /// Sorted by normalized name (one version per pack).
    pub packages: Vec<LockedPack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRoot {
    pub name: String,
    pub requirement: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPack {
    pub name: String,
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub blake3: Blake3Hash,
    pub sha256: Sha256Hash,
    pub size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: u32,
    root: LockRoot,
    #[serde(default, rename = "package")]
    packages: Vec<LockedPack>,
}

/// Where the lockfile of an install target lives.
pub fn path_in(target: &Path) -> PathBuf {
    target.join(LOCKFILE)
}

impl Lockfile {
    /// Every locked pack's exact version, by normalized name (resolution pins).
    pub fn pins(&self) -> super::resolve::Pins {
        (self.packages.iter())
            .map(|p| (normalize_name(&p.name), p.version.clone()))
            .collect()
    }

    pub fn new(root: LockRoot, mut packages: Vec<LockedPack>) -> Self {
        packages.sort_by_key(|a| normalize_name(&a.name));
        Self { root, packages }
    }

    /// The TOML text: the same lock always gives the same bytes.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("# Written by `ggen-p2p install`; `install --locked` reproduces it.\n");
        out.push_str("# Do not edit by hand.\n");
        let _ = writeln!(out, "version = {LOCK_VERSION}\n");
        out.push_str("[root]\n");
        let _ = writeln!(out, "name = {}", quote(&self.root.name));
        let _ = writeln!(out, "requirement = {}", quote(&self.root.requirement));
        for p in &self.packages {
            out.push_str("\n[[package]]\n");
            let _ = writeln!(out, "name = {}", quote(&p.name));
            let _ = writeln!(out, "version = {}", quote(&p.version.to_string()));
            let _ = writeln!(out, "publisher = {}", quote(&p.publisher.to_string()));
            let _ = writeln!(out, "blake3 = {}", quote(&p.blake3.to_hex()));
            let _ = writeln!(out, "sha256 = {}", quote(&p.sha256.to_hex()));
            let _ = writeln!(out, "size = {}", p.size);
        }
        out
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            RegistryError::Refused(format!(
                "{}: not a valid lockfile ({}); delete it and install without --locked to write a new one",
                path.display(),
                e.message()
            ))
        })?;
        if raw.version != LOCK_VERSION {
            return Err(RegistryError::Refused(format!(
                "{}: lockfile format {} is not understood by this build (it writes {LOCK_VERSION}); upgrade ggen-p2p",
                path.display(),
                raw.version
            )));
        }
        Ok(Self::new(raw.root, raw.packages))
    }

    /// Reads the lockfile of `target`, if there is one.
    pub fn read(target: &Path) -> Result<Option<Self>> {
        let path = path_in(target);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Refused(format!(
                "{}: cannot read the lockfile: {e}",
                path.display()
            ))),
        }
    }

    pub fn get(&self, name: &str) -> Option<&LockedPack> {
        let norm = normalize_name(name);
        self.packages
            .iter()
            .find(|p| normalize_name(&p.name) == norm)
    }

    /// What differs from `self` (the lock on disk) in `new` (a fresh resolution), one
    /// phrase per difference; empty when they are the same.
    pub fn differences(&self, new: &Lockfile) -> Vec<String> {
        let mut out = Vec::new();
        if self.root != new.root {
            out.push(format!(
                "the lock is for {} {} but this install asks for {} {}",
                self.root.name, self.root.requirement, new.root.name, new.root.requirement
            ));
        }
        for old in &self.packages {
            match new.get(&old.name) {
                None => out.push(format!("{} {} is no longer needed", old.name, old.version)),
                Some(now) if now.version != old.version => out.push(format!(
                    "{} would change from {} to {}",
                    old.name, old.version, now.version
                )),
                Some(now) if now.publisher != old.publisher => out.push(format!(
                    "{} {} is now published by {} (locked: {})",
                    old.name, old.version, now.publisher, old.publisher
                )),
                Some(now) if now.blake3 != old.blake3 || now.sha256 != old.sha256 => {
                    out.push(format!(
                        "{} {} has archive {} (locked: {})",
                        old.name, old.version, now.blake3, old.blake3
                    ))
                }
                Some(now) if now != old => {
                    out.push(format!("{} {} differs in size", old.name, old.version))
                }
                Some(_) => {}
            }
        }
        for now in &new.packages {
            if self.get(&now.name).is_none() {
                out.push(format!("{} {} would be added", now.name, now.version));
            }
        }
        out
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::PublisherKey;

    fn pack(name: &str, version: &str, seed: u8) -> LockedPack {
        LockedPack {
            name: name.into(),
            version: semver::Version::parse(version).unwrap(),
            publisher: PublisherKey::generate().id(),
            blake3: Blake3Hash([seed; 32]),
            sha256: Sha256Hash([seed ^ 0xff; 32]),
            size: 100 + seed as u64,
        }
    }

    fn root() -> LockRoot {
        LockRoot {
            name: "app".into(),
            requirement: "^1".into(),
        }
    }

    #[test]
    fn written_sorted_and_parsed_back_to_the_same_bytes() {
        let lock = Lockfile::new(
            root(),
            vec![
                pack("zeta", "1.0.0", 1),
                pack("app", "1.2.0", 2),
                pack("m_id", "0.3.0", 3),
            ],
        );
        let text = lock.to_toml();
        let names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["app", "m_id", "zeta"]);
        let again = Lockfile::parse(&text, Path::new("x.lock")).unwrap();
        assert_eq!(again, lock);
        assert_eq!(again.to_toml(), text);
        // Valid TOML for any other tool too.
        let value: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(value["package"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn differences_name_each_change() {
        let a = pack("app", "1.2.0", 2);
        let lib = pack("lib", "1.0.0", 4);
        let old = Lockfile::new(root(), vec![a.clone(), lib.clone()]);
        let mut newer = lib.clone();
        newer.version = semver::Version::new(1, 1, 0);
        let new = Lockfile::new(root(), vec![a.clone(), newer, pack("extra", "0.1.0", 5)]);
        let diff = old.differences(&new);
        assert_eq!(
            diff,
            [
                "lib would change from 1.0.0 to 1.1.0",
                "extra 0.1.0 would be added"
            ]
        );
        let mut swapped = lib.clone();
        swapped.blake3 = Blake3Hash([9; 32]);
        let diff = old.differences(&Lockfile::new(root(), vec![a, swapped]));
        assert_eq!(diff.len(), 1);
        assert!(
            diff[0].starts_with("lib 1.0.0 has archive 0909"),
            "{diff:?}"
        );
        assert!(old.differences(&old).is_empty());
    }

    #[test]
    fn unknown_keys_and_versions_are_refused() {
        let lock = Lockfile::new(root(), vec![pack("app", "1.2.0", 2)]);
        let text = lock.to_toml().replace("size =", "sizes =");
        let err = Lockfile::parse(&text, Path::new("x.lock")).unwrap_err();
        assert!(err.to_string().contains("not a valid lockfile"), "{err}");
        let text = lock.to_toml().replace("version = 1\n", "version = 9\n");
        let err = Lockfile::parse(&text, Path::new("x.lock")).unwrap_err();
        assert!(err.to_string().contains("format 9"), "{err}");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
