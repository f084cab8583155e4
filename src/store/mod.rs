//! The event log: one store interface, two backends that mirror each other.
//!
//! [`EventStore`] is what the rest of OpsLedger uses. It wraps a [`Backend`] (embedded SQLite
//! in [`sqlite`], shared PostgreSQL in [`postgres`]) and adds what is the same for both:
//! decoding and upcasting on read, the live subscription, `verify`, `export` and `import`.
//!
//! A backend owns one writer that takes appends from many callers and commits them in
//! batches (group commit). Within a batch, [`batch::plan`] decides every append the same
//! way on both backends: idempotency by command id, the expected-version check, positions
//! and the hash chain.
//!
//! Beside the log: the command bus that writes to it ([`commands`]: load, decide, append),
//! the projection runner that reads it into the read models ([`runner`]), and the
//! content-addressed store of files the events name by hash ([`content`]).

pub mod batch;
pub mod commands;
pub mod content;
pub mod ndjson;
pub mod postgres;
pub mod sqlite;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use opsledger_domain::{
    chain_hash, ChainBreak, ChainVerifier, DecodeError, Hash, Metadata, NewEvent, RecordedEvent,
    StoredEvent, Upcasters,
};
use opsledger_projections::Decoded;
use tokio::sync::watch;
use uuid::Uuid;

/// The stream version an append expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version.
    Exact(u64),
    /// Whatever the stream holds.
    Any,
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
            ExpectedVersion::Any => f.write_str("any version"),
        }
    }
}

/// The events of one command, to be appended to one stream atomically.
#[derive(Clone, Debug)]
pub struct Append {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    /// Shared by every event of the command; `command_id` is the idempotency key.
    pub metadata: Metadata,
    /// The command this one was decided after, when it was decided on the state that
    /// command left: it lands only if that command has (see [`EventStore::append_chain`]).
    pub after: Option<Uuid>,
}

/// Where an append landed. A repeated command id returns the first append's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub stream: String,
    pub first_position: u64,
    pub last_position: u64,
    /// The stream version of the last event written; expect it in the next append.
    pub last_version: u64,
}

/// Why the log refused or failed an operation. Rejections append nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the expected version (GraphQL `CONFLICT`).
    #[error("stream {stream} is at {}, the append expected {expected}", actual.map_or("no stream".to_owned(), |v| format!("version {v}")))]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: Option<u64>,
    },
    /// The append was decided after a command that did not land (GraphQL `CONFLICT`).
    #[error("the append to {stream} was decided after command {after}, which did not land")]
    Unchained { stream: String, after: Uuid },
    /// The command id was used before with a different command (GraphQL `CONFLICT`).
    #[error("command id {command_id} was already used for a different command on stream {stream}")]
    CommandIdReused { command_id: Uuid, stream: String },
    /// The append itself is malformed (GraphQL `BAD_USER_INPUT`).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The store cannot be opened or used as it is; the message says what to do.
    #[error("{0}")]
    Unusable(String),
    /// A stored event that cannot be read back.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An import whose events do not form a valid chain.
    #[error("import refused at {0}")]
    ImportBroken(ChainBreak),
    /// The database failed (GraphQL `INTERNAL`).
    #[error("{backend} error: {source}")]
    Database {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store's writer is gone (the store is shutting down).
    #[error("the event store is shut down")]
    Closed,
    /// This process takes no more writes: what it reads of the log can no longer be
    /// trusted or followed (GraphQL `INTERNAL`); the message says why.
    #[error("the server takes no writes: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the append lost a race or reused a command id: retry after reloading.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::WrongExpectedVersion { .. }
                | StoreError::CommandIdReused { .. }
                | StoreError::Unchained { .. }
        )
    }

    /// Whether trying again later may succeed: the database failed or could not be
    /// reached (a dropped connection, a restarted server, a busy file). A damaged store,
    /// an undecodable event or a closed store stays as it is.
    pub fn is_transient(&self) -> bool {
        match self {
            // SQLite fails for good on a file it cannot read, but not while another
            // process holds a lock on it.
            StoreError::Database {
                backend: "sqlite",
                source,
            } => source
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
                .is_some_and(|code| {
                    matches!(
                        code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    )
                }),
            StoreError::Database { .. } => true,
            _ => false,
        }
    }
}

