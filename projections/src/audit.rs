//! The audit trail: who did what, when, with which comment, in log order, with each
//! event's position and hash. Every event is an entry; nothing is left out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use opsledger_domain::{Hash, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub position: u64,
    pub hash: Hash,
    /// The entity, `<kind>-<uuid>`.
    pub stream: String,
    pub event_type: String,
    /// Who acted (a user id, or `system:<component>`).
    pub actor: String,
    pub actor_name: Option<String>,
    /// The approver an action counted for, when the actor stood in for them.
    pub on_behalf_of: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// The comment or reason given, if any.
    pub comment: Option<String>,
}

/// What an audit query narrows to; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub stream: Option<String>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Every event, as audit entries, indexed by entity and by actor.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuditTrail {
    entries: Vec<AuditEntry>,
    by_stream: HashMap<String, Vec<usize>>,
    by_actor: HashMap<String, Vec<usize>>,
}

impl AuditTrail {
    /// Entries matching `filter`, in log order.
    pub fn entries<'a>(
        &'a self,
        filter: &'a AuditFilter,
    ) -> Box<dyn DoubleEndedIterator<Item = &'a AuditEntry> + 'a> {
        let time = move |e: &&AuditEntry| {
            filter.from.is_none_or(|t| e.recorded_at >= t)
                && filter.until.is_none_or(|t| e.recorded_at < t)
        };
        let indexed = |index: &'a HashMap<String, Vec<usize>>, key: &str| {
            index.get(key).map(Vec::as_slice).unwrap_or_default()
        };
        match (&filter.stream, &filter.actor) {
            (Some(stream), actor) => Box::new(
                indexed(&self.by_stream, stream)
                    .iter()
                    .map(|&i| &self.entries[i])
                    .filter(move |e| {
                        actor
                            .as_deref()
                            .is_none_or(|a| e.actor == a || e.on_behalf_of.as_deref() == Some(a))
                    })
                    .filter(time),
            ),
            (None, Some(actor)) => Box::new(
                indexed(&self.by_actor, actor)
                    .iter()
                    .map(|&i| &self.entries[i])
                    .filter(time),
            ),
            (None, None) => Box::new(self.entries.iter().filter(time)),
        }
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

impl Projection for AuditTrail {
    fn name(&self) -> &'static str {
        "audit_trail"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        let remarks = ["comment", "reason", "note", "on_behalf_of"]
            .iter()
            .any(|k| event.data.contains(k))
            .then(|| serde_json::from_str::<Remarks>(&event.data).ok())
            .flatten();
        let (comment, on_behalf_of) = match remarks {
            Some(r) => (
                r.comment.or(r.reason).or(r.note),
                r.decider.and_then(|d| d.on_behalf_of).map(|a| a.id),
            ),
            None => (None, None),
        };
        let entry = AuditEntry {
            position: event.position,
            hash: event.hash,
            stream: event.stream.clone(),
            event_type: event.event_type.clone(),
            actor: event.metadata.actor.id.clone(),
            actor_name: event.metadata.actor.name.clone(),
            on_behalf_of,
            recorded_at: event.metadata.recorded_at,
            comment: comment.or_else(|| event.metadata.reason.clone()),
        };
        let i = self.entries.len();
        self.by_stream
            .entry(entry.stream.clone())
            .or_default()
            .push(i);
        self.by_actor
            .entry(entry.actor.clone())
            .or_default()
            .push(i);
        if let Some(principal) = &entry.on_behalf_of {
            self.by_actor.entry(principal.clone()).or_default().push(i);
        }
        self.entries.push(entry);
    }
}
