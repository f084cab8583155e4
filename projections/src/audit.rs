//! The audit trail: who did what, when, with which comment, in log order, with each
//! event's position and hash. Every event is an entry; nothing is left out.
//!
//! It holds one entry per event of the whole log, so each entry is kept small: entities,
//! event types, people and comments are stored once and entries refer to them by number.

use foldhash::HashMap;
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use indexmap::IndexSet;

/// The hasher of the name tables: fast, and keys are our own ids.
type Fast = foldhash::fast::RandomState;
use opsledger_domain::requests::delegation::DelegationEvent;
use opsledger_domain::requests::request::{Decider, RequestEvent};
use opsledger_domain::{Hash, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::{Decoded, Projection};

/// One thing that happened, as the trail shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    pub position: u64,
    pub hash: Hash,
    /// The entity, `<kind>-<uuid>`.
    pub stream: &'a str,
    pub event_type: &'a str,
    /// Who acted (a user id, or `system:<component>`).
    pub actor: &'a str,
    pub actor_name: Option<&'a str>,
    /// The approver an action counted for, when the actor stood in for them.
    pub on_behalf_of: Option<&'a str>,
    pub recorded_at: DateTime<Utc>,
    /// The comment or reason given, if any.
    pub comment: Option<&'a str>,
}

/// What an audit query narrows to; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub stream: Option<String>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// An entry as stored: numbers into the trail's name tables. A snapshot writes it as a
/// plain array, since the trail holds one per event.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(into = "EntryRecord", from = "EntryRecord")]
struct Entry {
    position: u64,
    hash: Hash,
    stream: u32,
    event_type: u32,
    /// Into `people`: (id, name) as the token stated them.
    actor: u32,
    /// Into `ids`.
    on_behalf_of: Option<u32>,
    recorded_at: DateTime<Utc>,
    comment: Option<u32>,
}

/// position, hash, stream, event type, actor, on behalf of, recorded at (ns), comment.
type EntryRecord = (u64, Hash, u32, u32, u32, Option<u32>, i64, Option<u32>);

impl From<Entry> for EntryRecord {
    fn from(e: Entry) -> Self {
        let at = e.recorded_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        (
            e.position,
            e.hash,
            e.stream,
            e.event_type,
            e.actor,
            e.on_behalf_of,
            at,
            e.comment,
        )
    }
}

impl From<EntryRecord> for Entry {
    fn from(r: EntryRecord) -> Self {
        let (position, hash, stream, event_type, actor, on_behalf_of, at, comment) = r;
        Entry {
            position,
            hash,
            stream,
            event_type,
            actor,
            on_behalf_of,
            recorded_at: DateTime::from_timestamp_nanos(at),
            comment,
        }
    }
}

/// Every event, as audit entries, indexed by entity and by actor.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuditTrail {
    entries: Vec<Entry>,
    streams: IndexSet<Box<str>, Fast>,
    types: IndexSet<Box<str>, Fast>,
    people: IndexSet<(Box<str>, Option<Box<str>>), Fast>,
    ids: IndexSet<Box<str>, Fast>,
    comments: IndexSet<Box<str>, Fast>,
    /// Entries of each stream, by stream number.
    by_stream: Vec<Vec<u32>>,
    /// Entries each person did or that counted as theirs, by number in `ids`.
    by_actor: HashMap<u32, Vec<u32>>,
}

/// A person as an event names them, looked up in `people` without copying the names (a
/// miss only costs the copy: `insert_full` finds an equal entry itself).
#[derive(Hash)]
struct Person<'a>(&'a str, Option<&'a str>);

impl Person<'_> {
    fn owned(&self) -> (Box<str>, Option<Box<str>>) {
        (self.0.into(), self.1.map(Into::into))
    }
}

impl indexmap::Equivalent<(Box<str>, Option<Box<str>>)> for Person<'_> {
    fn equivalent(&self, key: &(Box<str>, Option<Box<str>>)) -> bool {
        *key.0 == *self.0 && key.1.as_deref() == self.1
    }
}

