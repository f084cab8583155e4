//! Test fixtures: a fresh store on either backend, helpers to build appends, and the
//! child-process plumbing used by the crash and cross-process tests.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Once};

use chrono::{TimeZone, Utc};
use opsledger::store::postgres::PostgresBackend;
use opsledger::store::sqlite::SqliteBackend;
use opsledger::{Append, EventStore, ExpectedVersion};
use opsledger_domain::{Actor, ActorKind, Metadata, NewEvent, Upcasters};
use serde_json::json;
use tempfile::TempDir;
use uuid::Uuid;

/// The PostgreSQL database the PostgreSQL half of the suite runs against.
pub const DATABASE_URL_VAR: &str = "OPSLEDGER_TEST_DATABASE_URL";

/// How a child process finds the store its parent prepared.
pub const CHILD_STORE_VAR: &str = "OPSLEDGER_TEST_CHILD_STORE";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty store location: a temporary directory, or a schema of its own in the
/// test database (dropped at the end).
pub enum Fixture {
    Sqlite { dir: TempDir },
    Postgres { url: String, schema: String },
}

fn postgres_url() -> Option<String> {
    static SKIPPED: Once = Once::new();
    let url = std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        SKIPPED.call_once(|| {
            // Written past the test harness's capture, so that it is seen once per run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the PostgreSQL half of the suite, because {DATABASE_URL_VAR} is not \
                 set (.ci/run starts PostgreSQL and sets it)."
            );
        });
    }
    url
}

impl Fixture {
    /// A fresh store of `kind`, or `None` (with one visible line) when PostgreSQL is not
    /// configured for this run.
    pub async fn new(kind: Kind) -> Option<Fixture> {
        match kind {
            Kind::Sqlite => Some(Fixture::Sqlite {
                dir: tempfile::tempdir().expect("temporary directory"),
            }),
            Kind::Postgres => {
                let url = postgres_url()?;
                let schema = format!("t_{}", Uuid::now_v7().simple());
                admin(&url)
                    .await
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create test schema");
                Some(Fixture::Postgres { url, schema })
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Fixture::Sqlite { .. } => Kind::Sqlite,
            Fixture::Postgres { .. } => Kind::Postgres,
        }
    }

    /// Opens the store (again).
    pub async fn open(&self) -> EventStore {
        self.open_with(Upcasters::default()).await
    }

    pub async fn open_with(&self, upcasters: Upcasters) -> EventStore {
        let backend: Arc<dyn opsledger::store::Backend> = match self {
            Fixture::Sqlite { dir } => {
                Arc::new(SqliteBackend::open(dir.path()).expect("open sqlite"))
            }
            Fixture::Postgres { .. } => Arc::new(
                PostgresBackend::open(&self.url())
                    .await
                    .expect("open postgres"),
            ),
        };
        EventStore::from_backend(backend, upcasters)
    }

    /// The PostgreSQL URL that puts the store in this fixture's schema.
    pub fn url(&self) -> String {
        match self {
            Fixture::Sqlite { .. } => unreachable!("a SQLite fixture has no URL"),
            Fixture::Postgres { url, schema } => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}options=-c%20search_path%3D{schema}")
            }
        }
    }

    /// The global options that point the `opsledger` binary at this store.
    pub fn cli_args(&self) -> Vec<String> {
        match self {
            Fixture::Sqlite { dir } => vec!["--data-dir".into(), dir.path().display().to_string()],
            Fixture::Postgres { .. } => vec!["--database-url".into(), self.url()],
        }
    }

    /// The SQLite database file.
    pub fn sqlite_file(&self) -> PathBuf {
        match self {
            Fixture::Sqlite { dir } => dir.path().join("opsledger.db"),
            Fixture::Postgres { .. } => unreachable!("a PostgreSQL fixture has no file"),
        }
    }

    /// Runs SQL directly against the database, behind OpsLedger's back.
    pub async fn execute_sql(&self, sql: &str) {
        match self {
            Fixture::Sqlite { .. } => {
                let conn = rusqlite::Connection::open(self.sqlite_file()).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Fixture::Postgres { url, schema } => {
                admin(url)
                    .await
                    .batch_execute(&format!("SET search_path = {schema}; {sql}"))
                    .await
                    .unwrap();
            }
        }
    }

    /// How a child process opens this store (see [`Fixture::from_descriptor`]).
    pub fn descriptor(&self) -> String {
        match self {
            Fixture::Sqlite { dir } => format!("sqlite:{}", dir.path().display()),
            Fixture::Postgres { .. } => format!("postgres:{}", self.url()),
        }
    }
}

/// Opens the store a parent process described.
pub async fn open_descriptor(descriptor: &str) -> EventStore {
    let backend: Arc<dyn opsledger::store::Backend> =
        if let Some(dir) = descriptor.strip_prefix("sqlite:") {
            Arc::new(SqliteBackend::open(std::path::Path::new(dir)).unwrap())
        } else if let Some(url) = descriptor.strip_prefix("postgres:") {
            Arc::new(PostgresBackend::open(url).await.unwrap())
        } else {
            panic!("bad store descriptor {descriptor}")
        };
    EventStore::from_backend(backend, Upcasters::default())
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Fixture::Postgres { url, schema } = self {
            let (url, schema) = (url.clone(), schema.clone());
            // Dropping runs outside the test's runtime; use a small one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let _ = admin(&url)
                        .await
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                });
            })
            .join();
        }
    }
}

pub async fn admin(url: &str) -> tokio_postgres::Client {
    let config = tokio_postgres::Config::from_str(url).expect("test database URL");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

pub fn actor() -> Actor {
    Actor {
        kind: ActorKind::User,
        id: "u-chan".into(),
        name: Some("陳大文".into()),
        department: Some("數字政策辦公室".into()),
        roles: vec!["requester".into()],
    }
}

/// Fixed metadata for a fresh command.
pub fn metadata() -> Metadata {
    Metadata::new(
        actor(),
        Uuid::now_v7(),
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).unwrap(),
    )
}

pub fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "RequestSubmitted",
        1,
        &json!({"n": n, "item": "vm-standard"}),
    )
    .unwrap()
}

/// An append of `events` to `stream`, each payload numbered from `from`.
pub fn append(stream: &str, expected: ExpectedVersion, from: u64, events: u64) -> Append {
    Append {
        stream: stream.into(),
        expected,
        events: (from..from + events).map(event).collect(),
        metadata: metadata(),
        after: None,
    }
}

/// A new stream of a kind no read model reads: the fixture's events are not any
/// aggregate's, and a runner folding them passes them by.
pub fn stream() -> String {
    format!("fixture-{}", Uuid::now_v7())
}

/// Runs each named `async fn(&Fixture)` as two tests, `sqlite::name` and `postgres::name`
/// (skipped, with one line, when no PostgreSQL is configured).
macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(f) = crate::support::Fixture::new(crate::support::Kind::Sqlite).await { super::$name(&f).await } })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(f) = crate::support::Fixture::new(crate::support::Kind::Postgres).await { super::$name(&f).await } })* }
    };
}

/// The test binary itself, to run one `#[ignore]`d test as a child process.
pub fn child(test: &str, store: &Fixture) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_STORE_VAR, store.descriptor())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit());
    cmd
}

/// The `opsledger` binary, pointed at `store`.
pub fn opsledger(store: &Fixture) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_opsledger"));
    cmd.args(store.cli_args())
        .env_remove("OPSLEDGER_DATABASE_URL")
        .env_remove("OPSLEDGER_DATA_DIR");
    cmd
}
