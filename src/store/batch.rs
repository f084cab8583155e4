//! Deciding a batch of appends: the rules both backends share.
//!
//! A backend's writer collects the appends waiting for it, looks up what they need (the
//! current version of each stream they touch, the command ids seen before) and the head of
//! the log, all inside its write transaction, then calls [`plan`]. The plan holds the rows
//! to insert and each caller's outcome. Appends are decided in arrival order, each seeing
//! the ones before it in the same batch, exactly as if they had been committed one by one.

use std::collections::HashMap;

use opsledger_domain::{chain_hash, Hash, StoredEvent};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Append, Appended, ExpectedVersion, StoreError};

/// What the log remembers of a command, so that a retry returns its first outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    pub command_id: Uuid,
    pub stream: String,
    /// [`fingerprint`] of the command's events: tells a retry from a different command.
    pub fingerprint: Hash,
    pub first_position: u64,
    pub last_position: u64,
    pub last_version: u64,
}

impl CommandRecord {
    fn outcome(&self) -> Appended {
        Appended {
            stream: self.stream.clone(),
            first_position: self.first_position,
            last_position: self.last_position,
            last_version: self.last_version,
        }
    }
}

/// SHA-256 over a command's stream and its events' types, versions and payloads. Metadata
/// (time, actor) is left out: a retry of the same command is the same command.
pub fn fingerprint<'a>(
    stream: &str,
    events: impl Iterator<Item = (&'a str, u32, &'a str)>,
) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update((stream.len() as u64).to_be_bytes());
    hasher.update(stream.as_bytes());
    for (event_type, schema_version, data) in events {
        hasher.update((event_type.len() as u64).to_be_bytes());
        hasher.update(event_type.as_bytes());
        hasher.update(schema_version.to_be_bytes());
        hasher.update((data.len() as u64).to_be_bytes());
        hasher.update(data.as_bytes());
    }
    Hash(hasher.finalize().into())
}

fn append_fingerprint(append: &Append) -> Hash {
    fingerprint(
        &append.stream,
        append
            .events
            .iter()
            .map(|e| (e.event_type.as_str(), e.schema_version, e.data.get())),
    )
}

/// The last event of the log: where the next one chains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub position: u64,
    pub hash: Hash,
}

impl Head {
    pub const EMPTY: Head = Head {
        position: 0,
        hash: Hash::GENESIS,
    };
}

/// What a batch writes and what each caller is told.
#[derive(Debug)]
pub struct Plan {
    pub events: Vec<StoredEvent>,
    pub commands: Vec<CommandRecord>,
    /// One per append, in the order given.
    pub outcomes: Vec<Result<Appended, StoreError>>,
    /// The head after the batch commits.
    pub head: Head,
}

/// The streams and command ids a batch must look up before it can be planned.
pub fn lookups(appends: &[&Append]) -> (Vec<String>, Vec<Uuid>) {
    let mut streams: Vec<String> = appends.iter().map(|a| a.stream.clone()).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut commands: Vec<Uuid> = appends
        .iter()
        .flat_map(|a| std::iter::once(a.metadata.command_id).chain(a.after))
        .collect();
    commands.sort_unstable();
    commands.dedup();
    (streams, commands)
}

