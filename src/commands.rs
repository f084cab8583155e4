//! Carrying out commands: load the aggregate's stream, decide, append with the version
//! loaded. Two commands deciding on the same state at once: one appends, the other gets
//! [`CommandError::Conflict`] and appends nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opsledger_domain::aggregate::{Aggregate, Context, DomainEvent};
use opsledger_domain::Metadata;
use uuid::Uuid;

use crate::store::{Append, Appended, EventStore, ExpectedVersion, StoreError};

/// Why a command was not carried out. Nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The domain's rules refuse it (the variant says which code it maps to).
    #[error(transparent)]
    Domain(E),
    /// Someone else changed the aggregate first, or the command id was used for another
    /// aggregate (`CONFLICT`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The log failed (`INTERNAL`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Carries out commands against the event log.
#[derive(Clone)]
pub struct CommandBus {
    store: EventStore,
    /// One lock per stream for [`CommandBus::execute_in_turn`], held while deciding and
    /// appending, so commands racing in this process for one aggregate take turns instead
    /// of conflicting; it keeps the aggregate as last seen, so the next turn reads only
    /// the events after it. Kept for the contended aggregates that use it (pools, subnets,
    /// quotas), not for every stream.
    turns: Arc<Mutex<HashMap<String, Arc<Turn>>>>,
}

/// A stream's turn, holding the aggregate's state as this process last saw it.
type Turn = tokio::sync::Mutex<Option<Box<dyn std::any::Any + Send + Sync>>>;

/// How often a command that lost a race with another process is decided again.
const RETRIES: usize = 20;

impl CommandBus {
    pub fn new(store: EventStore) -> Self {
        CommandBus {
            store,
            turns: Arc::default(),
        }
    }

    fn turn(&self, stream: &str) -> Arc<Turn> {
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        turns.entry(stream.to_owned()).or_default().clone()
    }

    /// Carries out `command` like [`CommandBus::execute`], but waits its turn behind other
    /// commands on the same aggregate in this process, and decides again (on the new
    /// state) when another process appended first. For contended aggregates: a pool many
    /// deployments allocate from, a subnet, a department's quota.
    ///
    /// # Errors
    /// As [`CommandBus::execute`]; a conflict only after [`RETRIES`] lost races.
    pub async fn execute_in_turn<A: Aggregate + Send + Sync + 'static>(
        &self,
        id: Uuid,
        command: A::Command,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Appended, CommandError<A::Error>>
    where
        A::Event: DomainEvent,
        A::Command: Clone,
    {
        let stream = format!("{}-{id}", A::KIND);
        let turn = self.turn(&stream);
        let mut held = turn.lock().await;
        let mut attempt = 0;
        loop {
            if let Some(done) = self.done_before(&stream, command_id).await? {
                return Ok(done);
            }
            // The state this process last saw, brought up to date from the log: only the
            // events after it are read.
            let (state, expected) = match held.take() {
                Some(cached) => match cached.downcast::<(A, ExpectedVersion)>() {
                    Ok(cached) => *cached,
                    Err(_) => (A::default(), ExpectedVersion::NoStream),
                },
                None => (A::default(), ExpectedVersion::NoStream),
            };
            let (mut state, expected) = self.catch_up(&stream, state, expected).await?;
            let outcome = self
                .decide_and_append(&stream, &state, expected, command.clone(), ctx, command_id)
                .await;
            let seen = match &outcome {
                Ok((appended, events)) => {
                    for e in events {
                        state = state.evolve(e);
                    }
                    ExpectedVersion::Exact(appended.last_version)
                }
                Err(_) => expected,
            };
            *held = Some(Box::new((state, seen)));
            match outcome {
                Err(CommandError::Conflict(_)) if attempt < RETRIES => {
                    attempt += 1;
                    let jitter = u64::from(Uuid::now_v7().as_bytes()[15] % 8);
                    tokio::time::sleep(std::time::Duration::from_millis(attempt as u64 + jitter))
                        .await;
                }
                outcome => return outcome.map(|(appended, _)| appended),
            }
        }
    }

    /// The aggregate `A` with id `id` as its stream has it now, and the version to expect
    /// when appending to it.
    ///
    /// # Errors
    /// A store error, or an event the aggregate cannot read.
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<(A, ExpectedVersion), StoreError>
    where
        A::Event: DomainEvent,
    {
        let stream = format!("{}-{id}", A::KIND);
        self.catch_up(&stream, A::default(), ExpectedVersion::NoStream)
            .await
    }

    /// Folds the events of `stream` after `expected` into `state`.
    async fn catch_up<A: Aggregate>(
        &self,
        stream: &str,
        mut state: A,
        mut expected: ExpectedVersion,
    ) -> Result<(A, ExpectedVersion), StoreError>
    where
        A::Event: DomainEvent,
    {
        let from = match expected {
            ExpectedVersion::Exact(v) => v + 1,
            _ => 0,
        };
        for recorded in self.store.read_stream(stream, from).await? {
            let event = A::Event::from_recorded(&recorded).map_err(|e| {
                StoreError::Decode(opsledger_domain::DecodeError {
                    position: recorded.position,
                    problem: e.to_string(),
                })
            })?;
            state = state.evolve(&event);
            expected = ExpectedVersion::Exact(recorded.version);
        }
        Ok((state, expected))
    }

    /// Where a command id already landed, if it did (on this stream; another stream's use
    /// of it is a conflict).
    async fn done_before<E: std::error::Error>(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<Appended>, CommandError<E>> {
        match self.store.command(command_id).await? {
            Some(done) if done.stream == stream => Ok(Some(done)),
            Some(done) => Err(CommandError::Conflict(format!(
                "command id {command_id} was already used on {}",
                done.stream
            ))),
            None => Ok(None),
        }
    }

    /// Decides `command` on `state` and appends what it decided, expecting `expected`;
    /// the events too, so the caller can fold them.
    async fn decide_and_append<A: Aggregate>(
        &self,
        stream: &str,
        state: &A,
        expected: ExpectedVersion,
        command: A::Command,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<(Appended, Vec<A::Event>), CommandError<A::Error>>
    where
        A::Event: DomainEvent,
    {
        let decided = state.decide(command, ctx).map_err(CommandError::Domain)?;
        let events = decided
            .iter()
            .map(DomainEvent::to_new_event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        let append = Append {
            stream: stream.to_owned(),
            expected,
            events,
            metadata: Metadata::new(ctx.actor.clone(), command_id, ctx.now),
        };
        let appended = self.store.append(append).await.map_err(|e| match e {
            e if e.is_conflict() => CommandError::Conflict(e.to_string()),
            e => CommandError::Store(e),
        })?;
        Ok((appended, decided))
    }

    /// Carries out `command` on the aggregate `A` with id `id`. A `command_id` seen before
    /// returns where that command's events landed and decides nothing again.
    ///
    /// # Errors
    /// The domain's refusal, a conflict, or a store error; nothing is appended then.
    pub async fn execute<A: Aggregate>(
        &self,
        id: Uuid,
        command: A::Command,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Appended, CommandError<A::Error>>
    where
        A::Event: DomainEvent,
    {
        let stream = format!("{}-{id}", A::KIND);
        if let Some(done) = self.done_before(&stream, command_id).await? {
            return Ok(done);
        }
        let (state, expected) = self.load::<A>(id).await?;
        self.decide_and_append(&stream, &state, expected, command, ctx, command_id)
            .await
            .map(|(appended, _)| appended)
    }
}
