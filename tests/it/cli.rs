//! The `opsledger` binary as operators and auditors run it.

use std::process::Output;

use opsledger::ExpectedVersion;

use crate::support::{append, opsledger, stream, Fixture, Kind};

fn run(fixture: &Fixture, args: &[&str]) -> Output {
    opsledger(fixture).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn twenty_events(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    store
        .append(append(&s, ExpectedVersion::NoStream, 1, 10))
        .await
        .unwrap();
    store
        .append(append(&stream(), ExpectedVersion::NoStream, 11, 5))
        .await
        .unwrap();
    store
        .append(append(&s, ExpectedVersion::Exact(9), 16, 5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_verify_names_an_edited_row() {
    verify_names_an_edited_row(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_names_an_edited_row() {
    verify_names_an_edited_row(Kind::Postgres).await;
}

async fn verify_names_an_edited_row(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    twenty_events(&fixture).await;
    let clean = run(&fixture, &["verify"]);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert!(
        text(&clean.stdout).starts_with("ok: 20 events"),
        "{}",
        text(&clean.stdout)
    );

    // One character of one payload, changed behind OpsLedger's back.
    fixture
        .execute_sql(
            r#"UPDATE events SET data = replace(data, '"n":7', '"n":8') WHERE position = 7"#,
        )
        .await;
    let broken = run(&fixture, &["verify"]);
    let out = text(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(out.contains("BROKEN at position 7"), "{out}");
    assert!(out.contains("hash mismatch"), "{out}");
    assert!(out.contains("6 events before it verified clean"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_verify_names_a_deleted_row() {
    verify_names_a_deleted_row(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_names_a_deleted_row() {
    verify_names_a_deleted_row(Kind::Postgres).await;
}

async fn verify_names_a_deleted_row(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    twenty_events(&fixture).await;
    fixture
        .execute_sql("DELETE FROM events WHERE position = 12")
        .await;
    let broken = run(&fixture, &["verify"]);
    let out = text(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(out.contains("BROKEN at position 12"), "{out}");
    assert!(out.contains("missing"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_export_import_export_is_byte_identical() {
    export_import_export_is_byte_identical(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_export_import_export_is_byte_identical() {
    export_import_export_is_byte_identical(Kind::Postgres).await;
}

async fn export_import_export_is_byte_identical(kind: Kind) {
    let Some(source) = Fixture::new(kind).await else {
        return;
    };
    twenty_events(&source).await;
    let files = tempfile::tempdir().unwrap();
    let first = files.path().join("first.ndjson");
    let out = run(&source, &["export", "--output", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("exported 20 events"));

    let target = Fixture::new(kind).await.unwrap();
    let out = run(&target, &["import", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("imported 20 events"),
        "{}",
        text(&out.stderr)
    );
    let second = run(&target, &["export"]);
    assert!(second.status.success());
    assert_eq!(second.stdout, std::fs::read(&first).unwrap());

    let again = run(&target, &["import", first.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already holds 20 events"),
        "{}",
        text(&again.stderr)
    );

    let range = run(&source, &["export", "--from", "5", "--to", "7"]);
    assert_eq!(text(&range.stdout).lines().count(), 3);
}

#[tokio::test]
async fn bad_arguments_are_named() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    for (args, expected) in [
        (&["export", "--from", "0"][..], "--from"),
        (
            &["export", "--from", "9", "--to", "3"][..],
            "--to 3 is before --from 9",
        ),
        (&["import"][..], "<FILE>"),
        (
            &["import", "no-such-file.ndjson"][..],
            "no-such-file.ndjson",
        ),
        (&["frobnicate"][..], "frobnicate"),
        (
            &["--database-url", "sqlite://x", "verify"][..],
            "postgres://",
        ),
        (
            &["--database-url", "postgres://u:pw@127.0.0.1:1/x", "verify"][..],
            "cannot connect to PostgreSQL at 127.0.0.1:1/x",
        ),
        (&["serve", "--listen", "nowhere"][..], "--listen"),
    ] {
        let out = run(&fixture, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn every_verb_explains_itself() {
    for verb in [
        "serve",
        "verify",
        "export",
        "import",
        "token",
        "demo",
        "replay",
        "bench",
        "checkpoint",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsledger"))
            .args([verb, "--help"])
            .output()
            .unwrap();
        let help = text(&out.stdout);
        assert!(out.status.success(), "{verb}");
        assert!(
            help.contains("--data-dir") && help.contains("--database-url"),
            "{verb}: {help}"
        );
    }
}

#[tokio::test]
async fn the_demo_loads_every_state_once_and_replays() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let first = run(&fixture, &["demo"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(
        out.contains(
            "4 catalogue items, 8 requests, 40 resources with a year of history, 30 incidents"
        ),
        "{out}"
    );
    assert!(out.contains("and 3 knowledge articles"), "{out}");
    assert!(out.contains("; 9 library items with their files"), "{out}");
    if let Fixture::Sqlite { dir } = &fixture {
        // Nine items, two of them with a second version: eleven files under their hashes.
        let files = walk(&dir.path().join("content"));
        assert_eq!(files, 11, "the library's files are in <data-dir>/content");
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with("u-")).count(),
        7,
        "a token per sample user"
    );
    let head = fixture.open().await.head().await.unwrap();
    assert!(run(&fixture, &["demo"]).status.success());
    assert_eq!(
        fixture.open().await.head().await.unwrap(),
        head,
        "loading twice changes nothing"
    );
    let replay = text(&run(&fixture, &["replay"]).stdout);
    assert!(
        replay.contains(&format!("replayed {head} events"))
            && replay.contains("8 requests")
            && replay.contains("0 compliance findings"),
        "{replay}"
    );
}

/// Tokens from an identity provider: `serve` checks them with its public key alone, and
/// `opsledger token` signs with the private key when given one (test-only keys, generated
/// with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_with_a_configured_public_key() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let (public, private) = (
        keys.join("es256-public.pem"),
        keys.join("es256-private.pem"),
    );
    let token = |with_private: bool| {
        let mut cmd = opsledger(&fixture);
        cmd.args([
            "token",
            "--user",
            "u-ho",
            "--department",
            "財政局",
            "--role",
            "approver",
        ])
        .env_remove("OPSLEDGER_JWT_SECRET")
        .env("OPSLEDGER_JWT_PUBLIC_KEY_FILE", &public);
        if with_private {
            cmd.env("OPSLEDGER_JWT_PRIVATE_KEY_FILE", &private);
        }
        cmd.output().unwrap()
    };
    let minted = token(true);
    assert!(minted.status.success(), "{}", text(&minted.stderr));
    let jwt = text(&minted.stdout).trim().to_owned();
    let refused = token(false);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("OPSLEDGER_JWT_PRIVATE_KEY_FILE"),
        "{}",
        text(&refused.stderr)
    );
    let both = opsledger(&fixture)
        .args(["token", "--user", "u-ho", "--role", "approver"])
        .env("OPSLEDGER_JWT_SECRET", "a secret of sixteen or more")
        .env("OPSLEDGER_JWT_PUBLIC_KEY_FILE", &public)
        .output()
        .unwrap();
    assert!(
        text(&both.stderr).contains("not both"),
        "{}",
        text(&both.stderr)
    );

    // The server, with the public key only, takes the provider's token and no other.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = opsledger(&fixture)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("OPSLEDGER_JWT_SECRET")
        .env("OPSLEDGER_JWT_PUBLIC_KEY_FILE", &public)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let ask = |bearer: String| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(bearer)
                .json(&serde_json::json!({"query": "{ position }"}))
                .send()
                .await
                .ok()?
                .json::<serde_json::Value>()
                .await
                .ok()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answer = loop {
        if let Some(answer) = ask(jwt.clone()).await {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(answer["data"]["position"], 0, "{answer}");
    let secret_token = opsledger::http::auth::Keys::from_secret(b"a secret of sixteen or more")
        .mint(&opsledger::http::auth::Claims {
            sub: "u-ho".into(),
            name: None,
            department: None,
            roles: vec!["approver".into()],
            exp: 4_000_000_000,
        })
        .unwrap();
    let refused = ask(secret_token).await.unwrap();
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// `opsledger race`: deployments racing for one pool through the binary; exactly as many
/// win as there are cores. It races on a scratch store of its own: the configured one (the
/// production log, append-only) holds the same events after as before.
async fn the_race_verb_holds_the_pool_invariant(fixture: &Fixture) {
    twenty_events(fixture).await;
    let before = fixture.open().await.head().await.unwrap();
    assert_eq!(before, 20);
    let out = opsledger(fixture)
        .args(["race", "--racers", "40", "--capacity", "15"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("15 won, 25 refused"), "{said}");
    assert!(said.contains("holds 15 of 15 cores"), "{said}");
    assert_eq!(
        fixture.open().await.head().await.unwrap(),
        before,
        "race wrote to the configured store"
    );
}

on_both_backends!(the_race_verb_holds_the_pool_invariant);

/// The number of files under `dir`, at any depth.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk(&p) } else { 1 })
        .sum()
}
