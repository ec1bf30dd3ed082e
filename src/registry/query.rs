//! Read-only operations: search, info, list, verify and status, answered from the local
//! replica (and, for a network search, after asking connected peers first; for info of
//! a name missing here, after a DHT lookup).

use super::reports::{
    all, DamagedItem, InfoReport, Installed, ListReport, SearchReport, SearchResult, StatusReport,
    VerifyReport, VersionLine, FORMAT_VERSION,
};
use super::requests::{InfoRequest, ListRequest, SearchRequest, StatusRequest, VerifyRequest};
use super::{install::parse_requirement, P2PRegistry, RegistryError, Result};
use crate::package::Blake3Hash;
use crate::store::{Store, StoreError};

/// Searches the local replica; with `network`, peers are asked first and what they
/// return is verified and added to the replica before the local search runs.
pub(super) async fn search(registry: &P2PRegistry, request: SearchRequest) -> Result<SearchReport> {
    let query = request.query();
    let mut peers_asked = 0;
    if request.network {
        if let Some(client) = registry.client() {
            peers_asked = client.search_network(query.clone()).await?;
        }
    }
    let own = registry.node_peer_id();
    let results = registry
        .store()
        .call(move |store| {
            store
                .search(&query)?
                .into_iter()
                .map(|hit| {
                    let providers = provider_count(store, &hit.package.archive.blake3, &own)?;
                    let compromised = store.compromise_of(&hit.package)?.is_some();
                    Ok(SearchResult {
                        package: hit.package.into(),
                        score: hit.score,
                        providers,
                        conflict: hit.conflict,
                        compromised,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    Ok(SearchReport {
        format_version: FORMAT_VERSION,
        peers_asked,
        results,
    })
}

/// Info from the local replica; a name (or exact version) missing here is looked up in
/// the DHT first when a node runs ([`lookup_missed`]).
pub(super) async fn info(registry: &P2PRegistry, request: InfoRequest) -> Result<InfoReport> {
    let req = parse_requirement(&request.spec.req)?;
    let exact = semver::Version::parse(request.spec.req.trim()).ok();
    let name = request.spec.name;
    let publisher = request.publisher;
    let own = registry.node_peer_id();
    let local = || {
        let (name, req, own, publisher) =
            (name.clone(), req.clone(), own.clone(), publisher.clone());
        registry
            .store()
            .call(move |store| info_from(store, &name, &req, publisher, &own))
    };
    match local().await {
        Err(e) if missed(&e) && lookup_missed(registry, &name, exact.as_ref()).await? => {
            local().await
        }
        other => other,
    }
}

fn info_from(
    store: &Store,
    name: &str,
    req: &semver::VersionReq,
    publisher: Option<crate::package::PublisherRef>,
    own: &Option<String>,
) -> Result<InfoReport> {
    let publisher = publisher
        .map(|p| store.find_publisher(name, &p))
        .transpose()?;
    let claims = store.claims(name)?;
    // Info shows something even for an ambiguous name: the resolved version of the
    // displayed owner, with every claim listed beside it.
    let owner = publisher.or_else(|| (claims.len() > 1).then(|| claims[0].publisher));
    // An exact version is shown even when yanked (marked `yanked`), as lockfiles pin it.
    let exact = match exact_version(req) {
        Some(version) => store.version(name, &version, owner.as_ref())?,
        None => None,
    };
    let package = match exact {
        Some(package) => package,
        None => store.resolve(name, req, owner.as_ref())?,
    };
    let compromised = store.compromised(name)?;
    let versions = store
        .versions(name)?
        .into_iter()
        .map(|v| VersionLine {
            compromised: compromised
                .iter()
                .any(|c| c.publisher == v.record.publisher && c.version == v.record.version),
            version: v.record.version,
            publisher: v.record.publisher,
            published_at: v.record.published_at,
            yanked: v.yanked,
        })
        .collect();
    let standing = store.name_standing(name)?;
    let archive = package.archive.blake3;
    Ok(InfoReport {
        format_version: FORMAT_VERSION,
        package: package.into(),
        versions,
        claims: all(claims),
        providers: provider_count(store, &archive, own)?,
        local: store.has_archive(&archive),
        compromised: all(compromised),
        contested: standing.contested,
        owner_attested: standing.attested.map(Into::into),
    })
}

/// The version an `=x.y.z[-pre]` requirement names (how `name@1.2.0` parses).
fn exact_version(req: &semver::VersionReq) -> Option<semver::Version> {
    match req.comparators.as_slice() {
        [c] if c.op == semver::Op::Exact => Some(semver::Version {
            major: c.major,
            minor: c.minor?,
            patch: c.patch?,
            pre: c.pre.clone(),
            build: semver::BuildMetadata::EMPTY,
        }),
        _ => None,
    }
}

/// Whether an operation failed only because this node lacks the records it needs (which
/// gossip and sync may not have brought yet, but the DHT may hold).
pub(super) fn missed(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::Store(
            StoreError::UnknownName { .. }
                | StoreError::NoMatch { .. }
                | StoreError::NoSuchArchive { .. }
        )
    )
}

/// Looks `name` up in the DHT when a node runs: its name key (the newest version of its
/// publisher) and, for an exact version, that version's key; then, if that found
/// nothing, in the configured HTTP mirrors (`registry/mirror.rs`). What is found is
/// verified and ingested. Returns whether the store gained a record (worth resolving
/// again).
pub(super) async fn lookup_missed(
    registry: &P2PRegistry,
    name: &str,
    exact: Option<&semver::Version>,
) -> Result<bool> {
    let mirrors = !registry.config().mirrors.is_empty();
    if let Some(client) = registry.client() {
        let (newest, version) = futures::join!(client.lookup_name(name, None), async {
            match exact {
                Some(version) => client.lookup_name(name, Some(version)).await,
                None => Ok(0),
            }
        });
        let added = match (newest, version) {
            (Ok(newest), Ok(version)) => newest + version,
            // With mirrors to ask, a DHT that cannot answer (no peers) is not the end.
            (Err(e), _) | (_, Err(e)) if mirrors => {
                tracing::debug!(name, "dht lookup failed ({e}); asking the mirrors");
                0
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        tracing::debug!(name, added, "dht lookup of a name missing here");
        if added > 0 {
            return Ok(true);
        }
    }
    if mirrors {
        return super::mirror::lookup(registry, name).await;
    }
    Ok(false)
}

pub(super) async fn list(registry: &P2PRegistry, _request: ListRequest) -> Result<ListReport> {
    let publisher = registry.publisher_key().ok().map(|key| key.id());
    registry
        .store()
        .call(move |store| {
            let published = match publisher {
                Some(id) => store.published_by(&id)?,
                None => Vec::new(),
            };
            let installed = store
                .installs()?
                .into_iter()
                .map(|install| {
                    let status = super::lifecycle::install_status(&install);
                    let mut line = Installed::from(install);
                    line.status = status.to_string();
                    line
                })
                .collect();
            Ok(ListReport {
                format_version: FORMAT_VERSION,
                installed,
                published: all(published),
            })
        })
        .await
}

pub(super) async fn status(
    registry: &P2PRegistry,
    _request: StatusRequest,
) -> Result<StatusReport> {
    let net = match registry.client() {
        Some(client) => Some(client.status().await?.into()),
        None => None,
    };
    let store = registry.store().call(|store| store.stats()).await?;
    Ok(StatusReport {
        format_version: FORMAT_VERSION,
        data_dir: registry.data_dir().to_path_buf(),
        publisher: registry.publisher_key().ok().map(|key| key.id()),
        online: net.is_some(),
        api: None,
        store: store.into(),
        net,
    })
}

/// Re-verifies every stored record and re-hashes every stored archive.
pub(super) async fn verify(registry: &P2PRegistry, request: VerifyRequest) -> Result<VerifyReport> {
    registry
        .store()
        .call(move |store| {
            let orphans = store
                .orphans(request.repair)?
                .into_iter()
                .map(|o| DamagedItem {
                    id: o.id,
                    reason: o.kind.to_string(),
                })
                .collect();
            let (records_checked, bad_records) = store.check_records()?;
            let (archives_checked, bad_archives) = store.check_archives()?;
            let damaged = |items: Vec<(Blake3Hash, String)>| {
                items
                    .into_iter()
                    .map(|(id, reason)| DamagedItem {
                        id: id.to_string(),
                        reason,
                    })
                    .collect()
            };
            Ok(VerifyReport {
                format_version: FORMAT_VERSION,
                records_checked,
                archives_checked,
                bad_records: damaged(bad_records),
                bad_archives: damaged(bad_archives),
                orphans,
                repaired: request.repair,
            })
        })
        .await
}

/// Peers known to hold an archive and confirmed within the provider TTL (a DHT answer,
/// an announcement, a chunk served), this node included when it stores it (counted once,
/// whether or not it has announced itself as a provider before). `None` (unknown) when
/// no live provider is known and the DHT was not asked within the TTL: 0 would claim
/// that nobody has it.
fn provider_count(
    store: &Store,
    archive: &Blake3Hash,
    own: &Option<String>,
) -> Result<Option<usize>> {
    let since = crate::net::policy::live_since(crate::store::now_ms());
    let mut providers = store.live_providers(archive, since)?;
    if let Some(own) = own {
        providers.retain(|peer| peer != own);
    }
    let count = providers.len() + usize::from(store.has_archive(archive));
    if count == 0 && !store.provider_lookup_since(archive, since)? {
        return Ok(None);
    }
    Ok(Some(count))
}