/// Which backend to open.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// The embedded default: `<dir>/opsledger.db`.
    Sqlite { data_dir: PathBuf },
    /// A PostgreSQL database shared by any number of OpsLedger processes.
    Postgres { url: String },
}

/// What a backend stores and how it commits; see the module docs of each.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for messages and metrics.
    fn name(&self) -> &'static str;

    /// The store's identity: a UUID made when the store was created and kept in it (the
    /// `store_info` table), so a checkpoint names the log it speaks of.
    fn store_id(&self) -> Uuid;

    /// Appends one command's events; batched with concurrent appends into one commit.
    async fn append(&self, append: Append) -> Result<Appended, StoreError>;

    /// Appends several commands, handed to the writer in the order given so that they
    /// share a commit; each has its own outcome.
    async fn append_chain(&self, appends: Vec<Append>) -> Vec<Result<Appended, StoreError>>;

    /// Up to `limit` events from `from` on, in position order, as stored.
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The events of `stream` from version `from_version` on, as stored.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The position of the last event (0 when the log is empty).
    async fn head(&self) -> Result<u64, StoreError>;

    /// Says "look again": its value rises whenever new events may be readable.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// Where an earlier append with this command id landed, if there was one.
    async fn command(&self, command_id: Uuid) -> Result<Option<Appended>, StoreError>;

    /// Takes `role` among the processes sharing this store if no other holds it: held
    /// until the [`Lead`] is dropped or the process dies.
    async fn try_lead(&self, role: &str) -> Result<Option<Lead>, StoreError>;

    /// Writes already-chained events verbatim at the end of the log, which must be at
    /// `events[0].position - 1`; `commands` are the idempotency records they imply.
    async fn import(
        &self,
        events: Vec<StoredEvent>,
        commands: Vec<batch::CommandRecord>,
    ) -> Result<(), StoreError>;
}

/// A role this process holds among the processes sharing a store (the provisioning
/// engine, the mailer: work that calls the outside world and must be done by one). The
/// role is free again when this is dropped, or when the process dies.
pub struct Lead {
    _held: Box<dyn std::any::Any + Send + Sync>,
    /// Answers (or closes) when the role is lost while this is held: the connection
    /// that holds it dropped. `None`: it cannot be lost.
    lost: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Lead {
    pub(crate) fn new(
        held: impl std::any::Any + Send + Sync,
        lost: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Self {
        Lead {
            _held: Box::new(held),
            lost,
        }
    }

    /// Resolves when the role is lost although this process still holds the `Lead` (on
    /// PostgreSQL, when the connection holding the lock dropped); never, where it
    /// cannot be.
    pub async fn lost(&mut self) {
        match &mut self.lost {
            Some(lost) => {
                let _ = lost.await;
            }
            None => std::future::pending().await,
        }
    }
}

/// How often a process waiting for a role asks again.
pub const LEAD_POLL: Duration = Duration::from_secs(1);

/// The event log as OpsLedger uses it.
#[derive(Clone)]
pub struct EventStore {
    backend: Arc<dyn Backend>,
    upcasters: Arc<Upcasters>,
    /// How often a live subscription looks again without a wake-up.
    recheck: Duration,
    /// Set once, by [`EventStore::halt`]: why this process takes no more writes.
    halted: Arc<std::sync::OnceLock<String>>,
}

/// How many events a catch-up read takes per round trip.
const PAGE: usize = 2_000;

/// A live subscription also looks again this often, should a wake-up be lost.
const SUBSCRIPTION_RECHECK: Duration = Duration::from_secs(1);

/// A stream of events in position order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

impl EventStore {
    /// Opens (and on first use creates) the store `config` names.
    ///
    /// # Errors
    /// [`StoreError::Unusable`] when the database cannot be reached, is not an OpsLedger
    /// store, is damaged, or was written by a newer OpsLedger; nothing is written then.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let backend: Arc<dyn Backend> = match config {
            StoreConfig::Sqlite { data_dir } => Arc::new(sqlite::SqliteBackend::open(data_dir)?),
            StoreConfig::Postgres { url } => Arc::new(postgres::PostgresBackend::open(url).await?),
        };
        Ok(Self::from_backend(backend, Upcasters::default()))
    }

