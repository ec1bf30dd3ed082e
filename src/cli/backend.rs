//! Which registry a command talks to: the running daemon through its local API when one
//! answers, else the data directory directly (offline mode). Both implement [`Registry`]
//! with the same request and report types, so every command behaves the same with or
//! without a daemon; this file only delegates.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::client::ApiClient;
use crate::registry::{
    AddPeerRequest, InfoReport, InfoRequest, InstallReport, InstallRequest, ListReport,
    ListRequest, P2PRegistry, P2PRegistryBuilder, PeersReport, PeersRequest, Progress,
    PublishReport, PublishRequest, Registry, RegistryError, RemovePeerRequest, Result,
    SearchReport, SearchRequest, StatusReport, StatusRequest, VerifyReport, VerifyRequest,
    YankReport, YankRequest,
};
use crate::registry::{BlockPeerRequest, BlockReport, UnblockPeerRequest};
use crate::store::lock::{self, LOCK_FILE};
use crate::store::StoreError;

pub enum Backend {
    /// No daemon answered: work on the data directory in this process.
    Local(P2PRegistry),
    /// A daemon runs on this data directory: ask it.
    Remote(ApiClient),
}

impl Backend {
    /// The daemon when one answers; else, unless a daemon holds the data directory's
    /// lock (then it is starting or stuck, and working beside it would be wrong), the
    /// data directory in this process.
    pub async fn connect(data_dir: &Path) -> Result<Self> {
        if let Some(client) = ApiClient::discover(data_dir).await {
            return Ok(Backend::Remote(client));
        }
        if let Some(pid) = held_by(data_dir)? {
            // A daemon that has just taken the lock writes its API file a moment later.
            let begun = Instant::now();
            while begun.elapsed() < STARTING_PATIENCE {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(client) = ApiClient::discover(data_dir).await {
                    return Ok(Backend::Remote(client));
                }
                if held_by(data_dir)?.is_none() {
                    return Self::local(data_dir);
                }
            }
            return Err(RegistryError::Unreachable {
                addr: format!("{} (pid {pid})", data_dir.display()),
                reason: format!(
                    "holds {} but its API does not answer; wait until it has started, or stop it (kill -TERM {pid}) and retry",
                    data_dir.join(LOCK_FILE).display()
                ),
            });
        }
        Self::local(data_dir)
    }

    fn local(data_dir: &Path) -> Result<Self> {
        let registry = P2PRegistryBuilder::new().with_data_dir(data_dir).build()?;
        Ok(Backend::Local(registry))
    }
}

/// How long a command waits for a daemon that holds the lock to answer on its API.
const STARTING_PATIENCE: Duration = Duration::from_secs(3);

/// The PID of the daemon holding the data directory's lock, if one does.
fn held_by(data_dir: &Path) -> Result<Option<String>> {
    lock::holder(data_dir).map_err(|e| match e {
        lock::LockError::Io { path, source } => StoreError::Io { path, source }.into(),
        held @ lock::LockError::Held { .. } => RegistryError::Refused(held.to_string()),
    })
}

/// Forwards one operation to whichever registry is behind the backend.
macro_rules! delegate {
    ($self:ident, $op:ident($($arg:expr),*)) => {
        match $self {
            Backend::Local(registry) => registry.$op($($arg),*).await,
            Backend::Remote(api) => api.$op($($arg),*).await,
        }
    };
}

impl Registry for Backend {
    async fn publish(&self, request: PublishRequest) -> Result<PublishReport> {
        delegate!(self, publish(request))
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchReport> {
        delegate!(self, search(request))
    }

    async fn info(&self, request: InfoRequest) -> Result<InfoReport> {
        delegate!(self, info(request))
    }

    async fn install(
        &self,
        request: InstallRequest,
        progress: Option<Progress>,
    ) -> Result<InstallReport> {
        delegate!(self, install(request, progress))
    }

    async fn list(&self, request: ListRequest) -> Result<ListReport> {
        delegate!(self, list(request))
    }

    async fn yank(&self, request: YankRequest) -> Result<YankReport> {
        delegate!(self, yank(request))
    }

    async fn verify(&self, request: VerifyRequest) -> Result<VerifyReport> {
        delegate!(self, verify(request))
    }

    async fn status(&self, request: StatusRequest) -> Result<StatusReport> {
        delegate!(self, status(request))
    }

    async fn peers(&self, request: PeersRequest) -> Result<PeersReport> {
        delegate!(self, peers(request))
    }

    async fn add_peer(&self, request: AddPeerRequest) -> Result<PeersReport> {
        delegate!(self, add_peer(request))
    }

    async fn remove_peer(&self, request: RemovePeerRequest) -> Result<PeersReport> {
        delegate!(self, remove_peer(request))
    }

    async fn trust_add(
        &self,
        request: crate::registry::TrustAddRequest,
    ) -> Result<crate::registry::TrustReport> {
        delegate!(self, trust_add(request))
    }

    async fn trust_remove(
        &self,
        request: crate::registry::TrustRemoveRequest,
    ) -> Result<crate::registry::TrustReport> {
        delegate!(self, trust_remove(request))
    }

    async fn trust_list(
        &self,
        request: crate::registry::TrustListRequest,
    ) -> Result<crate::registry::TrustReport> {
        delegate!(self, trust_list(request))
    }

    async fn rotate_key(
        &self,
        request: crate::registry::RotateKeyRequest,
    ) -> Result<crate::registry::RotateKeyReport> {
        delegate!(self, rotate_key(request))
    }

    async fn block_peer(&self, request: BlockPeerRequest) -> Result<BlockReport> {
        delegate!(self, block_peer(request))
    }

    async fn unblock_peer(&self, request: UnblockPeerRequest) -> Result<BlockReport> {
        delegate!(self, unblock_peer(request))
    }

    async fn init(
        &self,
        request: crate::registry::InitRequest,
    ) -> Result<crate::registry::InitReport> {
        delegate!(self, init(request))
    }

    async fn uninstall(
        &self,
        request: crate::registry::UninstallRequest,
    ) -> Result<crate::registry::UninstallReport> {
        delegate!(self, uninstall(request))
    }

    async fn outdated(
        &self,
        request: crate::registry::OutdatedRequest,
    ) -> Result<crate::registry::OutdatedReport> {
        delegate!(self, outdated(request))
    }

    async fn update(
        &self,
        request: crate::registry::UpdateRequest,
    ) -> Result<crate::registry::UpdateReport> {
        delegate!(self, update(request))
    }

    async fn mirror_sync(
        &self,
        request: crate::registry::MirrorSyncRequest,
    ) -> Result<crate::registry::MirrorSyncReport> {
        delegate!(self, mirror_sync(request))
    }
}
