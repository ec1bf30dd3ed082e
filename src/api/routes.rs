//! The API's routes: one handler per registry operation, JSON in and out. Read-only
//! routes are open to any local caller; changing routes need the bearer token.
//!
//! Errors come back as `{"error": "<one sentence with a hint>"}` with a 4xx/5xx status.

use std::net::SocketAddr;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::registry::{
    AddPeerRequest, InfoReport, InfoRequest, InstallReport, InstallRequest, ListReport,
    ListRequest, P2PRegistry, PeersReport, PeersRequest, Progress, PublishReport, PublishRequest,
    Registry, RegistryError, RemovePeerRequest, SearchReport, SearchRequest, StatusReport,
    StatusRequest, VerifyReport, VerifyRequest, YankReport, YankRequest,
};
use crate::registry::{BlockPeerRequest, BlockReport, UnblockPeerRequest};

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) registry: P2PRegistry,
    token: String,
    addr: SocketAddr,
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
            RegistryError::NotRunning { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Failure(status, err.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, Failure>;

/// The routes, one per operation: changing operations are `POST` with the request type
/// as JSON body (and need the token), reading ones are `GET` with it as query string.
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
        .route("/api/v1/peers/add", post(add_peer))
        .route("/api/v1/peers/remove", post(remove_peer))
        .route("/api/v1/trust/add", post(trust_add))
        .route("/api/v1/trust/remove", post(trust_remove))
        .route("/api/v1/key/rotate", post(rotate_key))
        .route("/api/v1/peers/block", post(block_peer))
        .route("/api/v1/peers/unblock", post(unblock_peer))
        .route("/api/v1/verify/repair", post(verify_repair))
        .route("/api/v1/init", post(init))
        .route("/api/v1/uninstall", post(uninstall))
        .route("/api/v1/update", post(update))
        .route("/api/v1/mirror/sync", post(mirror_sync))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(|| async { Html(super::dashboard::PAGE) }))
        .route("/assets/{file}", get(super::dashboard::asset))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        // Liveness for the CLI's daemon discovery: the API answers (see /health).
        .route("/api/v1/health", get(|| async { "ok" }))
        .route("/api/v1/activity", get(activity))
        .route("/api/v1/events", get(super::dashboard::events))
        .route("/api/v1/status", get(status))
        .route("/api/v1/trust", get(trust_list))
        .route("/api/v1/search", get(search))
        .route("/api/v1/info", get(info))
        .route("/api/v1/list", get(list))
        .route("/api/v1/verify", get(verify))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/outdated", get(outdated))
        .merge(changing)
        .layer(middleware::from_fn_with_state(state.clone(), same_origin))
        .with_state(state)
}

