//! The embedded backend: one SQLite file, `<data dir>/opsledger.db`, in WAL mode with
//! `synchronous=FULL`, so an acknowledged append survives `kill -9` and power loss.
//!
//! One writer thread owns the write connection. Callers hand it appends through a channel;
//! it takes everything waiting (up to [`batch::MAX_BATCH_EVENTS`]), decides it with
//! [`batch::plan`] inside one `BEGIN IMMEDIATE` transaction, commits once, and then answers
//! every caller: concurrent writers share one fsync (group commit). The head of the log is
//! read inside each transaction, so even two processes on one file cannot fork the chain.
//! Reads use a small pool of read connections, which WAL lets run beside the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opsledger_domain::{Hash, StoredEvent};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::batch::{self, CommandRecord, Head, Job};
use super::{Append, Appended, Backend, Lead, StoreError};

/// `PRAGMA application_id` of an OpsLedger store ("OPSL").
const APPLICATION_ID: i32 = 0x4F50_534C;

/// The newest schema this binary writes; `PRAGMA user_version` holds the store's.
const SCHEMA_VERSION: i32 = 2;

/// The migrations, in order; migration `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        stream         TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        id             BLOB    NOT NULL,
        type           TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        data           TEXT    NOT NULL,
        metadata       TEXT    NOT NULL,
        hash           BLOB    NOT NULL,
        UNIQUE (stream, version)
    );
    CREATE UNIQUE INDEX events_id ON events (id);
    CREATE TABLE commands (
        command_id     BLOB    PRIMARY KEY,
        stream         TEXT    NOT NULL,
        fingerprint    BLOB    NOT NULL,
        first_position INTEGER NOT NULL,
        last_position  INTEGER NOT NULL,
        last_version   INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    r"
    CREATE TABLE store_info (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
",
];

const FILE_NAME: &str = "opsledger.db";

const SELECT_EVENT: &str =
    "SELECT position, stream, version, id, type, schema_version, data, metadata, hash FROM events";

/// The embedded SQLite event store.
pub struct SqliteBackend {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    wake: Arc<watch::Sender<u64>>,
    store_id: Uuid,
}

impl SqliteBackend {
    /// Opens `<data_dir>/opsledger.db`, creating the directory and the store on first use.
    ///
    /// # Errors
    /// [`StoreError::Unusable`] when the file is not an OpsLedger store, is damaged, or has
    /// a newer schema; the file is left as it was.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unusable(format!(
                "cannot create the data directory {}: {e}. Choose another with --data-dir.",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let mut conn = open_connection(&path)?;
        migrate(&mut conn, &path)?;
        read_head(&conn).map_err(|e| damaged(&path, &e))?;
        let store_id = read_store_id(&conn).map_err(|e| damaged(&path, &e))?;
        let wake = Arc::new(watch::Sender::new(0));
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let writer_path = path.clone();
        let writer_wake = wake.clone();
        let writer = std::thread::Builder::new()
            .name("opsledger-sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    path: writer_path,
                    wake: writer_wake,
                }
                .run(batch::Queue::new(jobs_rx))
            })
            .map_err(|e| StoreError::Unusable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteBackend {
            path,
            jobs: Mutex::new(Some(jobs_tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
            wake,
            store_id,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().map_err(|_| StoreError::Closed)?;
        jobs.as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on a pooled read connection, off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let result = f(&conn).map_err(|e| db_error(&path, e));
            if let Ok(mut r) = readers.lock() {
                if r.len() < 8 {
                    r.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database {
            backend: "sqlite",
            source: Box::new(e),
        })?
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what it holds, close its connection
        // (checkpointing the WAL) and stop; once dropped, the store is closed.
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn store_id(&self) -> Uuid {
        self.store_id
    }

    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit((append, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn append_chain(&self, appends: Vec<Append>) -> Vec<Result<Appended, StoreError>> {
        let mut replies = Vec::with_capacity(appends.len());
        for append in appends {
            let (tx, rx) = oneshot::channel();
            replies.push(self.submit((append, tx)).map(|()| rx));
        }
        let mut outcomes = Vec::with_capacity(replies.len());
        for reply in replies {
            outcomes.push(match reply {
                Ok(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
                Err(e) => Err(e),
            });
        }
        outcomes
    }

    async fn try_lead(&self, role: &str) -> Result<Option<Lead>, StoreError> {
        // A lock on a file beside the database: free again when the file is closed,
        // which the operating system does for a process that dies.
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{role}.lead"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .map_err(|e| lead_error(&name, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lead::new(file, None))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(lead_error(&name, e)),
        }
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE position >= ?1 ORDER BY position LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![from as i64, limit as i64], row_to_event)?;
            rows.collect()
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let stream = stream.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE stream = ?1 AND version >= ?2 ORDER BY version"
            ))?;
            let rows = stmt.query_map(params![stream, from_version as i64], row_to_event)?;
            rows.collect()
        })
        .await
    }

    async fn command(&self, command_id: Uuid) -> Result<Option<Appended>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT stream, first_position, last_position, last_version FROM commands
                 WHERE command_id = ?1",
            )?
            .query_row([command_id.as_bytes()], |r| {
                Ok(Appended {
                    stream: r.get(0)?,
                    first_position: r.get::<_, i64>(1)? as u64,
                    last_position: r.get::<_, i64>(2)? as u64,
                    last_version: r.get::<_, i64>(3)? as u64,
                })
            })
            .optional()
        })
        .await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        self.read(|conn| read_head(conn).map(|h| h.position)).await
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn import(
        &self,
        events: Vec<StoredEvent>,
        commands: Vec<CommandRecord>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let err = |e: rusqlite::Error| db_error(&path, e);
            let mut conn = open_connection(&path)?;
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(err)?;
            batch::check_continues(read_head(&tx).map_err(err)?, &events)?;
            insert(&tx, &events, &commands).map_err(err)?;
            tx.commit().map_err(err)
        })
        .await
        .map_err(|e| StoreError::Database {
            backend: "sqlite",
            source: Box::new(e),
        })??;
        batch::wake(&self.wake);
        Ok(())
    }
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    wake: Arc<watch::Sender<u64>>,
}

