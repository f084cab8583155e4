//! Carrying out commands: load the aggregate's stream, decide, append with the version
//! loaded. Two commands deciding on the same state at once: one appends, the other gets
//! [`CommandError::Conflict`] and appends nothing.

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
}

impl CommandBus {
    pub fn new(store: EventStore) -> Self {
        CommandBus { store }
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
