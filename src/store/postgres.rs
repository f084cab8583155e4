//! The shared backend: a PostgreSQL database that any number of OpsLedger processes use at
//! once.
//!
//! Positions are assigned under one transaction-scoped advisory lock, so transactions commit
//! in position order and a reader that has seen position n never later sees an event below
//! n appear; no reader ever skips a gap on a timer. To keep throughput under that lock, each
//! process has one writer task that commits every append waiting for it in one transaction
//! (group commit), with multi-row `unnest` inserts and one `NOTIFY` per transaction.
//! Other processes' commits reach the live subscription through `LISTEN`; the notification
//! only says "look again", reading by position is the truth.
//!
//! Payloads are `text`, not `jsonb`: the stored bytes are what the hash chain covers, and
//! `text` scans much faster on replay.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use opsledger_domain::{Hash, StoredEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, Config, NoTls, Row};
use uuid::Uuid;

use super::batch::{self, CommandRecord, Head, Job};
use super::{Append, Appended, Backend, Lead, StoreError};

/// The newest schema this binary writes.
const SCHEMA_VERSION: i32 = 2;

/// The migrations, in order; migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE events (
        position       bigint  PRIMARY KEY,
        stream         text    NOT NULL,
        version        bigint  NOT NULL,
        id             uuid    NOT NULL UNIQUE,
        type           text    NOT NULL,
        schema_version integer NOT NULL,
        data           text    NOT NULL,
        metadata       text    NOT NULL,
        hash           bytea   NOT NULL,
        UNIQUE (stream, version)
    );
    CREATE TABLE commands (
        command_id     uuid    PRIMARY KEY,
        stream         text    NOT NULL,
        fingerprint    bytea   NOT NULL,
        first_position bigint  NOT NULL,
        last_position  bigint  NOT NULL,
        last_version   bigint  NOT NULL
    );
",
    r"
    CREATE TABLE store_info (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
",
];

/// Serialises appends across every process sharing the database.
const APPEND_LOCK: i64 = 0x4F50_534C_0001;
/// Serialises schema migrations.
const MIGRATE_LOCK: i64 = 0x4F50_534C_0002;
/// The `NOTIFY` channel is this prefix and the schema the store lives in, so stores in
/// different schemas of one database do not wake each other; the payload is the new head.
const CHANNEL_PREFIX: &str = "opsledger_events_";

const SELECT_EVENT: &str =
    "SELECT position, stream, version, id, type, schema_version, data, metadata, hash FROM events";

const INSERT_EVENTS: &str = "INSERT INTO events
    (position, stream, version, id, type, schema_version, data, metadata, hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[],
                         $6::integer[], $7::text[], $8::text[], $9::bytea[])";

const INSERT_COMMANDS: &str = "INSERT INTO commands
    (command_id, stream, fingerprint, first_position, last_position, last_version)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bigint[], $5::bigint[],
                         $6::bigint[])";

const SELECT_HEAD: &str = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1";

/// The PostgreSQL event store.
pub struct PostgresBackend {
    pool: Pool,
    jobs: mpsc::UnboundedSender<Job>,
    wake: Arc<watch::Sender<u64>>,
    channel: String,
    config: Config,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store_id: Uuid,
}

