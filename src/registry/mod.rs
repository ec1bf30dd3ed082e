//! The façade every user of ggen-p2p goes through — the CLI, the HTTP API and library
//! users. [`Registry`] is the contract: one method per operation, each taking its request
//! type from [`requests`] and returning its report from [`reports`]. [`P2PRegistry`]
//! implements it in this process (offline first, the network joining in once
//! [`P2PRegistry::start`] has run); `api::client::ApiClient` implements it by asking a
//! running daemon over HTTP with the same types.
//!
//! It owns the [`Store`] and, while started, the network handle; it holds no lock across
//! an await (the handle is cloned out). Store work goes through [`Store::call`].

mod activity;
mod builder;
mod health;
mod install;
mod lifecycle;
pub mod lockfile;
mod mirror;
mod peers;
mod publish;
mod query;
pub mod reports;
pub mod requests;
pub mod resolve;
mod rotate;
mod trust;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::net::{self, Client};
use crate::package::{Manifest, ManifestError, PublisherKey};
use crate::store::Store;
use crate::tasks::Tasks;

pub use builder::P2PRegistryBuilder;
pub use install::{dependency_dir, parse_requirement, DEPS_DIR};
pub use lifecycle::tree_digest;
pub use reports::{ActivityReport, HealthCheck, HealthReport, RecordEvent, Traffic, TransferLine};
pub use reports::{
    BannedPeerInfo, BlockReport, InfoReport, InstallReport, Installed, KeyReport, ListReport,
    NameClaim, NetStatus, PackageMetadata, PeerInfo, PeersReport, PublishReport, Receipt,
    SearchReport, SearchResult, StartReport, StatusReport, StoreStats, VerifyReport, VersionLine,
    YankReport, FORMAT_VERSION,
};
pub use reports::{
    DependencyInstall, InitReport, OutdatedPack, OutdatedReport, TreeUpdate, UninstallReport,
    UpdateReport, VersionChange,
};
pub use reports::{MirrorRejection, MirrorSyncReport};
pub use reports::{RotateKeyReport, TrustReport, TrustedPublisher};
pub use requests::MirrorSyncRequest;
pub use requests::{
    AddPeerRequest, BlockPeerRequest, InfoRequest, InstallRequest, ListRequest, PackageSpec,
    PeersRequest, Progress, PublishRequest, RemovePeerRequest, SearchRequest, StatusRequest,
    UnblockPeerRequest, VerifyRequest, YankRequest,
};
pub use requests::{InitRequest, OutdatedRequest, UninstallRequest, UpdateRequest};
pub use requests::{RotateKeyRequest, TrustAddRequest, TrustListRequest, TrustRemoveRequest};

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
    #[error(transparent)]
    Mirror(#[from] crate::mirror::MirrorError),
    #[error("{0}")]
    Refused(String),
    /// An operation that needs the network on a registry whose node is not running.
    #[error("`{operation}` needs a running node; start one with `ggen-p2p start` (same --data-dir) in another terminal")]
    NotRunning { operation: &'static str },
    /// The daemon could not be reached, or its answer could not be read.
    #[error("the node at {addr} {reason}")]
    Unreachable { addr: String, reason: String },
    /// The daemon answered with an error (its message, as the registry there said it).
    #[error("{message}")]
    Remote { status: u16, message: String },
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

/// What a registry does — one method per operation, one request type each — whether
/// backed by this process ([`P2PRegistry`]) or by a running daemon (the API client).
pub trait Registry {
    fn publish(
        &self,
        request: PublishRequest,
    ) -> impl Future<Output = Result<PublishReport>> + Send;
    fn search(&self, request: SearchRequest) -> impl Future<Output = Result<SearchReport>> + Send;
    /// The version the request resolves to (the latest when it names none), as `info`
    /// shows it.
    fn info(&self, request: InfoRequest) -> impl Future<Output = Result<InfoReport>> + Send;
    /// `progress`, if given, is called while the archive downloads.
    fn install(
        &self,
        request: InstallRequest,
        progress: Option<Progress>,
    ) -> impl Future<Output = Result<InstallReport>> + Send;
    fn list(&self, request: ListRequest) -> impl Future<Output = Result<ListReport>> + Send;
    fn yank(&self, request: YankRequest) -> impl Future<Output = Result<YankReport>> + Send;
    fn verify(&self, request: VerifyRequest) -> impl Future<Output = Result<VerifyReport>> + Send;
    fn status(&self, request: StatusRequest) -> impl Future<Output = Result<StatusReport>> + Send;
    fn peers(&self, request: PeersRequest) -> impl Future<Output = Result<PeersReport>> + Send;
    fn add_peer(&self, request: AddPeerRequest)
        -> impl Future<Output = Result<PeersReport>> + Send;
    fn remove_peer(
        &self,
        request: RemovePeerRequest,
    ) -> impl Future<Output = Result<PeersReport>> + Send;
    fn trust_add(
        &self,
        request: TrustAddRequest,
    ) -> impl Future<Output = Result<TrustReport>> + Send;
    fn trust_remove(
        &self,
        request: TrustRemoveRequest,
    ) -> impl Future<Output = Result<TrustReport>> + Send;
    fn trust_list(
        &self,
        request: TrustListRequest,
    ) -> impl Future<Output = Result<TrustReport>> + Send;
    fn rotate_key(
        &self,
        request: RotateKeyRequest,
    ) -> impl Future<Output = Result<RotateKeyReport>> + Send;
    /// Works offline too: the ban is stored and the next start loads it.
    fn block_peer(
        &self,
        request: BlockPeerRequest,
    ) -> impl Future<Output = Result<BlockReport>> + Send;
    fn unblock_peer(
        &self,
        request: UnblockPeerRequest,
    ) -> impl Future<Output = Result<BlockReport>> + Send;
    /// Creates a new pack directory (files only; nothing is published).
    fn init(&self, request: InitRequest) -> impl Future<Output = Result<InitReport>> + Send;
    fn uninstall(
        &self,
        request: UninstallRequest,
    ) -> impl Future<Output = Result<UninstallReport>> + Send;
    fn outdated(
        &self,
        request: OutdatedRequest,
    ) -> impl Future<Output = Result<OutdatedReport>> + Send;
    fn update(&self, request: UpdateRequest) -> impl Future<Output = Result<UpdateReport>> + Send;
    /// Imports every record an HTTP mirror serves, verified as records from peers are.
    fn mirror_sync(
        &self,
        request: MirrorSyncRequest,
    ) -> impl Future<Output = Result<MirrorSyncReport>> + Send;
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
    /// What the node counts (`/metrics`); exists offline too, the network counts into it
    /// once started.
    metrics: Arc<net::Metrics>,
    /// Archive downloads in progress (the dashboard's transfers).
    transfers: activity::Transfers,
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

    /// What this node counts, rendered by `/metrics`.
    pub fn metrics(&self) -> &Arc<net::Metrics> {
        &self.inner.metrics
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

    /// The network handle, or the error saying `operation` needs a running node.
    fn network(&self, operation: &'static str) -> Result<Client> {
        self.client().ok_or(RegistryError::NotRunning { operation })
    }
}

impl Registry for P2PRegistry {
    async fn publish(&self, request: PublishRequest) -> Result<PublishReport> {
        publish::publish(self, request).await
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchReport> {
        query::search(self, request).await
    }

    async fn info(&self, request: InfoRequest) -> Result<InfoReport> {
        query::info(self, request).await
    }

    async fn install(
        &self,
        request: InstallRequest,
        progress: Option<Progress>,
    ) -> Result<InstallReport> {
        install::install(self, request, progress).await
    }

    async fn list(&self, request: ListRequest) -> Result<ListReport> {
        query::list(self, request).await
    }

    async fn yank(&self, request: YankRequest) -> Result<YankReport> {
        publish::yank(self, request).await
    }

    async fn verify(&self, request: VerifyRequest) -> Result<VerifyReport> {
        query::verify(self, request).await
    }

    async fn status(&self, request: StatusRequest) -> Result<StatusReport> {
        query::status(self, request).await
    }

    async fn peers(&self, request: PeersRequest) -> Result<PeersReport> {
        peers::peers(self, request).await
    }

    async fn add_peer(&self, request: AddPeerRequest) -> Result<PeersReport> {
        peers::add_peer(self, request).await
    }

    async fn remove_peer(&self, request: RemovePeerRequest) -> Result<PeersReport> {
        peers::remove_peer(self, request).await
    }

    async fn trust_add(&self, request: TrustAddRequest) -> Result<TrustReport> {
        trust::add(self, request).await
    }

    async fn trust_remove(&self, request: TrustRemoveRequest) -> Result<TrustReport> {
        trust::remove(self, request).await
    }

    async fn trust_list(&self, request: TrustListRequest) -> Result<TrustReport> {
        trust::list(self, request).await
    }

    async fn rotate_key(&self, request: RotateKeyRequest) -> Result<RotateKeyReport> {
        rotate::rotate_key(self, request).await
    }

    async fn block_peer(&self, request: BlockPeerRequest) -> Result<BlockReport> {
        peers::block_peer(self, request).await
    }

    async fn unblock_peer(&self, request: UnblockPeerRequest) -> Result<BlockReport> {
        peers::unblock_peer(self, request).await
    }

    async fn init(&self, request: InitRequest) -> Result<InitReport> {
        lifecycle::init(self, request).await
    }

    async fn uninstall(&self, request: UninstallRequest) -> Result<UninstallReport> {
        lifecycle::uninstall(self, request).await
    }

    async fn outdated(&self, request: OutdatedRequest) -> Result<OutdatedReport> {
        lifecycle::outdated(self, request).await
    }

    async fn update(&self, request: UpdateRequest) -> Result<UpdateReport> {
        lifecycle::update(self, request).await
    }

    async fn mirror_sync(&self, request: MirrorSyncRequest) -> Result<MirrorSyncReport> {
        mirror::sync(self, request).await
    }
}
