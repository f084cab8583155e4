//! The service desk's tickets and their work orders as first and second line see them:
//! each ticket with its caller, work orders (who, what, the work log, the result),
//! callbacks, and the customer records that confirmed changes updated.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::operations::desk::{
    Assignee, Caller, Ticket, TicketEvent, TicketKind, WorkOrderStatus,
};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_id, stream_kind, Projection};

/// A note with who wrote it and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub at: DateTime<Utc>,
    pub by: String,
    pub text: String,
}

/// A work order as second line sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkOrderView {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub to: Assignee,
    pub instructions: String,
    pub follows: Option<Uuid>,
    pub status: WorkOrderStatus,
    pub issued_at: DateTime<Utc>,
    pub issued_by: String,
    pub accepted_by: Option<String>,
    pub log: Vec<Note>,
    pub result: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A callback to the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Callback {
    pub at: DateTime<Utc>,
    pub by: String,
    pub confirmed: bool,
    pub note: String,
}

/// A ticket as first line sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketView {
    pub id: Uuid,
    pub kind: TicketKind,
    pub caller: Caller,
    pub description: String,
    pub ci_id: Option<Uuid>,
    pub chargeable: bool,
    pub terms: Option<String>,
    pub state: Ticket,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
    pub updated_at: DateTime<Utc>,
    pub resolution: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub work_orders: Vec<WorkOrderView>,
    pub callbacks: Vec<Callback>,
}

/// The read model.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Desk {
    tickets: HashMap<Uuid, TicketView>,
    order: Vec<Uuid>,
    /// Work order → its ticket.
    work_orders: HashMap<Uuid, Uuid>,
    /// What confirmed changes did to each customer (department), in order.
    pub customer_records: BTreeMap<String, Vec<Note>>,
}

impl Desk {
    pub fn get(&self, id: Uuid) -> Option<&TicketView> {
        self.tickets.get(&id)
    }

    /// Every ticket, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &TicketView> + '_ {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.tickets.get(id))
    }

    /// A work order and its ticket.
    pub fn work_order(&self, id: Uuid) -> Option<(&TicketView, &WorkOrderView)> {
        let ticket = self.tickets.get(self.work_orders.get(&id)?)?;
        Some((ticket, ticket.work_orders.iter().find(|w| w.id == id)?))
    }

    /// Every work order, newest first.
    pub fn work_orders(&self) -> impl Iterator<Item = (&TicketView, &WorkOrderView)> + '_ {
        self.newest_first()
            .flat_map(|t| t.work_orders.iter().rev().map(move |w| (t, w)))
    }

    pub fn on_event(&mut self, event: &RecordedEvent, e: &TicketEvent) {
        use TicketEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        if let E::TicketRecorded {
            ticket_id,
            kind,
            caller,
            description,
            ci_id,
            chargeable,
        } = e
        {
            self.order.push(id);
            self.tickets.insert(
                id,
                TicketView {
                    id: *ticket_id,
                    kind: *kind,
                    caller: caller.clone(),
                    description: description.clone(),
                    ci_id: *ci_id,
                    chargeable: *chargeable,
                    terms: None,
                    state: Ticket::default(),
                    recorded_at: at,
                    recorded_by: by.clone(),
                    updated_at: at,
                    resolution: None,
                    closed_at: None,
                    work_orders: Vec::new(),
                    callbacks: Vec::new(),
                },
            );
        }
        let Some(t) = self.tickets.get_mut(&id) else {
            return;
        };
        t.state = std::mem::take(&mut t.state).evolve(e);
        t.updated_at = at;
        match e {
            E::TicketRecorded { .. } | E::TicketLinked { .. } => {}
            E::TermsConfirmed { terms } => t.terms = Some(terms.clone()),
            E::WorkOrderIssued {
                work_order_id,
                to,
                instructions,
                follows,
            } => {
                self.work_orders.insert(*work_order_id, id);
                t.work_orders.push(WorkOrderView {
                    id: *work_order_id,
                    ticket_id: id,
                    to: to.clone(),
                    instructions: instructions.clone(),
                    follows: *follows,
                    status: WorkOrderStatus::Issued,
                    issued_at: at,
                    issued_by: by,
                    accepted_by: None,
                    log: Vec::new(),
                    result: None,
                    completed_at: None,
                });
            }
            E::WorkOrderAccepted { .. } => {
                if let Some(w) = t.work_orders.last_mut() {
                    w.status = WorkOrderStatus::Accepted;
                    w.accepted_by = Some(by);
                }
            }
            E::WorkOrderLogged { note, .. } => {
                if let Some(w) = t.work_orders.last_mut() {
                    w.log.push(Note {
                        at,
                        by,
                        text: note.clone(),
                    });
                }
            }
            E::WorkOrderCompleted { result, .. } => {
                if let Some(w) = t.work_orders.last_mut() {
                    w.status = WorkOrderStatus::Completed;
                    w.result = Some(result.clone());
                    w.completed_at = Some(at);
                }
            }
            E::UserCalledBack { confirmed, note } => t.callbacks.push(Callback {
                at,
                by,
                confirmed: *confirmed,
                note: note.clone(),
            }),
            E::CustomerRecordUpdated { department, change } => {
                self.customer_records
                    .entry(department.clone())
                    .or_default()
                    .push(Note {
                        at,
                        by,
                        text: change.clone(),
                    });
            }
            E::TicketClosed { resolution, .. } => {
                t.resolution = Some(resolution.clone());
                t.closed_at = Some(at);
            }
        }
    }
}

impl Projection for Desk {
    fn name(&self) -> &'static str {
        "desk"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if stream_kind(&event.stream) == Ticket::KIND {
            if let Ok(e) = TicketEvent::from_recorded(event) {
                self.on_event(event, &e);
            }
        }
    }
}
