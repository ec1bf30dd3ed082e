//! The CLI's side of the local API: finds the daemon through [`super::API_FILE`] and
//! implements [`Registry`] by sending each operation's request type to its route and
//! reading back the same report types the registry returns in-process.
//!
//! Paths in requests are made absolute first: the daemon resolves them from its own
//! working directory, not the caller's.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::routes::InstallEvent;
use super::{ApiEndpoint, API_FILE};
use crate::registry::{
    AddPeerRequest, InfoReport, InfoRequest, InstallReport, InstallRequest, ListReport,
    ListRequest, PeersReport, PeersRequest, Progress, PublishReport, PublishRequest, Registry,
    RegistryError, RemovePeerRequest, Result, SearchReport, SearchRequest, StatusReport,
    StatusRequest, VerifyReport, VerifyRequest, YankReport, YankRequest,
};
use crate::registry::{BlockPeerRequest, BlockReport, UnblockPeerRequest};
use crate::registry::{
    InitReport, InitRequest, OutdatedReport, OutdatedRequest, UninstallReport, UninstallRequest,
    UpdateReport, UpdateRequest,
};

pub struct ApiClient {
    http: reqwest::Client,
    endpoint: ApiEndpoint,
}

impl ApiClient {
    /// The daemon running on `data_dir`, if its endpoint file exists and it answers.
    pub async fn discover(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read(data_dir.join(API_FILE)).ok()?;
        let endpoint: ApiEndpoint = serde_json::from_slice(&text).ok()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .ok()?;
        let client = Self { http, endpoint };
        let health = client
            .http
            .get(client.url("/api/v1/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        health.status().is_success().then_some(client)
    }

    pub fn addr(&self) -> String {
        self.endpoint.addr.to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.endpoint.addr)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.endpoint.token)
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unreachable {
            addr: self.endpoint.addr.to_string(),
            reason: reason.to_string(),
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable(format_args!("did not answer ({e})")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(error_from_body(status, &body))
    }

    async fn read<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(format_args!("broke off its answer ({e})")))?;
        serde_json::from_slice(&body).map_err(|e| {
            self.unreachable(format_args!("sent an unexpected answer ({status}: {e})"))
        })
    }

    /// `GET path?<request as query string>`.
    async fn get<Q: Serialize, T: DeserializeOwned>(&self, path: &str, request: &Q) -> Result<T> {
        self.read(self.request(Method::GET, path).query(request))
            .await
    }

    /// `POST path` with the request as JSON body.
    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, request: &B) -> Result<T> {
        self.read(self.request(Method::POST, path).json(request))
            .await
    }
}

impl Registry for ApiClient {
    async fn publish(&self, mut request: PublishRequest) -> Result<PublishReport> {
        request.dir = absolute(request.dir);
        self.post("/api/v1/publish", &request).await
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchReport> {
        self.get("/api/v1/search", &request).await
    }

    async fn info(&self, request: InfoRequest) -> Result<InfoReport> {
        self.get("/api/v1/info", &request).await
    }

    /// Installs through the daemon, feeding its streamed progress to `progress`.
    async fn install(
        &self,
        mut request: InstallRequest,
        progress: Option<Progress>,
    ) -> Result<InstallReport> {
        request.to = request.to.map(absolute);
        let mut response = self
            .send(self.request(Method::POST, "/api/v1/install").json(&request))
            .await?;
        let mut pending = Vec::new();
        while let Some(bytes) = response
            .chunk()
            .await
            .map_err(|e| self.unreachable(format_args!("broke off its answer ({e})")))?
        {
            pending.extend_from_slice(&bytes);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match serde_json::from_slice::<InstallEvent>(&line) {
                    Ok(InstallEvent::Progress { done, total }) => {
                        if let Some(progress) = &progress {
                            progress(done, total);
                        }
                    }
                    Ok(InstallEvent::Done(report)) => return Ok(*report),
                    Ok(InstallEvent::Error(message)) => {
                        return Err(RegistryError::Remote {
                            status: 200,
                            message,
                        })
                    }
                    Err(e) => {
                        return Err(
                            self.unreachable(format_args!("sent an unexpected answer ({e})"))
                        )
                    }
                }
            }
        }
        Err(self.unreachable("closed the connection before the install finished; see its log"))
    }

