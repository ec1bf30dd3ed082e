//! The daemon's local HTTP API (axum, loopback only): the CLI's way into a running node,
//! plus the web dashboard (with its live feed of records), `/metrics`, `/health` and
//! `/ready`.
//!
//! On start the daemon writes [`API_FILE`] (address and access token, mode 0600) into the
//! data directory; calls that change anything must carry `Authorization: Bearer <token>`,
//! so only users who can read the data directory can act through the API. Every request
//! must name the API's own loopback address as its `Host` (else 421) and, when it carries
//! an `Origin`, come from that same origin (else 403), so a web page on another origin
//! (DNS rebinding included) can neither read nor act. Connections are capped and must
//! send their headers in time ([`server`]).

pub mod client;
mod dashboard;
mod routes;
pub(crate) mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registry::P2PRegistry;

/// File in the data directory that tells clients where the daemon listens.
pub const API_FILE: &str = "api.json";

/// Contents of [`API_FILE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiEndpoint {
    pub addr: SocketAddr,
    pub token: String,
    pub pid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source}; pass --api 127.0.0.1:PORT with a free port")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--api {0}: the API only listens on loopback (e.g. 127.0.0.1:0)")]
    NotLoopback(String),
    #[error("{path}: cannot write the API endpoint file: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running API server; it runs on the registry's shutdown root and stops with it.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub token: String,
}

/// Binds `addr` (loopback only) and serves the API on the registry's task tracker until
/// the registry stops.
pub async fn serve(registry: P2PRegistry, addr: &str) -> Result<ApiServer, ApiError> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|_| ApiError::NotLoopback(addr.to_string()))?;
    if !socket.ip().is_loopback() {
        return Err(ApiError::NotLoopback(addr.to_string()));
    }
    let listener = tokio::net::TcpListener::bind(socket)
        .await
        .map_err(|source| ApiError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let tasks = registry.tasks().clone();
    let shutdown = tasks.token().clone();
    let app = routes::router(registry, token.clone(), bound);
    tasks.spawn(server::run(listener, app, shutdown, tasks.clone()));
    Ok(ApiServer { addr: bound, token })
}

/// Writes [`API_FILE`] so CLI invocations find this daemon.
pub fn write_endpoint(data_dir: &Path, server: &ApiServer) -> Result<PathBuf, ApiError> {
    let path = data_dir.join(API_FILE);
    let endpoint = ApiEndpoint {
        addr: server.addr,
        token: server.token.clone(),
        pid: std::process::id(),
    };
    let json = serde_json::to_vec_pretty(&endpoint).unwrap_or_default();
    crate::package::keys::write_private(&path, &json).map_err(|source| ApiError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
