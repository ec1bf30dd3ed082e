//! `key rotate`: a new publisher key takes over the old one's names. The rotation record
//! is signed by both keys, ingested, then the key files are swapped (the old one kept as
//! `publisher.key.old-<ms>`) and the record announced. Following rotations when deciding
//! owners is the store's job.

use super::publish::now_ms;
use super::reports::{RotateKeyReport, FORMAT_VERSION};
use super::requests::RotateKeyRequest;
use super::{P2PRegistry, RegistryError, Result};
use crate::package::{KeyRotation, PublisherKey, Record, RecordBody};
use crate::store::IngestOutcome;

pub(super) async fn rotate_key(
    registry: &P2PRegistry,
    _request: RotateKeyRequest,
) -> Result<RotateKeyReport> {
    let key_path = registry.publisher_key_path();
    let (record, old, new, old_key_path) = registry
        .store()
        .call(move |store| {
            let old = PublisherKey::load(&key_path)?;
            let new = PublisherKey::generate();
            let now = now_ms();
            let file = |suffix: String| {
                let mut name = key_path.file_name().unwrap_or_default().to_os_string();
                name.push(suffix);
                key_path.with_file_name(name)
            };
            // The new key is on disk before the record that hands names to it exists.
            let staged = file(".new".into());
            new.save(&staged, true)?;
            let body = RecordBody::Rotation(KeyRotation::new(old.id(), &new, now));
            let record = Record::sign(body, &old)?;
            if let IngestOutcome::Rejected { reason } = store.ingest_own(&record)? {
                let _ = std::fs::remove_file(&staged);
                return Err(RegistryError::Refused(reason));
            }
            let old_key_path = file(format!(".old-{now}"));
            old.save(&old_key_path, false)?;
            std::fs::rename(&staged, &key_path).map_err(|e| {
                RegistryError::Refused(format!(
                    "could not move the new key {} to {}: {e}; move it by hand (the rotation is recorded)",
                    staged.display(),
                    key_path.display()
                ))
            })?;
            Ok((record, old.id(), new.id(), old_key_path))
        })
        .await?;
    let record_id = record.id();
    let receipt = match registry.client() {
        Some(client) => Some(client.announce(record, None).await?.into()),
        None => None,
    };
    Ok(RotateKeyReport {
        format_version: FORMAT_VERSION,
        old,
        new,
        record_id,
        old_key_path,
        receipt,
    })
}
