//! The registry's use of HTTP mirrors (config `mirrors`): the fallback when no peer has
//! a name's records or an archive, and `mirror sync`. What a mirror sends takes the
//! peers' path: records through `parse_record` and `Store::ingest_many` (signature,
//! owner rules, immutability, equivocation), archives through their signed digest; a
//! fetched archive is then provided to peers like any other (`install.rs`).

use super::reports::{MirrorRejection, MirrorSyncReport, FORMAT_VERSION};
use super::requests::{MirrorSyncRequest, Progress};
use super::{P2PRegistry, RegistryError, Result};
use crate::mirror::client::IndexRecords;
use crate::mirror::MirrorClient;
use crate::net::protocol::parse_record;
use crate::package::Blake3Hash;
use crate::store::{IndexedVersion, IngestOutcome, Store};

/// The configured mirrors, in order; a malformed URL is an error naming it.
pub(super) fn configured(registry: &P2PRegistry) -> Result<Vec<MirrorClient>> {
    registry
        .config()
        .mirrors
        .iter()
        .map(|url| MirrorClient::new(url).map_err(RegistryError::from))
        .collect()
}

/// What ingesting one index file did.
#[derive(Default)]
struct Ingested {
    imported: u64,
    already_known: u64,
    evidence: u64,
    rejected: Vec<MirrorRejection>,
}

/// Verifies and ingests the records of `name`'s index file, as records from a peer are.
async fn ingest_index(store: &Store, name: &str, lines: IndexRecords) -> Result<Ingested> {
    let mut out = Ingested::default();
    let mut valid = Vec::new();
    for line in lines {
        let reject = |id, reason| MirrorRejection {
            name: name.to_string(),
            id,
            reason,
        };
        match line {
            Err(reason) => out.rejected.push(reject(None, reason)),
            Ok(bytes) => {
                let id = Blake3Hash::of(&bytes);
                match parse_record(bytes) {
                    Ok(record) => valid.push(record),
                    Err(reason) => out.rejected.push(reject(Some(id), reason)),
                }
            }
        }
    }
    if valid.is_empty() {
        return Ok(out);
    }
    let ids: Vec<Blake3Hash> = valid.iter().map(|r| r.id()).collect();
    let outcomes = store.call(move |store| store.ingest_many(&valid)).await?;
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        match outcome {
            IngestOutcome::Added => out.imported += 1,
            IngestOutcome::Duplicate => out.already_known += 1,
            IngestOutcome::Equivocation { .. } => out.evidence += 1,
            IngestOutcome::Rejected { reason } => out.rejected.push(MirrorRejection {
                name: name.to_string(),
                id: Some(id),
                reason,
            }),
        }
    }
    Ok(out)
}

/// Asks each configured mirror, in order, for `name`'s index until one adds a record
/// here. Returns whether the store gained one; when none did and a mirror failed or
/// served records that fail verification, the error says which and why.
pub(super) async fn lookup(registry: &P2PRegistry, name: &str) -> Result<bool> {
    let mut problems = Vec::new();
    for mirror in configured(registry)? {
        let lines = match mirror.index(name).await {
            Ok(Some(lines)) => lines,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("{e}");
                problems.push(e.to_string());
                continue;
            }
        };
        let got = ingest_index(registry.store(), name, lines).await?;
        for rejected in &got.rejected {
            tracing::warn!(
                "mirror {}: record for {name} refused: {}",
                mirror.url(),
                rejected.reason
            );
        }
        if got.imported + got.evidence > 0 {
            return Ok(true);
        }
        if let Some(first) = got.rejected.first() {
            problems.push(format!(
                "mirror {} refused: {} of its records for {name} failed verification ({}); nothing from it was stored",
                mirror.url(),
                got.rejected.len(),
                first.reason
            ));
        }
    }
    if problems.is_empty() {
        return Ok(false);
    }
    Err(RegistryError::Refused(format!(
        "{name}: no peer or mirror supplied a valid record; {}",
        problems.join("; ")
    )))
}

/// Fetches `meta`'s archive from the first configured mirror that has it intact, into
/// the store. `why` says why peers could not be used; it opens the error when every
/// mirror fails. Returns where the archive came from (`mirror URL`).
pub(super) async fn fetch_archive(
    registry: &P2PRegistry,
    meta: &IndexedVersion,
    progress: &Progress,
    why: &str,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for mirror in configured(registry)? {
        match mirror
            .fetch_archive(registry.store(), &meta.archive, |done, total| {
                progress(done, total)
            })
            .await
        {
            Ok(()) => return Ok(vec![format!("mirror {}", mirror.url())]),
            Err(e) => {
                tracing::warn!("{e}");
                problems.push(e.to_string());
            }
        }
    }
    Err(RegistryError::Refused(format!(
        "{}@{}: {why}, and no mirror supplied it intact: {}",
        meta.name,
        meta.version,
        problems.join("; ")
    )))
}

/// `mirror sync URL`: every name the mirror lists, every record of each, verified and
/// ingested; what was refused is reported, not fatal.
pub(super) async fn sync(
    registry: &P2PRegistry,
    request: MirrorSyncRequest,
) -> Result<MirrorSyncReport> {
    let mirror = MirrorClient::new(&request.url)?;
    let names = mirror.names().await?;
    let mut report = MirrorSyncReport {
        format_version: FORMAT_VERSION,
        mirror: mirror.url().to_string(),
        names: names.len() as u64,
        imported: 0,
        already_known: 0,
        evidence: 0,
        rejected: Vec::new(),
    };
    for name in names {
        let lines = match mirror.index(&name).await {
            Ok(Some(lines)) => lines,
            Ok(None) => {
                report.rejected.push(MirrorRejection {
                    name,
                    id: None,
                    reason: "listed in /names but its index is missing (404)".into(),
                });
                continue;
            }
            Err(e) => {
                report.rejected.push(MirrorRejection {
                    name,
                    id: None,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let got = ingest_index(registry.store(), &name, lines).await?;
        report.imported += got.imported;
        report.already_known += got.already_known;
        report.evidence += got.evidence;
        report.rejected.extend(got.rejected);
    }
    Ok(report)
}