/// Every route, matched or not: the `Host` must be this API's loopback address
/// (`127.0.0.1:PORT`, or `localhost:PORT`), and an `Origin`, when sent, must be
/// `http://` + that host. A page served from any other origin (a rebound DNS name
/// included) is refused before a handler runs.
async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ours = [
        state.addr.to_string(),
        format!("localhost:{}", state.addr.port()),
    ];
    if !ours.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Failure(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {host:?} is not this API; address it as http://{} (or http://localhost:{})",
                state.addr,
                state.addr.port()
            ),
        )
        .into_response();
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Failure(
                StatusCode::FORBIDDEN,
                format!(
                    "requests from origin {origin:?} are refused; only the dashboard at http://{host} may call this API from a browser"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
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
    Json(request): Json<PublishRequest>,
) -> ApiResult<PublishReport> {
    Ok(Json(state.registry.publish(request).await?))
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
async fn install(State(state): State<AppState>, Json(request): Json<InstallRequest>) -> Response {
    let (events, mut receiver) = tokio::sync::mpsc::channel::<InstallEvent>(64);
    let progress_events = events.clone();
    let progress: Progress = std::sync::Arc::new(move |done, total| {
        let _ = progress_events.try_send(InstallEvent::Progress { done, total });
    });
    let tasks = state.registry.tasks().clone();
    tasks.spawn(async move {
        let result = state.registry.install(request, Some(progress)).await;
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
    Json(request): Json<YankRequest>,
) -> ApiResult<YankReport> {
    Ok(Json(state.registry.yank(request).await?))
}

async fn status(
    State(state): State<AppState>,
    Query(request): Query<StatusRequest>,
) -> ApiResult<StatusReport> {
    let mut report = state.registry.status(request).await?;
    report.api = Some(state.addr.to_string());
    Ok(Json(report))
}

async fn search(
    State(state): State<AppState>,
    Query(request): Query<SearchRequest>,
) -> ApiResult<SearchReport> {
    Ok(Json(state.registry.search(request).await?))
}

async fn info(
    State(state): State<AppState>,
    Query(request): Query<InfoRequest>,
) -> ApiResult<InfoReport> {
    Ok(Json(state.registry.info(request).await?))
}

async fn verify(
    State(state): State<AppState>,
    Query(request): Query<VerifyRequest>,
) -> ApiResult<VerifyReport> {
    if request.repair {
        return Err(RegistryError::Refused(
            "repair changes the store, so it is not a GET; POST /api/v1/verify/repair with the token".into(),
        )
        .into());
    }
    Ok(Json(state.registry.verify(request).await?))
}

/// `verify --repair`: changes the store, so it needs the token.
async fn verify_repair(
    State(state): State<AppState>,
    Json(mut request): Json<VerifyRequest>,
) -> ApiResult<VerifyReport> {
    request.repair = true;
    Ok(Json(state.registry.verify(request).await?))
}

async fn list(
    State(state): State<AppState>,
    Query(request): Query<ListRequest>,
) -> ApiResult<ListReport> {
    Ok(Json(state.registry.list(request).await?))
}

async fn peers(
    State(state): State<AppState>,
    Query(request): Query<PeersRequest>,
) -> ApiResult<PeersReport> {
    Ok(Json(state.registry.peers(request).await?))
}

async fn add_peer(
    State(state): State<AppState>,
    Json(request): Json<AddPeerRequest>,
) -> ApiResult<PeersReport> {
    Ok(Json(state.registry.add_peer(request).await?))
}

async fn remove_peer(
    State(state): State<AppState>,
    Json(request): Json<RemovePeerRequest>,
) -> ApiResult<PeersReport> {
    Ok(Json(state.registry.remove_peer(request).await?))
}

async fn trust_add(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::TrustAddRequest>,
) -> ApiResult<crate::registry::TrustReport> {
    Ok(Json(state.registry.trust_add(request).await?))
}

async fn trust_remove(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::TrustRemoveRequest>,
) -> ApiResult<crate::registry::TrustReport> {
    Ok(Json(state.registry.trust_remove(request).await?))
}

async fn trust_list(
    State(state): State<AppState>,
    Query(request): Query<crate::registry::TrustListRequest>,
) -> ApiResult<crate::registry::TrustReport> {
    Ok(Json(state.registry.trust_list(request).await?))
}

async fn init(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::InitRequest>,
) -> ApiResult<crate::registry::InitReport> {
    Ok(Json(state.registry.init(request).await?))
}

async fn uninstall(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::UninstallRequest>,
) -> ApiResult<crate::registry::UninstallReport> {
    Ok(Json(state.registry.uninstall(request).await?))
}

async fn outdated(
    State(state): State<AppState>,
    Query(request): Query<crate::registry::OutdatedRequest>,
) -> ApiResult<crate::registry::OutdatedReport> {
    Ok(Json(state.registry.outdated(request).await?))
}

async fn update(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::UpdateRequest>,
) -> ApiResult<crate::registry::UpdateReport> {
    Ok(Json(state.registry.update(request).await?))
}

async fn rotate_key(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::RotateKeyRequest>,
) -> ApiResult<crate::registry::RotateKeyReport> {
    Ok(Json(state.registry.rotate_key(request).await?))
}

async fn block_peer(
    State(state): State<AppState>,
    Json(request): Json<BlockPeerRequest>,
) -> ApiResult<BlockReport> {
    Ok(Json(state.registry.block_peer(request).await?))
}

async fn unblock_peer(
    State(state): State<AppState>,
    Json(request): Json<UnblockPeerRequest>,
) -> ApiResult<BlockReport> {
    Ok(Json(state.registry.unblock_peer(request).await?))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, Failure> {
    let report = state.registry.status(StatusRequest::default()).await?;
    let body = state.registry.render_metrics(&report);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

async fn activity(State(state): State<AppState>) -> Json<crate::registry::ActivityReport> {
    Json(state.registry.activity())
}

/// `/health`: 200 when the store takes a write and the event loop answers, else 503
/// with the checks (the failing one says what to do).
async fn health(State(state): State<AppState>) -> Response {
    health_response(state.registry.health(false).await)
}

/// `/ready`: `/health` plus at least one connected peer (unless the node is configured
/// with no bootstrap peers, so it has none to wait for).
async fn ready(State(state): State<AppState>) -> Response {
    health_response(state.registry.health(true).await)
}

fn health_response(report: crate::registry::HealthReport) -> Response {
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn mirror_sync(
    State(state): State<AppState>,
    Json(request): Json<crate::registry::MirrorSyncRequest>,
) -> ApiResult<crate::registry::MirrorSyncReport> {
    Ok(Json(state.registry.mirror_sync(request).await?))
}