impl PostgresBackend {
    /// Connects, creates or upgrades the schema, and starts the writer and the listener.
    ///
    /// # Errors
    /// [`StoreError::Unusable`] when the URL is malformed, the server does not answer, the
    /// database holds something else, or its schema is newer than this binary knows.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let config = Config::from_str(url).map_err(|e| {
            StoreError::Unusable(format!(
                "the database URL is not a valid PostgreSQL URL: {e}. Expected \
                 postgres://user:password@host:port/database"
            ))
        })?;
        Self::open_config(config).await
    }

    /// Like [`PostgresBackend::open`], from a parsed configuration (tests and the benchmark
    /// use it to put a store in a schema of its own through `options`).
    ///
    /// # Errors
    /// As [`PostgresBackend::open`].
    pub async fn open_config(mut config: Config) -> Result<Self, StoreError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // Named in pg_stat_activity: `opsledger`, or the URL's `application_name`.
        if config.get_application_name().is_none() {
            config.application_name("opsledger");
        }
        let target = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| StoreError::Unusable(format!("cannot build the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(|e| {
            StoreError::Unusable(format!(
                "cannot connect to PostgreSQL at {target}: {}. Check that the server is \
                 running and that --database-url (or OPSLEDGER_DATABASE_URL) is right.",
                causes(&e)
            ))
        })?;
        migrate(&mut client, &target).await?;
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        let store_id: String = client
            .query_one("SELECT value FROM store_info WHERE key = 'store_id'", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        let store_id = store_id.parse().map_err(|e| {
            StoreError::Unusable(format!(
                "the database {target} has a damaged store id {store_id:?}: {e}"
            ))
        })?;
        drop(client);
        let channel = format!("{CHANNEL_PREFIX}{schema}");

        let wake = Arc::new(watch::Sender::new(0));
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(write_loop(
                pool.clone(),
                batch::Queue::new(jobs_rx),
                wake.clone(),
                channel.clone(),
            )),
            tokio::spawn(listen_loop(config.clone(), wake.clone(), channel.clone())),
        ];
        Ok(PostgresBackend {
            pool,
            jobs,
            wake,
            channel,
            config,
            tasks,
            store_id,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Database {
            backend: "postgres",
            source: Box::new(e),
        })
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn store_id(&self) -> Uuid {
        self.store_id
    }

    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((append, tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn append_chain(&self, appends: Vec<Append>) -> Vec<Result<Appended, StoreError>> {
        let mut replies = Vec::with_capacity(appends.len());
        for append in appends {
            let (tx, rx) = oneshot::channel();
            replies.push(
                self.jobs
                    .send((append, tx))
                    .map_err(|_| StoreError::Closed)
                    .map(|()| rx),
            );
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
        // A session advisory lock on a connection of its own: free again when the
        // connection closes, which it does when the process dies. Advisory locks are
        // database-wide, so the key names the store's schema too.
        let digest =
            <sha2::Sha256 as sha2::Digest>::digest(format!("{}:{role}", self.channel).as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        // Named, so an operator sees in pg_stat_activity which process leads what.
        let schema = self.channel.trim_start_matches(CHANNEL_PREFIX);
        let mut config = self.config.clone();
        config.application_name(format!("opsledger lead {role} {schema}"));
        let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
        let (lost, on_loss) = oneshot::channel();
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
            let _ = lost.send(());
        }));
        let held: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(held.then(|| Lead::new((client, driver), Some(on_loss))))
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "{SELECT_EVENT} WHERE position >= $1 ORDER BY position LIMIT $2"
            ))
            .await
            .map_err(pg_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&(from as i64), &limit])
            .await
            .map_err(pg_error)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "{SELECT_EVENT} WHERE stream = $1 AND version >= $2 ORDER BY version"
            ))
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&stmt, &[&stream, &(from_version as i64)])
            .await
            .map_err(pg_error)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn command(&self, command_id: Uuid) -> Result<Option<Appended>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT stream, first_position, last_position, last_version FROM commands
                 WHERE command_id = $1",
                &[&command_id],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| Appended {
            stream: r.get(0),
            first_position: r.get::<_, i64>(1) as u64,
            last_position: r.get::<_, i64>(2) as u64,
            last_version: r.get::<_, i64>(3) as u64,
        }))
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(read_head(&**client).await.map_err(pg_error)?.position)
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn import(
        &self,
        events: Vec<StoredEvent>,
        commands: Vec<CommandRecord>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let result = async {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
                .await
                .map_err(pg_error)?;
            batch::check_continues(read_head(&*tx).await.map_err(pg_error)?, &events)?;
            insert(&tx, &events, &commands).await.map_err(pg_error)?;
            if let Some(last) = events.last() {
                notify(&tx, &self.channel, last.position)
                    .await
                    .map_err(pg_error)?;
            }
            Ok(())
        }
        .await;
        finish(tx, result).await?;
        batch::wake(&self.wake);
        Ok(())
    }
}

async fn write_loop(
    pool: Pool,
    mut queue: batch::Queue,
    wake: Arc<watch::Sender<u64>>,
    channel: String,
) {
    while let Some(jobs) = queue.next_batch().await {
        let appends: Vec<&Append> = jobs.iter().map(|(a, _)| a).collect();
        let result = write_batch(&pool, &appends, &channel).await;
        if result.is_ok() {
            batch::wake(&wake);
        }
        queue.answer(jobs, result);
    }
}

type Outcomes = Vec<Result<Appended, StoreError>>;

async fn write_batch(
    pool: &Pool,
    appends: &[&Append],
    channel: &str,
) -> Result<Outcomes, StoreError> {
    let mut client = pool.get().await.map_err(|e| StoreError::Database {
        backend: "postgres",
        source: Box::new(e),
    })?;
    let started = std::time::Instant::now();
    let tx = client.transaction().await.map_err(pg_error)?;
    let result = decide_and_insert(&tx, appends, channel).await;
    let (outcomes, commands, events) = finish(tx, result).await?;
    crate::metrics::metrics().commit("postgres", commands, events, started.elapsed());
    Ok(outcomes)
}

