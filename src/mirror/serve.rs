//! `start --mirror ADDR`: serves the store read-only over plain HTTP in the layout of
//! [`super`] (names, sparse index per name, archives by hash). It owns the routes only;
//! connections go through the API's accept loop (header timeout, connection cap), on
//! the registry's shutdown root.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use tokio::io::AsyncReadExt;

use super::{IndexLine, MirrorError};
use crate::package::Blake3Hash;
use crate::store::{mirror_etag, Store};
use crate::tasks::Tasks;

/// Bytes read from an archive file per body frame.
const READ_SIZE: usize = 256 * 1024;

/// A mirror being served; it stops with the registry's shutdown root.
pub struct MirrorServer {
    pub addr: SocketAddr,
}

/// Binds `addr` (any interface: a mirror is meant to be reached) and serves `store` on
/// `tasks` until they are shut down.
pub async fn serve(store: Store, addr: &str, tasks: &Tasks) -> Result<MirrorServer, MirrorError> {
    let socket: SocketAddr = addr.parse().map_err(|e| MirrorError::BadAddress {
        addr: addr.to_string(),
        reason: format!("{e}"),
    })?;
    let bind = |source| MirrorError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(socket).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let app = router(store);
    let shutdown = tasks.token().clone();
    tasks.spawn(crate::api::server::run(
        listener,
        app,
        shutdown,
        tasks.clone(),
    ));
    Ok(MirrorServer { addr: bound })
}

/// The mirror's routes (`GET`, and `HEAD` by axum's rule).
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/names", get(names))
        .route("/index/{name}", get(index))
        .route("/archives/{hash}", get(archive))
        .with_state(store)
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text: String = message.into();
    text.push('\n');
    (status, text).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// `304` when the client's `If-None-Match` names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        })
}

/// A revalidated answer: `ETag`, `Cache-Control: public, no-cache`, or `304`.
fn revalidated(headers: &HeaderMap, etag: String, content_type: &str, body: String) -> Response {
    let mut response = if not_modified(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    response
}

async fn names(State(store): State<Store>, headers: HeaderMap) -> Response {
    let names = match store.call(|store| store.mirror_names()).await {
        Ok(names) => names,
        Err(e) => return internal(e),
    };
    let mut body = String::new();
    for name in names {
        body.push_str(&name);
        body.push('\n');
    }
    let etag = format!("\"{}\"", Blake3Hash::of(body.as_bytes()).to_hex());
    revalidated(&headers, etag, "text/plain; charset=utf-8", body)
}

async fn index(
    State(store): State<Store>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lookup = name.clone();
    let records = match store.call(move |store| store.mirror_records(&lookup)).await {
        Ok(records) => records,
        Err(e) => return internal(e),
    };
    if records.is_empty() {
        return failure(
            StatusCode::NOT_FOUND,
            format!("{name}: this mirror holds no record of that name; see /names"),
        );
    }
    let etag = mirror_etag(&records);
    let mut body = String::new();
    for (kind, bytes) in &records {
        let line = IndexLine {
            kind: kind.as_str().to_string(),
            id: Blake3Hash::of(bytes).to_hex(),
            record: base64::engine::general_purpose::STANDARD.encode(bytes),
        };
        body.push_str(&serde_json::to_string(&line).unwrap_or_default());
        body.push('\n');
    }
    revalidated(&headers, etag, "application/x-ndjson", body)
}

/// Streams a stored archive from its file, a frame at a time: memory stays flat
/// whatever the archive's size.
async fn archive(
    State(store): State<Store>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(blake3) = hash.parse::<Blake3Hash>() else {
        return failure(
            StatusCode::BAD_REQUEST,
            format!("{hash:?} is not a BLAKE3 hash (64 hex digits)"),
        );
    };
    let path = match store
        .call(move |store| {
            Ok::<_, crate::store::StoreError>(
                store
                    .has_archive(&blake3)
                    .then(|| store.archive_path(&blake3))
                    .flatten(),
            )
        })
        .await
    {
        Ok(Some(path)) => path,
        Ok(None) => {
            return failure(
                StatusCode::NOT_FOUND,
                format!("archive {blake3} is not stored on this mirror"),
            )
        }
        Err(e) => return internal(e),
    };
    let etag = format!("\"{}\"", blake3.to_hex());
    let immutable = [
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_string(),
        ),
        (header::ETAG, etag.clone()),
    ];
    if not_modified(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, immutable).into_response();
    }
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => return internal(format!("{}: {e}", path.display())),
    };
    let size = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(e) => return internal(format!("{}: {e}", path.display())),
    };
    let frames = futures::stream::try_unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; READ_SIZE];
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buffer.truncate(read);
        Ok(Some((Bytes::from(buffer), file)))
    });
    (
        immutable,
        [
            (header::CONTENT_TYPE, "application/zstd".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}
