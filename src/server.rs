//! The HTTP server: health and readiness for now; the GraphQL API mounts here.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::store::EventStore;

/// The routes, over one event store.
pub fn router(store: EventStore) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(store)
}

/// Ready when the event log answers; reports the position it has reached.
async fn ready(State(store): State<EventStore>) -> (StatusCode, Json<serde_json::Value>) {
    match store.head().await {
        Ok(position) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "backend": store.backend_name(), "position": position})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string()})),
        ),
    }
}

/// Serves until `shutdown` completes.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    store: EventStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}
