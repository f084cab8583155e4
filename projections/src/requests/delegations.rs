//! Delegations as their delegators and substitutes see them.

use foldhash::HashMap;

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::requests::delegation::{DelegationEvent, DelegationState};
use opsledger_domain::{Actor, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_kind, Projection};

/// One delegation and the position of its last event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DelegationView {
    pub delegation_id: Uuid,
    pub state: DelegationState,
    pub granted_at: DateTime<Utc>,
    pub position: u64,
}

impl DelegationView {
    /// Whether `actor` is its delegator or its substitute.
    pub fn concerns(&self, actor: &Actor) -> bool {
        self.state
            .grant
            .as_ref()
            .is_some_and(|g| g.delegator.id == actor.id || g.substitute == actor.id)
    }
}

/// Every delegation, in the order granted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Delegations {
    index: HashMap<Uuid, usize>,
    all: Vec<DelegationView>,
}

impl Delegations {
    pub fn get(&self, delegation_id: Uuid) -> Option<&DelegationView> {
        self.index.get(&delegation_id).map(|&i| &self.all[i])
    }

    pub fn all(&self) -> impl Iterator<Item = &DelegationView> {
        self.all.iter()
    }
}

impl Projection for Delegations {
    fn name(&self) -> &'static str {
        "delegations"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if stream_kind(&event.stream) != DelegationState::KIND {
            return;
        }
        if let Ok(e) = DelegationEvent::from_recorded(event) {
            self.on_event(event, &e);
        }
    }
}

impl Delegations {
    /// Folds one event of a delegation's stream, already decoded.
    pub(crate) fn on_event(&mut self, event: &RecordedEvent, e: &DelegationEvent) {
        if let DelegationEvent::DelegationGranted { delegation_id, .. } = e {
            self.index.insert(*delegation_id, self.all.len());
            self.all.push(DelegationView {
                delegation_id: *delegation_id,
                state: DelegationState::default(),
                granted_at: event.metadata.recorded_at,
                position: event.position,
            });
        }
        let Some(&i) = crate::stream_id(&event.stream).and_then(|id| self.index.get(&id)) else {
            return;
        };
        let view = &mut self.all[i];
        view.state = std::mem::take(&mut view.state).evolve(e);
        view.position = event.position;
    }
}