impl Writer {
    fn run(mut self, mut queue: batch::Queue) {
        // A runtime of its own, only to wait on the queue with a deadline; the database
        // work blocks this thread, which is what it is for.
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!("the SQLite writer cannot start: {e}");
                return;
            }
        };
        runtime.block_on(async {
            while let Some(jobs) = queue.next_batch().await {
                let appends: Vec<&Append> = jobs.iter().map(|(a, _)| a).collect();
                let result = self.write_batch(&appends);
                queue.answer(jobs, result);
            }
        });
    }

    fn write_batch(
        &mut self,
        appends: &[&Append],
    ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
        let started = std::time::Instant::now();
        let path = self.path.clone();
        let err = |e: rusqlite::Error| db_error(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let head = read_head(&tx).map_err(err)?;
        let (streams, command_ids) = batch::lookups(appends);
        let mut versions = HashMap::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")
                .map_err(err)?;
            for stream in streams {
                let v: Option<i64> = stmt.query_row([&stream], |r| r.get(0)).map_err(err)?;
                if let Some(v) = v {
                    versions.insert(stream, v as u64);
                }
            }
        }
        let mut known = HashMap::new();
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT stream, fingerprint, first_position, last_position, last_version
                     FROM commands WHERE command_id = ?1",
                )
                .map_err(err)?;
            for id in command_ids {
                let record = stmt
                    .query_row([id.as_bytes()], |r| {
                        Ok(CommandRecord {
                            command_id: id,
                            stream: r.get(0)?,
                            fingerprint: hash_column(r, 1)?,
                            first_position: r.get::<_, i64>(2)? as u64,
                            last_position: r.get::<_, i64>(3)? as u64,
                            last_version: r.get::<_, i64>(4)? as u64,
                        })
                    })
                    .optional()
                    .map_err(err)?;
                if let Some(record) = record {
                    known.insert(id, record);
                }
            }
        }
        let plan = batch::plan(head, appends, &versions, &known, Uuid::now_v7);
        insert(&tx, &plan.events, &plan.commands).map_err(err)?;
        tx.commit().map_err(err)?;
        crate::metrics::metrics().commit(
            "sqlite",
            plan.commands.len(),
            plan.events.len(),
            started.elapsed(),
        );
        if !plan.events.is_empty() {
            batch::wake(&self.wake);
        }
        Ok(plan.outcomes)
    }
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    events: &[StoredEvent],
    commands: &[CommandRecord],
) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
    for e in events {
        stmt.execute(params![
            e.position as i64,
            e.stream,
            e.version as i64,
            e.id.as_bytes(),
            e.event_type,
            e.schema_version,
            e.data,
            e.metadata,
            e.hash.0,
        ])?;
    }
    let mut stmt = tx.prepare_cached("INSERT INTO commands VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for c in commands {
        stmt.execute(params![
            c.command_id.as_bytes(),
            c.stream,
            c.fingerprint.0,
            c.first_position as i64,
            c.last_position as i64,
            c.last_version as i64,
        ])?;
    }
    Ok(())
}

fn read_head(conn: &Connection) -> rusqlite::Result<Head> {
    conn.prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")?
        .query_row([], |r| {
            Ok(Head {
                position: r.get::<_, i64>(0)? as u64,
                hash: hash_column(r, 1)?,
            })
        })
        .optional()
        .map(|h| h.unwrap_or(Head::EMPTY))
}

