//! The CLI's side of the local API: finds the daemon through [`super::API_FILE`] and
//! turns each call into the same report types the registry returns in-process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::routes::{
    InstallEvent, InstallRequest, PeerAddRequest, PublishRequest, SearchParams, YankRequest,
};
use super::{ApiEndpoint, API_FILE};
use crate::package::PublisherId;
use crate::registry::install::Progress;
use crate::registry::{
    InfoReport, InstallReport, ListReport, PeersReport, PublishReport, SearchReport, StatusReport,
    VerifyReport, YankReport,
};
use crate::store::Query;

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

    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = request
            .send()
            .await
            .with_context(|| format!("the node at {} did not answer", self.endpoint.addr))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .context("reading the node's answer")?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .with_context(|| format!("the node sent an unexpected answer ({status})"));
        }
        Err(error_from_body(status, &body))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(self.request(Method::POST, path).json(body)).await
    }

    pub async fn publish(&self, dir: &Path) -> Result<PublishReport> {
        let body = PublishRequest {
            dir: dir.to_path_buf(),
        };
        self.post("/api/v1/publish", &body).await
    }

    pub async fn search(&self, query: &Query, network: bool) -> Result<SearchReport> {
        let params = SearchParams::from_query(query, network);
        self.call(self.request(Method::GET, "/api/v1/search").query(&params))
            .await
    }

    pub async fn info(
        &self,
        name: &str,
        req: &str,
        publisher: Option<PublisherId>,
    ) -> Result<InfoReport> {
        let mut params = vec![("req", req.to_string())];
        if let Some(publisher) = publisher {
            params.push(("publisher", publisher.to_string()));
        }
        let path = format!("/api/v1/packages/{name}");
        self.call(self.request(Method::GET, &path).query(&params))
            .await
    }

    /// Installs through the daemon, feeding its streamed progress to `progress`.
    pub async fn install(
        &self,
        name: &str,
        req: &str,
        publisher: Option<PublisherId>,
        to: Option<PathBuf>,
        progress: Option<Progress>,
    ) -> Result<InstallReport> {
        let body = InstallRequest {
            name: name.to_string(),
            req: req.to_string(),
            publisher,
            to,
        };
        let mut response = self
            .request(Method::POST, "/api/v1/install")
            .json(&body)
            .send()
            .await
            .with_context(|| format!("the node at {} did not answer", self.endpoint.addr))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(error_from_body(status, text.as_bytes()));
        }
        let mut pending = Vec::new();
        while let Some(bytes) = response
            .chunk()
            .await
            .context("reading the node's answer")?
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
                    Ok(InstallEvent::Error(message)) => return Err(anyhow!(message)),
                    Err(e) => return Err(anyhow!("the node sent an unexpected answer: {e}")),
                }
            }
        }
        Err(anyhow!(
            "the node closed the connection before the install finished; see its log"
        ))
    }

    pub async fn list(&self) -> Result<ListReport> {
        self.call(self.request(Method::GET, "/api/v1/list")).await
    }

    pub async fn yank(&self, name: &str, version: &semver::Version) -> Result<YankReport> {
        let body = YankRequest {
            name: name.to_string(),
            version: version.clone(),
        };
        self.post("/api/v1/yank", &body).await
    }

    pub async fn status(&self) -> Result<StatusReport> {
        self.call(self.request(Method::GET, "/api/v1/status")).await
    }

    pub async fn verify(&self) -> Result<VerifyReport> {
        self.call(self.request(Method::GET, "/api/v1/verify")).await
    }

    pub async fn peers(&self) -> Result<PeersReport> {
        self.call(self.request(Method::GET, "/api/v1/peers")).await
    }

    pub async fn add_peer(&self, addr: &str) -> Result<PeersReport> {
        let body = PeerAddRequest {
            addr: addr.to_string(),
        };
        self.post("/api/v1/peers", &body).await
    }

    pub async fn remove_peer(&self, peer: &str) -> Result<PeersReport> {
        let path = format!("/api/v1/peers/{peer}");
        self.call(self.request(Method::DELETE, &path)).await
    }
}

/// The API's `{"error": "..."}` message, or the bare status when there is none.
fn error_from_body(status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| format!("the node answered {status}"));
    anyhow!(message)
}
