//! `trust add`, `trust remove`, `trust list`: publisher keys pinned by the user, kept in
//! the store (`store/pins.rs`), next to the read-only pins of config
//! `trusted_publishers`. Which claim a pin makes the owner is the store's rule.

use super::reports::{TrustReport, TrustedPublisher, FORMAT_VERSION};
use super::requests::{TrustAddRequest, TrustListRequest, TrustRemoveRequest};
use super::{P2PRegistry, RegistryError, Result};
use crate::package::fields::{normalize_name, validate_name};

fn checked(name: Option<String>) -> Result<Option<String>> {
    match name {
        Some(name) => {
            validate_name(&name).map_err(RegistryError::Refused)?;
            Ok(Some(name))
        }
        None => Ok(None),
    }
}

pub(super) async fn add(registry: &P2PRegistry, request: TrustAddRequest) -> Result<TrustReport> {
    let name = checked(request.name)?;
    let changed = registry
        .store()
        .call(move |store| store.trust_add(request.key, name.as_deref()))
        .await?;
    report(registry, changed).await
}

pub(super) async fn remove(
    registry: &P2PRegistry,
    request: TrustRemoveRequest,
) -> Result<TrustReport> {
    let name = checked(request.name)?;
    let changed = registry
        .store()
        .call(move |store| store.trust_remove(request.key, name.as_deref()))
        .await?;
    report(registry, changed).await
}

pub(super) async fn list(
    registry: &P2PRegistry,
    _request: TrustListRequest,
) -> Result<TrustReport> {
    report(registry, false).await
}

async fn report(registry: &P2PRegistry, changed: bool) -> Result<TrustReport> {
    let mut trusted: Vec<TrustedPublisher> = registry
        .config()
        .trusted_publishers
        .iter()
        .map(|(name, key)| TrustedPublisher {
            key: *key,
            name: Some(normalize_name(name)),
            source: "config".into(),
            added_at: 0,
        })
        .collect();
    let stored = registry.store().call(|store| store.trusted_keys()).await?;
    trusted.extend(stored.into_iter().map(|t| TrustedPublisher {
        key: t.key,
        name: t.name,
        source: "trust".into(),
        added_at: t.added_at,
    }));
    Ok(TrustReport {
        format_version: FORMAT_VERSION,
        changed,
        trusted,
    })
}
