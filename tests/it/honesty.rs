//! The server never reports healthy while it cannot serve the truth: a store it cannot
//! read, a broken hash chain or an undecodable event stops it (at start: `serve` refuses;
//! at run time: `/healthz` fails and writes stop), and a dropped database connection is
//! retried by the supervised tasks.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsledger::app::{App, SystemClock};
use opsledger::runtime::supervise::{Supervisor, TaskError, TaskState};
use opsledger::{EventStore, ExpectedVersion};
use serde_json::{json, Value};

use crate::graphql::{token, Api, CREATE};
use crate::support::{append, opsledger, stream, Fixture, Kind};

/// `count` events on streams of a kind no read model decodes (`note-…`): well-formed for
/// every reader.
async fn notes(store: &EventStore, count: u64) {
    let appends = (0..count.div_ceil(10)).map(|i| {
        let store = store.clone();
        let mut a = append(
            &format!("note-{}", uuid::Uuid::now_v7()),
            ExpectedVersion::NoStream,
            i * 10,
            10,
        );
        a.events
            .truncate(usize::try_from(count - i * 10).unwrap().min(10));
        async move { store.append(a).await.unwrap() }
    });
    futures::future::join_all(appends).await;
}

/// An event in a request's stream whose data no model can decode (the hash chain holds).
async fn undecodable(store: &EventStore) -> u64 {
    let request = format!("request-{}", uuid::Uuid::now_v7());
    store
        .append(append(&request, ExpectedVersion::NoStream, 0, 1))
        .await
        .unwrap()
        .last_position
}

/// Runs `opsledger serve` on the fixture and waits (at most a minute) for it to exit.
fn serve_until_exit(fixture: &Fixture) -> Output {
    let mut child = opsledger(fixture)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OPSLEDGER_JWT_SECRET", "a secret of sixteen or more")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "serve kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn run(fixture: &Fixture, args: &[&str]) -> Output {
    opsledger(fixture).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_sqlite_store_with_a_damaged_page() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let store = fixture.open().await;
    notes(&store, 3_000).await;
    drop(store);
    let file = fixture.sqlite_file();
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    for (i, b) in bytes[middle..middle + 8192].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(&file, &bytes).unwrap();
    assert!(!run(&fixture, &["verify"]).status.success());

    let out = serve_until_exit(&fixture);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&file.display().to_string()), "{said}");
    assert!(said.contains("is damaged"), "{said}");
    assert!(said.contains("Restore it from a backup"), "{said}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "nothing was written");
}

