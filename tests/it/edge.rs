//! The HTTP edge as an operator and a careless client meet it: the body limit, request ids,
//! `/metrics` (also scraped by a real Prometheus, and with the background tasks of a served
//! process), and JSON log lines.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::{json, Value};

use crate::graphql::{token, Api};
use opsledger::store::ExpectedVersion;

use crate::support::{append, opsledger, stream, Fixture, Kind};

/// A body over the limit is refused with 413 and a JSON error, with and without a token,
/// whether its length is declared or it is streamed in chunks; the server keeps serving.
#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let http = reqwest::Client::new();
    let url = format!("{}/graphql", api.base());
    let padding = "x".repeat(10 << 20);
    let body = json!({"query": "{ position }", "variables": {"padding": padding}}).to_string();
    for bearer in [None, Some(token("u-chan", "財政局", &["requester"]))] {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(bearer) = &bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 413, "token: {}", bearer.is_some());
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE",
            "{answer}"
        );
    }
    // Streamed, with no length declared: refused once the limit is passed.
    let chunks = futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 << 10]))),
    );
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // A body under the limit is served as before.
    let me = token("u-chan", "財政局", &["requester"]);
    assert_eq!(api.ok(&me, "{ position }", json!({})).await["position"], 0);
    api.stop().await;
}

/// Every response carries a request id: the client's own, or a new one.
#[tokio::test]
async fn every_response_names_its_request_id() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let http = reqwest::Client::new();
    let given = http
        .get(format!("{}/healthz", api.base()))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    let made = http
        .get(format!("{}/healthz", api.base()))
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    api.stop().await;
}

/// `/metrics` speaks OpenMetrics and counts what the server did: the operation by name and
/// outcome, the appends of a command, and the read models' lag.
#[tokio::test]
async fn metrics_count_operations_appends_and_lag() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    api.create_vm_item().await;
    let me = token("u-chan", "財政局", &["requester"]);
    let _ = api
        .post(Some(&me), "query CountedPosition { position }", json!({}))
        .await;
    let _ = api
        .post(
            None,
            "query RefusedRequests { requests(first: 1) { edges { cursor } } }",
            json!({}),
        )
        .await;
    let response = reqwest::get(format!("{}/metrics", api.base()))
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"opsledger_graphql_requests_total{operation="CountedPosition",code="ok"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"opsledger_graphql_requests_total{operation="RefusedRequests",code="UNAUTHENTICATED"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"opsledger_appends_total{backend="sqlite"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"opsledger_commit_seconds_bucket{"#),
        "{text}"
    );
    assert!(
        text.contains(r#"opsledger_projection_lag_events{model="requests"}"#),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    api.stop().await;
}

/// Whether a test that needs an installed program runs: it does where the program is, and
/// must where `.ci/run` says so (the variable set), so CI never skips it silently.
fn installed(program: &str, required_by: &str) -> bool {
    let present = std::path::Path::new(program).exists();
    if !present {
        assert!(
            std::env::var_os(required_by).is_none(),
            "{required_by} is set but {program} is not installed"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: a test that needs {program} (install it, or run .ci/run)"
        );
    }
    present
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus scrapes a running server with the scrape configuration the README
/// documents, and its query API then returns OpsLedger's own series.
#[tokio::test]
async fn prometheus_scrapes_the_server() {
    if !installed("/usr/bin/prometheus", "OPSLEDGER_TEST_PROMETHEUS") {
        return;
    }
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    api.create_vm_item().await;
    let target = api.base().trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: opsledger\n    \
             metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut prometheus = std::process::Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let query = |q: &'static str| async move {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/v1/query"))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()
    };
    let mut found = None;
    for _ in 0..600 {
        if let Some(answer) = query("opsledger_appends_total").await {
            if answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                found = Some(answer);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up = query("up{job=\"opsledger\"}").await;
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let found = found.expect("Prometheus scraped opsledger_appends_total");
    // The registry is the process's: other tests' appends (on PostgreSQL too) are in it.
    let series = found["data"]["result"].as_array().unwrap();
    assert!(
        series
            .iter()
            .any(|s| s["metric"]["backend"] == "sqlite" && s["metric"]["job"] == "opsledger"),
        "{found}"
    );
    let up = up.unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    api.stop().await;
}

/// `serve --log-format json` writes one JSON object per line, with the request's span.
#[tokio::test]
async fn serve_logs_json_lines() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let port = free_port();
    let mut server = opsledger(&fixture)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info,tower_http=debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let health = format!("http://127.0.0.1:{port}/healthz");
    let mut answered = false;
    for _ in 0..400 {
        if let Ok(r) = reqwest::Client::new()
            .get(&health)
            .header("x-request-id", "json-log-1")
            .send()
            .await
        {
            answered = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "the server did not start");
    let mut logged = Vec::new();
    let mut traced = false;
    while let Ok(line) = seen.recv_timeout(Duration::from_secs(5)) {
        let object: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        traced |= object["span"]["request_id"] == "json-log-1";
        logged.push(object);
        if traced {
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        logged
            .iter()
            .any(|o| o["fields"]["message"] == "opsledger is serving"),
        "{logged:?}"
    );
    assert!(traced, "no line in the request's span: {logged:?}");
}

/// A served process reports its background tasks on `/metrics`: each task's state, the
/// scheduler's passes by job, the snapshots it wrote, and the mail outbox.
#[tokio::test]
async fn metrics_report_the_background_tasks() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    fixture
        .open()
        .await
        .append(append(&stream(), ExpectedVersion::NoStream, 1, 3))
        .await
        .unwrap();
    let port = free_port();
    let mut server = opsledger(&fixture)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--snapshot-every", "1"])
        .env("OPSLEDGER_JWT_SECRET", "a secret of sixteen or more")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let expected = [
        r#"opsledger_task_state{task="runner",state="running"} 1"#,
        r#"opsledger_task_state{task="runner",state="stopped"} 0"#,
        r#"opsledger_task_state{task="scheduler",state="running"} 1"#,
        r#"opsledger_task_state{task="engine",state="running"} 1"#,
        r#"opsledger_task_state{task="checkpoints",state="running"} 1"#,
        r#"opsledger_task_lag_events{task="runner"} 0"#,
        r#"opsledger_scheduler_passes_total{job="sla",outcome="ok"}"#,
        r#"opsledger_scheduler_passes_total{job="leases",outcome="ok"}"#,
        r#"opsledger_snapshot_seconds_count 1"#,
        r#"opsledger_snapshot_held_seconds_count 1"#,
        r#"opsledger_mail_outbox 0"#,
    ];
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(&metrics).await {
            text = r.text().await.unwrap_or_default();
            if expected.iter().all(|line| text.contains(line)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    for line in expected {
        assert!(text.contains(line), "{line} is not in:\n{text}");
    }
}
