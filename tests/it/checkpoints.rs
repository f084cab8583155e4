//! Signed checkpoints through the `opsledger` binary: an auditor keeps `opsledger
//! checkpoint`'s output, and `opsledger verify --checkpoint` shows a log that was cut or
//! rewritten before it, which the hash chain alone cannot.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use opsledger::ExpectedVersion;
use opsledger_domain::chain_hash;

use crate::support::{append, opsledger, stream, Fixture, Kind};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory for the auditor's files, and the key options for `fixture`: on SQLite the
/// key generated in the data directory, on PostgreSQL a key file (replicas share one).
struct Auditor {
    dir: tempfile::TempDir,
    key: Vec<String>,
}

impl Auditor {
    fn new(fixture: &Fixture) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = match fixture.kind() {
            Kind::Sqlite => Vec::new(),
            Kind::Postgres => {
                let path = dir.path().join("key.pem");
                write_key(&path);
                vec!["--checkpoint-key".into(), path.display().to_string()]
            }
        };
        Auditor { dir, key }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `opsledger checkpoint`, its statement kept in `name`.
    fn checkpoint(&self, fixture: &Fixture, name: &str) -> PathBuf {
        let out = opsledger(fixture)
            .arg("checkpoint")
            .args(&self.key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let path = self.file(name);
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }
}

fn write_key(path: &Path) {
    let pem = opsledger::processes::checkpoint::CheckpointKey::generate()
        .to_pkcs8_pem()
        .unwrap();
    std::fs::write(path, pem).unwrap();
}

fn verify(fixture: &Fixture, args: &[&Path]) -> Output {
    let mut cmd = opsledger(fixture);
    cmd.arg("verify");
    for file in args {
        cmd.arg("--checkpoint").arg(file);
    }
    cmd.output().unwrap()
}

async fn twenty_events(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    store
        .append(append(&s, ExpectedVersion::NoStream, 1, 10))
        .await
        .unwrap();
    store
        .append(append(&stream(), ExpectedVersion::NoStream, 11, 10))
        .await
        .unwrap();
}

async fn a_checkpoint_holds_while_the_log_grows(fixture: &Fixture) {
    twenty_events(fixture).await;
    let auditor = Auditor::new(fixture);
    let file = auditor.checkpoint(fixture, "cp.json");
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(statement["position"], 20, "{statement}");
    assert_eq!(statement["format_version"], 1, "{statement}");
    assert_eq!(
        statement["store_id"],
        fixture.open().await.store_id().to_string()
    );
    if let Fixture::Sqlite { dir } = fixture {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("checkpoint-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the generated key is its owner's alone"
        );
    }

    fixture
        .open()
        .await
        .append(append(&stream(), ExpectedVersion::NoStream, 21, 5))
        .await
        .unwrap();
    let out = verify(fixture, &[&file]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.starts_with("ok: 25 events"), "{said}");
    assert!(
        said.contains("ok: checkpoint at position 20") && said.contains("1 of 1 checkpoints hold"),
        "{said}"
    );

    // Against the key the auditor trusts, printed by `checkpoint --public-key`.
    let public = opsledger(fixture)
        .args(["checkpoint", "--public-key"])
        .args(&auditor.key)
        .output()
        .unwrap();
    assert!(public.status.success(), "{}", text(&public.stderr));
    assert!(text(&public.stdout).starts_with("-----BEGIN PUBLIC KEY-----"));
    let public_file = auditor.file("public.pem");
    std::fs::write(&public_file, &public.stdout).unwrap();
    let out = opsledger(fixture)
        .args(["verify", "--checkpoint"])
        .arg(&file)
        .arg("--public-key")
        .arg(&public_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// The hole checkpoints close: deleting the log's last events leaves a shorter chain that
/// verifies, and only a checkpoint kept outside shows the cut.
async fn cutting_the_tail_is_caught_by_a_checkpoint(fixture: &Fixture) {
    twenty_events(fixture).await;
    let auditor = Auditor::new(fixture);
    let file = auditor.checkpoint(fixture, "before-the-cut.json");
    fixture
        .execute_sql("DELETE FROM events WHERE position > 15")
        .await;

    let plain = opsledger(fixture).arg("verify").output().unwrap();
    assert!(
        plain.status.success() && text(&plain.stdout).starts_with("ok: 15 events"),
        "the chain alone cannot see a cut tail: {}",
        text(&plain.stdout)
    );

    let out = verify(fixture, &[&file]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "FAILED: checkpoint at position 20 ({})",
            file.display()
        )),
        "{said}"
    );
    assert!(said.contains("the log ends at position 15"), "{said}");
    assert!(said.contains("tail was cut"), "{said}");
    assert!(said.contains("0 of 1 checkpoints hold"), "{said}");
}

async fn an_edit_before_a_checkpoint_is_caught(fixture: &Fixture) {
    twenty_events(fixture).await;
    let auditor = Auditor::new(fixture);
    let file = auditor.checkpoint(fixture, "cp.json");
    fixture
        .execute_sql(
            r#"UPDATE events SET data = replace(data, '"n":7', '"n":8') WHERE position = 7"#,
        )
        .await;
    let out = verify(fixture, &[&file]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAILED: checkpoint at position 20")
            && said.contains("rewritten before it: the chain breaks at position 7"),
        "{said}"
    );

    // Nor is a new checkpoint signed over a broken chain.
    let refused = opsledger(fixture)
        .arg("checkpoint")
        .args(&auditor.key)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty());
    assert!(
        text(&refused.stderr).contains("BROKEN at position 7"),
        "{}",
        text(&refused.stderr)
    );
}

