//! The API's accept loop: HTTP/1 connections on the loopback listener, each with a
//! header read timeout, at most [`MAX_CONNECTIONS`] open at once. It owns connection
//! lifetimes only; what a request may do is decided by the routes and their checks.
//!
//! At the cap, the oldest connection with no request in progress (one that has sent
//! nothing yet, or is idle between requests) is closed to make room, so sockets opened
//! and left silent cannot lock callers out; only when every connection is busy does a
//! new one wait for a free slot.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::tasks::Tasks;

/// A client must send a whole request head within this long, on a new connection and
/// between requests on a kept-alive one; otherwise the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections open at once.
pub const MAX_CONNECTIONS: usize = 256;

/// One open connection, in accept order.
struct Open {
    id: u64,
    /// Requests in progress, counted until their response body has been sent.
    busy: Arc<AtomicUsize>,
    /// Cancelled to close the connection at once (it was chosen to make room).
    close: CancellationToken,
}

#[derive(Default)]
struct Connections {
    /// Guarded by a std mutex: held only for a scan, never across an await.
    open: Mutex<VecDeque<Open>>,
    /// Woken whenever a connection ends.
    freed: Notify,
    next_id: AtomicUsize,
}

impl Connections {
    /// Registers a new connection once there is room, closing the oldest idle one when
    /// the table is full; `None` if shutdown came first.
    async fn admit(&self, shutdown: &CancellationToken) -> Option<(u64, Open)> {
        loop {
            let freed = self.freed.notified();
            {
                let mut open = self.open.lock().expect("connection table poisoned");
                if open.len() >= MAX_CONNECTIONS {
                    if let Some(index) = open
                        .iter()
                        .position(|c| c.busy.load(Ordering::Acquire) == 0)
                    {
                        let evicted = open.remove(index).expect("index in range");
                        evicted.close.cancel();
                    }
                }
                if open.len() < MAX_CONNECTIONS {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed) as u64;
                    let entry = Open {
                        id,
                        busy: Arc::new(AtomicUsize::new(0)),
                        close: CancellationToken::new(),
                    };
                    let handle = Open {
                        id,
                        busy: entry.busy.clone(),
                        close: entry.close.clone(),
                    };
                    open.push_back(entry);
                    return Some((id, handle));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = freed => {}
            }
        }
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock().expect("connection table poisoned");
        open.retain(|c| c.id != id);
        drop(open);
        self.freed.notify_waiters();
    }
}

/// Serves `app` on `listener` until `shutdown`; every connection runs on `tasks`, and
/// on shutdown each finishes the request it is answering, then closes.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    tasks: Tasks,
) {
    let connections = Arc::new(Connections::default());
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(%err, "api accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = connections.admit(&shutdown).await else {
            return;
        };
        let connections = connections.clone();
        let shutdown = shutdown.clone();
        let app = app.clone();
        tasks.spawn(async move {
            serve_one(stream, app, &conn, &shutdown).await;
            connections.remove(id);
        });
    }
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    app: Router,
    conn: &Open,
    shutdown: &CancellationToken,
) {
    let busy = conn.busy.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = Busy::new(busy.clone());
        let mut app = app.clone();
        async move {
            let response = app.call(request.map(Body::new)).await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(Guarded { body, _busy: guard })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = conn.close.cancelled() => {}
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = conn.close.cancelled() => {}
            }
        }
    }
}

/// Counts one request in progress on its connection while alive.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until it has been
/// sent (install answers stream for as long as the download lasts).
struct Guarded {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
