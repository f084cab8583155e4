//! The HTTP server: GraphQL (`POST /graphql`, GraphiQL on `GET /graphql`), health and
//! readiness.

use std::future::Future;
use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use opsledger_schema::{Code, OpsSchema};
use serde_json::json;
use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::Keys;

/// The largest request body accepted.
const BODY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
struct Server {
    app: App,
    schema: OpsSchema,
    keys: Keys,
}

/// The routes, over the application.
pub fn router(app: App, keys: Keys) -> Router {
    let schema = opsledger_schema::build(Arc::new(app.clone()));
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Server { app, schema, keys })
}

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

async fn graphql(
    State(server): State<Server>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let mut request = request.into_inner();
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        match server.keys.verify(token.trim()) {
            Ok(actor) => request = request.data(actor),
            Err(problem) => {
                let mut error = async_graphql::ServerError::new(problem, None);
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("code", Code::Unauthenticated.as_str());
                error.extensions = Some(extensions);
                return async_graphql::Response::from_errors(vec![error]).into();
            }
        }
    }
    server.schema.execute(request).await.into()
}

/// Subscriptions over `graphql-transport-ws`; the token travels in `connection_init`'s
/// payload as `{"Authorization": "Bearer …"}` (or `{"token": "…"}`), and a bad one closes
/// the connection.
async fn graphql_ws(
    State(server): State<Server>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> impl IntoResponse {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let keys = server.keys.clone();
            GraphQLWebSocket::new(socket, server.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let bearer = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                        .map(|v| v.trim_start_matches("Bearer ").to_owned())
                        .or_else(|| {
                            payload
                                .get("token")
                                .and_then(|v| v.as_str())
                                .map(str::to_owned)
                        });
                    let mut data = async_graphql::Data::default();
                    if let Some(token) = bearer {
                        data.insert(
                            keys.verify(token.trim())
                                .map_err(async_graphql::Error::new)?,
                        );
                    }
                    Ok(data)
                })
                .serve()
        })
}

/// Ready once the read models have caught up with the log.
async fn ready(State(server): State<Server>) -> (StatusCode, Json<serde_json::Value>) {
    let app = &server.app;
    match app.store.head().await {
        Ok(head) => {
            let position = app.runner.position();
            let status = if position >= head {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let state = if position >= head {
                "ready"
            } else {
                "catching up"
            };
            (
                status,
                Json(
                    json!({"status": state, "backend": app.store.backend_name(), "position": position, "head": head}),
                ),
            )
        }
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
    app: App,
    keys: Keys,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app, keys))
        .with_graceful_shutdown(shutdown)
        .await
}