/// Decides a batch of appends against the state looked up in the write transaction:
/// `versions` holds the last version of each existing stream, `known` the commands
/// recorded before. `new_id` gives each new event its id.
pub fn plan(
    head: Head,
    appends: &[&Append],
    versions: &HashMap<String, u64>,
    known: &HashMap<Uuid, CommandRecord>,
    mut new_id: impl FnMut() -> Uuid,
) -> Plan {
    let mut plan = Plan {
        events: Vec::with_capacity(appends.iter().map(|a| a.events.len()).sum()),
        commands: Vec::with_capacity(appends.len()),
        outcomes: Vec::with_capacity(appends.len()),
        head,
    };
    let mut batch_versions: HashMap<&str, u64> = HashMap::new();
    let mut batch_commands: HashMap<Uuid, usize> = HashMap::new();
    for append in appends {
        let fingerprint = append_fingerprint(append);
        let command_id = append.metadata.command_id;
        let seen = batch_commands
            .get(&command_id)
            .map(|&i| &plan.commands[i])
            .or_else(|| known.get(&command_id));
        if let Some(record) = seen {
            plan.outcomes.push(if record.fingerprint == fingerprint {
                Ok(record.outcome())
            } else {
                Err(StoreError::CommandIdReused {
                    command_id,
                    stream: record.stream.clone(),
                })
            });
            continue;
        }
        if let Some(after) = append.after {
            if !batch_commands.contains_key(&after) && !known.contains_key(&after) {
                plan.outcomes.push(Err(StoreError::Unchained {
                    stream: append.stream.clone(),
                    after,
                }));
                continue;
            }
        }
        let current = batch_versions
            .get(append.stream.as_str())
            .or_else(|| versions.get(&append.stream))
            .copied();
        let fits = match append.expected {
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exact(v) => current == Some(v),
            ExpectedVersion::Any => true,
        };
        if !fits {
            plan.outcomes.push(Err(StoreError::WrongExpectedVersion {
                stream: append.stream.clone(),
                expected: append.expected,
                actual: current,
            }));
            continue;
        }
        let metadata = match serde_json::to_string(&append.metadata) {
            Ok(m) => m,
            Err(e) => {
                plan.outcomes
                    .push(Err(StoreError::InvalidAppend(format!("metadata: {e}"))));
                continue;
            }
        };
        let first_position = plan.head.position + 1;
        let mut version = current.map_or(0, |v| v + 1);
        for event in &append.events {
            let mut stored = StoredEvent {
                position: plan.head.position + 1,
                stream: append.stream.clone(),
                version,
                id: new_id(),
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                data: event.data.get().to_owned(),
                metadata: metadata.clone(),
                hash: Hash::GENESIS,
            };
            stored.hash = chain_hash(&plan.head.hash, &stored);
            plan.head = Head {
                position: stored.position,
                hash: stored.hash,
            };
            plan.events.push(stored);
            version += 1;
        }
        let record = CommandRecord {
            command_id,
            stream: append.stream.clone(),
            fingerprint,
            first_position,
            last_position: plan.head.position,
            last_version: version - 1,
        };
        plan.outcomes.push(Ok(record.outcome()));
        batch_versions.insert(append.stream.as_str(), version - 1);
        batch_commands.insert(command_id, plan.commands.len());
        plan.commands.push(record);
    }
    plan
}

/// The command records implied by an imported history: each run of consecutive events with
/// one command id is one command.
///
/// # Errors
/// When a command id's events are not consecutive or span streams, or metadata is bad.
pub fn commands_of(events: &[StoredEvent]) -> Result<Vec<CommandRecord>, StoreError> {
    #[derive(serde::Deserialize)]
    struct CommandIdOnly {
        command_id: Uuid,
    }
    let mut records: Vec<CommandRecord> = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let id_of = |e: &StoredEvent| {
            serde_json::from_str::<CommandIdOnly>(&e.metadata)
                .map(|m| m.command_id)
                .map_err(|err| {
                    StoreError::InvalidAppend(format!(
                        "position {}: metadata has no valid command_id: {err}",
                        e.position
                    ))
                })
        };
        let command_id = id_of(&events[start])?;
        let mut end = start + 1;
        while end < events.len() && id_of(&events[end])? == command_id {
            end += 1;
        }
        let run = &events[start..end];
        let stream = &run[0].stream;
        if let Some(other) = run.iter().find(|e| &e.stream != stream) {
            return Err(StoreError::InvalidAppend(format!(
                "position {}: command {command_id} spans streams {stream} and {}",
                other.position, other.stream
            )));
        }
        let last = &run[run.len() - 1];
        records.push(CommandRecord {
            command_id,
            stream: stream.clone(),
            fingerprint: fingerprint(
                stream,
                run.iter()
                    .map(|e| (e.event_type.as_str(), e.schema_version, e.data.as_str())),
            ),
            first_position: run[0].position,
            last_position: last.position,
            last_version: last.version,
        });
        start = end;
    }
    Ok(records)
}

/// An append waiting in a writer's queue, with the caller to answer.
pub type Job = (
    Append,
    tokio::sync::oneshot::Sender<Result<Appended, StoreError>>,
);