    async fn list(&self, request: ListRequest) -> Result<ListReport> {
        self.get("/api/v1/list", &request).await
    }

    async fn yank(&self, request: YankRequest) -> Result<YankReport> {
        self.post("/api/v1/yank", &request).await
    }

    async fn verify(&self, request: VerifyRequest) -> Result<VerifyReport> {
        if request.repair {
            return self.post("/api/v1/verify/repair", &request).await;
        }
        self.get("/api/v1/verify", &request).await
    }

    async fn status(&self, request: StatusRequest) -> Result<StatusReport> {
        self.get("/api/v1/status", &request).await
    }

    async fn peers(&self, request: PeersRequest) -> Result<PeersReport> {
        self.get("/api/v1/peers", &request).await
    }

    async fn add_peer(&self, request: AddPeerRequest) -> Result<PeersReport> {
        self.post("/api/v1/peers/add", &request).await
    }

    async fn block_peer(&self, request: BlockPeerRequest) -> Result<BlockReport> {
        self.post("/api/v1/peers/block", &request).await
    }

    async fn unblock_peer(&self, request: UnblockPeerRequest) -> Result<BlockReport> {
        self.post("/api/v1/peers/unblock", &request).await
    }

    async fn remove_peer(&self, request: RemovePeerRequest) -> Result<PeersReport> {
        self.post("/api/v1/peers/remove", &request).await
    }

    async fn trust_add(
        &self,
        request: crate::registry::TrustAddRequest,
    ) -> Result<crate::registry::TrustReport> {
        self.post("/api/v1/trust/add", &request).await
    }

    async fn trust_remove(
        &self,
        request: crate::registry::TrustRemoveRequest,
    ) -> Result<crate::registry::TrustReport> {
        self.post("/api/v1/trust/remove", &request).await
    }

    async fn trust_list(
        &self,
        request: crate::registry::TrustListRequest,
    ) -> Result<crate::registry::TrustReport> {
        self.get("/api/v1/trust", &request).await
    }

    async fn rotate_key(
        &self,
        request: crate::registry::RotateKeyRequest,
    ) -> Result<crate::registry::RotateKeyReport> {
        self.post("/api/v1/key/rotate", &request).await
    }

    async fn init(&self, mut request: InitRequest) -> Result<InitReport> {
        request.dir = absolute(request.dir);
        self.post("/api/v1/init", &request).await
    }

    async fn uninstall(&self, mut request: UninstallRequest) -> Result<UninstallReport> {
        request.path = request.path.map(absolute);
        self.post("/api/v1/uninstall", &request).await
    }

    async fn outdated(&self, request: OutdatedRequest) -> Result<OutdatedReport> {
        self.get("/api/v1/outdated", &request).await
    }

    async fn update(&self, mut request: UpdateRequest) -> Result<UpdateReport> {
        request.path = request.path.map(absolute);
        self.post("/api/v1/update", &request).await
    }

    async fn mirror_sync(
        &self,
        request: crate::registry::MirrorSyncRequest,
    ) -> Result<crate::registry::MirrorSyncReport> {
        self.post("/api/v1/mirror/sync", &request).await
    }
}

fn absolute(path: std::path::PathBuf) -> std::path::PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// The API's `{"error": "..."}` message, or the bare status when there is none.
fn error_from_body(status: reqwest::StatusCode, body: &[u8]) -> RegistryError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| format!("the node answered {status}"));
    RegistryError::Remote {
        status: status.as_u16(),
        message,
    }
}
