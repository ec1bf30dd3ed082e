//! Publish and yank: pack, store, sign, index, then announce if the node is running.
//!
//! Versions are immutable: publishing the same version with the same archive again is a
//! no-op, with another archive it is refused before anything is signed.

use std::time::{SystemTime, UNIX_EPOCH};

use super::reports::{PublishReport, YankReport, FORMAT_VERSION};
use super::{P2PRegistry, Package, RegistryError, Result};
use crate::package::archive::pack_dir;
use crate::package::{Record, RecordBody, VersionRecord, YankRecord};
use crate::store::IngestOutcome;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl P2PRegistry {
    /// Packs, stores and signs `package` locally; the record is then announced.
    pub async fn publish_package(&self, package: Package) -> Result<PublishReport> {
        let (record, mut report) = self
            .blocking(move |this| this.publish_local(&package))
            .await?;
        if let Some(client) = self.client() {
            let provide = Some(report.archive.blake3);
            report.receipt = Some(client.announce(record, provide).await?);
        }
        Ok(report)
    }

    fn publish_local(&self, package: &Package) -> Result<(Record, PublishReport)> {
        let key = self.publisher_key()?;
        let store = self.store();
        let manifest = &package.manifest;

        let writer = pack_dir(&package.dir, store.blob_writer()?)?;
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
                name: existing.name,
                version: existing.version,
                publisher: existing.publisher,
                archive: existing.archive,
                record_id: existing.record_id,
                already_published: true,
                receipt: None,
            };
            return Ok((record, report));
        }

        let body = VersionRecord::new(key.id(), manifest, digest.info.clone(), now_ms());
        let record = Record::sign(RecordBody::Version(body), &key)?;
        match store.ingest(&record)? {
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
    pub async fn yank(&self, name: &str, version: &semver::Version) -> Result<YankReport> {
        let (name, version) = (name.to_string(), version.clone());
        let (record, name, version) = self
            .blocking(move |this| {
                let key = this.publisher_key()?;
                let store = this.store();
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
                if let IngestOutcome::Rejected { reason } = store.ingest(&record)? {
                    return Err(RegistryError::Refused(reason));
                }
                Ok((record, found.name, version))
            })
            .await?;
        let record_id = record.id();
        let receipt = match self.client() {
            Some(client) => Some(client.announce(record, None).await?),
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
}
