//! Publish and yank: pack, store, sign, index, then announce if the node is running.
//!
//! Versions are immutable: publishing the same version with the same archive again is a
//! no-op, with another archive it is refused before anything is signed.

use std::time::{SystemTime, UNIX_EPOCH};

use super::reports::{PublishReport, YankReport, FORMAT_VERSION};
use super::requests::{PublishRequest, YankRequest};
use super::{P2PRegistry, Package, RegistryError, Result};
use crate::package::archive::pack_dir_counted;
use crate::package::{PublisherKey, Record, RecordBody, VersionRecord, YankRecord};
use crate::store::{IngestOutcome, Store};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Packs, stores and signs the pack in the request's directory; the record is then
/// announced when a node runs.
pub(super) async fn publish(
    registry: &P2PRegistry,
    request: PublishRequest,
) -> Result<PublishReport> {
    let key_path = registry.publisher_key_path();
    let (record, mut report) = registry
        .store()
        .call(move |store| {
            let package = Package::from_dir(&request.dir)?;
            let key = PublisherKey::load(&key_path)?;
            publish_local(store, &key, &package)
        })
        .await?;
    if let Some(client) = registry.client() {
        let provide = Some(report.archive.blake3);
        report.receipt = Some(client.announce(record, provide).await?.into());
    }
    Ok(report)
}

fn publish_local(
    store: &Store,
    key: &PublisherKey,
    package: &Package,
) -> Result<(Record, PublishReport)> {
    let manifest = &package.manifest;

    let (writer, unpacked_size) = pack_dir_counted(&package.dir, store.blob_writer()?)?;
    let digest = writer.commit()?;
    store.touch_archive(&digest.info.blake3, true)?;

    let existing = store.version(&manifest.name, &manifest.version, Some(&key.id()))?;
    if let Some(existing) = existing {
        if existing.archive.blake3 != digest.info.blake3 {
            return Err(RegistryError::Refused(format!(
                "{}@{} is already published with different content ({}); versions are immutable: bump the version in package.toml",
                manifest.name, manifest.version, existing.archive.blake3
            )));
        }
        let record = store.record(&existing.record_id)?.ok_or_else(|| {
            RegistryError::Refused(format!(
                "index lists {}@{} but its record is missing; the data directory may be damaged",
                manifest.name, manifest.version
            ))
        })?;
        let report = PublishReport {
            format_version: FORMAT_VERSION,
            name: existing.record.name,
            version: existing.record.version,
            publisher: existing.record.publisher,
            archive: existing.record.archive,
            record_id: existing.record_id,
            already_published: true,
            receipt: None,
        };
        return Ok((record, report));
    }

    let body = VersionRecord {
        unpacked_size: Some(unpacked_size),
        ..VersionRecord::new(key.id(), manifest, digest.info.clone(), now_ms())
    };
    let record = Record::sign(RecordBody::Version(body), key)?;
    match store.ingest_own(&record)? {
        IngestOutcome::Added | IngestOutcome::Duplicate => {}
        IngestOutcome::Equivocation { existing } => {
            return Err(RegistryError::Refused(format!(
                "{}@{} conflicts with record {existing}; versions are immutable: bump the version",
                manifest.name, manifest.version
            )))
        }
        IngestOutcome::Rejected { reason } => return Err(RegistryError::Refused(reason)),
    }
    let report = PublishReport {
        format_version: FORMAT_VERSION,
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        publisher: key.id(),
        archive: digest.info,
        record_id: record.id(),
        already_published: false,
        receipt: None,
    };
    Ok((record, report))
}

/// Signs and stores a yank of one of this publisher's versions, then announces it.
pub(super) async fn yank(registry: &P2PRegistry, request: YankRequest) -> Result<YankReport> {
    let spec = request.spec;
    if spec.req.is_empty() {
        return Err(RegistryError::Refused(format!(
            "yank needs an exact version: ggen-p2p yank {}@1.2.0",
            spec.name
        )));
    }
    let version = semver::Version::parse(&spec.req).map_err(|e| {
        RegistryError::Refused(format!(
            "{:?} is not an exact version (example: {}@1.2.0): {e}",
            spec.req, spec.name
        ))
    })?;
    let key_path = registry.publisher_key_path();
    let name = spec.name;
    let (record, name, version) = registry
        .store()
        .call(move |store| {
            let key = PublisherKey::load(&key_path)?;
            let Some(found) = store.version(&name, &version, Some(&key.id()))? else {
                return Err(RegistryError::Refused(format!(
                    "{name}@{version} was not published by your key {}; `ggen-p2p info {name}` shows its versions and publishers",
                    key.id()
                )));
            };
            let body = YankRecord {
                publisher: key.id(),
                name: found.name.clone(),
                version: version.clone(),
                yanked_at: now_ms(),
            };
            let record = Record::sign(RecordBody::Yank(body), &key)?;
            if let IngestOutcome::Rejected { reason } = store.ingest_own(&record)? {
                return Err(RegistryError::Refused(reason));
            }
            Ok((record, found.record.name, version))
        })
        .await?;
    let record_id = record.id();
    let receipt = match registry.client() {
        Some(client) => Some(client.announce(record, None).await?.into()),
        None => None,
    };
    Ok(YankReport {
        format_version: FORMAT_VERSION,
        name,
        version,
        record_id,
        receipt,
    })
}