fn hash_column(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Hash> {
    let bytes: Vec<u8> = row.get(i)?;
    Hash::from_slice(&bytes).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            "hash is not 32 bytes".into(),
        )
    })
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let id: [u8; 16] = row.get(3)?;
    Ok(StoredEvent {
        position: row.get::<_, i64>(0)? as u64,
        stream: row.get(1)?,
        version: row.get::<_, i64>(2)? as u64,
        id: Uuid::from_bytes(id),
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        data: row.get(6)?,
        metadata: row.get(7)?,
        hash: hash_column(row, 8)?,
    })
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| damaged(path, &e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| damaged(path, &e))?;
    // Reading the journal mode touches the header: a file that is not SQLite fails here.
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(|e| damaged(path, &e))?;
    // 64 MiB of page cache keeps the indexes' hot pages in memory; checkpoints every
    // 16 MiB of WAL instead of every 4 MiB, so the writer checkpoints a quarter as often.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 4000;",
    )
    .map_err(|e| damaged(path, &e))?;
    // A stable plan per statement: otherwise SQLite re-prepares a cached statement whenever
    // a parameter that could change its plan gets a new value, which cost an eighth of the
    // CPU of a submitRequest. Every query here is a plain index lookup or range scan.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| damaged(path, &e))?;
    Ok(conn)
}

/// A read connection. With `OPSLEDGER_SQLITE_MMAP_MIB` set, reads map up to that much of
/// the file instead of copying it page by page: a full replay runs faster, but the mapped
/// pages count in the process's resident memory, and an I/O error while reading a mapped
/// page ends the process instead of failing one query. Off by default; the writer never
/// maps.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    let mib: u64 = match std::env::var("OPSLEDGER_SQLITE_MMAP_MIB") {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            tracing::warn!("OPSLEDGER_SQLITE_MMAP_MIB={v:?} is not a number of MiB; not mapping");
            0
        }),
        Err(_) => 0,
    };
    conn.query_row(&format!("PRAGMA mmap_size = {}", mib << 20), [], |_| Ok(()))
        .map_err(|e| damaged(path, &e))?;
    // Readers scan more than they revisit, and the operating system caches the file: a
    // small page cache each keeps several of them (a replay reads with three at once) from
    // holding the writer's 64 MiB apiece.
    conn.execute_batch("PRAGMA cache_size = -4096")
        .map_err(|e| damaged(path, &e))?;
    Ok(conn)
}

/// Brings a new store to the current schema; refuses foreign, damaged and newer files
/// before writing anything.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let pragma = |name: &str| -> Result<i32, StoreError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| damaged(path, &e))
    };
    let application_id = pragma("application_id")?;
    let version = pragma("user_version")?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| damaged(path, &e))?;
    if application_id != APPLICATION_ID && (application_id != 0 || tables > 0) {
        return Err(StoreError::Unusable(format!(
            "{} is a SQLite database, but not an OpsLedger event store. Point --data-dir at \
             an OpsLedger data directory or an empty one.",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "{} has store schema version {version}, newer than this OpsLedger knows \
             ({SCHEMA_VERSION}). Upgrade opsledger to open it.",
            path.display()
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction().map_err(|e| damaged(path, &e))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(|e| damaged(path, &e))?;
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {};",
            i + 1
        ))
        .map_err(|e| damaged(path, &e))?;
    }
    // The store's identity is made with it (or with the schema that first keeps it).
    tx.execute(
        "INSERT INTO store_info (key, value) VALUES ('store_id', ?1) ON CONFLICT (key) DO NOTHING",
        [Uuid::new_v4().to_string()],
    )
    .map_err(|e| damaged(path, &e))?;
    tx.commit().map_err(|e| damaged(path, &e))
}

/// The store id kept in `store_info`.
fn read_store_id(conn: &Connection) -> rusqlite::Result<Uuid> {
    let text: String = conn.query_row(
        "SELECT value FROM store_info WHERE key = 'store_id'",
        [],
        |r| r.get(0),
    )?;
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Errors that mean the file itself is wrong get a message that says what to do.
fn damaged(path: &Path, e: &rusqlite::Error) -> StoreError {
    let code = e.sqlite_error_code();
    let what = match code {
        Some(ErrorCode::NotADatabase) => "is not a SQLite database (or is encrypted)",
        Some(ErrorCode::DatabaseCorrupt) => "is damaged (truncated or corrupted)",
        Some(ErrorCode::CannotOpen) => "cannot be opened",
        Some(ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => "is not writable",
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "is locked by another process for too long"
        }
        _ => "cannot be used",
    };
    StoreError::Unusable(format!(
        "the event store {} {what}: {e}. Nothing was written. Restore it from a backup or an \
         `opsledger export`, or point --data-dir elsewhere.",
        path.display()
    ))
}

fn lead_error(file: &std::ffi::OsStr, e: std::io::Error) -> StoreError {
    StoreError::Database {
        backend: "sqlite",
        source: format!("cannot lock {}: {e}", Path::new(file).display()).into(),
    }
}

fn db_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => damaged(path, &e),
        _ => StoreError::Database {
            backend: "sqlite",
            source: Box::new(e),
        },
    }
}