    /// An event store over a backend opened by hand (tests, the benchmark).
    pub fn from_backend(backend: Arc<dyn Backend>, upcasters: Upcasters) -> Self {
        EventStore {
            backend,
            upcasters: Arc::new(upcasters),
            recheck: SUBSCRIPTION_RECHECK,
            halted: Arc::default(),
        }
    }

    /// Live subscriptions look again every `every` when no wake-up came (one second by
    /// default): a test lengthens it to show that wake-ups, not re-checks, carry the feed.
    #[must_use]
    pub fn with_subscription_recheck(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// Reads events through these upcasters from now on.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Refuses every append through this store (and its clones) from now on, with
    /// `reason`: what this process reads of the log can no longer be trusted or followed,
    /// so nothing should be decided on it. The first reason stays.
    pub fn halt(&self, reason: impl Into<String>) {
        let _ = self.halted.set(reason.into());
    }

    /// Why appends are refused, once [`EventStore::halt`] was called.
    pub fn halted(&self) -> Option<&str> {
        self.halted.get().map(String::as_str)
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.halted() {
            Some(reason) => Err(StoreError::Unavailable(reason.to_owned())),
            None => Ok(()),
        }
    }

    /// Says "look again": its value rises whenever new events may be readable.
    pub fn watch_head(&self) -> watch::Receiver<u64> {
        self.backend.watch_head()
    }

    /// The store's identity, made with the store and kept in it.
    pub fn store_id(&self) -> Uuid {
        self.backend.store_id()
    }

    /// Appends one command's events atomically.
    ///
    /// # Errors
    /// [`StoreError::WrongExpectedVersion`] or [`StoreError::CommandIdReused`] (conflicts,
    /// nothing appended), [`StoreError::InvalidAppend`] for a malformed append, or a
    /// database error.
    pub async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        validate(&append)?;
        self.writable()?;
        self.backend.append(append).await
    }

    /// Appends commands decided one after another on one stream, each expecting the
    /// version the one before it leaves and naming it in [`Append::after`]: they share a
    /// commit, and each lands only if the ones before it did, so a decision is never
    /// recorded on a state that was not. The outcomes are in the order given.
    pub async fn append_chain(&self, appends: Vec<Append>) -> Vec<Result<Appended, StoreError>> {
        let mut valid = Vec::with_capacity(appends.len());
        let mut refused = Vec::new();
        for (i, append) in appends.into_iter().enumerate() {
            match validate(&append).and_then(|()| self.writable()) {
                Ok(()) => valid.push(append),
                Err(e) => refused.push((i, e)),
            }
        }
        let mut outcomes = self.backend.append_chain(valid).await;
        for (i, e) in refused {
            outcomes.insert(i, Err(e));
        }
        outcomes
    }

    /// Waits until this process holds `role` among the processes sharing the store, and
    /// returns it; a process that must wait says so once.
    ///
    /// # Errors
    /// A database error while asking.
    pub async fn lead(&self, role: &str) -> Result<Lead, StoreError> {
        let mut said = false;
        loop {
            if let Some(lead) = self.backend.try_lead(role).await? {
                if said {
                    tracing::info!(role, "this process now leads");
                }
                return Ok(lead);
            }
            if !said {
                tracing::info!(
                    role,
                    "another process sharing the store leads; waiting to take over"
                );
                said = true;
            }
            tokio::time::sleep(LEAD_POLL).await;
        }
    }

