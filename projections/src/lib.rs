//! OpsLedger's read models. Each projection is a named fold over the event log: the
//! runtime feeds it every event in position order (catch-up, then live) and snapshots it;
//! the projection itself only folds.
//!
//! This crate is pure: it depends on `opsledger-domain` alone and does no I/O, so replaying
//! the log from position 1 gives exactly the state the live system had, for an imported
//! history as much as for a live one.
//!
//! # Layout
//!
//! One folder per business area, with the same names as in the domain and the schema:
//! [`requests`] (the catalogue, requests, delegations, the compliance of approvals),
//! [`resources`], [`operations`], [`changes`], [`automation`] and [`notify`]. The
//! [`audit`] trail, every event of every area, and [`ReadModels`], which folds them all,
//! sit beside them.

pub mod audit;
pub mod automation;
pub mod changes;
pub mod notify;
pub mod operations;
pub mod requests;
pub mod resources;

use automation::{baselines, library, vm};
use notify::{contacts, mail, notifications};
use operations::{desk, emergency, incidents, inspections, knowledge};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::requests::delegation::{DelegationEvent, DelegationState};
use opsledger_domain::requests::request::{Request, RequestEvent};
use opsledger_domain::RecordedEvent;
use requests::{catalog, compliance, delegations};
use resources::inventory;

/// A read model built by folding events in position order.
pub trait Projection {
    /// A stable name, used for its checkpoint and snapshot.
    fn name(&self) -> &'static str;

    /// Folds one event in. Called once per event, in position order, never twice.
    fn apply(&mut self, event: &RecordedEvent);
}

/// Every read model the API serves, folded together, and the position they reflect.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ReadModels {
    pub catalog: catalog::Catalog,
    pub requests: requests::Requests,
    pub audit: audit::AuditTrail,
    pub compliance: compliance::Compliance,
    pub delegations: delegations::Delegations,
    pub notifications: notifications::Notifications,
    pub inventory: inventory::Inventory,
    #[serde(default)]
    pub incidents: incidents::Incidents,
    #[serde(default)]
    pub desk: desk::Desk,
    #[serde(default)]
    pub knowledge: knowledge::Knowledge,
    #[serde(default)]
    pub changes: changes::Changes,
    #[serde(default)]
    pub inspections: inspections::Inspections,
    #[serde(default)]
    pub emergency: emergency::Emergency,
    #[serde(default)]
    pub automation: automation::Automation,
    pub library: library::Library,
    pub contacts: contacts::Contacts,
    #[serde(default)]
    pub mail: mail::Outbox,
    pub baselines: baselines::Baselines,
    #[serde(default)]
    pub vm: vm::VirtualServers,
    /// The last position applied.
    pub position: u64,
    /// The hash of the event at `position`: a snapshot names the log it was folded from.
    pub head_hash: opsledger_domain::Hash,
}

impl ReadModels {
    /// The name of every model, as its snapshot file and metrics label name it.
    pub const NAMES: [&'static str; 19] = [
        "catalog",
        "requests",
        "audit",
        "compliance",
        "delegations",
        "notifications",
        "inventory",
        "incidents",
        "desk",
        "knowledge",
        "changes",
        "inspections",
        "emergency",
        "automation",
        "library",
        "contacts",
        "mail",
        "baselines",
        "vm",
    ];
}

impl Projection for ReadModels {
    fn name(&self) -> &'static str {
        "read_models"
    }

    /// Decodes each event once and hands it to every model that reads its kind.
    fn apply(&mut self, event: &RecordedEvent) {
        self.apply_decoded(event, &Decoded::of(event));
    }
}

/// An event decoded once for every read model: the domain event of the streams the models
/// read, or nothing for the others (each model then reads what it needs itself).
#[derive(Debug)]
pub enum Decoded {
    Request(RequestEvent),
    Delegation(DelegationEvent),
    Resource(inventory::ResourceEvent),
    Ops(incidents::OpsEvent),
    Ticket(opsledger_domain::operations::desk::TicketEvent),
    Article(opsledger_domain::operations::knowledge::ArticleEvent),
    Change(changes::ChangeOrFreeze),
    Inspection(inspections::InspectionEvents),
    Emergency(emergency::EmergencyEvents),
    Automation(automation::AutomationEvent),
    Library(opsledger_domain::automation::library::LibraryEvent),
    Baseline(opsledger_domain::automation::baseline::BaselineEvent),
    Other,
}