/// The most events one commit takes; the rest wait for the next.
pub const MAX_BATCH_EVENTS: usize = 20_000;

/// The longest a writer holds a batch open for callers it expects back.
pub const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

/// A writer's queue of appends, and how many callers are active.
///
/// Callers wait for their answer before they append again, so with a writer that commits
/// whatever is waiting, concurrent callers fall into two groups that alternate: one waits
/// while the other's commit runs. After a commit, the callers it answered and those already
/// waiting are the active ones; the next batch is held open (at most [`LINGER`]) until
/// that many have arrived, so they share one commit. A lone caller never waits.
pub struct Queue {
    jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
    active: usize,
}

impl Queue {
    pub fn new(jobs: tokio::sync::mpsc::UnboundedReceiver<Job>) -> Self {
        Queue { jobs, active: 1 }
    }

    /// The next batch: at least one append, up to [`MAX_BATCH_EVENTS`] events; `None` once
    /// every sender is gone.
    pub async fn next_batch(&mut self) -> Option<Vec<Job>> {
        let first = self.jobs.recv().await?;
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut size = first.0.events.len();
        let mut jobs = vec![first];
        while size < MAX_BATCH_EVENTS {
            let next = match self.jobs.try_recv() {
                Ok(job) => Some(job),
                Err(_) if jobs.len() < self.active => {
                    tokio::time::timeout_at(deadline, self.jobs.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some(job) = next else { break };
            size += job.0.events.len();
            jobs.push(job);
        }
        Some(jobs)
    }

    /// Answers every caller of a committed (or failed) batch, and notes who is active.
    pub fn answer(
        &mut self,
        jobs: Vec<Job>,
        result: Result<Vec<Result<Appended, StoreError>>, StoreError>,
    ) {
        self.active = jobs.len() + self.jobs.len();
        answer(jobs, result);
    }
}

/// Commits and appends decided by the writers of this process, for the benchmark and the
/// metrics: appends per commit shows how well group commit works.
static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static APPENDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `(commits, appends)` decided by this process's writers so far.
pub fn writer_counts() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (COMMITS.load(Relaxed), APPENDS.load(Relaxed))
}

/// Answers every caller of a batch: its own outcome, or the error that failed the commit.
fn answer(jobs: Vec<Job>, result: Result<Vec<Result<Appended, StoreError>>, StoreError>) {
    use std::sync::atomic::Ordering::Relaxed;
    COMMITS.fetch_add(1, Relaxed);
    APPENDS.fetch_add(jobs.len() as u64, Relaxed);
    match result {
        Ok(outcomes) => {
            for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for (_, reply) in jobs {
                let _ = reply.send(Err(StoreError::Database {
                    backend: "store",
                    source: message.clone().into(),
                }));
            }
        }
    }
}

/// Tells subscribers to look again: the watched value is a wake-up count, not a position.
pub fn wake(watch: &tokio::sync::watch::Sender<u64>) {
    watch.send_modify(|count| *count = count.wrapping_add(1));
}

/// Refuses an import that does not continue the log exactly where it ends.
///
/// # Errors
/// [`StoreError::InvalidAppend`] naming both positions.
pub fn check_continues(head: Head, events: &[StoredEvent]) -> Result<(), StoreError> {
    match events.first() {
        Some(first) if first.position != head.position + 1 => {
            Err(StoreError::InvalidAppend(format!(
                "the import continues at position {}, but the store ends at position {}",
                first.position, head.position
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use opsledger_domain::{Actor, ChainVerifier, Metadata, NewEvent};
    use proptest::prelude::*;

    /// The log and the lookups a writer would find in the database.
    #[derive(Default)]
    struct Log {
        head: Option<Head>,
        events: Vec<StoredEvent>,
        versions: HashMap<String, u64>,
        known: HashMap<Uuid, CommandRecord>,
        next_id: u128,
    }

    impl Log {
        fn commit(&mut self, batch: &[&Append]) -> Vec<Result<Appended, String>> {
            let next_id = &mut self.next_id;
            let plan = plan(
                self.head.unwrap_or(Head::EMPTY),
                batch,
                &self.versions,
                &self.known,
                || {
                    *next_id += 1;
                    Uuid::from_u128(*next_id)
                },
            );
            for e in &plan.events {
                self.versions.insert(e.stream.clone(), e.version);
            }
            for c in plan.commands {
                self.known.insert(c.command_id, c);
            }
            self.events.extend(plan.events);
            self.head = Some(plan.head);
            plan.outcomes
                .into_iter()
                .map(|o| o.map_err(|e| e.to_string()))
                .collect()
        }
    }

    fn an_append() -> impl Strategy<Value = Append> {
        (
            0..3usize,
            prop_oneof![
                Just(ExpectedVersion::Any),
                Just(ExpectedVersion::NoStream),
                (0..4u64).prop_map(ExpectedVersion::Exact),
            ],
            1..4usize,
            0..6u128,
            0..2u8,
            proptest::option::of(0..6u128),
        )
            .prop_map(
                |(stream, expected, events, command, payload, after)| Append {
                    stream: format!("request-{stream}"),
                    expected,
                    events: (0..events)
                        .map(|i| NewEvent::new("Tested", 1, &(payload, i)).unwrap())
                        .collect(),
                    metadata: Metadata::new(
                        Actor::system("test"),
                        Uuid::from_u128(command),
                        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
                    ),
                    after: after.map(Uuid::from_u128),
                },
            )
    }

    fn chained(
        stream: &str,
        expected: ExpectedVersion,
        command: u128,
        after: Option<u128>,
    ) -> Append {
        Append {
            stream: stream.into(),
            expected,
            events: vec![NewEvent::new("Tested", 1, &command).unwrap()],
            metadata: Metadata::new(
                Actor::system("test"),
                Uuid::from_u128(command),
                Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
            ),
            after: after.map(Uuid::from_u128),
        }
    }

    /// A decision made on the state another left lands only if that one did, even when
    /// the stream happens to be at the version it expects.
    #[test]
    fn a_chained_append_lands_only_after_its_predecessor() {
        let mut log = Log::default();
        log.commit(&[&chained("pool-a", ExpectedVersion::NoStream, 1, None)]);
        // Command 2 expects the wrong version; command 3, decided after it, expects the
        // version the log is really at, yet must not land.
        let outcomes = log.commit(&[
            &chained("pool-a", ExpectedVersion::Exact(5), 2, Some(1)),
            &chained("pool-a", ExpectedVersion::Exact(0), 3, Some(2)),
        ]);
        assert!(outcomes[0]
            .as_ref()
            .unwrap_err()
            .contains("expected version 5"));
        assert_eq!(
            outcomes[1].as_ref().unwrap_err(),
            &format!(
                "the append to pool-a was decided after command {}, which did not land",
                Uuid::from_u128(2)
            )
        );
        assert_eq!(log.events.len(), 1);
        // A predecessor that landed in an earlier batch counts.
        let outcomes = log.commit(&[&chained("pool-a", ExpectedVersion::Exact(0), 4, Some(1))]);
        assert_eq!(outcomes[0].as_ref().unwrap().last_version, 1);
    }

    proptest! {
        /// Group commit changes nothing: however appends are split into batches, every
        /// caller gets the outcome, and the log the events, of committing them one by one.
        #[test]
        fn batching_is_the_same_as_appending_one_at_a_time(
            appends in proptest::collection::vec(an_append(), 1..40),
            cuts in proptest::collection::vec(1..6usize, 1..40),
        ) {
            let mut one_by_one = Log::default();
            let expected: Vec<_> = appends.iter().flat_map(|a| one_by_one.commit(&[a])).collect();

            let mut batched = Log::default();
            let mut outcomes = Vec::new();
            let mut rest: &[Append] = &appends;
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                outcomes.extend(batched.commit(&batch.iter().collect::<Vec<_>>()));
                rest = tail;
            }
            prop_assert_eq!(outcomes, expected);
            let lines = |log: &Log| log.events.iter().map(|e| serde_json::to_string(e).unwrap()).collect::<Vec<_>>();
            prop_assert_eq!(lines(&batched), lines(&one_by_one));
            let mut verifier = ChainVerifier::default();
            for e in &batched.events {
                prop_assert!(verifier.check(e).is_ok());
            }
        }
    }
}