/// Runs `body`'s outcome to its end: commit on success, roll back (releasing the locks at
/// once, not when the connection is next used) on failure.
async fn finish<T>(
    tx: deadpool_postgres::Transaction<'_>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(pg_error)?;
            Ok(value)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn decide_and_insert(
    tx: &deadpool_postgres::Transaction<'_>,
    appends: &[&Append],
    channel: &str,
) -> Result<(Outcomes, usize, usize), StoreError> {
    let (lock, head, versions, commands) = tokio::try_join!(
        tx.prepare_cached("SELECT pg_advisory_xact_lock($1)"),
        tx.prepare_cached(SELECT_HEAD),
        // One index probe per stream for its last version, however long the stream is.
        tx.prepare_cached(
            "SELECT s.stream, (SELECT version FROM events e WHERE e.stream = s.stream
                               ORDER BY version DESC LIMIT 1)
             FROM unnest($1::text[]) AS s (stream)"
        ),
        tx.prepare_cached(
            "SELECT command_id, stream, fingerprint, first_position, last_position, last_version
             FROM commands WHERE command_id = ANY($1)"
        ),
    )
    .map_err(pg_error)?;
    let (streams, command_ids) = batch::lookups(appends);
    let (stream_params, command_params) = ([&streams as _], [&command_ids as _]);
    // Sent together, run in order by the server: each lookup starts after the lock is
    // granted, so it sees everything the previous holder committed. One round trip.
    let (_, head, versions, commands) = tokio::try_join!(
        tx.execute(&lock, &[&APPEND_LOCK]),
        tx.query_opt(&head, &[]),
        tx.query(&versions, &stream_params),
        tx.query(&commands, &command_params),
    )
    .map_err(pg_error)?;
    let head = head
        .map(|r| row_to_head(&r))
        .transpose()?
        .unwrap_or(Head::EMPTY);
    let versions: HashMap<String, u64> = versions
        .iter()
        .filter_map(|r| Some((r.get::<_, String>(0), r.get::<_, Option<i64>>(1)? as u64)))
        .collect();
    let known = commands
        .iter()
        .map(|r| {
            let record = CommandRecord {
                command_id: r.get(0),
                stream: r.get(1),
                fingerprint: hash_column(r, 2)?,
                first_position: r.get::<_, i64>(3) as u64,
                last_position: r.get::<_, i64>(4) as u64,
                last_version: r.get::<_, i64>(5) as u64,
            };
            Ok((record.command_id, record))
        })
        .collect::<Result<HashMap<_, _>, StoreError>>()?;
    let plan = batch::plan(head, appends, &versions, &known, Uuid::now_v7);
    if !plan.events.is_empty() {
        tokio::try_join!(
            insert(tx, &plan.events, &plan.commands),
            notify(tx, channel, plan.head.position),
        )
        .map_err(pg_error)?;
    }
    Ok((plan.outcomes, plan.commands.len(), plan.events.len()))
}

/// Inserts events and their command records, both statements in one round trip.
async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[StoredEvent],
    commands: &[CommandRecord],
) -> Result<(), tokio_postgres::Error> {
    tokio::try_join!(insert_events(tx, events), insert_commands(tx, commands)).map(drop)
}

async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[StoredEvent],
) -> Result<(), tokio_postgres::Error> {
    let positions: Vec<i64> = events.iter().map(|e| e.position as i64).collect();
    let streams: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
    let versions: Vec<i64> = events.iter().map(|e| e.version as i64).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let schema_versions: Vec<i32> = events.iter().map(|e| e.schema_version as i32).collect();
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    let metadata: Vec<&str> = events.iter().map(|e| e.metadata.as_str()).collect();
    let hashes: Vec<&[u8]> = events.iter().map(|e| &e.hash.0[..]).collect();
    let stmt = tx.prepare_cached(INSERT_EVENTS).await?;
    tx.execute(
        &stmt,
        &[
            &positions,
            &streams,
            &versions,
            &ids,
            &types,
            &schema_versions,
            &data,
            &metadata,
            &hashes,
        ],
    )
    .await
    .map(drop)
}

async fn insert_commands(
    tx: &deadpool_postgres::Transaction<'_>,
    commands: &[CommandRecord],
) -> Result<(), tokio_postgres::Error> {
    if commands.is_empty() {
        return Ok(());
    }
    let command_ids: Vec<Uuid> = commands.iter().map(|c| c.command_id).collect();
    let streams: Vec<&str> = commands.iter().map(|c| c.stream.as_str()).collect();
    let fingerprints: Vec<&[u8]> = commands.iter().map(|c| &c.fingerprint.0[..]).collect();
    let firsts: Vec<i64> = commands.iter().map(|c| c.first_position as i64).collect();
    let lasts: Vec<i64> = commands.iter().map(|c| c.last_position as i64).collect();
    let last_versions: Vec<i64> = commands.iter().map(|c| c.last_version as i64).collect();
    let stmt = tx.prepare_cached(INSERT_COMMANDS).await?;
    tx.execute(
        &stmt,
        &[
            &command_ids,
            &streams,
            &fingerprints,
            &firsts,
            &lasts,
            &last_versions,
        ],
    )
    .await
    .map(drop)
}

