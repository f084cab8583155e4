//! GraphiQL, served from the binary so that it works on a network without internet:
//! `GET /graphql` is the page, `GET /graphiql/<file>` its scripts and styles (GraphiQL
//! 3.9.0 and React 18.3.1 from the npm registry, in `assets/graphiql/` with their licences).
//!
//! The files' names carry their versions, so a browser may keep them for a year; the page
//! itself is checked again on every visit.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The page: GraphiQL over `/graphql` and `/graphql/ws`, the headers pane open with an
/// `Authorization` example and the README's first query.
const PAGE: &str = include_str!("../../assets/graphiql/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Each file under `/graphiql/`: its name, type and bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql-3.9.0.min.js",
        JS,
        include_bytes!("../../assets/graphiql/graphiql-3.9.0.min.js"),
    ),
    (
        "graphiql-3.9.0.min.css",
        CSS,
        include_bytes!("../../assets/graphiql/graphiql-3.9.0.min.css"),
    ),
    (
        "react-18.3.1.production.min.js",
        JS,
        include_bytes!("../../assets/graphiql/react-18.3.1.production.min.js"),
    ),
    (
        "react-dom-18.3.1.production.min.js",
        JS,
        include_bytes!("../../assets/graphiql/react-dom-18.3.1.production.min.js"),
    ),
    (
        "LICENSE-graphiql",
        TEXT,
        include_bytes!("../../assets/graphiql/LICENSE-graphiql"),
    ),
    (
        "LICENSE-react",
        TEXT,
        include_bytes!("../../assets/graphiql/LICENSE-react"),
    ),
    (
        "LICENSE-react-dom",
        TEXT,
        include_bytes!("../../assets/graphiql/LICENSE-react-dom"),
    ),
];

/// `GET /graphql`: the GraphiQL page.
pub async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE)).into_response()
}

/// `GET /graphiql/<file>`: one of the page's files, cached for a year; 404 for any other.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
