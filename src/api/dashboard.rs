//! The web dashboard: a page, its script and style sheet, all embedded in the binary (no
//! CDN, no build step; works offline), reading the same read-only JSON routes as the
//! CLI, plus the live feed of accepted records as server-sent events. It owns the
//! assets and the feed's translation; what a record is or whether it is accepted is not
//! decided here.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::routes::AppState;
use crate::registry::RecordEvent;

pub const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// `/assets/{file}`: the page's script and style sheet.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (content_type, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "style.css" => ("text/css; charset=utf-8", STYLE),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/v1/events`: a `hello` event once subscribed, then one `record` event (a
/// [`RecordEvent`] as JSON) per record this node accepts, and a `lagged` event (how many
/// were skipped) when the client reads too slowly to keep up. The stream ends when the
/// node stops, so shutdown never waits for a browser tab.
pub(super) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.registry.store().subscribe_records();
    let stopped = state.registry.tasks().token().clone().cancelled_owned();
    let hello =
        futures::stream::once(async { Ok(Event::default().event("hello").data("subscribed")) });
    let records = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(record) => {
                let event = RecordEvent::from(&record);
                Event::default()
                    .event("record")
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().event("record"))
            }
            Err(RecvError::Lagged(skipped)) => {
                Event::default().event("lagged").data(skipped.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(hello.chain(records).take_until(stopped)).keep_alive(KeepAlive::default())
}
