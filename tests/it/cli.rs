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
        "serve", "verify", "export", "import", "token", "demo", "replay", "bench",
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
    assert!(out.contains("4 catalogue items, 8 requests"), "{out}");
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