async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    channel: &str,
    position: u64,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&channel, &position.to_string()],
    )
    .await
    .map(drop)
}

/// Follows other processes' commits: `LISTEN`, and wake the subscribers on each
/// notification. After a lost connection it reconnects and wakes them once, so a commit
/// made while disconnected is not missed.
async fn listen_loop(config: Config, wake: Arc<watch::Sender<u64>>, channel: String) {
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let (tx, mut notifications) = mpsc::unbounded_channel();
            let _driver = AbortOnDrop(tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(_) = message {
                        let _ = tx.send(());
                    }
                }
            }));
            let listen = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
            if client.batch_execute(&listen).await.is_ok() {
                batch::wake(&wake);
                while notifications.recv().await.is_some() {
                    batch::wake(&wake);
                }
            }
            tracing::warn!("lost the PostgreSQL LISTEN connection; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Aborts a task when its owner is dropped (the listener's connection driver, when the
/// listener itself is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Creates or upgrades the schema under an advisory lock, refusing a database that holds
/// something else or a newer schema before writing anything.
async fn migrate(client: &mut deadpool_postgres::Object, target: &str) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let result = migrate_in(&tx, target).await;
    finish(tx, result).await
}

async fn migrate_in(
    tx: &deadpool_postgres::Transaction<'_>,
    target: &str,
) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(pg_error)?;
    let tracked: bool = tx
        .query_one("SELECT to_regclass('opsledger_schema') IS NOT NULL", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let version: i32 = if tracked {
        tx.query_one("SELECT version FROM opsledger_schema", &[])
            .await
            .map_err(pg_error)?
            .get(0)
    } else {
        let foreign: bool = tx
            .query_one(
                "SELECT to_regclass('events') IS NOT NULL OR to_regclass('commands') IS NOT NULL",
                &[],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        if foreign {
            return Err(StoreError::Unusable(format!(
                "the database {target} has tables named events or commands that OpsLedger did \
                 not create. Use an empty database for OpsLedger."
            )));
        }
        0
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "the database {target} has store schema version {version}, newer than this \
             OpsLedger knows ({SCHEMA_VERSION}). Upgrade opsledger to use it."
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if !tracked {
        tx.batch_execute("CREATE TABLE opsledger_schema (version integer NOT NULL); INSERT INTO opsledger_schema VALUES (0);")
            .await
            .map_err(pg_error)?;
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.batch_execute(sql).await.map_err(pg_error)?;
    }
    // The store's identity is made with it (or with the schema that first keeps it).
    tx.execute(
        "INSERT INTO store_info (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING",
        &[&Uuid::new_v4().to_string()],
    )
    .await
    .map_err(pg_error)?;
    tx.execute(
        "UPDATE opsledger_schema SET version = $1",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

async fn read_head(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Head, tokio_postgres::Error> {
    let row = client.query_opt(SELECT_HEAD, &[]).await?;
    Ok(match row {
        Some(r) => Head {
            position: r.get::<_, i64>(0) as u64,
            hash: Hash::from_slice(r.get(1)).unwrap_or_default(),
        },
        None => Head::EMPTY,
    })
}

fn row_to_head(row: &Row) -> Result<Head, StoreError> {
    Ok(Head {
        position: row.get::<_, i64>(0) as u64,
        hash: hash_column(row, 1)?,
    })
}

fn hash_column(row: &Row, i: usize) -> Result<Hash, StoreError> {
    Hash::from_slice(row.get(i)).ok_or_else(|| corrupt(row, "a hash is not 32 bytes"))
}

fn row_to_event(row: &Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: row.get::<_, i64>(0) as u64,
        stream: row.get(1),
        version: row.get::<_, i64>(2) as u64,
        id: row.get(3),
        event_type: row.get(4),
        schema_version: row.get::<_, i32>(5) as u32,
        data: row.get(6),
        metadata: row.get(7),
        hash: hash_column(row, 8)?,
    })
}

fn corrupt(row: &Row, problem: &str) -> StoreError {
    let position = row.try_get::<_, i64>(0).unwrap_or_default();
    StoreError::Unusable(format!(
        "the stored event at position {position} is damaged: {problem}. Run `opsledger verify`."
    ))
}

/// An error and its sources, innermost last: "error connecting to server: Connection refused".
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// `host:port/database`, never the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database {
        backend: "postgres",
        source: Box::new(e),
    }
}
