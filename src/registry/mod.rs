//! The façade every user of ggen-p2p goes through — the CLI, the HTTP API and library
//! users: publish, search, info, install, yank and status, offline first, with the
//! network joining in once [`Registry::start`] has run.
//!
//! It owns the [`Store`] and, while started, the network handle; it holds no lock across
//! an await (the handle is cloned out).

mod builder;
pub mod install;
mod publish;
mod query;
mod reports;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::net::{self, Client};
use crate::package::{Manifest, ManifestError, PublisherKey};
use crate::store::{Query, Store};
use crate::tasks::Tasks;

pub use builder::P2PRegistryBuilder;
pub use reports::{
    InfoReport, InstallReport, KeyReport, ListReport, PeersReport, PublishReport, SearchReport,
    SearchResult, StatusReport, VerifyReport, VersionLine, YankReport, FORMAT_VERSION,
};

pub const PUBLISHER_KEY_FILE: &str = "publisher.key";
pub const NODE_KEY_FILE: &str = "node.key";

/// Errors a registry operation reports; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Archive(#[from] crate::package::archive::ArchiveError),
    #[error(transparent)]
    Key(#[from] crate::package::KeyError),
    #[error(transparent)]
    Record(#[from] crate::package::RecordError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Transfer(#[from] net::transfer::TransferError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Refused(String),
    #[error("internal task failed: {0}")]
    Task(String),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A pack ready to publish: a directory whose manifest has been read and validated.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Package {
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::from_dir(&dir)?;
        Ok(Self { dir, manifest })
    }
}

pub use crate::store::PackageMetadata;

/// What a registry does, whether backed by this process or (in the CLI) a daemon.
pub trait Registry {
    fn start(&self) -> impl Future<Output = Result<()>> + Send;
    fn stop(&self) -> impl Future<Output = Result<()>> + Send;
    fn publish(&self, package: Package) -> impl Future<Output = Result<PublishReport>> + Send;
    fn search(&self, query: &Query) -> impl Future<Output = Result<Vec<SearchResult>>> + Send;
    /// The version `req` resolves to (`*` for the latest), as `info` shows it.
    fn get(&self, name: &str, req: &str) -> impl Future<Output = Result<InfoReport>> + Send;
    fn install(
        &self,
        name: &str,
        req: &str,
        to: Option<PathBuf>,
    ) -> impl Future<Output = Result<InstallReport>> + Send;
    fn status(&self) -> impl Future<Output = Result<StatusReport>> + Send;
}

/// The registry of one node: its data directory, store and (once started) network.
#[derive(Clone)]
pub struct P2PRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    config: Config,
    store: Store,
    /// The one shutdown root: the network, the API and every task they spawn run on it;
    /// `stop` cancels it and waits for all of them.
    tasks: Tasks,
    /// The network handle, set by `start`, taken by `stop`; only ever locked briefly to
    /// clone or swap.
    running: Mutex<Option<Client>>,
}

impl P2PRegistry {
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The network handle, if the node has been started.
    pub fn client(&self) -> Option<Client> {
        let running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        running.clone()
    }

    /// The shutdown root every task of this registry is spawned on.
    pub fn tasks(&self) -> &Tasks {
        &self.inner.tasks
    }

    pub fn publisher_key_path(&self) -> PathBuf {
        self.inner.data_dir.join(PUBLISHER_KEY_FILE)
    }

    pub fn publisher_key(&self) -> Result<PublisherKey> {
        Ok(PublisherKey::load(&self.publisher_key_path())?)
    }

    /// Runs blocking store work off the async runtime.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&P2PRegistry) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(|e| RegistryError::Task(e.to_string()))?
    }
}

impl Registry for P2PRegistry {
    async fn start(&self) -> Result<()> {
        self.start_network().await
    }

    async fn stop(&self) -> Result<()> {
        self.stop_network().await
    }

    async fn publish(&self, package: Package) -> Result<PublishReport> {
        self.publish_package(package).await
    }

    async fn search(&self, query: &Query) -> Result<Vec<SearchResult>> {
        Ok(self.search_packages(query, false).await?.results)
    }

    async fn get(&self, name: &str, req: &str) -> Result<InfoReport> {
        self.info(name, req, None).await
    }

    async fn install(&self, name: &str, req: &str, to: Option<PathBuf>) -> Result<InstallReport> {
        self.install_package(name, req, None, to, None).await
    }

    async fn status(&self) -> Result<StatusReport> {
        self.status_report().await
    }
}