    /// The events of one stream, decoded, from `from_version` on.
    ///
    /// # Errors
    /// A database error, or an event that cannot be decoded.
    pub async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stored = self.backend.read_stream(stream, from_version).await?;
        self.decode_all(stored)
    }

    /// Up to `limit` events from position `from` on, decoded.
    ///
    /// # Errors
    /// A database error, or an event that cannot be decoded.
    pub async fn read_all(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stored = self.backend.read_all(from, limit).await?;
        self.decode_all(stored)
    }

    /// Up to `limit` events from position `from` on, exactly as stored.
    ///
    /// # Errors
    /// A database error.
    pub async fn read_all_stored(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.backend.read_all(from, limit).await
    }

    /// Where an earlier append with `command_id` landed: a retried command's outcome.
    ///
    /// # Errors
    /// A database error.
    pub async fn command(&self, command_id: Uuid) -> Result<Option<Appended>, StoreError> {
        self.backend.command(command_id).await
    }

    /// The position of the last event, 0 for an empty log.
    ///
    /// # Errors
    /// A database error.
    pub async fn head(&self) -> Result<u64, StoreError> {
        self.backend.head().await
    }

    /// Every event from position `from` on, then each new one as it is committed, in order.
    /// The stream ends only with an error.
    pub fn subscribe(&self, from: u64) -> EventStream {
        struct State {
            store: EventStore,
            next: u64,
            buffered: std::vec::IntoIter<RecordedEvent>,
            wake: watch::Receiver<u64>,
            failed: bool,
        }
        let state = State {
            store: self.clone(),
            next: from.max(1),
            buffered: Vec::new().into_iter(),
            wake: self.backend.watch_head(),
            failed: false,
        };
        Box::pin(futures::stream::unfold(state, |mut s| async move {
            if s.failed {
                return None;
            }
            loop {
                if let Some(event) = s.buffered.next() {
                    s.next = event.position + 1;
                    return Some((Ok(event), s));
                }
                s.wake.borrow_and_update();
                match s.store.read_all(s.next, PAGE).await {
                    Ok(events) if !events.is_empty() => s.buffered = events.into_iter(),
                    Ok(_) => {
                        let recheck = s.store.recheck;
                        let changed = tokio::time::timeout(recheck, s.wake.changed());
                        if let Ok(Err(_)) = changed.await {
                            // The writer is gone; keep polling by position, slowly.
                            tokio::time::sleep(recheck).await;
                        }
                    }
                    Err(e) => {
                        s.failed = true;
                        return Some((Err(e), s));
                    }
                }
            }
        }))
    }

    /// Recomputes the hash chain and the stream versions over the whole log.
    ///
    /// # Errors
    /// A database error; a broken chain is a report, not an error.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        struct Link {
            position: u64,
            stream: String,
            version: u64,
            stored: Hash,
            recomputed: Hash,
        }
        let mut verifier = ChainVerifier::default();
        let mut pages = self.pages(1, u64::MAX, |e, recomputed, _| {
            Ok(Link {
                position: e.position,
                stream: e.stream,
                version: e.version,
                stored: e.hash,
                recomputed,
            })
        });
        while let Some(page) = pages.recv().await {
            for l in page? {
                let checked =
                    verifier.check_link(l.position, &l.stream, l.version, l.stored, l.recomputed);
                if let Err(broken) = checked {
                    return Ok(VerifyReport {
                        events: verifier.count(),
                        head_hash: verifier.head_hash(),
                        broken: Some(broken),
                    });
                }
            }
        }
        Ok(VerifyReport {
            events: verifier.count(),
            head_hash: verifier.head_hash(),
            broken: None,
        })
    }

    /// Reads positions `from..=to` as an auditor's replay does: pages of decoded events,
    /// each with its recomputed hash link for [`ChainVerifier::check_link`]. Reading,
    /// hashing and decoding run on two pages at once, one per core.
    pub fn replay(
        &self,
        from: u64,
        to: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<(RecordedEvent, Hash)>, StoreError>> {
        self.pages(from, to, |e, recomputed, upcasters| {
            Ok((e.decode(upcasters)?, recomputed))
        })
    }

    /// Positions `from..=to` as the projection runner folds them: pages of events, each
    /// with its recomputed hash link and already decoded for the read models, decoding
    /// running beside the fold. An event a read model cannot decode ends the pages with a
    /// [`StoreError::Decode`] naming its position, type and the decoder's message: it is
    /// never skipped.
    pub fn replay_decoded(
        &self,
        from: u64,
        to: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<DecodedEvent>, StoreError>> {
        self.pages(from, to, |e, recomputed, upcasters| {
            let event = e.decode(upcasters)?;
            let decoded = Decoded::try_of(&event).map_err(|problem| DecodeError {
                position: event.position,
                problem: format!(
                    "{} (schema version {}) on {}: {problem}",
                    event.event_type, event.schema_version, event.stream
                ),
            })?;
            Ok((event, recomputed, decoded))
        })
    }

    /// Positions `from..=to` in pages, each event turned into a `T` by `each` together with
    /// its hash link: [`opsledger_domain::chain_hash`] of the stored hash of the event
    /// before it and the event. Pages are position ranges, read two at a time (reading,
    /// hashing and `each` run off the async runtime); a missing position only makes its
    /// page short, and the consumer sees the gap.
    pub(crate) fn pages<T: Send + 'static>(
        &self,
        from: u64,
        to: u64,
        each: fn(StoredEvent, Hash, &Upcasters) -> Result<T, StoreError>,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<T>, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let backend = self.backend.clone();
        let upcasters = self.upcasters.clone();
        tokio::spawn(async move {
            let to = match backend.head().await {
                Ok(head) => to.min(head),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let from = from.max(1);
            let size = (PAGE * 5) as u64;
            let ranges = (0..)
                .map(move |i| from + i * size)
                .take_while(move |start| *start <= to)
                .map(move |start| (start, (start + size - 1).min(to)));
            let mut pages = futures::stream::iter(ranges)
                .map(|(start, end)| {
                    let (backend, upcasters) = (backend.clone(), upcasters.clone());
                    async move {
                        // One event before the page, for the first link.
                        let before = start.saturating_sub(1).max(1);
                        let limit = usize::try_from(end - before + 1).unwrap_or(usize::MAX);
                        let rows = backend.read_all(before, limit).await?;
                        tokio::task::spawn_blocking(move || {
                            let mut prev = Hash::GENESIS;
                            let mut page = Vec::with_capacity(rows.len());
                            for e in rows {
                                if e.position < start {
                                    prev = e.hash;
                                    continue;
                                }
                                if e.position > end {
                                    break;
                                }
                                let recomputed = chain_hash(&prev, &e);
                                prev = e.hash;
                                page.push(each(e, recomputed, &upcasters)?);
                            }
                            Ok(page)
                        })
                        .await
                        .map_err(|e| StoreError::Database {
                            backend: "store",
                            source: Box::new(e),
                        })?
                    }
                })
                .buffered(3);
            while let Some(page) = pages.next().await {
                let failed = page.is_err();
                if tx.send(page).await.is_err() || failed {
                    break;
                }
            }
        });
        rx
    }

    fn decode_all(&self, stored: Vec<StoredEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        stored
            .into_iter()
            .map(|e| e.decode(&self.upcasters).map_err(StoreError::from))
            .collect()
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }
}

/// An event as the projection runner folds it: with its recomputed hash link, and decoded
/// for the read models.
pub type DecodedEvent = (RecordedEvent, Hash, Decoded);

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many events verified clean.
    pub events: u64,
    /// The hash of the last clean event.
    pub head_hash: Hash,
    /// The first broken position, if any.
    pub broken: Option<ChainBreak>,
}

/// The longest stream name accepted.
pub const MAX_STREAM_LEN: usize = 200;

fn validate(append: &Append) -> Result<(), StoreError> {
    let bad = |m: String| Err(StoreError::InvalidAppend(m));
    if append.events.is_empty() {
        return bad(format!("an append to {} holds no events", append.stream));
    }
    let stream = &append.stream;
    if stream.is_empty() || stream.len() > MAX_STREAM_LEN {
        return bad(format!(
            "stream name must be 1 to {MAX_STREAM_LEN} bytes, got {}",
            stream.len()
        ));
    }
    if stream.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad(format!(
            "stream name {stream:?} contains whitespace or control characters"
        ));
    }
    for event in &append.events {
        let t = &event.event_type;
        if t.is_empty()
            || t.len() > 100
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return bad(format!(
                "event type {t:?} must be 1 to 100 ASCII letters, digits, '_' or '.'"
            ));
        }
        if event.schema_version == 0 {
            return bad(format!(
                "event type {t} has schema version 0; versions start at 1"
            ));
        }
    }
    Ok(())
}
