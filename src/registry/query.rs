//! Read-only operations: search, info, list and status, answered from the local replica
//! (and, for `--network` search, after asking connected peers first).

use super::reports::{
    DamagedItem, InfoReport, ListReport, SearchReport, SearchResult, StatusReport, VerifyReport,
    VersionLine, FORMAT_VERSION,
};
use super::{install::parse_requirement, P2PRegistry, Result};
use crate::package::PublisherId;
use crate::store::Query;

impl P2PRegistry {
    /// Searches the local replica; with `network`, peers are asked first and what they
    /// return is verified and added to the replica before the local search runs.
    pub async fn search_packages(&self, query: &Query, network: bool) -> Result<SearchReport> {
        let mut peers_asked = 0;
        if network {
            if let Some(client) = self.client() {
                peers_asked = client.search_network(query.clone()).await?;
            }
        }
        let query = query.clone();
        let results = self
            .blocking(move |this| {
                let own = this.node_peer_id();
                this.store()
                    .search(&query)?
                    .into_iter()
                    .map(|hit| {
                        let providers = this.provider_count(&hit.package.archive.blake3, &own)?;
                        Ok(SearchResult {
                            package: hit.package,
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

    pub async fn info(
        &self,
        name: &str,
        req: &str,
        publisher: Option<PublisherId>,
    ) -> Result<InfoReport> {
        let req = parse_requirement(req)?;
        let name = name.to_string();
        self.blocking(move |this| {
            let store = this.store();
            let claims = store.claims(&name)?;
            // Info shows something even for an ambiguous name: the resolved version of
            // the displayed owner, with every claim listed beside it.
            let owner = publisher.or_else(|| (claims.len() > 1).then(|| claims[0].publisher));
            let package = store.resolve(&name, &req, owner.as_ref())?;
            let versions = store
                .versions(&name)?
                .into_iter()
                .map(|v| VersionLine {
                    version: v.version,
                    publisher: v.publisher,
                    published_at: v.published_at,
                    yanked: v.yanked,
                })
                .collect();
            let archive = &package.archive.blake3;
            let local = store.has_archive(archive);
            let providers = this.provider_count(archive, &this.node_peer_id())?;
            Ok(InfoReport {
                format_version: FORMAT_VERSION,
                package,
                versions,
                claims,
                providers,
                local,
            })
        })
        .await
    }

    pub async fn list(&self) -> Result<ListReport> {
        self.blocking(|this| {
            let store = this.store();
            let publisher = this.publisher_key().ok().map(|key| key.id());
            let published = match publisher {
                Some(id) => store.published_by(&id)?,
                None => Vec::new(),
            };
            Ok(ListReport {
                format_version: FORMAT_VERSION,
                installed: store.installs()?,
                published,
            })
        })
        .await
    }

    pub async fn status_report(&self) -> Result<StatusReport> {
        let net = match self.client() {
            Some(client) => Some(client.status().await?),
            None => None,
        };
        let store = self.blocking(|this| Ok(this.store().stats()?)).await?;
        Ok(StatusReport {
            format_version: FORMAT_VERSION,
            data_dir: self.data_dir().to_path_buf(),
            publisher: self.publisher_key().ok().map(|key| key.id()),
            online: net.is_some(),
            api: None,
            store,
            net,
        })
    }
}

impl P2PRegistry {
    /// Re-verifies every stored record and re-hashes every stored archive.
    pub async fn verify_store(&self) -> Result<VerifyReport> {
        self.blocking(|this| {
            let store = this.store();
            let (records_checked, bad_records) = store.check_records()?;
            let (archives_checked, bad_archives) = store.check_archives()?;
            let damaged = |items: Vec<(crate::package::Blake3Hash, String)>| {
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
}

impl P2PRegistry {
    /// Peers known to hold an archive, this node included when it stores it (counted
    /// once, whether or not it has announced itself as a provider before).
    fn provider_count(
        &self,
        archive: &crate::package::Blake3Hash,
        own: &Option<String>,
    ) -> Result<usize> {
        let store = self.store();
        let mut providers = store.providers(archive)?;
        if let Some(own) = own {
            providers.retain(|peer| peer != own);
        }
        Ok(providers.len() + usize::from(store.has_archive(archive)))
    }
}
