//! Install: resolve a name and requirement, make sure the archive is here (fetching it
//! from peers when a node runs), check it byte for byte, then unpack it atomically.
//!
//! Nothing is visible at the target until every file is in place (the unpacker renames a
//! finished temporary directory), and the install is recorded only after that.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::reports::{InstallReport, FORMAT_VERSION};
use super::{P2PRegistry, RegistryError, Result};
use crate::package::archive::{unpack, UnpackLimits};
use crate::package::PublisherId;
use crate::store::PackageMetadata;

/// Called with (bytes done, bytes total) while an archive downloads.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Reads `1.2.0` as exactly that version (as `cargo install foo@1.2.0` does) and anything
/// else as a semver requirement; empty means the latest.
pub fn parse_requirement(req: &str) -> Result<semver::VersionReq> {
    let req = req.trim();
    if req.is_empty() || req == "latest" {
        return Ok(semver::VersionReq::STAR);
    }
    if let Ok(version) = semver::Version::parse(req) {
        return Ok(semver::VersionReq {
            comparators: vec![semver::Comparator {
                op: semver::Op::Exact,
                major: version.major,
                minor: Some(version.minor),
                patch: Some(version.patch),
                pre: version.pre,
            }],
        });
    }
    semver::VersionReq::parse(req).map_err(|e| {
        RegistryError::Refused(format!(
            "{req:?} is not a version requirement ({e}); examples: 1.2.0, ^1.2, >=1.0, <2"
        ))
    })
}

impl P2PRegistry {
    /// Where a pack is installed when no `--to` is given.
    pub fn default_install_dir(&self, name: &str, version: &semver::Version) -> PathBuf {
        self.data_dir()
            .join("packs")
            .join(format!("{name}@{version}"))
    }

    pub async fn install_package(
        &self,
        name: &str,
        req: &str,
        publisher: Option<PublisherId>,
        to: Option<PathBuf>,
        progress: Option<Progress>,
    ) -> Result<InstallReport> {
        let exact = semver::Version::parse(req.trim()).ok();
        let req = parse_requirement(req)?;
        let name = name.to_string();
        let meta = self
            .blocking(move |this| {
                let store = this.store();
                // An exact version installs even when yanked, as a lockfile needs.
                if let Some(version) = exact {
                    if let Some(meta) = store.version(&name, &version, publisher.as_ref())? {
                        return Ok(meta);
                    }
                }
                Ok(store.resolve(&name, &req, publisher.as_ref())?)
            })
            .await?;
        let target = to.unwrap_or_else(|| self.default_install_dir(&meta.name, &meta.version));

        let fetched_from = if self.store().has_archive(&meta.archive.blake3) {
            Vec::new()
        } else {
            self.fetch_archive(&meta, progress).await?
        };

        let meta_for_unpack = meta.clone();
        let target_for_unpack = target.clone();
        // A download just checked every byte against the record; only an archive that
        // was already stored is re-hashed before unpacking.
        let rehash = fetched_from.is_empty();
        let (files, already) = self
            .blocking(move |this| {
                this.unpack_verified(&meta_for_unpack, &target_for_unpack, rehash)
            })
            .await?;
        Ok(InstallReport {
            format_version: FORMAT_VERSION,
            name: meta.name,
            version: meta.version,
            publisher: meta.publisher,
            archive: meta.archive.blake3,
            size: meta.archive.size,
            path: target,
            files,
            fetched_from,
            already_installed: already,
        })
    }

    /// Downloads the archive from the peers that provide it, verified chunk by chunk.
    async fn fetch_archive(
        &self,
        meta: &PackageMetadata,
        progress: Option<Progress>,
    ) -> Result<Vec<String>> {
        let Some(client) = self.client() else {
            return Err(RegistryError::Refused(format!(
                "{}@{}: the archive is not stored here and no node is running; start one with `ggen-p2p start` (with --bootstrap to reach a peer that has it)",
                meta.name, meta.version
            )));
        };
        let mut providers = client.find_providers(meta.archive.blake3).await?;
        if providers.is_empty() {
            // A DHT lookup can come back empty while routing tables settle; connected
            // peers are asked directly (those without the archive answer "not found"
            // and the download drops them).
            providers = client.connected_peers().await?;
        }
        if providers.is_empty() {
            return Err(RegistryError::Refused(format!(
                "{}@{}: no peer provides archive {}; check `ggen-p2p peers` or try again once the publisher is online",
                meta.name, meta.version, meta.archive.blake3
            )));
        }
        let progress = progress.unwrap_or_else(|| Arc::new(|_, _| {}));
        crate::net::transfer::download_to_store(
            &client,
            self.store(),
            &meta.archive,
            providers.clone(),
            move |done, total| progress(done, total),
        )
        .await?;
        self.store().touch_archive(&meta.archive.blake3, false)?;
        client.provide(meta.archive.blake3).await?;
        let evicted = self.store().evict_archives(self.config().cache_size)?;
        tracing::debug!(count = evicted.len(), "evicted cached archives");
        Ok(providers.into_iter().map(|peer| peer.to_string()).collect())
    }

    /// Checks the stored archive against its record, then unpacks it. Returns the number
    /// of files and whether this exact archive was already installed there.
    fn unpack_verified(
        &self,
        meta: &PackageMetadata,
        target: &Path,
        rehash: bool,
    ) -> Result<(u64, bool)> {
        let store = self.store();
        if target.exists() {
            let same = store.installs()?.into_iter().any(|install| {
                install.path == target
                    && install.version == meta.version
                    && crate::package::fields::normalize_name(&install.name)
                        == crate::package::fields::normalize_name(&meta.name)
            });
            if same {
                return Ok((0, true));
            }
        }
        // The index row came from a record; re-check that record's signature so damage
        // to the database cannot smuggle in another archive.
        if store.record(&meta.record_id)?.is_none() {
            return Err(RegistryError::Refused(format!(
                "{}@{}: its signed record is missing from the store; run `ggen-p2p verify`",
                meta.name, meta.version
            )));
        }
        if rehash {
            store.verify_archive(&meta.archive)?;
        }
        let path = store.archive_path(&meta.archive.blake3).ok_or_else(|| {
            RegistryError::Refused(format!(
                "archive {} vanished from the store; run the install again",
                meta.archive.blake3
            ))
        })?;
        let file = std::fs::File::open(&path).map_err(|e| {
            RegistryError::Refused(format!("{}: cannot open archive: {e}", path.display()))
        })?;
        let report = unpack(file, target, &UnpackLimits::default())?;
        store.record_install(&meta.name, &meta.version, target)?;
        Ok((report.files, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_versions_are_exact_and_requirements_pass_through() {
        let exact = parse_requirement("1.2.0").unwrap();
        assert!(exact.matches(&semver::Version::new(1, 2, 0)));
        assert!(!exact.matches(&semver::Version::new(1, 3, 0)));
        let caret = parse_requirement("^1.2").unwrap();
        assert!(caret.matches(&semver::Version::new(1, 3, 0)));
        assert_eq!(parse_requirement("").unwrap(), semver::VersionReq::STAR);
        assert!(parse_requirement("one.two").is_err());
    }
}
