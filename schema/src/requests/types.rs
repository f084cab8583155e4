//! The GraphQL output types, built from the read models.

use async_graphql::{Enum, Json, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::requests::catalog::{CatalogItem as CatalogItemAggregate, ItemDefinition};
use opsledger_domain::requests::delegation::DelegationState;
use opsledger_domain::requests::request::Request as RequestAggregate;
use opsledger_projections::requests::catalog::CatalogEntry;
use opsledger_projections::requests::compliance::Finding;
use opsledger_projections::requests::delegations::DelegationView;
use opsledger_projections::requests::RequestView;

use crate::kit::ids;

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
