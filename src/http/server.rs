//! The HTTP server: GraphQL (`POST /graphql`, GraphiQL on `GET /graphql` with its files
//! under `/graphiql/`, see [`crate::http::graphiql`]), health and readiness, Prometheus metrics
//! (`GET /metrics`), reports, and the library's files (`PUT /content`,
//! `GET /content/<sha256>`).
//!
//! Every request gets an id (the client's `x-request-id`, or a new UUID), returned in the
//! response's `x-request-id` header and carried by the request's tracing span.

use std::future::Future;
use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
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
use crate::http::auth::Keys;

/// The largest request body accepted by default: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The largest request body accepted (but for `PUT /content`, which has the content
    /// store's own limit); a larger one is answered `413` before it is read further.
    pub body_limit: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

#[derive(Clone)]
struct Server {
    app: App,
    schema: OpsSchema,
    keys: Keys,
    body_limit: usize,
}

/// The routes, over the application, with the default options.
pub fn router(app: App, keys: Keys) -> Router {
    router_with(app, keys, &ServerOptions::default())
}

/// The routes, over the application.
pub fn router_with(app: App, keys: Keys, options: &ServerOptions) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let schema = opsledger_schema::builder(Arc::new(app.clone()))
        .extension(crate::http::observe::Observe)
        .finish();
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let traced = tower_http::trace::TraceLayer::new_for_http().make_span_with(
        |request: &axum::http::Request<axum::body::Body>| {
            let id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!(
                "http",
                request_id = id,
                method = %request.method(),
                path = request.uri().path(),
            )
        },
    );
    Router::new()
        .route("/graphql", get(crate::http::graphiql::page).post(graphql))
        .route("/graphiql/{file}", get(crate::http::graphiql::asset))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(prometheus))
        .route("/reports/usage.csv", get(usage_csv))
        .route("/reports/incidents/{file}", get(incident_report))
        .route("/content", put(upload_content))
        .route("/content/{sha256}", get(download_content))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(traced)
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(Server {
            app,
            schema,
            keys,
            body_limit: options.body_limit,
        })
}

/// The token of the request's `Authorization: Bearer …` header, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The body length the request declares in `Content-Length`, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// A GraphQL error answered before the request reaches the schema (its body is too large or
/// is not a GraphQL request), as `{"errors": [{"message", "extensions": {"code"}}]}`.
fn refused(status: StatusCode, code: &str, message: String) -> axum::response::Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, Json(body)).into_response()
}

/// `POST /graphql`: the body is read up to the body limit (a larger one is `413` with
/// code `PAYLOAD_TOO_LARGE`, whether or not a token came with it, and is not read further),
/// then the token is checked and the operation run.
async fn graphql(
    State(server): State<Server>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    use tracing::Instrument;
    let limit = server.body_limit;
    let too_large = || {
        crate::metrics::metrics().http_refused_too_large.inc();
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    if declared_length(&headers).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return too_large(),
    };
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut request = match async_graphql::http::receive_body(
        content_type,
        &bytes[..],
        async_graphql::http::MultipartOptions::default(),
    )
    .await
    {
        Ok(request) => request,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("the body is not a GraphQL request: {e}"),
            )
        }
    };
    let mut actor_id = String::from("-");
    if let Some(token) = bearer(&headers) {
        match server.keys.verify(token.trim()) {
            Ok(actor) => {
                actor_id.clone_from(&actor.id);
                request = request.data(actor);
            }
            Err(problem) => {
                let mut error = async_graphql::ServerError::new(problem, None);
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("code", Code::Unauthenticated.as_str());
                error.extensions = Some(extensions);
                return GraphQLResponse::from(async_graphql::Response::from_errors(vec![error]))
                    .into_response();
            }
        }
    }
    let span = tracing::info_span!(
        "graphql",
        operation = request.operation_name.as_deref().unwrap_or(""),
        actor = %actor_id
    );
    let response = server.schema.execute(request).instrument(span).await;
    GraphQLResponse::from(response).into_response()
}

