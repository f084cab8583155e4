//! The HTTP server: GraphQL (`POST /graphql`, GraphiQL on `GET /graphql` with its files
//! under `/graphiql/`, see [`crate::graphiql`]), health and readiness, reports, and the
//! library's files (`PUT /content`, `GET /content/<sha256>`).

use std::future::Future;
use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
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
        .route("/graphql", get(crate::graphiql::page).post(graphql))
        .route("/graphiql/{file}", get(crate::graphiql::asset))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/reports/usage.csv", get(usage_csv))
        .route("/reports/incidents/{file}", get(incident_report))
        .route("/content", put(upload_content))
        .route("/content/{sha256}", get(download_content))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Server { app, schema, keys })
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

fn plain(status: StatusCode, message: String) -> axum::response::Response {
    (status, message + "\n").into_response()
}

/// The actor of the request's bearer token, or the 401 that says why there is none.
#[allow(clippy::result_large_err)]
fn bearer_actor(
    server: &Server,
    headers: &HeaderMap,
) -> Result<opsledger_domain::Actor, axum::response::Response> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = bearer else {
        return Err(plain(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required".into(),
        ));
    };
    server
        .keys
        .verify(token.trim())
        .map_err(|problem| plain(StatusCode::UNAUTHORIZED, problem))
}

/// Uploads a file to the content store for the media and script libraries: the raw request
/// body, streamed to disk and hashed on the way, at most the store's upload limit (413
/// beyond it). For operators, catalogue administrators and administrators. Answers
/// `{"sha256": "<hex>", "size": <bytes>}`, the checksum to name in `addLibraryItem` or
/// `addLibraryVersion`; the same content uploaded twice is kept once.
async fn upload_content(
    State(server): State<Server>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    let actor = match bearer_actor(&server, &headers) {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    if !opsledger_domain::library::manages_library(&actor) {
        return plain(
            StatusCode::FORBIDDEN,
            "uploading to the library needs the operator, catalog_admin or admin role".into(),
        );
    }
    let content = &server.app.content;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > content.upload_limit()) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than the limit of {} bytes",
                content.upload_limit()
            ),
        );
    }
    match content.put_stream(body.into_data_stream()).await {
        Ok((sha256, size)) => {
            tracing::info!(%sha256, size, by = %actor.id, "content uploaded");
            Json(json!({"sha256": sha256.as_str(), "size": size})).into_response()
        }
        Err(e @ crate::content::UploadError::TooLarge { .. }) => {
            plain(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Err(e @ crate::content::UploadError::Body(_)) => {
            plain(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ crate::content::UploadError::Io(_)) => {
            tracing::error!("an upload could not be kept: {e}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// Downloads a file of the content store by its SHA-256, streamed; for anyone signed in.
async fn download_content(
    State(server): State<Server>,
    headers: HeaderMap,
    axum::extract::Path(sha256): axum::extract::Path<String>,
) -> axum::response::Response {
    if let Err(refused) = bearer_actor(&server, &headers) {
        return refused;
    }
    let hash = match crate::content::Sha256Hex::parse(&sha256) {
        Ok(hash) => hash,
        Err(problem) => return plain(StatusCode::BAD_REQUEST, format!("sha256: {problem}")),
    };
    let file = match tokio::fs::File::open(server.app.content.path(&hash)).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return plain(StatusCode::NOT_FOUND, format!("there is no content {hash}"))
        }
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
            (axum::http::header::ETAG, format!("\"{hash}\"")),
        ],
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}

/// An incident's report (機房故障報告) as Markdown: `/reports/incidents/<id>.md`, for the
/// service-operations roles and auditors.
async fn incident_report(
    State(server): State<Server>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    let actor = match bearer_actor(&server, &headers) {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    if !opsledger_schema::reads_operations(&actor) {
        return plain(
            StatusCode::FORBIDDEN,
            "incident reports are for the service desk, engineers, operations staff and auditors"
                .into(),
        );
    }
    let id = file.strip_suffix(".md").unwrap_or(&file);
    let id = id.strip_prefix("incident-").unwrap_or(id);
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("{file:?} is not an incident id followed by .md"),
        );
    };
    let models = server.app.runner.read().await;
    match opsledger_schema::incident_report(&models, id) {
        Some(body) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8",
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"incident-report.md\"",
                ),
            ],
            body,
        )
            .into_response(),
        None => plain(StatusCode::NOT_FOUND, format!("there is no incident {id}")),
    }
}

/// The usage table as CSV: `groupBy` (`pool`, `department`, `project`), `from`, `to`
/// (RFC 3339), optional `period` (`day`, `week`, `month`), `department`, `project`,
/// `pool`, `asOfPosition` or `asOfTime`; the same rows and access rules as the `usage`
/// query.
async fn usage_csv(
    State(server): State<Server>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    let actor = match bearer_actor(&server, &headers) {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let params = match usage_params(&query) {
        Ok(params) => params,
        Err(problem) => return plain(StatusCode::BAD_REQUEST, problem),
    };
    let models = server.app.runner.read().await;
    match opsledger_schema::usage_csv(&models, &actor, &params, server.app.clock.now()) {
        Ok(body) => (
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"usage.csv\"",
                ),
            ],
            body,
        )
            .into_response(),
        Err((Code::Forbidden, m)) => plain(StatusCode::FORBIDDEN, m),
        Err((Code::Internal, m)) => plain(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err((_, m)) => plain(StatusCode::BAD_REQUEST, m),
    }
}

/// The CSV report's parameters; an error names the one that is wrong.
fn usage_params(
    q: &std::collections::HashMap<String, String>,
) -> Result<opsledger_schema::UsageParams, String> {
    use opsledger_schema::{UsageGroup, UsagePeriod};
    fn time(
        q: &std::collections::HashMap<String, String>,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        q.get(name)
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| t.to_utc())
                    .map_err(|_| format!("{name}: {v:?} is not an RFC 3339 time"))
            })
            .transpose()
    }
    let group_by = match q.get("groupBy").map(String::as_str) {
        Some("pool") => UsageGroup::Pool,
        Some("department") => UsageGroup::Department,
        Some("project") => UsageGroup::Project,
        Some(other) => {
            return Err(format!(
                "groupBy: {other:?} is not pool, department or project"
            ))
        }
        None => return Err("groupBy: is required (pool, department or project)".into()),
    };
    let period = match q.get("period").map(String::as_str) {
        None => None,
        Some("day") => Some(UsagePeriod::Day),
        Some("week") => Some(UsagePeriod::Week),
        Some("month") => Some(UsagePeriod::Month),
        Some(other) => return Err(format!("period: {other:?} is not day, week or month")),
    };
    let pool = q
        .get("pool")
        .map(|p| {
            p.strip_prefix("pool-")
                .unwrap_or(p)
                .parse::<uuid::Uuid>()
                .map_err(|_| format!("pool: {p:?} is not a pool id"))
        })
        .transpose()?;
    let as_of_position = q
        .get("asOfPosition")
        .map(|p| {
            p.parse::<u64>()
                .map_err(|_| format!("asOfPosition: {p:?} is not a position"))
        })
        .transpose()?;
    Ok(opsledger_schema::UsageParams {
        group_by,
        from: time(q, "from")?.ok_or("from: is required")?,
        to: time(q, "to")?.ok_or("to: is required")?,
        period,
        department: q.get("department").cloned(),
        project: q.get("project").cloned(),
        pool,
        as_of_position,
        as_of_time: time(q, "asOfTime")?,
    })
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