/// A rewrite that recomputes every hash after the edit is a valid chain again; the
/// checkpoint still names the head it saw.
async fn a_rehashed_rewrite_before_a_checkpoint_is_caught(fixture: &Fixture) {
    twenty_events(fixture).await;
    let auditor = Auditor::new(fixture);
    let file = auditor.checkpoint(fixture, "cp.json");
    let mut events = fixture.open().await.read_all_stored(1, 100).await.unwrap();
    events[6].data = events[6].data.replace("\"n\":7", "\"n\":8");
    let mut prev = events[5].hash;
    let mut sql = String::new();
    for e in &mut events[6..] {
        e.hash = chain_hash(&prev, e);
        prev = e.hash;
        let hash = match fixture.kind() {
            Kind::Sqlite => format!("X'{}'", e.hash),
            Kind::Postgres => format!("decode('{}', 'hex')", e.hash),
        };
        sql.push_str(&format!(
            "UPDATE events SET data = '{}', hash = {hash} WHERE position = {};",
            e.data, e.position
        ));
    }
    fixture.execute_sql(&sql).await;
    let plain = opsledger(fixture).arg("verify").output().unwrap();
    assert!(plain.status.success(), "{}", text(&plain.stdout));

    let out = verify(fixture, &[&file]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAILED: checkpoint at position 20")
            && said.contains("the event at position 20 has hash"),
        "{said}"
    );
}

async fn a_tampered_statement_is_refused(fixture: &Fixture) {
    twenty_events(fixture).await;
    let auditor = Auditor::new(fixture);
    let file = auditor.checkpoint(fixture, "cp.json");
    // Claims a shorter log, with the signature of the longer one.
    let mut statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let events = fixture.open().await.read_all_stored(15, 1).await.unwrap();
    statement["position"] = 15.into();
    statement["head_hash"] = events[0].hash.to_string().into();
    let tampered = auditor.file("tampered.json");
    std::fs::write(&tampered, statement.to_string()).unwrap();
    let out = verify(fixture, &[&file, &tampered]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("ok: checkpoint at position 20"), "{said}");
    assert!(
        said.contains(&format!(
            "FAILED: checkpoint at position 15 ({}): its signature does not verify",
            tampered.display()
        )),
        "{said}"
    );

    // Well signed, by a key the auditor does not trust.
    let other_key = auditor.file("other.pem");
    write_key(&other_key);
    let out = opsledger(fixture)
        .args(["checkpoint", "--checkpoint-key"])
        .arg(&other_key)
        .output()
        .unwrap();
    let other = auditor.file("other.json");
    std::fs::write(&other, &out.stdout).unwrap();
    let public = auditor.file("public.pem");
    let out = opsledger(fixture)
        .args(["checkpoint", "--public-key"])
        .args(&auditor.key)
        .output()
        .unwrap();
    std::fs::write(&public, &out.stdout).unwrap();
    let out = opsledger(fixture)
        .args(["verify", "--checkpoint"])
        .arg(&other)
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("not by the trusted public key"), "{said}");
}