impl Decoded {
    /// The event decoded for the models that read its kind; [`Decoded::Other`] when it
    /// cannot be (see [`Decoded::try_of`] to know why).
    pub fn of(event: &RecordedEvent) -> Decoded {
        Decoded::try_of(event).unwrap_or(Decoded::Other)
    }

    /// The event decoded for the models that read its kind, or why it cannot be: an event
    /// of a kind a model reads whose type or data that model does not understand. Events
    /// of kinds no model decodes itself are [`Decoded::Other`].
    ///
    /// # Errors
    /// The decoder's message, when a model reads the event's kind and cannot decode it.
    pub fn try_of(event: &RecordedEvent) -> Result<Decoded, String> {
        fn either<T, E: std::fmt::Display>(
            decoded: Option<Result<T, E>>,
            wrap: fn(T) -> Decoded,
        ) -> Option<Result<Decoded, String>> {
            decoded.map(|d| d.map(wrap).map_err(|e| e.to_string()))
        }
        fn plain<T>(
            decoded: Result<T, serde_json::Error>,
            wrap: fn(T) -> Decoded,
        ) -> Result<Decoded, String> {
            decoded.map(wrap).map_err(|e| e.to_string())
        }
        fn checked<T>(decoded: Result<T, serde_json::Error>) -> Result<Decoded, String> {
            decoded.map(|_| Decoded::Other).map_err(|e| e.to_string())
        }
        use opsledger_domain::automation::{baseline, library};
        use opsledger_domain::notify::{contact, mail};
        use opsledger_domain::operations::{desk, knowledge};
        match stream_kind(&event.stream) {
            Request::KIND => plain(RequestEvent::from_recorded(event), Decoded::Request),
            DelegationState::KIND => {
                plain(DelegationEvent::from_recorded(event), Decoded::Delegation)
            }
            knowledge::Article::KIND => plain(
                knowledge::ArticleEvent::from_recorded(event),
                Decoded::Article,
            ),
            library::LibraryItem::KIND => plain(
                library::LibraryEvent::from_recorded(event),
                Decoded::Library,
            ),
            desk::Ticket::KIND => plain(desk::TicketEvent::from_recorded(event), Decoded::Ticket),
            baseline::Baseline::KIND => plain(
                baseline::BaselineEvent::from_recorded(event),
                Decoded::Baseline,
            ),
            opsledger_domain::operations::emergency::EmergencyPlan::KIND
            | opsledger_domain::operations::emergency::PlanRun::KIND => {
                either(emergency::EmergencyEvents::of(event), Decoded::Emergency)
                    .unwrap_or(Ok(Decoded::Other))
            }
            opsledger_domain::requests::catalog::CatalogItem::KIND => {
                checked(opsledger_domain::requests::catalog::CatalogEvent::from_recorded(event))
            }
            contact::Contact::KIND => checked(contact::ContactEvent::from_recorded(event)),
            mail::Mail::KIND => checked(mail::MailEvent::from_recorded(event)),
            _ => either(inventory::ResourceEvent::of(event), Decoded::Resource)
                .or_else(|| either(incidents::OpsEvent::of(event), Decoded::Ops))
                .or_else(|| either(changes::ChangeOrFreeze::of(event), Decoded::Change))
                .or_else(|| {
                    either(
                        inspections::InspectionEvents::of(event),
                        Decoded::Inspection,
                    )
                })
                .or_else(|| either(automation::AutomationEvent::of(event), Decoded::Automation))
                .unwrap_or(Ok(Decoded::Other)),
        }
    }
}