/// An event's data changed behind OpsLedger's back: `serve` and `replay` refuse the log,
/// naming the position.
async fn serve_refuses_a_log_with_an_edited_event(fixture: &Fixture) {
    let store = fixture.open().await;
    notes(&store, 20).await;
    drop(store);
    fixture
        .execute_sql(r#"UPDATE events SET data = '{"n":999,"item":"vm-large"}' WHERE position = 7"#)
        .await;
    let out = serve_until_exit(fixture);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("broken at position 7"), "{said}");
    assert!(said.contains("opsledger verify"), "{said}");
    let out = run(fixture, &["replay"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("position 7"),
        "{}",
        text(&out.stderr)
    );
}

/// A chain-valid event no read model can decode stops `replay` and `serve` with its
/// position, type and the decoder's message: it is never skipped.
async fn an_undecodable_event_stops_replay_and_serve(fixture: &Fixture) {
    let store = fixture.open().await;
    notes(&store, 5).await;
    let bad = undecodable(&store).await;
    notes(&store, 3).await;
    drop(store);
    assert!(
        run(fixture, &["verify"]).status.success(),
        "the chain holds"
    );
    for out in [run(fixture, &["replay"]), serve_until_exit(fixture)] {
        let said = text(&out.stderr);
        assert!(!out.status.success(), "{said}");
        assert!(said.contains(&format!("position {bad}")), "{said}");
        assert!(said.contains("RequestSubmitted"), "{said}");
        assert!(said.contains("missing field"), "{said}");
    }
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// At run time, a runner that meets an undecodable event stops: `/healthz` answers 503
/// naming it and why, `/readyz` shows it stopped, and a mutation is refused with
/// `INTERNAL`, appending nothing: the client is told an error id, not the cause (which is
/// logged under that id).
async fn a_task_that_stops_fails_health_and_stops_writes(fixture: &Fixture) {
    let store = fixture.open().await;
    let app = App::start(store.clone(), Arc::new(SystemClock));
    let api = Api::over(app.clone()).await;
    let base = api.base();
    notes(&store, 3).await;
    app.runner
        .wait_for(3, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok".into()));
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ready["tasks"],
        json!([{"name": "runner", "state": "running", "lag": 0}])
    );

    let bad = undecodable(&store).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let (status, body) = get(&format!("{base}/healthz")).await;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["task"], "runner", "{health}");
    let reason = health["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("position {bad}")), "{reason}");
    assert!(reason.contains("RequestSubmitted"), "{reason}");
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["tasks"][0]["state"], "stopped", "{ready}");

    let head = store.head().await.unwrap();
    let admin = token("u-lam", "運維中心", &["catalog_admin"]);
    let definition = serde_json::to_value(opsledger_domain::requests::demo::vm_definition(
        opsledger_domain::requests::demo::two_steps(),
    ))
    .unwrap();
    let (code, error) = api
        .code(Some(&admin), CREATE, json!({"d": definition}))
        .await;
    assert_eq!(code, "INTERNAL", "{error}");
    let message = error["message"].as_str().unwrap();
    let id = error["extensions"]["errorId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{error}");
    assert_eq!(message, format!("internal error (id {id})"), "{error}");
    assert!(!message.contains("takes no writes"), "{message}");
    assert!(!message.contains("runner"), "{message}");
    assert_eq!(store.head().await.unwrap(), head, "nothing was appended");
    api.stop().await;
}

/// PostgreSQL restarted under the server (its connections terminated): the runner
/// retries, catches up, and a write afterwards is folded; `/readyz` recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_retries_a_dropped_postgres_connection() {
    let Some(fixture) = Fixture::new(Kind::Postgres).await else {
        return;
    };
    let name = format!("opsledger_t_{}", uuid::Uuid::now_v7().simple());
    let url = format!("{}&application_name={name}", fixture.url());
    let backend = opsledger::store::postgres::PostgresBackend::open(&url)
        .await
        .unwrap();
    let store = EventStore::from_backend(Arc::new(backend), Default::default());
    let app = App::start(store.clone(), Arc::new(SystemClock));
    let api = Api::over(app.clone()).await;
    let base = api.base();
    notes(&store, 5).await;
    app.runner
        .wait_for(5, Duration::from_secs(10))
        .await
        .unwrap();

    let admin = crate::support::admin(&url).await;
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap();
    assert!(
        !terminated.is_empty(),
        "the server's connections were found"
    );

    // Writes fail until the pool has new connections; the runner must survive meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let a = append(
            &format!("note-{}", uuid::Uuid::now_v7()),
            ExpectedVersion::NoStream,
            0,
            1,
        );
        match store.append(a).await {
            Ok(done) => break done.last_position,
            Err(e) => assert!(Instant::now() < deadline, "no write went through: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body = loop {
        let (status, body) = get(&format!("{base}/readyz")).await;
        let ready: Value = serde_json::from_str(&body).unwrap();
        if status == 200 && ready["position"].as_u64() >= Some(written) {
            break body;
        }
        assert!(Instant::now() < deadline, "readyz did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(app.runner.position() >= written, "{body}");
    assert_eq!(app.supervisor.state("runner"), Some(TaskState::Running));
    assert_eq!(store.halted(), None);
    api.stop().await;
}

/// The supervisor retries a transient error and keeps the attempt and error meanwhile;
/// a permanent one stops the task and halts the store's writes.
async fn the_supervisor_retries_then_stops_for_good(fixture: &Fixture) {
    let store = fixture.open().await;
    let supervisor = Supervisor::new(&store);
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = runs.clone();
    let (go_on, mut gone_on) = tokio::sync::watch::channel(false);
    supervisor.spawn("flaky", move |task| {
        let (runs, gone_on) = (counted.clone(), go_on.clone());
        async move {
            let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            match n {
                1 | 2 => Err(TaskError::Transient(format!("connection dropped ({n})"))),
                3 => {
                    task.running();
                    task.lag(7);
                    gone_on.send_replace(true);
                    std::future::pending().await
                }
                _ => unreachable!(),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), gone_on.wait_for(|g| *g))
        .await
        .unwrap()
        .unwrap();
    let states = supervisor.states();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].name, &states[0].state, states[0].lag),
        ("flaky", &TaskState::Running, Some(7))
    );
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(supervisor.stopped(), None);

    supervisor.spawn("doomed", |_| async {
        Err(TaskError::Permanent(
            "the log is broken at position 3".into(),
        ))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while supervisor.stopped().is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        supervisor.stopped(),
        Some(("doomed", "the log is broken at position 3".to_owned()))
    );
    let refused = store
        .append(append(&stream(), ExpectedVersion::NoStream, 0, 1))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("takes no writes: the doomed task stopped"),
        "{refused}"
    );
    assert_eq!(store.head().await.unwrap(), 0);
}

on_both_backends!(
    serve_refuses_a_log_with_an_edited_event,
    an_undecodable_event_stops_replay_and_serve,
    a_task_that_stops_fails_health_and_stops_writes,
    the_supervisor_retries_then_stops_for_good
);