/// `GET /metrics`: the process's metrics for Prometheus, with the log's head and each read
/// model's position and lag read now.
async fn prometheus(State(server): State<Server>) -> axum::response::Response {
    let app = &server.app;
    let m = crate::metrics::metrics();
    let position = app.runner.position();
    m.tasks(
        app.supervisor
            .states()
            .iter()
            .map(|t| (t.name, t.state.label(), t.lag)),
    );
    let outbox = app.runner.read().await.mail.pending();
    m.mail_outbox.set(i64::try_from(outbox).unwrap_or(i64::MAX));
    if let Ok(head) = app.store.head().await {
        m.head.set(i64::try_from(head).unwrap_or(i64::MAX));
        let lag = i64::try_from(head.saturating_sub(position)).unwrap_or(i64::MAX);
        for model in opsledger_projections::ReadModels::NAMES {
            let label = crate::metrics::ModelLabel { model };
            m.projection_position
                .get_or_create(&label)
                .set(i64::try_from(position).unwrap_or(i64::MAX));
            m.projection_lag.get_or_create(&label).set(lag);
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

fn plain(status: StatusCode, message: String) -> axum::response::Response {
    (status, message + "\n").into_response()
}

/// The actor of the request's bearer token, or the 401 that says why there is none.
#[expect(
    clippy::result_large_err,
    reason = "the error is an HTTP response, built once on a refused request"
)]
fn bearer_actor(
    server: &Server,
    headers: &HeaderMap,
) -> Result<opsledger_domain::Actor, axum::response::Response> {
    let Some(token) = bearer(headers) else {
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
    if !opsledger_domain::automation::library::manages_library(&actor) {
        return plain(
            StatusCode::FORBIDDEN,
            "uploading to the library needs the operator, catalog_admin or admin role".into(),
        );
    }
    let content = &server.app.content;
    if declared_length(&headers).is_some_and(|n| n > content.upload_limit()) {
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
        Err(e @ crate::store::content::UploadError::TooLarge { .. }) => {
            plain(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Err(e @ crate::store::content::UploadError::Body(_)) => {
            plain(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ crate::store::content::UploadError::Io(_)) => {
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
    let hash = match crate::store::content::Sha256Hex::parse(&sha256) {
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
        Err((Code::Internal, m)) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            opsledger_schema::internal_message(opsledger_schema::log_internal(&m)),
        ),
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

/// Healthy (200, `ok`) while every background task can go on; 503 with
/// `{"status": "failing", "task": …, "reason": …}` once one stopped for good (the server
/// then takes no writes).
async fn health(State(server): State<Server>) -> axum::response::Response {
    match server.app.supervisor.stopped() {
        None => "ok".into_response(),
        Some((task, reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failing", "task": task, "reason": reason})),
        )
            .into_response(),
    }
}

/// Ready (200) once the read models have caught up with the log and every background
/// task is running or on standby; the body names the position, the head and each task's
/// state (`running`, `retrying` with the attempt and last error, `stopped` with the
/// reason, `standby`) and lag.
async fn ready(State(server): State<Server>) -> (StatusCode, Json<serde_json::Value>) {
    use crate::runtime::supervise::TaskState;
    let app = &server.app;
    let tasks = app.supervisor.states();
    let tasks_ok = tasks
        .iter()
        .all(|t| matches!(t.state, TaskState::Running | TaskState::Standby));
    match app.store.head().await {
        Ok(head) => {
            let position = app.runner.position();
            let state = if let Some((task, _)) = app.supervisor.stopped() {
                format!("the {task} task stopped")
            } else if position < head {
                "catching up".to_owned()
            } else if !tasks_ok {
                "retrying".to_owned()
            } else {
                "ready".to_owned()
            };
            let status = if state == "ready" {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                Json(json!({
                    "status": state,
                    "backend": app.store.backend_name(),
                    "position": position,
                    "head": head,
                    "tasks": tasks,
                })),
            )
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string(), "tasks": tasks})),
        ),
    }
}

/// Serves until `shutdown` completes, with the default options.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    app: App,
    keys: Keys,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, keys, &ServerOptions::default(), shutdown).await
}

/// Serves until `shutdown` completes.
///
/// # Errors
/// When the listener fails.
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    keys: Keys,
    options: &ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(app, keys, options))
        .with_graceful_shutdown(shutdown)
        .await
}
