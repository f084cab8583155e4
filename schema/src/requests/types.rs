//! The GraphQL output types, built from the read models.

use async_graphql::{Enum, Interface, Json, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::requests::catalog::{CatalogItem as CatalogItemAggregate, ItemDefinition};
use opsledger_domain::requests::delegation::DelegationState;
use opsledger_domain::requests::request::Request as RequestAggregate;
use opsledger_projections::audit::AuditEntry;
use opsledger_projections::notify::notifications::Notice;
use opsledger_projections::requests::catalog::CatalogEntry;
use opsledger_projections::requests::compliance::Finding;
use opsledger_projections::requests::delegations::DelegationView;
use opsledger_projections::requests::RequestView;

use crate::kit::ids;

/// Anything with a global id, `<kind>-<uuid>`, found again by `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "&ID", desc = "The global id, `<kind>-<uuid>`."))]
pub enum Node {
    CatalogItem(CatalogItem),
    Request(Request),
    Delegation(Delegation),
    Workflow(crate::automation::Workflow),
    ProvisioningRun(crate::automation::ProvisioningRun),
    LibraryItem(crate::automation::library::LibraryItem),
    Baseline(crate::automation::vm::Baseline),
    ConfigurationItem(crate::resources::Ci),
}

/// What kind of thing a catalogue item offers.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::requests::catalog::OfferingKind")]
pub enum OfferingKind {
    VirtualMachine,
    PhysicalServer,
    Storage,
    Network,
    Database,
    Middleware,
    Application,
    SoftwareInstallation,
}

/// Where a request stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::requests::request::RequestStatus")]
pub enum RequestStatus {
    New,
    PendingApproval,
    Approved,
    Rejected,
    Cancelled,
    Fulfilled,
    Failed,
}

/// What a notification is about.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_projections::notify::notifications::NoticeKind")]
pub enum NotificationKind {
    /// A step opened and waits for your decision.
    ApprovalNeeded,
    /// A step waited past its time and was escalated to your role.
    StepEscalated,
    /// Your request was approved, rejected, fulfilled or failed.
    RequestDecided,
    /// An approver who is away named you their substitute.
    DelegationGranted,
    /// A resource you own or watch reaches the end of its lease soon.
    LeaseEnding,
    /// A resource you own or watch was reclaimed.
    ResourceReclaimed,
    /// An incident was raised to warning level 2 or 3, and your role must act.
    IncidentEscalated,
    /// An incident's SLA clock reached its warning share.
    SlaWarning,
    /// An incident's SLA clock reached its target.
    SlaBreached,
    /// An incident was assigned to you.
    IncidentAssigned,
    /// A work order was issued to you (second line).
    WorkOrderIssued,
    /// Second line handed a ticket back: call the user.
    WorkOrderHandedBack,
    /// A chargeable change waits for a product manager to confirm its terms.
    TermsNeeded,
}

/// What a compliance finding is about.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_projections::requests::compliance::FindingKind")]
pub enum FindingKind {
    /// Fulfilled without every approval its chain required.
    FulfilledWithoutApproval,
    /// Approved by its own requester.
    ApprovedByRequester,
    /// One person decided two steps of one request.
    OnePersonTwoSteps,
    /// Approved by someone without the step's role at that moment.
    ApproverLackedRole,
}

/// An offering of the service catalogue, at its current version.
#[derive(SimpleObject)]
pub struct CatalogItem {
    pub id: ID,
    /// Every edit is a new version; requests record the one they were made against.
    pub version: u32,
    pub name: String,
    pub category: String,
    pub description: String,
    pub kind: OfferingKind,
    pub retired: bool,
    /// The whole definition: fields and their allowed values, audience, approval policy.
    pub definition: Json<ItemDefinition>,
}

impl From<&CatalogEntry> for CatalogItem {
    fn from(e: &CatalogEntry) -> Self {
        let d = e.current();
        CatalogItem {
            id: ids::global(CatalogItemAggregate::KIND, e.item_id),
            version: e.version(),
            name: d.name.clone(),
            category: d.category.clone(),
            description: d.description.clone(),
            kind: d.kind.into(),
            retired: e.retired,
            definition: Json(d.clone()),
        }
    }
}

/// One step of a request's approval chain.
#[derive(SimpleObject)]
pub struct ApprovalStep {
    pub index: u32,
    pub name: String,
    /// The role that decides.
    pub role: String,
    /// The approvals it needs.
    pub needed: u32,
}

/// A self-service request.
#[derive(SimpleObject)]
pub struct Request {
    pub id: ID,
    /// `new_resource`, `change_configuration`, `extend_lease` or `install_software`.
    pub kind: String,
    pub status: RequestStatus,
    pub item_id: ID,
    pub item_version: u32,
    pub offering: OfferingKind,
    pub requester: String,
    pub department: String,
    pub project: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub steps: Vec<ApprovalStep>,
    /// The step waiting for a decision, while pending approval.
    pub open_step: Option<u32>,
    /// What was asked for: configuration, quantity, period, or the lease and resource.
    pub details: Json<serde_json::Value>,
    /// The position of the request's last event.
    pub position: u64,
}

impl From<&RequestView> for Request {
    fn from(r: &RequestView) -> Self {
        use opsledger_domain::requests::request::RequestStatus as S;
        Request {
            id: ids::global(RequestAggregate::KIND, r.request_id),
            kind: r.kind().into(),
            status: r.status().into(),
            item_id: ids::global(CatalogItemAggregate::KIND, r.item_id),
            item_version: r.item_version,
            offering: r.offering.into(),
            requester: r.state.requester.clone(),
            department: r.state.department.clone(),
            project: r.project().map(str::to_owned),
            submitted_at: r.submitted_at,
            updated_at: r.updated_at,
            steps: r
                .state
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| ApprovalStep {
                    index: i as u32,
                    name: s.name.clone(),
                    role: s.role.as_str().into(),
                    needed: opsledger_domain::requests::request::needed(s) as u32,
                })
                .collect(),
            open_step: (r.status() == S::PendingApproval).then_some(r.state.open_step as u32),
            details: Json(serde_json::from_str(r.details_json()).unwrap_or_default()),
            position: r.position,
        }
    }
}

