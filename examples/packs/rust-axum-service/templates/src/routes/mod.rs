mod health;

use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