/// The number of `name` in `set`, adding it if new.
fn number<T: std::hash::Hash + Eq, Q>(set: &mut IndexSet<T, Fast>, name: &Q) -> u32
where
    Q: ?Sized + std::hash::Hash + indexmap::Equivalent<T> + ToOwned,
    Q::Owned: Into<T>,
{
    let i = match set.get_index_of(name) {
        Some(i) => i,
        None => set.insert_full(name.to_owned().into()).0,
    };
    i as u32
}

/// The name numbered `i` in `set`.
fn name(set: &IndexSet<Box<str>, Fast>, i: u32) -> &str {
    set.get_index(i as usize).map_or("", |s| s)
}

impl AuditTrail {
    fn view(&self, e: &Entry) -> AuditEntry<'_> {
        let (actor, actor_name) = self
            .people
            .get_index(e.actor as usize)
            .map_or(("", None), |(id, name)| (&**id, name.as_deref()));
        AuditEntry {
            position: e.position,
            hash: e.hash,
            stream: name(&self.streams, e.stream),
            event_type: name(&self.types, e.event_type),
            actor,
            actor_name,
            on_behalf_of: e.on_behalf_of.map(|i| name(&self.ids, i)),
            recorded_at: e.recorded_at,
            comment: e.comment.map(|i| name(&self.comments, i)),
        }
    }

    /// Entries matching `filter`, in log order.
    pub fn entries<'a>(
        &'a self,
        filter: &'a AuditFilter,
    ) -> Box<dyn Iterator<Item = AuditEntry<'a>> + 'a> {
        let time = move |e: &&Entry| {
            filter.from.is_none_or(|t| e.recorded_at >= t)
                && filter.until.is_none_or(|t| e.recorded_at < t)
        };
        let stream = filter
            .stream
            .as_deref()
            .map(|s| self.streams.get_index_of(s));
        let actor = filter.actor.as_deref().map(|a| self.ids.get_index_of(a));
        let entries = |list: &'a [u32]| list.iter().map(|&i| &self.entries[i as usize]);
        let none: &'a [u32] = &[];
        let found: Box<dyn Iterator<Item = &'a Entry> + 'a> = match (stream, actor) {
            (Some(None), _) | (_, Some(None)) => Box::new(entries(none)),
            (Some(Some(s)), actor) => {
                let list = self.by_stream.get(s).map_or(none, Vec::as_slice);
                Box::new(entries(list).filter(move |e| match actor {
                    Some(Some(a)) => self.ids_of(e).any(|id| id == a as u32),
                    _ => true,
                }))
            }
            (None, Some(Some(a))) => {
                let list = self.by_actor.get(&(a as u32)).map_or(none, Vec::as_slice);
                Box::new(entries(list))
            }
            (None, None) => Box::new(self.entries.iter()),
        };
        Box::new(found.filter(time).map(|e| self.view(e)))
    }

    /// The numbers in `ids` of who acted and for whom.
    fn ids_of<'a>(&'a self, e: &'a Entry) -> impl Iterator<Item = u32> + 'a {
        let actor = self
            .people
            .get_index(e.actor as usize)
            .and_then(|(id, _)| self.ids.get_index_of(id))
            .map(|i| i as u32);
        actor.into_iter().chain(e.on_behalf_of)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The parts of a payload the trail shows, wherever an event keeps them.
#[derive(Deserialize)]
struct Remarks {
    comment: Option<String>,
    reason: Option<String>,
    note: Option<String>,
    decider: Option<DeciderOnly>,
}

#[derive(Deserialize)]
struct DeciderOnly {
    on_behalf_of: Option<ActorId>,
}

#[derive(Deserialize)]
struct ActorId {
    id: String,
}

/// The comment (or reason, or note) an event gives, and whose approval it counted as.
fn remarks<'a>(
    event: &'a RecordedEvent,
    decoded: &'a Decoded,
) -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
    let on_behalf = |d: &'a Decider| d.on_behalf_of.as_ref().map(|a| Cow::from(a.id.as_str()));
    let text = |t: &'a Option<String>| t.as_deref().map(Cow::from);
    match decoded {
        Decoded::Request(e) => match e {
            RequestEvent::ApprovalGranted {
                decider, comment, ..
            } => (text(comment), on_behalf(decider)),
            RequestEvent::ApprovalRejected {
                decider, comment, ..
            } => (Some(Cow::from(comment.as_str())), on_behalf(decider)),
            RequestEvent::RequestCancelled { reason } => (text(reason), None),
            RequestEvent::RequestFulfilled { note } | RequestEvent::RequestFailed { note } => {
                (Some(Cow::from(note.as_str())), None)
            }
            _ => (None, None),
        },
        Decoded::Delegation(DelegationEvent::DelegationGranted { reason, .. }) => {
            (Some(Cow::from(reason.as_str())), None)
        }
        Decoded::Delegation(DelegationEvent::DelegationRevoked { reason, .. }) => {
            (text(reason), None)
        }
        Decoded::Automation(crate::automation::AutomationEvent::Run(e)) => match e {
            opsledger_domain::automation::provisioning::ProvisioningEvent::ManualStepDone { note, .. } => {
                (Some(Cow::from(note.as_str())), None)
            }
            opsledger_domain::automation::provisioning::ProvisioningEvent::CompensationStarted {
                reason,
                ..
            }
            | opsledger_domain::automation::provisioning::ProvisioningEvent::RunFailed { reason, .. } => {
                (Some(Cow::from(reason.as_str())), None)
            }
            _ => (None, None),
        },
        Decoded::Automation(crate::automation::AutomationEvent::Workflow(
            opsledger_domain::automation::workflow::WorkflowEvent::WorkflowDeleted { reason },
        )) => (Some(Cow::from(reason.as_str())), None),
        Decoded::Automation(_)
        | Decoded::Resource(_)
        | Decoded::Ops(_)
        | Decoded::Ticket(_)
        | Decoded::Article(_)
        | Decoded::Change(_)
        | Decoded::Inspection(_)
        | Decoded::Emergency(_)
        | Decoded::Library(_)
        | Decoded::Baseline(_)
        | Decoded::Other => {
            let remarks = ["comment", "reason", "note", "on_behalf_of"]
                .iter()
                .any(|k| event.data.contains(k))
                .then(|| serde_json::from_str::<Remarks>(&event.data).ok())
                .flatten();
            match remarks {
                Some(r) => (
                    r.comment.or(r.reason).or(r.note).map(Cow::from),
                    r.decider
                        .and_then(|d| d.on_behalf_of)
                        .map(|a| Cow::from(a.id)),
                ),
                None => (None, None),
            }
        }
    }
}