/// Who did what, when, with which comment.
#[derive(SimpleObject)]
pub struct AuditEntryNode {
    pub position: u64,
    /// The event's hash in the chain (hex).
    pub hash: String,
    /// The entity, `<kind>-<uuid>`.
    pub entity: String,
    pub event_type: String,
    pub actor: String,
    pub actor_name: Option<String>,
    /// The approver the actor stood in for.
    pub on_behalf_of: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub comment: Option<String>,
}

impl From<AuditEntry<'_>> for AuditEntryNode {
    fn from(e: AuditEntry<'_>) -> Self {
        AuditEntryNode {
            position: e.position,
            hash: e.hash.to_string(),
            entity: e.stream.to_owned(),
            event_type: e.event_type.to_owned(),
            actor: e.actor.to_owned(),
            actor_name: e.actor_name.map(str::to_owned),
            on_behalf_of: e.on_behalf_of.map(str::to_owned),
            recorded_at: e.recorded_at,
            comment: e.comment.map(str::to_owned),
        }
    }
}

/// A breach of the approval rules found in the history.
#[derive(SimpleObject)]
pub struct ComplianceFinding {
    pub kind: FindingKind,
    pub request_id: ID,
    /// The event that shows it.
    pub position: u64,
    pub person: Option<String>,
    pub detail: String,
}

impl From<&Finding> for ComplianceFinding {
    fn from(f: &Finding) -> Self {
        ComplianceFinding {
            kind: f.kind.into(),
            request_id: ids::global(RequestAggregate::KIND, f.request_id),
            position: f.position,
            person: f.person.clone(),
            detail: f.detail.clone(),
        }
    }
}

/// An event of the log, as stored.
#[derive(SimpleObject)]
pub struct Event {
    pub position: u64,
    pub entity: String,
    pub version: u64,
    pub id: ID,
    #[graphql(name = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: Json<serde_json::Value>,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub hash: String,
}

/// An event of the log as the API shows it.
pub fn event_node(e: opsledger_domain::RecordedEvent) -> Event {
    Event {
        position: e.position,
        entity: e.stream,
        version: e.version,
        id: ID(e.id.to_string()),
        event_type: e.event_type,
        schema_version: e.schema_version,
        data: Json(serde_json::from_str(&e.data).unwrap_or_default()),
        actor: e.metadata.actor.id,
        recorded_at: e.metadata.recorded_at,
        hash: e.hash.to_string(),
    }
}

/// An approver's standing delegation to a substitute while they are away.
#[derive(SimpleObject)]
pub struct Delegation {
    pub id: ID,
    /// Who is away; approvals under the delegation count as theirs.
    pub delegator: String,
    pub delegator_name: Option<String>,
    /// Who decides for them.
    pub substitute: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub granted_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The position of its last event.
    pub position: u64,
}

impl From<&DelegationView> for Delegation {
    fn from(d: &DelegationView) -> Self {
        let grant = d.state.grant.as_ref();
        Delegation {
            id: ids::global(DelegationState::KIND, d.delegation_id),
            delegator: grant.map(|g| g.delegator.id.clone()).unwrap_or_default(),
            delegator_name: grant.and_then(|g| g.delegator.name.clone()),
            substitute: grant.map(|g| g.substitute.clone()).unwrap_or_default(),
            from: grant.map(|g| g.from).unwrap_or(d.granted_at),
            until: grant.map(|g| g.until).unwrap_or(d.granted_at),
            reason: d.state.reason.clone(),
            granted_at: d.granted_at,
            revoked_at: d.state.revoked_at,
            position: d.position,
        }
    }
}

/// Something you are told: a decision waiting for you, an escalation to your role, the
/// outcome of your request, a delegation to you.
#[derive(SimpleObject)]
pub struct Notification {
    /// The position of the event it comes from.
    pub position: u64,
    pub at: DateTime<Utc>,
    pub kind: NotificationKind,
    /// The entity it is about, `<kind>-<uuid>` (a global id).
    pub entity: ID,
    pub text: String,
    /// Where the email of it to you stands; none when none was queued (no contact set,
    /// email off, or not yet).
    pub email_status: Option<crate::notify::mail::MailStatus>,
    /// When the email of it to you was accepted by the SMTP server.
    pub emailed_at: Option<DateTime<Utc>>,
}

impl From<&Notice> for Notification {
    fn from(n: &Notice) -> Self {
        Notification {
            position: n.position,
            at: n.at,
            kind: n.kind.into(),
            entity: ID(n.subject.stream()),
            text: n.text.to_string(),
            email_status: None,
            emailed_at: None,
        }
    }
}
