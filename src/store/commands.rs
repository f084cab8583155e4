//! Carrying out commands: load the aggregate's stream, decide, append with the version
//! loaded. Two commands deciding on the same state at once: one appends, the other gets
//! [`CommandError::Conflict`] and appends nothing.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opsledger_domain::kernel::aggregate::{Aggregate, Context, DomainEvent};
use opsledger_domain::Metadata;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::store::{Append, Appended, EventStore, ExpectedVersion, StoreError};

pub use opsledger_schema::CommandError;

/// The log failed (`INTERNAL`).
impl<E> From<StoreError> for CommandError<E> {
    fn from(e: StoreError) -> Self {
        CommandError::internal(e)
    }
}

/// Carries out commands against the event log.
#[derive(Clone)]
pub struct CommandBus {
    store: EventStore,
    /// The turns of the contended aggregates [`CommandBus::execute_in_turn`] is used for
    /// (pools, subnets, quotas), by stream: an `Arc<Turn<A>>` each.
    turns: Arc<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>>,
}

/// A contended stream's turn: the commands waiting to be decided, whether a task is
/// deciding them, and the aggregate as this process last saw it.
struct Turn<A: Aggregate> {
    inner: Mutex<TurnState<A>>,
}

struct TurnState<A: Aggregate> {
    waiting: Vec<Waiting<A>>,
    deciding: bool,
    seen: Option<(A, ExpectedVersion)>,
}

/// What a turn answers: where the command's events landed, and the events.
pub type Decided<A> =
    Result<(Appended, Vec<<A as Aggregate>::Event>), CommandError<<A as Aggregate>::Error>>;

struct Waiting<A: Aggregate> {
    command: A::Command,
    ctx: Context,
    /// How many times it lost a race with another process.
    lost: usize,
    reply: oneshot::Sender<Decided<A>>,
}

impl<A: Aggregate> Turn<A> {
    fn state(&self) -> std::sync::MutexGuard<'_, TurnState<A>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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

    fn turn<A>(&self, stream: &str) -> Arc<Turn<A>>
    where
        A: Aggregate + Send + 'static,
        A::Command: Send,
        A::Event: Send,
        A::Error: Send,
    {
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let turn = turns.entry(stream.to_owned()).or_insert_with(|| {
            Arc::new(Turn::<A> {
                inner: Mutex::new(TurnState {
                    waiting: Vec::new(),
                    deciding: false,
                    seen: None,
                }),
            })
        });
        turn.clone()
            .downcast::<Turn<A>>()
            .expect("a stream's kind names one aggregate type")
    }

    /// Carries out `command` on a contended aggregate (a pool many deployments allocate
    /// from, a subnet, a department's quota): the commands for it in this process are
    /// decided one after another by one task, on the state it keeps, and those decided
    /// together are appended as a chain that shares a commit
    /// ([`EventStore::append_chain`]). A command that lost a race with another process
    /// is decided again on the new state. Each command gets a fresh id: a repeat is
    /// recognised by the aggregate's own refusal (an allocation held already), not by id.
    /// Returns where the events landed, and the events.
    ///
    /// # Errors
    /// As [`CommandBus::execute`]; a conflict only after [`RETRIES`] lost races.
    pub async fn execute_in_turn<A>(
        &self,
        id: Uuid,
        command: A::Command,
        ctx: &Context,
    ) -> Decided<A>
    where
        A: Aggregate + Send + 'static,
        A::Command: Clone + Send,
        A::Event: DomainEvent + Send,
        A::Error: Send,
    {
        let stream = format!("{}-{id}", A::KIND);
        let turn = self.turn::<A>(&stream);
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = turn.state();
            state.waiting.push(Waiting {
                command,
                ctx: ctx.clone(),
                lost: 0,
                reply,
            });
            !std::mem::replace(&mut state.deciding, true)
        };
        if start {
            // A task of its own: a caller that goes away does not strand the others.
            let bus = self.clone();
            tokio::spawn(async move { bus.take_turns(stream, turn).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(CommandError::from(StoreError::Unusable(
                "the task deciding the command stopped".into(),
            )))
        })
    }