impl AuditTrail {
    /// Records `event`, already decoded.
    pub(crate) fn on_event(&mut self, event: &RecordedEvent, decoded: &Decoded) {
        let (comment, on_behalf_of) = remarks(event, decoded);
        let comment = comment.or_else(|| event.metadata.reason.as_deref().map(Cow::from));
        let actor = &event.metadata.actor;
        let i = self.entries.len() as u32;
        let stream = number(&mut self.streams, event.stream.as_str());
        if stream as usize == self.by_stream.len() {
            self.by_stream.push(Vec::new());
        }
        self.by_stream[stream as usize].push(i);
        let actor_id = number(&mut self.ids, actor.id.as_str());
        self.by_actor.entry(actor_id).or_default().push(i);
        let on_behalf_of = on_behalf_of.map(|id| number(&mut self.ids, &*id));
        if let Some(principal) = on_behalf_of.filter(|p| *p != actor_id) {
            self.by_actor.entry(principal).or_default().push(i);
        }
        let person = Person(actor.id.as_str(), actor.name.as_deref());
        let actor = match self.people.get_index_of(&person) {
            Some(n) => n as u32,
            None => self.people.insert_full(person.owned()).0 as u32,
        };
        let entry = Entry {
            position: event.position,
            hash: event.hash,
            stream,
            event_type: number(&mut self.types, event.event_type.as_str()),
            actor,
            on_behalf_of,
            recorded_at: event.metadata.recorded_at,
            comment: comment.map(|c| number(&mut self.comments, &*c)),
        };
        self.entries.push(entry);
    }
}

impl Projection for AuditTrail {
    fn name(&self) -> &'static str {
        "audit_trail"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        self.on_event(event, &Decoded::of(event));
    }
}
