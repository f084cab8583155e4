//! The decide/evolve pattern every aggregate follows, and the facts a decision may use.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kernel::event::{Actor, NewEvent, RecordedEvent};

/// What a decision knows besides the aggregate's state and the command: who asks, and when.
/// The time comes from the runtime's injected clock, never from the system clock here.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

/// The roles of the service plan's organisation (DESIGN.md, "Identity and access").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Requester,
    Approver,
    CatalogAdmin,
    ServiceDesk,
    Engineer,
    ChangeManager,
    ProductManager,
    Operator,
    /// The operations manager (運營經理): told at once of a level-2 or level-3 warning.
    OperationsManager,
    /// The head of the operations centre (運維中心主管): told of a level-3 warning and
    /// arranges hardware replacement.
    OperationsHead,
    /// Reads everything, changes nothing.
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 12] = [
        Role::Requester,
        Role::Approver,
        Role::CatalogAdmin,
        Role::ServiceDesk,
        Role::Engineer,
        Role::ChangeManager,
        Role::ProductManager,
        Role::Operator,
        Role::OperationsManager,
        Role::OperationsHead,
        Role::Auditor,
        Role::Admin,
    ];

    /// The name used in tokens and events, e.g. `catalog_admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::CatalogAdmin => "catalog_admin",
            Role::ServiceDesk => "service_desk",
            Role::Engineer => "engineer",
            Role::ChangeManager => "change_manager",
            Role::ProductManager => "product_manager",
            Role::Operator => "operator",
            Role::OperationsManager => "operations_manager",
            Role::OperationsHead => "operations_head",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}; the roles are {}", known.join(", "))
            })
    }
}

impl Actor {
    /// Whether the actor holds `role`; an `admin` holds every role.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles
            .iter()
            .any(|r| r == role.as_str() || r == Role::Admin.as_str())
    }

    /// Whether the actor may only read: an auditor who holds no other role. Auditors read
    /// everything and change nothing; an auditor who also holds another role (an admin,
    /// an operator) is judged by that role, as the auditor role adds reading and takes
    /// nothing away. A system component is never read-only.
    pub fn reads_only(&self) -> bool {
        !self.is_system()
            && !self.roles.is_empty()
            && self.roles.iter().all(|r| r == Role::Auditor.as_str())
    }

    /// Whether the actor runs the platform: an operator (or admin), or one of the
    /// system's own components (provisioning, the scheduler: [`Actor::system`]), known
    /// by their kind, never by an id a token could claim.
    pub fn operates(&self) -> bool {
        self.has_role(Role::Operator) || self.is_system()
    }
}

/// An aggregate: a consistency boundary whose state is a fold of its own events.
pub trait Aggregate: Default + Sized {
    /// The stream kind, the `<kind>` of `<kind>-<uuid>`.
    const KIND: &'static str;
    type Command;
    type Event: Serialize + DeserializeOwned;
    type Error: std::error::Error;

    /// The rules: what happens if `command` is carried out now, or why it may not be.
    ///
    /// # Errors
    /// The aggregate's typed error naming the state that forbids the command.
    fn decide(
        &self,
        command: Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    #[must_use]
    fn evolve(self, event: &Self::Event) -> Self;
}

/// An event enum stored as `{type, schema_version, data}`: the variant's name is the stable
/// type, the variant's payload the data. Enums use `#[serde(tag = "type", content = "data")]`.
pub trait DomainEvent: Serialize + DeserializeOwned {
    /// The schema version of every type this enum writes.
    const SCHEMA_VERSION: u32 = 1;

    /// The event as the log stores it.
    ///
    /// # Errors
    /// When the event cannot be serialised (a bug in its type).
    fn to_new_event(&self) -> Result<NewEvent, serde_json::Error> {
        let serde_json::Value::Object(mut tagged) = serde_json::to_value(self)? else {
            return Err(serde::ser::Error::custom(
                "an event enum must be adjacently tagged",
            ));
        };
        let event_type = match tagged.remove("type") {
            Some(serde_json::Value::String(t)) => t,
            _ => return Err(serde::ser::Error::custom("an event has no type")),
        };
        let data = tagged.remove("data").unwrap_or(serde_json::Value::Null);
        NewEvent::new(event_type, Self::SCHEMA_VERSION, &data)
    }

    /// Reads a recorded event of this enum back.
    ///
    /// # Errors
    /// When the type is not one of the enum's, or the data does not match it.
    fn from_recorded(event: &RecordedEvent) -> Result<Self, serde_json::Error> {
        // One pass over the text: the tag first, so serde reads the data straight into
        // the variant without buffering it.
        let mut tagged = String::with_capacity(event.data.len() + event.event_type.len() + 20);
        tagged.push_str("{\"type\":");
        tagged.push_str(&serde_json::to_string(&event.event_type)?);
        tagged.push_str(",\"data\":");
        tagged.push_str(&event.data);
        tagged.push('}');
        serde_json::from_str(&tagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::person;

    #[test]
    fn a_component_operates_and_a_person_named_like_one_does_not() {
        assert!(Actor::system("engine").operates());
        assert!(!person("system:engine", "運維中心", &[]).operates());
        assert!(person("u-wong", "運維中心", &["operator"]).operates());
    }

    #[test]
    fn an_auditor_only_reads_unless_they_hold_another_role() {
        assert!(person("u-kwok", "審計署", &["auditor"]).reads_only());
        assert!(!person("u-kwok", "審計署", &["auditor", "operator"]).reads_only());
        assert!(!person("u-chan", "財政局", &["requester"]).reads_only());
        assert!(!Actor::system("scheduler").reads_only());
    }
}
