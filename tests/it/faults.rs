//! Bad stores and unreachable databases: a clear error naming the problem, nothing written.

use opsledger::store::postgres::PostgresBackend;
use opsledger::store::sqlite::SqliteBackend;
use opsledger::ExpectedVersion;

use crate::support::{append, stream, Fixture, Kind};

fn sqlite_error(dir: &std::path::Path) -> String {
    match SqliteBackend::open(dir) {
        Ok(_) => panic!("opening {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opsledger.db");
    let garbage = b"this is not a database, it is a shopping list\n".repeat(100);
    std::fs::write(&file, &garbage).unwrap();
    let err = sqlite_error(dir.path());
    assert!(
        err.contains("opsledger.db is not a SQLite database"),
        "{err}"
    );
    assert!(err.contains("Nothing was written"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), garbage);
}

#[tokio::test]
async fn a_truncated_store_is_reported_as_damaged() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let store = fixture.open().await;
    for i in 0..200 {
        store
            .append(append(&stream(), ExpectedVersion::NoStream, i, 10))
            .await
            .unwrap();
    }
    drop(store);
    let file = fixture.sqlite_file();
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let before = std::fs::read(&file).unwrap();

    let err = match SqliteBackend::open(file.parent().unwrap()) {
        Err(e) => e.to_string(),
        // A file damaged past the pages an open touches is caught on first read.
        Ok(backend) => {
            let store = opsledger::EventStore::from_backend(
                std::sync::Arc::new(backend),
                Default::default(),
            );
            store.verify().await.unwrap_err().to_string()
        }
    };
    assert!(err.contains("is damaged"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn another_applications_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("opsledger.db")).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    drop(conn);
    let err = sqlite_error(dir.path());
    assert!(err.contains("not an OpsLedger event store"), "{err}");
}

#[tokio::test]
async fn a_sqlite_store_from_a_newer_opsledger_is_refused() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    drop(fixture.open().await);
    fixture.execute_sql("PRAGMA user_version = 99").await;
    let before = std::fs::read(fixture.sqlite_file()).unwrap();
    let err = sqlite_error(fixture.sqlite_file().parent().unwrap());
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("Upgrade opsledger"), "{err}");
    assert_eq!(std::fs::read(fixture.sqlite_file()).unwrap(), before);
}

#[test]
fn a_data_dir_that_cannot_be_created_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let err = sqlite_error(&blocker.join("data"));
    assert!(err.contains("cannot create the data directory"), "{err}");
}

async fn postgres_error(url: &str) -> String {
    match PostgresBackend::open(url).await {
        Ok(_) => panic!("opening {url} should fail"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_named_without_its_password() {
    let err = postgres_error("postgres://ops:s3cret@127.0.0.1:1/opsledger").await;
    assert!(
        err.contains("cannot connect to PostgreSQL at 127.0.0.1:1/opsledger"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let err = postgres_error("postgres://host:notaport/db").await;
    assert!(err.contains("not a valid PostgreSQL URL"), "{err}");
}

#[tokio::test]
async fn a_postgres_store_from_a_newer_opsledger_is_refused() {
    let Some(fixture) = Fixture::new(Kind::Postgres).await else {
        return;
    };
    drop(fixture.open().await);
    fixture
        .execute_sql("UPDATE opsledger_schema SET version = 99")
        .await;
    let err = postgres_error(&fixture.url()).await;
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("Upgrade opsledger"), "{err}");
}

#[tokio::test]
async fn a_postgres_database_holding_other_tables_is_refused() {
    let Some(fixture) = Fixture::new(Kind::Postgres).await else {
        return;
    };
    fixture.execute_sql("CREATE TABLE events (id int)").await;
    let err = postgres_error(&fixture.url()).await;
    assert!(err.contains("did not create"), "{err}");
    fixture.execute_sql("SELECT 1 FROM events").await; // untouched: no opsledger_schema
}
