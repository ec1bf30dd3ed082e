//! The API's routes: one handler per registry operation, JSON in and out. Read-only
//! routes are open to any local caller; changing routes need the bearer token.
//!
//! Errors come back as `{"error": "<one sentence with a hint>"}` with a 4xx/5xx status.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{Path, Query as QueryParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::net::{Multiaddr, PeerId};
use crate::package::PublisherId;
use crate::registry::{
    InfoReport, InstallReport, ListReport, P2PRegistry, Package, PeersReport, PublishReport,
    RegistryError, SearchReport, StatusReport, VerifyReport, YankReport, FORMAT_VERSION,
};
use crate::store::Query;

#[derive(Clone)]
struct AppState {
    registry: P2PRegistry,
    token: String,
    addr: SocketAddr,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublishRequest {
    pub dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InstallRequest {
    pub name: String,
    #[serde(default)]
    pub req: String,
    pub publisher: Option<PublisherId>,
    pub to: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct YankRequest {
    pub name: String,
    pub version: semver::Version,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerAddRequest {
    pub addr: String,
}

/// Query string of `GET /api/v1/search`: `q` holds the words separated by spaces.
#[derive(Debug, Serialize, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    pub q: String,
    pub category: Option<String>,
    pub keyword: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    #[serde(default)]
    pub network: bool,
}

impl SearchParams {
    pub fn from_query(query: &Query, network: bool) -> Self {
        Self {
            q: query.terms.join(" "),
            category: query.category.clone(),
            keyword: query.keyword.clone(),
            limit: Some(query.limit),
            offset: Some(query.offset),
            network,
        }
    }

    fn to_query(&self) -> Query {
        let terms = self.q.split_whitespace().map(String::from).collect();
        let mut query = Query::new(terms)
            .with_limit(self.limit.unwrap_or(20))
            .with_offset(self.offset.unwrap_or(0));
        if let Some(category) = &self.category {
            query = query.with_category(category.clone());
        }
        if let Some(keyword) = &self.keyword {
            query = query.with_keyword(keyword.clone());
        }
        query
    }
}

#[derive(Debug, Deserialize)]
struct InfoParams {
    #[serde(default)]
    req: String,
    publisher: Option<PublisherId>,
}

/// An error as the API reports it.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<RegistryError> for Failure {
    fn from(err: RegistryError) -> Self {
        let status = match err {
            RegistryError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RegistryError::Net(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        };
        Failure(status, err.to_string())
    }
}

fn bad_request(message: String) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message)
}

type ApiResult<T> = Result<Json<T>, Failure>;

pub(super) fn router(registry: P2PRegistry, token: String, addr: SocketAddr) -> Router {
    let state = AppState {
        registry,
        token,
        addr,
    };
    let changing = Router::new()
        .route("/api/v1/publish", post(publish))
        .route("/api/v1/install", post(install))
        .route("/api/v1/yank", post(yank))
        .route("/api/v1/peers", post(add_peer))
        .route("/api/v1/peers/{peer}", delete(remove_peer))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(|| async { Html(super::dashboard::PAGE) }))
        .route("/metrics", get(metrics))
        .route("/api/v1/health", get(|| async { "ok" }))
        .route("/api/v1/status", get(status))
        .route("/api/v1/search", get(search))
        .route("/api/v1/packages/{name}", get(info))
        .route("/api/v1/list", get(list))
        .route("/api/v1/verify", get(verify))
        .route("/api/v1/peers", get(peers))
        .merge(changing)
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = presented.is_some_and(|token| {
        // Compare in constant time so the token cannot be guessed byte by byte.
        token.len() == state.token.len()
            && token
                .bytes()
                .zip(state.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !valid {
        return Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong access token; the CLI reads it from api.json in the data directory"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

async fn publish(
    State(state): State<AppState>,
    Json(body): Json<PublishRequest>,
) -> ApiResult<PublishReport> {
    let package = Package::from_dir(&body.dir).map_err(|e| bad_request(e.to_string()))?;
    Ok(Json(state.registry.publish_package(package).await?))
}

/// One line of the `POST /api/v1/install` answer (newline-delimited JSON): progress
/// lines while the archive downloads, then exactly one `done` or `error` line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallEvent {
    Progress { done: u64, total: u64 },
    Done(Box<InstallReport>),
    Error(String),
}

/// Streams [`InstallEvent`]s so the CLI can draw a progress bar for a download the
/// daemon performs. Progress lines are dropped rather than queued when the client reads
/// slowly; the final line always arrives.
async fn install(State(state): State<AppState>, Json(body): Json<InstallRequest>) -> Response {
    let (events, mut receiver) = tokio::sync::mpsc::channel::<InstallEvent>(64);
    let progress_events = events.clone();
    let progress: crate::registry::install::Progress = std::sync::Arc::new(move |done, total| {
        let _ = progress_events.try_send(InstallEvent::Progress { done, total });
    });
    let tasks = state.registry.tasks().clone();
    tasks.spawn(async move {
        let result = state
            .registry
            .install_package(
                &body.name,
                &body.req,
                body.publisher,
                body.to,
                Some(progress),
            )
            .await;
        let last = match result {
            Ok(report) => InstallEvent::Done(Box::new(report)),
            Err(err) => InstallEvent::Error(err.to_string()),
        };
        let _ = events.send(last).await;
    });
    let lines = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(line))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn yank(
    State(state): State<AppState>,
    Json(body): Json<YankRequest>,
) -> ApiResult<YankReport> {
    Ok(Json(state.registry.yank(&body.name, &body.version).await?))
}

async fn status(State(state): State<AppState>) -> ApiResult<StatusReport> {
    let mut report = state.registry.status_report().await?;
    report.api = Some(state.addr.to_string());
    Ok(Json(report))
}

async fn search(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<SearchParams>,
) -> ApiResult<SearchReport> {
    let query = params.to_query();
    Ok(Json(
        state
            .registry
            .search_packages(&query, params.network)
            .await?,
    ))
}

async fn info(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<InfoParams>,
) -> ApiResult<InfoReport> {
    Ok(Json(
        state
            .registry
            .info(&name, &params.req, params.publisher)
            .await?,
    ))
}

async fn verify(State(state): State<AppState>) -> ApiResult<VerifyReport> {
    Ok(Json(state.registry.verify_store().await?))
}

async fn list(State(state): State<AppState>) -> ApiResult<ListReport> {
    Ok(Json(state.registry.list().await?))
}

fn network(state: &AppState) -> Result<crate::net::Client, Failure> {
    state.registry.client().ok_or_else(|| {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's network is not running".into(),
        )
    })
}

async fn peers_report(client: &crate::net::Client) -> ApiResult<PeersReport> {
    let peers = client.peers().await.map_err(RegistryError::from)?;
    Ok(Json(PeersReport {
        format_version: FORMAT_VERSION,
        peers,
    }))
}

async fn peers(State(state): State<AppState>) -> ApiResult<PeersReport> {
    peers_report(&network(&state)?).await
}

async fn add_peer(
    State(state): State<AppState>,
    Json(body): Json<PeerAddRequest>,
) -> ApiResult<PeersReport> {
    let addr: Multiaddr = body.addr.parse().map_err(|e| {
        bad_request(format!(
            "{:?} is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...",
            body.addr
        ))
    })?;
    let client = network(&state)?;
    client.dial(addr).await.map_err(RegistryError::from)?;
    peers_report(&client).await
}

async fn remove_peer(
    State(state): State<AppState>,
    Path(peer): Path<String>,
) -> ApiResult<PeersReport> {
    let peer: PeerId = peer.parse().map_err(|e| {
        bad_request(format!(
            "{peer:?} is not a peer id ({e}); `ggen-p2p peers` lists them"
        ))
    })?;
    let client = network(&state)?;
    client.disconnect(peer).await.map_err(RegistryError::from)?;
    peers_report(&client).await
}

async fn metrics(State(state): State<AppState>) -> Result<Response, Failure> {
    let report = state.registry.status_report().await?;
    let body = super::metrics::render(&report);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