    /// Decides what waits on `turn`, round after round, until nothing does.
    async fn take_turns<A>(&self, stream: String, turn: Arc<Turn<A>>)
    where
        A: Aggregate + Send + 'static,
        A::Command: Clone + Send,
        A::Event: DomainEvent + Send,
        A::Error: Send,
    {
        loop {
            let (waiting, seen) = {
                let mut state = turn.state();
                if state.waiting.is_empty() {
                    state.deciding = false;
                    return;
                }
                (std::mem::take(&mut state.waiting), state.seen.take())
            };
            let (seen, lost) = self.round(&stream, waiting, seen).await;
            let again = !lost.is_empty();
            {
                let mut state = turn.state();
                state.seen = seen;
                state.waiting.splice(0..0, lost);
            }
            if again {
                let jitter = u64::from(Uuid::now_v7().as_bytes()[15] % 8);
                tokio::time::sleep(std::time::Duration::from_millis(1 + jitter)).await;
            }
        }
    }

    /// One round: brings the kept state up to date, decides every waiting command on it in
    /// turn, appends the decisions as one chain and answers each. Returns the state to keep
    /// (none when not all landed: the next round reads the stream again) and the commands
    /// that lost a race, to decide again.
    async fn round<A>(
        &self,
        stream: &str,
        waiting: Vec<Waiting<A>>,
        seen: Option<(A, ExpectedVersion)>,
    ) -> (Option<(A, ExpectedVersion)>, Vec<Waiting<A>>)
    where
        A: Aggregate,
        A::Command: Clone,
        A::Event: DomainEvent,
    {
        let (state, expected) = seen.unwrap_or((A::default(), ExpectedVersion::NoStream));
        let (mut state, mut expected) = match self.catch_up(stream, state, expected).await {
            Ok(caught_up) => caught_up,
            Err(e) => {
                let message = e.to_string();
                for w in waiting {
                    let _ = w.reply.send(Err(CommandError::from(StoreError::Database {
                        backend: "store",
                        source: message.clone().into(),
                    })));
                }
                return (None, Vec::new());
            }
        };
        let mut appends = Vec::new();
        let mut decided = Vec::new();
        let mut after = None;
        for w in waiting {
            let events = match state.decide(w.command.clone(), &w.ctx) {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => {
                    let _ = w
                        .reply
                        .send(Err(CommandError::from(StoreError::InvalidAppend(format!(
                            "a command on {stream} decided no events"
                        )))));
                    continue;
                }
                Err(e) => {
                    let _ = w.reply.send(Err(CommandError::Domain(e)));
                    continue;
                }
            };
            let new = match events.iter().map(DomainEvent::to_new_event).collect() {
                Ok(new) => new,
                Err(e) => {
                    let _ = w
                        .reply
                        .send(Err(CommandError::from(StoreError::InvalidAppend(
                            e.to_string(),
                        ))));
                    continue;
                }
            };
            let command_id = Uuid::now_v7();
            let count = events.len() as u64;
            appends.push(Append {
                stream: stream.to_owned(),
                expected,
                events: new,
                metadata: Metadata::new(w.ctx.actor.clone(), command_id, w.ctx.now),
                after,
            });
            for e in &events {
                state = state.evolve(e);
            }
            expected = ExpectedVersion::Exact(match expected {
                ExpectedVersion::Exact(v) => v + count,
                _ => count - 1,
            });
            after = Some(command_id);
            decided.push((w, events));
        }
        if appends.is_empty() {
            return (Some((state, expected)), Vec::new());
        }
        let outcomes = self.store.append_chain(appends).await;
        let mut all_landed = true;
        let mut lost = Vec::new();
        for ((w, events), outcome) in decided.into_iter().zip(outcomes) {
            match outcome {
                Ok(appended) => {
                    let _ = w.reply.send(Ok((appended, events)));
                }
                Err(e) if e.is_conflict() && w.lost < RETRIES => {
                    all_landed = false;
                    lost.push(Waiting {
                        lost: w.lost + 1,
                        ..w
                    });
                }
                Err(e) => {
                    all_landed = false;
                    let _ = w.reply.send(Err(if e.is_conflict() {
                        CommandError::Conflict(e.to_string())
                    } else {
                        CommandError::from(e)
                    }));
                }
            }
        }
        (all_landed.then_some((state, expected)), lost)
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

    /// `done`, the first outcome of a command id seen before, if `command` is the command
    /// that landed then: decided again on the stream as it stood before it, by the same
    /// actor at the same time, it gives the events that were recorded. Anything else under
    /// a used id (another input with the same `clientMutationId`) is a conflict, as a
    /// different command under a known id is for the log (ADR 3).
    ///
    /// A component's ids are not a client's keys: the scheduler and the engine derive one
    /// from what they act on, meaning "once", and their input carries the time of the pass
    /// that sends it again. For them the first outcome stands.
    async fn same_as_before<A: Aggregate>(
        &self,
        stream: &str,
        done: Appended,
        command: A::Command,
        ctx: &Context,
    ) -> Result<Appended, CommandError<A::Error>>
    where
        A::Event: DomainEvent,
    {
        if ctx.actor.is_system() {
            return Ok(done);
        }
        let count = done.last_position - done.first_position + 1;
        let first_version = (done.last_version + 1).saturating_sub(count);
        let mut state = A::default();
        let mut recorded = Vec::new();
        for event in self.store.read_stream(stream, 0).await? {
            if event.version >= first_version {
                if event.version <= done.last_version {
                    recorded.push(event);
                }
                continue;
            }
            let event = A::Event::from_recorded(&event).map_err(|e| {
                StoreError::Decode(opsledger_domain::DecodeError {
                    position: event.position,
                    problem: e.to_string(),
                })
            })?;
            state = state.evolve(&event);
        }
        let same = recorded.first().is_some_and(|first| {
            let ctx = Context {
                actor: first.metadata.actor.clone(),
                now: first.metadata.recorded_at,
            };
            let payload = |data: &str| serde_json::from_str::<serde_json::Value>(data).ok();
            state.decide(command, &ctx).is_ok_and(|decided| {
                decided.len() == recorded.len()
                    && decided.iter().zip(&recorded).all(|(new, old)| {
                        new.to_new_event().is_ok_and(|new| {
                            new.event_type == old.event_type
                                && payload(new.data.get()) == payload(&old.data)
                        })
                    })
            })
        });
        if same {
            Ok(done)
        } else {
            Err(CommandError::Conflict(format!(
                "clientMutationId: this key (command id {}) was already used for a different \
                 input; use a new key for a new request",
                recorded
                    .first()
                    .map_or_else(String::new, |e| e.metadata.command_id.to_string())
            )))
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
            after: None,
        };
        let appended = self.store.append(append).await.map_err(|e| match e {
            e if e.is_conflict() => CommandError::Conflict(e.to_string()),
            e => CommandError::from(e),
        })?;
        Ok((appended, decided))
    }

    /// Carries out `command` on the aggregate `A` with id `id` as the caller keeps it
    /// (`kept`, loaded with [`CommandBus::load`] and kept up to date by this call), for a
    /// process that carries one aggregate through many commands: no read before deciding
    /// once the stream exists. A command id seen before returns its first outcome (checked
    /// first when `kept` starts from nothing; later, when the same events are decided
    /// again). On success `kept` holds the state after the command; on a conflict, or a
    /// first outcome returned again, it is brought up to date from the log.
    ///
    /// # Errors
    /// As [`CommandBus::execute`].
    pub async fn execute_on<A: Aggregate>(
        &self,
        id: Uuid,
        kept: &mut (A, ExpectedVersion),
        command: A::Command,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Appended, CommandError<A::Error>>
    where
        A::Event: DomainEvent,
    {
        let stream = format!("{}-{id}", A::KIND);
        // A state that starts from nothing may be a first look at a stream this command
        // made before: its first outcome, and the stream as it is now.
        if kept.1 == ExpectedVersion::NoStream {
            if let Some(done) = self.done_before(&stream, command_id).await? {
                let done = self
                    .same_as_before::<A>(&stream, done, command, ctx)
                    .await?;
                let state = std::mem::take(&mut kept.0);
                *kept = self.catch_up(&stream, state, kept.1).await?;
                return Ok(done);
            }
        }
        let outcome = self
            .decide_and_append(&stream, &kept.0, kept.1, command, ctx, command_id)
            .await;
        let next = match kept.1 {
            ExpectedVersion::Exact(v) => v + 1,
            _ => 0,
        };
        match outcome {
            // Landed where the kept state ends: fold it in.
            Ok((appended, events)) if appended.last_version + 1 == next + events.len() as u64 => {
                let state = std::mem::take(&mut kept.0);
                kept.0 = events.iter().fold(state, |state, e| state.evolve(e));
                kept.1 = ExpectedVersion::Exact(appended.last_version);
                Ok(appended)
            }
            // A first outcome returned again, or a lost race: read what the log holds.
            outcome @ (Ok(_) | Err(CommandError::Conflict(_))) => {
                let state = std::mem::take(&mut kept.0);
                *kept = self.catch_up(&stream, state, kept.1).await?;
                outcome.map(|(appended, _)| appended)
            }
            Err(e) => Err(e),
        }
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
            return self.same_as_before::<A>(&stream, done, command, ctx).await;
        }
        let (state, expected) = self.load::<A>(id).await?;
        self.decide_and_append(&stream, &state, expected, command, ctx, command_id)
            .await
            .map(|(appended, _)| appended)
    }
}
