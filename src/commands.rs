//! Carrying out commands: load the aggregate's stream, decide, append with the version
//! loaded. Two commands deciding on the same state at once: one appends, the other gets
//! [`CommandError::Conflict`] and appends nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

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
    /// of conflicting.
    turns: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

/// How often a command that lost a race with another process is decided again.
const RETRIES: usize = 20;

impl CommandBus {
    pub fn new(store: EventStore) -> Self {
        CommandBus {
            store,
            turns: Arc::default(),
        }
    }

    fn turn(&self, stream: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = turns.get(stream).and_then(Weak::upgrade) {
            return lock;
        }
        turns.retain(|_, w| w.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        turns.insert(stream.to_owned(), Arc::downgrade(&lock));
        lock
    }

    /// Carries out `command` like [`CommandBus::execute`], but waits its turn behind other
    /// commands on the same aggregate in this process, and decides again (on the new
    /// state) when another process appended first. For contended aggregates: a pool many
    /// deployments allocate from, a subnet, a department's quota.
    ///
    /// # Errors
    /// As [`CommandBus::execute`]; a conflict only after [`RETRIES`] lost races.
    pub async fn execute_in_turn<A: Aggregate>(
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
        let turn = self.turn(&format!("{}-{id}", A::KIND));
        let _held = turn.lock().await;
        let mut attempt = 0;
        loop {
            match self
                .execute::<A>(id, command.clone(), ctx, command_id)
                .await
            {
                Err(CommandError::Conflict(_)) if attempt < RETRIES => {
                    attempt += 1;
                    let jitter = u64::from(Uuid::now_v7().as_bytes()[15] % 8);
                    tokio::time::sleep(std::time::Duration::from_millis(attempt as u64 + jitter))
                        .await;
                }
                outcome => return outcome,
            }
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
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
        let history = self
            .store
            .read_stream(&format!("{}-{id}", A::KIND), 0)
            .await?;
        let expected = history.last().map_or(ExpectedVersion::NoStream, |e| {
            ExpectedVersion::Exact(e.version)
        });
        let mut state = A::default();
        for recorded in &history {
            let event = A::Event::from_recorded(recorded).map_err(|e| {
                StoreError::Decode(opsledger_domain::DecodeError {
                    position: recorded.position,
                    problem: e.to_string(),
                })
            })?;
            state = state.evolve(&event);
        }
        Ok((state, expected))
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
        if let Some(done) = self.store.command(command_id).await? {
            return if done.stream == stream {
                Ok(done)
            } else {
                Err(CommandError::Conflict(format!(
                    "command id {command_id} was already used on {}",
                    done.stream
                )))
            };
        }
        let (state, expected) = self.load::<A>(id).await?;
        let events = state.decide(command, ctx).map_err(CommandError::Domain)?;
        let events = events
            .iter()
            .map(DomainEvent::to_new_event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        let append = Append {
            stream,
            expected,
            events,
            metadata: Metadata::new(ctx.actor.clone(), command_id, ctx.now),
        };
        self.store.append(append).await.map_err(|e| match e {
            e if e.is_conflict() => CommandError::Conflict(e.to_string()),
            e => CommandError::Store(e),
        })
    }
}