async fn a_statement_of_another_store_is_refused(fixture: &Fixture) {
    twenty_events(fixture).await;
    let other = Fixture::new(fixture.kind()).await.unwrap();
    twenty_events(&other).await;
    // The same key signs both; only the store differs.
    let auditor = Auditor::new(fixture);
    let key = auditor.file("shared.pem");
    write_key(&key);
    let out = opsledger(&other)
        .args(["checkpoint", "--checkpoint-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = auditor.file("other-store.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let out = verify(fixture, &[&file]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "it is a statement of store {}, and this is store {}",
            other.open().await.store_id(),
            fixture.open().await.store_id()
        )),
        "{said}"
    );
}

/// `serve` records a signed checkpoint as an event of its own stream every N events, and
/// an export of those events is a checkpoint file `verify` reads.
async fn the_server_records_a_checkpoint_every_n_events(fixture: &Fixture) {
    // The store exists before the server opens it.
    let store = fixture.open().await;
    let auditor = Auditor::new(fixture);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = opsledger(fixture)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--checkpoint-every-events", "8"])
        .args(["--checkpoint-every-minutes", "0"])
        .args(&auditor.key)
        .env("OPSLEDGER_JWT_SECRET", "a secret of sixteen or more")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoints = opsledger::processes::checkpoint::stream(store.store_id());
    store
        .append(append(&stream(), ExpectedVersion::NoStream, 1, 5))
        .await
        .unwrap();
    // Fewer than eight events: none yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(store.read_stream(&checkpoints, 0).await.unwrap().is_empty());
    store
        .append(append(&stream(), ExpectedVersion::NoStream, 6, 5))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let recorded = loop {
        let recorded = store.read_stream(&checkpoints, 0).await.unwrap();
        if !recorded.is_empty() {
            break recorded;
        }
        assert!(Instant::now() < deadline, "no checkpoint was recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(recorded.len(), 1);
    let event = &recorded[0];
    assert_eq!(event.event_type, "CheckpointRecorded");
    assert_eq!(event.position, 11, "recorded after the ten events");
    assert_eq!(event.metadata.actor.id, "system:checkpoint");
    let statement: serde_json::Value = event.data().unwrap();
    assert_eq!(statement["position"], 10, "{statement}");

    // An auditor exports the recorded checkpoints and verifies against them later.
    let export = opsledger(fixture).arg("export").output().unwrap();
    let file = auditor.file("recorded.ndjson");
    let lines: String = text(&export.stdout)
        .lines()
        .filter(|l| l.contains("\"CheckpointRecorded\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = verify(fixture, &[&file]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("ok: checkpoint at position 10"));
    fixture
        .execute_sql("DELETE FROM events WHERE position > 6")
        .await;
    let out = verify(fixture, &[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAILED: checkpoint at position 10"));
}

on_both_backends!(
    a_checkpoint_holds_while_the_log_grows,
    cutting_the_tail_is_caught_by_a_checkpoint,
    an_edit_before_a_checkpoint_is_caught,
    a_rehashed_rewrite_before_a_checkpoint_is_caught,
    a_tampered_statement_is_refused,
    a_statement_of_another_store_is_refused,
    the_server_records_a_checkpoint_every_n_events
);