impl ReadModels {
    /// Folds `event`, already decoded (e.g. on another thread while reading the log).
    pub fn apply_decoded(&mut self, event: &RecordedEvent, decoded: &Decoded) {
        match decoded {
            Decoded::Request(e) => {
                self.requests.on_event(event, e);
                self.compliance.on_event(event, e);
                self.notifications.on_request(event, e);
            }
            Decoded::Delegation(e) => {
                self.delegations.on_event(event, e);
                self.notifications.on_delegation(event, e);
            }
            Decoded::Resource(e) => {
                self.inventory.on_event(event, e);
                self.notifications.on_resource(event, e);
                self.baselines.on_resource(event, e);
                self.vm.on_resource(event, e);
            }
            Decoded::Ops(e) => {
                self.incidents.on_event(event, e);
                self.notifications.on_ops(event, e, &self.incidents);
            }
            Decoded::Ticket(e) => {
                self.desk.on_event(event, e);
                self.notifications.on_ticket(event, e, &self.desk);
            }
            Decoded::Article(e) => self.knowledge.on_event(event, e),
            Decoded::Change(e) => self.changes.on_event(event, e),
            Decoded::Inspection(e) => self.inspections.on_event(event, e),
            Decoded::Automation(e) => self.automation.on_event(event, e),
            Decoded::Emergency(e) => {
                self.emergency.on_event(event, e);
                if let Some((incident, entry)) = self.emergency.timeline_entry(event, e) {
                    self.incidents.note(incident, entry);
                }
            }
            Decoded::Baseline(e) => self.baselines.on_event(event, e),
            Decoded::Library(e) => self.library.on_event(event, e),
            Decoded::Other => {
                self.catalog.apply(event);
                self.contacts.apply(event);
                self.mail.apply(event);
            }
        }
        self.audit.on_event(event, decoded);
        self.inventory.note_time(event);
        self.position = event.position;
        self.head_hash = event.hash;
    }
}

impl ReadModels {
    /// Restores what a snapshot leaves out (shared approval chains) after the models were
    /// read back from one.
    pub fn restored(&mut self) {
        self.notifications.restored();
        self.inventory.restored();
        self.knowledge.restored();
        self.baselines.restored();
    }
}

/// The kind of a stream, `request` for `request-0190…`.
pub fn stream_kind(stream: &str) -> &str {
    stream.split_once('-').map_or(stream, |(kind, _)| kind)
}

/// The entity id of a stream, the uuid of `request-0190…`.
pub fn stream_id(stream: &str) -> Option<uuid::Uuid> {
    stream.split_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_log {
    //! A tiny in-memory log for projection tests.

    use chrono::{DateTime, TimeZone, Utc};
    use opsledger_domain::kernel::aggregate::DomainEvent;
    use opsledger_domain::{Actor, ActorKind, Hash, Metadata, RecordedEvent};
    use uuid::Uuid;

    pub fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, hour, 0, 0).unwrap()
    }

    pub fn person(id: &str, department: &str, roles: &[&str]) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: id.into(),
            name: None,
            department: Some(department.into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[derive(Default)]
    pub struct Log {
        pub events: Vec<RecordedEvent>,
    }

    impl Log {
        pub fn record<E: DomainEvent>(&mut self, stream: &str, event: &E, by: &Actor, hour: u32) {
            let new = event.to_new_event().unwrap();
            let version = self.events.iter().filter(|e| e.stream == stream).count() as u64;
            let position = self.events.len() as u64 + 1;
            self.events.push(RecordedEvent {
                position,
                stream: stream.into(),
                version,
                id: Uuid::from_u128(u128::from(position)),
                event_type: new.event_type,
                schema_version: new.schema_version,
                data: new.data.get().to_owned(),
                metadata: Metadata::new(
                    by.clone(),
                    Uuid::from_u128(u128::from(position) << 64),
                    at(hour),
                ),
                hash: Hash::GENESIS,
            });
        }

        pub fn fold<P: super::Projection + Default>(&self) -> P {
            let mut p = P::default();
            for e in &self.events {
                p.apply(e);
            }
            p
        }
    }
}
