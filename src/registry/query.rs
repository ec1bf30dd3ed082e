//! Read-only operations: search, info, list, verify and status, answered from the local
//! replica (and, for a network search, after asking connected peers first).

use super::reports::{
    all, DamagedItem, InfoReport, ListReport, SearchReport, SearchResult, StatusReport,
    VerifyReport, VersionLine, FORMAT_VERSION,
};
use super::requests::{InfoRequest, ListRequest, SearchRequest, StatusRequest, VerifyRequest};
use super::{install::parse_requirement, P2PRegistry, Result};
use crate::package::Blake3Hash;
use crate::store::Store;

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
                    Ok(SearchResult {
                        package: hit.package.into(),
                        score: hit.score,
                        providers,
                        conflict: hit.conflict,
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

pub(super) async fn info(registry: &P2PRegistry, request: InfoRequest) -> Result<InfoReport> {
    let req = parse_requirement(&request.spec.req)?;
    let name = request.spec.name;
    let publisher = request.publisher;
    let own = registry.node_peer_id();
    registry
        .store()
        .call(move |store| {
            let claims = store.claims(&name)?;
            // Info shows something even for an ambiguous name: the resolved version of
            // the displayed owner, with every claim listed beside it.
            let owner = publisher.or_else(|| (claims.len() > 1).then(|| claims[0].publisher));
            let package = store.resolve(&name, &req, owner.as_ref())?;
            let versions = store
                .versions(&name)?
                .into_iter()
                .map(|v| VersionLine {
                    version: v.record.version,
                    publisher: v.record.publisher,
                    published_at: v.record.published_at,
                    yanked: v.yanked,
                })
                .collect();
            let archive = package.archive.blake3;
            Ok(InfoReport {
                format_version: FORMAT_VERSION,
                package: package.into(),
                versions,
                claims: all(claims),
                providers: provider_count(store, &archive, &own)?,
                local: store.has_archive(&archive),
            })
        })
        .await
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
            Ok(ListReport {
                format_version: FORMAT_VERSION,
                installed: all(store.installs()?),
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
pub(super) async fn verify(
    registry: &P2PRegistry,
    _request: VerifyRequest,
) -> Result<VerifyReport> {
    registry
        .store()
        .call(|store| {
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
            })
        })
        .await
}

/// Peers known to hold an archive, this node included when it stores it (counted once,
/// whether or not it has announced itself as a provider before).
fn provider_count(store: &Store, archive: &Blake3Hash, own: &Option<String>) -> Result<usize> {
    let mut providers = store.providers(archive)?;
    if let Some(own) = own {
        providers.retain(|peer| peer != own);
    }
    Ok(providers.len() + usize::from(store.has_archive(archive)))
}
