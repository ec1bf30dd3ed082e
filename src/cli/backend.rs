//! Which registry a command talks to: the running daemon through its local API when one
//! answers, else the data directory directly (offline mode). Both implement [`Registry`]
//! with the same request and report types, so every command behaves the same with or
//! without a daemon; this file only delegates.

use std::path::Path;

use crate::api::client::ApiClient;
use crate::registry::{
    AddPeerRequest, InfoReport, InfoRequest, InstallReport, InstallRequest, ListReport,
    ListRequest, P2PRegistry, P2PRegistryBuilder, PeersReport, PeersRequest, Progress,
    PublishReport, PublishRequest, Registry, RemovePeerRequest, Result, SearchReport,
    SearchRequest, StatusReport, StatusRequest, VerifyReport, VerifyRequest, YankReport,
    YankRequest,
};

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
}
