//! Which registry a command talks to: the running daemon through its local API when one
//! answers, else the data directory directly (offline mode). Both give the same reports,
//! so every command behaves the same with or without a daemon.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::api::client::ApiClient;
use crate::package::PublisherId;
use crate::registry::install::Progress;
use crate::registry::{
    InfoReport, InstallReport, ListReport, P2PRegistry, P2PRegistryBuilder, Package, PeersReport,
    PublishReport, SearchReport, StatusReport, VerifyReport, YankReport,
};
use crate::store::Query;

pub enum Backend {
    /// No daemon answered: work on the data directory in this process.
    Local(P2PRegistry),
    /// A daemon runs on this data directory: ask it.
    Remote(ApiClient),
}

impl Backend {
    pub async fn connect(data_dir: &Path) -> Result<Self> {
        if let Some(client) = ApiClient::discover(data_dir).await {
            return Ok(Backend::Remote(client));
        }
        let registry = P2PRegistryBuilder::new().with_data_dir(data_dir).build()?;
        Ok(Backend::Local(registry))
    }

    pub fn is_online(&self) -> bool {
        matches!(self, Backend::Remote(_))
    }

    pub async fn publish(&self, dir: &Path) -> Result<PublishReport> {
        match self {
            Backend::Local(registry) => {
                let package = Package::from_dir(dir)?;
                Ok(registry.publish_package(package).await?)
            }
            Backend::Remote(api) => {
                // The daemon reads the directory itself; give it an absolute path.
                let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
                Package::from_dir(&dir)?;
                api.publish(&dir).await
            }
        }
    }

    pub async fn search(&self, query: &Query, network: bool) -> Result<SearchReport> {
        match self {
            Backend::Local(registry) => Ok(registry.search_packages(query, network).await?),
            Backend::Remote(api) => api.search(query, network).await,
        }
    }

    pub async fn info(
        &self,
        name: &str,
        req: &str,
        publisher: Option<PublisherId>,
    ) -> Result<InfoReport> {
        match self {
            Backend::Local(registry) => Ok(registry.info(name, req, publisher).await?),
            Backend::Remote(api) => api.info(name, req, publisher).await,
        }
    }

    pub async fn install(
        &self,
        name: &str,
        req: &str,
        publisher: Option<PublisherId>,
        to: Option<PathBuf>,
        progress: Option<Progress>,
    ) -> Result<InstallReport> {
        match self {
            Backend::Local(registry) => Ok(registry
                .install_package(name, req, publisher, to, progress)
                .await?),
            Backend::Remote(api) => {
                let to = to.map(|to| std::path::absolute(&to).unwrap_or(to));
                api.install(name, req, publisher, to, progress).await
            }
        }
    }

    pub async fn list(&self) -> Result<ListReport> {
        match self {
            Backend::Local(registry) => Ok(registry.list().await?),
            Backend::Remote(api) => api.list().await,
        }
    }

    pub async fn yank(&self, name: &str, version: &semver::Version) -> Result<YankReport> {
        match self {
            Backend::Local(registry) => Ok(registry.yank(name, version).await?),
            Backend::Remote(api) => api.yank(name, version).await,
        }
    }

    pub async fn status(&self) -> Result<StatusReport> {
        match self {
            Backend::Local(registry) => Ok(registry.status_report().await?),
            Backend::Remote(api) => api.status().await,
        }
    }

    pub async fn verify(&self) -> Result<VerifyReport> {
        match self {
            Backend::Local(registry) => Ok(registry.verify_store().await?),
            Backend::Remote(api) => api.verify().await,
        }
    }

    pub async fn peers(&self) -> Result<PeersReport> {
        match self {
            Backend::Local(_) => Err(not_running("peers")),
            Backend::Remote(api) => api.peers().await,
        }
    }

    pub async fn add_peer(&self, addr: &str) -> Result<PeersReport> {
        match self {
            Backend::Local(_) => Err(not_running("peers add")),
            Backend::Remote(api) => api.add_peer(addr).await,
        }
    }

    pub async fn remove_peer(&self, peer: &str) -> Result<PeersReport> {
        match self {
            Backend::Local(_) => Err(not_running("peers remove")),
            Backend::Remote(api) => api.remove_peer(peer).await,
        }
    }
}

fn not_running(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`{command}` needs a running node; start one with `ggen-p2p start` (same --data-dir) in another terminal"
    )
}
