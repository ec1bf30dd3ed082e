//! Install: resolve a name and requirement, make sure the archive is here (fetching it
//! from peers when a node runs), check it byte for byte, then unpack it atomically.
//!
//! Nothing is visible at the target until every file is in place (the unpacker renames a
//! finished temporary directory), and the install is recorded only after that.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::query::{lookup_missed, missed};
use super::reports::{InstallReport, FORMAT_VERSION};
use super::requests::{InstallRequest, Progress};
use super::{P2PRegistry, RegistryError, Result};
use crate::package::archive::{unpack, UnpackLimits, UnpackReport};
use crate::store::{IndexedVersion, Store};

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

/// Where a pack is installed when no `--to` is given.
pub(super) fn default_install_dir(
    data_dir: &Path,
    name: &str,
    version: &semver::Version,
) -> PathBuf {
    data_dir.join("packs").join(format!("{name}@{version}"))
}

pub(super) async fn install(
    registry: &P2PRegistry,
    request: InstallRequest,
    progress: Option<Progress>,
) -> Result<InstallReport> {
    let InstallRequest {
        spec,
        to,
        publisher,
        archive,
    } = request;
    let exact = semver::Version::parse(spec.req.trim()).ok();
    let req = parse_requirement(&spec.req)?;
    let local = || {
        let (name, req, exact, publisher) = (
            spec.name.clone(),
            req.clone(),
            exact.clone(),
            publisher.clone(),
        );
        registry.store().call(move |store| {
            let publisher = publisher
                .map(|p| store.find_publisher(&name, &p))
                .transpose()?;
            // An exact version installs even when yanked, as a lockfile needs.
            let found = match exact {
                Some(version) => store.version(&name, &version, publisher.as_ref())?,
                None => None,
            };
            let meta = match (archive, found) {
                // Pinned by hash: exactly that archive, even for a compromised version.
                (Some(archive), _) => {
                    store.version_with_archive(&name, &req, publisher.as_ref(), &archive)?
                }
                (None, Some(meta)) => meta,
                (None, None) => store.resolve(&name, &req, publisher.as_ref())?,
            };
            if archive.is_none() {
                store.ensure_not_compromised(&meta)?;
            }
            let stored = store.has_archive(&meta.archive.blake3);
            Ok::<_, RegistryError>((meta, stored))
        })
    };
    // A name or version missing here is looked up in the DHT before giving up.
    let (meta, stored) = match local().await {
        Err(e) if missed(&e) && lookup_missed(registry, &spec.name, exact.as_ref()).await? => {
            local().await?
        }
        other => other?,
    };
    let target =
        to.unwrap_or_else(|| default_install_dir(registry.data_dir(), &meta.name, &meta.version));

    let fetched_from = if stored {
        Vec::new()
    } else {
        fetch_archive(registry, &meta, progress).await?
    };

    let meta_for_unpack = meta.clone();
    let target_for_unpack = target.clone();
    // A download just checked every byte against the record; only an archive that was
    // already stored is re-hashed before unpacking.
    let rehash = fetched_from.is_empty();
    let config = registry.config();
    let limits = UnpackLimits::for_archive(
        meta.archive.size,
        meta.record.unpacked_size,
        config.unpack_ratio,
        config.unpack_min_size,
    );
    let (unpacked, already) = registry
        .store()
        .call(move |store| {
            unpack_verified(store, &meta_for_unpack, &target_for_unpack, rehash, &limits)
        })
        .await?;
    Ok(InstallReport {
        format_version: FORMAT_VERSION,
        name: meta.record.name,
        version: meta.record.version,
        publisher: meta.record.publisher,
        archive: meta.record.archive.blake3,
        size: meta.record.archive.size,
        path: target,
        files: unpacked.files,
        unpacked_size: unpacked.bytes,
        fetched_from,
        already_installed: already,
    })
}

/// Downloads the archive from the peers that provide it, verified chunk by chunk.
async fn fetch_archive(
    registry: &P2PRegistry,
    meta: &IndexedVersion,
    progress: Option<Progress>,
) -> Result<Vec<String>> {
    let Some(client) = registry.client() else {
        return Err(RegistryError::Refused(format!(
            "{}@{}: the archive is not stored here and no node is running; start one with `ggen-p2p start` (with --bootstrap to reach a peer that has it)",
            meta.name, meta.version
        )));
    };
    let mut providers = client.find_providers(meta.archive.blake3).await?;
    if providers.is_empty() {
        // A DHT lookup can come back empty while routing tables settle; connected peers
        // are asked directly (those without the archive answer "not found" and the
        // download drops them).
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
        registry.store(),
        &meta.archive,
        providers.clone(),
        move |done, total| progress(done, total),
    )
    .await?;
    let archive = meta.archive.blake3;
    let cache_size = registry.config().cache_size;
    let store = registry.store();
    store
        .call(move |store| store.touch_archive(&archive, false))
        .await?;
    client.provide(archive).await?;
    let evicted = store
        .call(move |store| store.evict_archives(cache_size))
        .await?;
    tracing::debug!(count = evicted.len(), "evicted cached archives");
    for archive in evicted {
        client.stop_providing(archive).await?;
    }
    Ok(providers.into_iter().map(|peer| peer.to_string()).collect())
}

/// Checks the stored archive against its record, then unpacks it within `limits` (set
/// from the record's archive size). Returns what was unpacked (nothing when this exact
/// archive was already installed there) and whether it was.
fn unpack_verified(
    store: &Store,
    meta: &IndexedVersion,
    target: &Path,
    rehash: bool,
    limits: &UnpackLimits,
) -> Result<(UnpackReport, bool)> {
    if target.exists() {
        let same = store.installs()?.into_iter().any(|install| {
            install.path == target
                && install.version == meta.version
                && crate::package::fields::normalize_name(&install.name)
                    == crate::package::fields::normalize_name(&meta.name)
        });
        if same {
            return Ok((UnpackReport::default(), true));
        }
    }
    // The index row came from a record; re-check that record's signature so damage to
    // the database cannot smuggle in another archive.
    if store.signed_record(&meta.record_id)?.is_none() {
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
    let report = unpack(file, target, limits)?;
    store.record_install(&meta.name, &meta.version, target)?;
    Ok((report, false))
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
