//! Self-service requests and their approval chains.
//!
//! A request is made against one version of a catalogue item, which the command carries
//! (facts travel in the command: the rules stay pure). Its approval policy is copied into
//! the submission, so later edits of the item never change a request in flight, and a
//! replay or an import decides nothing differently.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::event::Actor;
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{
    ApprovalPolicy, ApprovalStep, InvalidField, ItemDefinition, OfferingKind, Quorum,
    StepDepartment,
};

/// The catalogue item a request is made against, as the command handler loaded it.
#[derive(Clone, Debug)]
pub struct CatalogSnapshot {
    pub item_id: Uuid,
    pub version: u32,
    pub definition: ItemDefinition,
    pub retired: bool,
}

/// A service period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The four kinds of request of the service plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestDetails {
    /// A new resource: the chosen configuration, how many, for which project and period.
    NewResource {
        configuration: BTreeMap<String, serde_json::Value>,
        quantity: u32,
        project: String,
        period: Period,
    },
    /// A change to an existing resource's configuration.
    ChangeConfiguration {
        resource_id: Uuid,
        configuration: BTreeMap<String, serde_json::Value>,
        project: String,
    },
    /// A longer lease for an existing resource.
    ExtendLease {
        resource_id: Uuid,
        new_end: NaiveDate,
        reason: String,
    },
    /// Software installed on an existing resource.
    InstallSoftware {
        resource_id: Uuid,
        configuration: BTreeMap<String, serde_json::Value>,
        project: String,
    },
}

impl RequestDetails {
    fn configuration(&self) -> Option<&BTreeMap<String, serde_json::Value>> {
        match self {
            RequestDetails::NewResource { configuration, .. }
            | RequestDetails::ChangeConfiguration { configuration, .. }
            | RequestDetails::InstallSoftware { configuration, .. } => Some(configuration),
            RequestDetails::ExtendLease { .. } => None,
        }
    }

    fn quantity(&self) -> i64 {
        match self {
            RequestDetails::NewResource { quantity, .. } => i64::from(*quantity),
            _ => 1,
        }
    }
}

/// An approver standing in for another for a period (the delegator is away).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// Who is away; the approval counts as theirs.
    pub delegator: Actor,
    /// Who decides for them.
    pub substitute: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Orders to a request.
#[derive(Clone, Debug)]
pub enum RequestCommand {
    SubmitRequest {
        request_id: Uuid,
        item: CatalogSnapshot,
        details: RequestDetails,
        /// Why the request would exceed its department's quota, when it would (a fact the
        /// handler found in the quota as it stood).
        over_quota: Option<String>,
    },
    ApproveRequest {
        step: usize,
        comment: Option<String>,
        on_behalf_of: Option<Delegation>,
    },
    RejectRequest {
        step: usize,
        comment: String,
        on_behalf_of: Option<Delegation>,
    },
    CancelRequest {
        reason: Option<String>,
    },
    /// The scheduler's order for a step waiting past its time.
    EscalateStep {
        step: usize,
    },
    MarkFulfilled {
        note: String,
    },
    MarkFailed {
        note: String,
    },
}

/// Who decided, and for whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decider {
    /// The person who acted.
    pub user: String,
    /// The roles they held when they acted.
    pub roles: Vec<String>,
    /// The approver they stood in for, when they acted under a delegation.
    pub on_behalf_of: Option<Actor>,
}

/// What happened to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RequestEvent {
    RequestSubmitted {
        request_id: Uuid,
        item_id: Uuid,
        item_version: u32,
        offering: OfferingKind,
        requester: String,
        department: String,
        details: RequestDetails,
        /// The chain that applies, copied from the item's policy (empty when pre-approved).
        steps: Vec<ApprovalStep>,
        at: DateTime<Utc>,
        /// Why it exceeds its quota, when it does: the chain then ends with the item's
        /// over-quota step, and its deployment may go beyond the quota.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        over_quota: Option<String>,
    },
    /// The service plan's 預審批: which policy, of which item version, granted it.
    RequestPreApproved {
        policy: String,
        item_version: u32,
    },
    ApprovalGranted {
        step: usize,
        decider: Decider,
        comment: Option<String>,
    },
    /// The step has its quorum; the next one (if any) opens now.
    StepCompleted {
        step: usize,
        at: DateTime<Utc>,
    },
    ApprovalRejected {
        step: usize,
        decider: Decider,
        comment: String,
    },
    StepEscalated {
        step: usize,
        to: Option<Role>,
        waited_hours: i64,
    },
    RequestApproved,
    RequestRejected,
    RequestCancelled {
        reason: Option<String>,
    },
    RequestFulfilled {
        note: String,
    },
    RequestFailed {
        note: String,
    },
}

impl DomainEvent for RequestEvent {}

/// Where a request stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    #[default]
    New,
    PendingApproval,
    Approved,
    Rejected,
    Cancelled,
    Fulfilled,
    Failed,
}

/// Why a request refuses a command. Each maps to one GraphQL error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request exists already (conflict)
    #[error("the request already exists")]
    AlreadySubmitted,
    /// There is no such request (not found)
    #[error("there is no such request")]
    NotFound,
    /// The catalogue item is not offered to the requester (forbidden)
    #[error("the catalogue item is not offered to you")]
    NotOffered,
    /// The catalogue item is retired (conflict)
    #[error("the catalogue item is retired")]
    ItemRetired,
    /// A field of the request breaks its rules (invalid)
    #[error("{0}")]
    Invalid(#[from] InvalidField),
    /// The request is not waiting for approval (conflict)
    #[error("the request is {0:?}, not waiting for approval")]
    NotPendingApproval(RequestStatus),
    /// The step decided is not the open one (conflict)
    #[error("step {given} is not the open step (step {open} is)")]
    NotTheOpenStep { given: usize, open: usize },
    /// The requester decides their own request (forbidden)
    #[error("a requester cannot approve or reject their own request")]
    SelfApproval,
    /// The approver decided another step of this request already (forbidden)
    #[error("{0} already decided step {1} of this request; one person decides one step")]
    AlreadyDecidedAStep(String, usize),
    /// The actor is not an approver of the step (forbidden)
    #[error("not an approver of this step: {0}")]
    NotEligible(String),
    /// The delegation acted under does not cover this decision (forbidden)
    #[error("the delegation does not cover this: {0}")]
    DelegationNotValid(String),
    /// Only the requester cancels a request (forbidden)
    #[error("only the requester may cancel a request")]
    NotRequester,
    /// The request is past being cancelled (conflict)
    #[error("a {0:?} request cannot be cancelled")]
    CannotCancel(RequestStatus),
    /// Only an operator records fulfilment (forbidden)
    #[error("only an operator may record fulfilment")]
    NotOperator,
    /// The request is not approved (conflict)
    #[error("the request is {0:?}, not approved")]
    NotApproved(RequestStatus),
    /// The step is not due for escalation (conflict)
    #[error("step {0} is not due for escalation")]
    EscalationNotDue(usize),
    /// The request would exceed its department's quota (conflict)
    #[error("{0}")]
    OverQuota(String),
}

impl Refuse for RequestError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::AlreadySubmitted
            | Self::ItemRetired
            | Self::NotPendingApproval(..)
            | Self::NotTheOpenStep { .. }
            | Self::CannotCancel(..)
            | Self::NotApproved(..)
            | Self::EscalationNotDue(..)
            | Self::OverQuota(..) => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
            Self::NotOffered
            | Self::SelfApproval
            | Self::AlreadyDecidedAStep(..)
            | Self::NotEligible(..)
            | Self::DelegationNotValid(..)
            | Self::NotRequester
            | Self::NotOperator => Refusal::Forbidden,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// A request's state, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: Option<Uuid>,
    pub requester: String,
    pub department: String,
    pub status: RequestStatus,
    /// The chain, shared: read models hold one copy per distinct chain.
    pub steps: Arc<[ApprovalStep]>,
    /// The open step, while pending approval.
    pub open_step: usize,
    pub open_since: Option<DateTime<Utc>>,
    /// Approvals of the open step, by the person whose approval it counts as.
    pub approvals: Vec<String>,
    /// Every person who has decided a step, and which.
    pub deciders: Vec<(String, usize)>,
    pub escalated: Vec<usize>,
    /// Submitted beyond its quota (and so through the over-quota step).
    #[serde(default)]
    pub over_quota: bool,
}

/// The roles that see every department's requests; a requester sees their own
/// department's. Catalogue administrators see every request for the items they keep.
pub const SEES_EVERY_DEPARTMENT: [Role; 4] = [
    Role::Approver,
    Role::Operator,
    Role::Auditor,
    Role::CatalogAdmin,
];

/// Whether `actor` sees every department's requests: one of [`SEES_EVERY_DEPARTMENT`], or
/// the system itself.
pub fn sees_every_department(actor: &Actor) -> bool {
    actor.is_system() || SEES_EVERY_DEPARTMENT.iter().any(|r| actor.has_role(*r))
}

impl Request {
    /// Whether `actor` may know of it: the department wall. To anyone on the other side
    /// it does not exist, whatever its state.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        sees_every_department(actor)
            || actor.id == self.requester
            || actor.department.as_deref() == Some(self.department.as_str())
    }
}

impl Aggregate for Request {
    const KIND: &'static str = "request";
    type Command = RequestCommand;
    type Event = RequestEvent;
    type Error = RequestError;

    fn decide(
        &self,
        command: RequestCommand,
        ctx: &Context,
    ) -> Result<Vec<RequestEvent>, RequestError> {
        let submits = matches!(command, RequestCommand::SubmitRequest { .. });
        if !submits && self.request_id.is_some() && !self.visible_to(&ctx.actor) {
            return Err(RequestError::NotFound);
        }
        match command {
            RequestCommand::SubmitRequest {
                request_id,
                item,
                details,
                over_quota,
            } => self.submit(request_id, item, details, over_quota, ctx),
            RequestCommand::ApproveRequest {
                step,
                comment,
                on_behalf_of,
            } => {
                let decider = self.decider(step, on_behalf_of, ctx)?;
                let counts_as = counts_as(&decider).to_owned();
                let mut events = vec![RequestEvent::ApprovalGranted {
                    step,
                    decider,
                    comment,
                }];
                let approvals =
                    self.approvals.len() + usize::from(!self.approvals.contains(&counts_as));
                if approvals >= needed(&self.steps[step]) {
                    events.push(RequestEvent::StepCompleted { step, at: ctx.now });
                    if step + 1 == self.steps.len() {
                        events.push(RequestEvent::RequestApproved);
                    }
                }
                Ok(events)
            }
            RequestCommand::RejectRequest {
                step,
                comment,
                on_behalf_of,
            } => {
                let decider = self.decider(step, on_behalf_of, ctx)?;
                Ok(vec![
                    RequestEvent::ApprovalRejected {
                        step,
                        decider,
                        comment,
                    },
                    RequestEvent::RequestRejected,
                ])
            }
            RequestCommand::CancelRequest { reason } => {
                self.exists()?;
                if ctx.actor.id != self.requester {
                    return Err(RequestError::NotRequester);
                }
                match self.status {
                    RequestStatus::PendingApproval | RequestStatus::Approved => {
                        Ok(vec![RequestEvent::RequestCancelled { reason }])
                    }
                    other => Err(RequestError::CannotCancel(other)),
                }
            }
            RequestCommand::EscalateStep { step } => {
                self.pending()?;
                let due = self.steps.get(step).and_then(|s| s.escalate_after_hours);
                let waited = self.open_since.map(|t| ctx.now - t).unwrap_or_default();
                match due {
                    Some(hours)
                        if step == self.open_step
                            && !self.escalated.contains(&step)
                            && waited >= Duration::hours(i64::from(hours)) =>
                    {
                        Ok(vec![RequestEvent::StepEscalated {
                            step,
                            to: self.steps[step].escalate_to,
                            waited_hours: waited.num_hours(),
                        }])
                    }
                    _ => Err(RequestError::EscalationNotDue(step)),
                }
            }
            RequestCommand::MarkFulfilled { note } => {
                self.fulfilment(ctx)?;
                Ok(vec![RequestEvent::RequestFulfilled { note }])
            }
            RequestCommand::MarkFailed { note } => {
                self.fulfilment(ctx)?;
                Ok(vec![RequestEvent::RequestFailed { note }])
            }
        }
    }

    fn evolve(mut self, event: &RequestEvent) -> Self {
        match event {
            RequestEvent::RequestSubmitted {
                request_id,
                requester,
                department,
                steps,
                at,
                over_quota,
                ..
            } => {
                self.over_quota = over_quota.is_some();
                self.request_id = Some(*request_id);
                self.requester = requester.clone();
                self.department = department.clone();
                self.steps = steps.as_slice().into();
                self.status = RequestStatus::PendingApproval;
                self.open_since = Some(*at);
            }
            RequestEvent::ApprovalGranted { step, decider, .. } => {
                let counts_as = counts_as(decider).to_owned();
                self.decided(&decider.user, *step);
                self.decided(&counts_as, *step);
                if !self.approvals.contains(&counts_as) {
                    self.approvals.push(counts_as);
                }
            }
            RequestEvent::StepCompleted { step, at } => {
                self.open_step = step + 1;
                self.open_since = Some(*at);
                self.approvals.clear();
            }
            RequestEvent::ApprovalRejected { step, decider, .. } => {
                self.decided(&decider.user, *step);
            }
            RequestEvent::StepEscalated { step, .. } => self.escalated.push(*step),
            RequestEvent::RequestPreApproved { .. } => {}
            RequestEvent::RequestApproved => self.status = RequestStatus::Approved,
            RequestEvent::RequestRejected => self.status = RequestStatus::Rejected,
            RequestEvent::RequestCancelled { .. } => self.status = RequestStatus::Cancelled,
            RequestEvent::RequestFulfilled { .. } => self.status = RequestStatus::Fulfilled,
            RequestEvent::RequestFailed { .. } => self.status = RequestStatus::Failed,
        }
        self
    }
}

/// The approvals a step needs.
pub fn needed(step: &ApprovalStep) -> usize {
    match step.quorum {
        Quorum::One => 1,
        Quorum::AtLeast(n) => n as usize,
        Quorum::All => step.approvers.len().max(1),
    }
}

/// The person an approval counts as: the delegator when acting on their behalf.
fn counts_as(decider: &Decider) -> &str {
    decider
        .on_behalf_of
        .as_ref()
        .map_or(&decider.user, |a| &a.id)
}

impl Request {
    /// The step `person` decided, if any.
    pub fn step_decided_by(&self, person: &str) -> Option<usize> {
        self.deciders
            .iter()
            .find(|(p, _)| p == person)
            .map(|&(_, step)| step)
    }

    fn decided(&mut self, person: &str, step: usize) {
        if self.step_decided_by(person).is_none() {
            self.deciders.push((person.to_owned(), step));
        }
    }

    fn exists(&self) -> Result<(), RequestError> {
        self.request_id.map(drop).ok_or(RequestError::NotFound)
    }

    fn pending(&self) -> Result<(), RequestError> {
        self.exists()?;
        match self.status {
            RequestStatus::PendingApproval => Ok(()),
            other => Err(RequestError::NotPendingApproval(other)),
        }
    }

    fn fulfilment(&self, ctx: &Context) -> Result<(), RequestError> {
        self.exists()?;
        if !ctx.actor.operates() {
            return Err(RequestError::NotOperator);
        }
        match self.status {
            RequestStatus::Approved => Ok(()),
            other => Err(RequestError::NotApproved(other)),
        }
    }

    fn submit(
        &self,
        request_id: Uuid,
        item: CatalogSnapshot,
        details: RequestDetails,
        over_quota: Option<String>,
        ctx: &Context,
    ) -> Result<Vec<RequestEvent>, RequestError> {
        if self.request_id.is_some() {
            return Err(RequestError::AlreadySubmitted);
        }
        let roles: Vec<Role> = ctx
            .actor
            .roles
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        let department = ctx.actor.department.clone().unwrap_or_default();
        if !ctx.actor.has_role(Role::Requester)
            || !item.definition.visible_to(&roles, Some(&department))
        {
            return Err(RequestError::NotOffered);
        }
        if item.retired {
            return Err(RequestError::ItemRetired);
        }
        let field = |f: &str, p: &str| {
            RequestError::Invalid(InvalidField {
                field: f.into(),
                problem: p.into(),
            })
        };
        match &details {
            RequestDetails::NewResource {
                quantity,
                period,
                project,
                ..
            } => {
                if *quantity == 0 {
                    return Err(field("quantity", "must be at least 1"));
                }
                crate::kernel::limits::service_period(
                    period.start,
                    period.end,
                    ctx.now.date_naive(),
                )?;
                if project.trim().is_empty() {
                    return Err(field("project", "must not be empty"));
                }
            }
            RequestDetails::ExtendLease { reason, .. } if reason.trim().is_empty() => {
                return Err(field("reason", "an extension needs a reason"));
            }
            RequestDetails::InstallSoftware { .. }
                if item.definition.kind != OfferingKind::SoftwareInstallation =>
            {
                return Err(field("item", "is not a software installation"));
            }
            _ => {}
        }
        if let Some(configuration) = details.configuration() {
            item.definition.check_configuration(configuration)?;
        }
        let (steps, pre_approval) = match &item.definition.approval {
            ApprovalPolicy::PreApproved {
                policy,
                conditions,
                otherwise,
            } => {
                let holds = conditions.iter().all(|c| {
                    let chosen = details
                        .configuration()
                        .and_then(|cfg| cfg.get(&c.field))
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(0);
                    chosen.saturating_mul(details.quantity()) <= c.at_most
                });
                if holds || otherwise.is_empty() {
                    (Vec::new(), Some(policy.clone()))
                } else {
                    (otherwise.clone(), None)
                }
            }
            ApprovalPolicy::Steps { steps } => (steps.clone(), None),
        };
        let (steps, pre_approval) = match (&over_quota, &item.definition.over_quota_step) {
            (None, _) => (steps, pre_approval),
            (Some(why), None) => return Err(RequestError::OverQuota(why.clone())),
            (Some(_), Some(extra)) => {
                let mut steps = if pre_approval.is_some() {
                    Vec::new()
                } else {
                    steps
                };
                steps.push(ApprovalStep::clone(extra));
                (steps, None)
            }
        };
        let mut events = vec![RequestEvent::RequestSubmitted {
            request_id,
            item_id: item.item_id,
            item_version: item.version,
            offering: item.definition.kind,
            requester: ctx.actor.id.clone(),
            department,
            details,
            steps,
            at: ctx.now,
            over_quota,
        }];
        if let Some(policy) = pre_approval {
            events.push(RequestEvent::RequestPreApproved {
                policy,
                item_version: item.version,
            });
            events.push(RequestEvent::RequestApproved);
        }
        Ok(events)
    }

    /// Whether `actor` may decide the open step now, acting for themselves.
    pub fn may_decide(&self, actor: &Actor, now: DateTime<Utc>) -> bool {
        let ctx = Context {
            actor: actor.clone(),
            now,
        };
        self.decider(self.open_step, None, &ctx).is_ok()
    }

    /// Who may decide the open step: the actor, or the approver they stand in for.
    fn decider(
        &self,
        step: usize,
        delegation: Option<Delegation>,
        ctx: &Context,
    ) -> Result<Decider, RequestError> {
        self.pending()?;
        if step != self.open_step {
            return Err(RequestError::NotTheOpenStep {
                given: step,
                open: self.open_step,
            });
        }
        let actor = &ctx.actor;
        let approver = match &delegation {
            None => actor,
            Some(d) => {
                if d.substitute != actor.id {
                    return Err(RequestError::DelegationNotValid(format!(
                        "it names {} as substitute",
                        d.substitute
                    )));
                }
                if ctx.now < d.from || ctx.now > d.until {
                    return Err(RequestError::DelegationNotValid(format!(
                        "it runs from {} to {}",
                        d.from, d.until
                    )));
                }
                &d.delegator
            }
        };
        if actor.id == self.requester || approver.id == self.requester {
            return Err(RequestError::SelfApproval);
        }
        for person in [&actor.id, &approver.id] {
            if let Some(decided) = self.step_decided_by(person) {
                return Err(RequestError::AlreadyDecidedAStep(person.clone(), decided));
            }
        }
        let s = &self.steps[step];
        if !approver.has_role(s.role) {
            return Err(RequestError::NotEligible(format!(
                "{} does not hold the role {}",
                approver.id,
                s.role.as_str()
            )));
        }
        let department_ok = match &s.department {
            StepDepartment::Any => true,
            StepDepartment::Requesters => {
                approver.department.as_deref() == Some(self.department.as_str())
            }
            StepDepartment::Named(d) => approver.department.as_deref() == Some(d.as_str()),
        };
        if !department_ok {
            return Err(RequestError::NotEligible(format!(
                "{} is not in the deciding department",
                approver.id
            )));
        }
        if !s.approvers.is_empty() && !s.approvers.contains(&approver.id) {
            return Err(RequestError::NotEligible(format!(
                "{} is not named for this step",
                approver.id
            )));
        }
        Ok(Decider {
            user: actor.id.clone(),
            roles: actor.roles.clone(),
            on_behalf_of: delegation.map(|d| d.delegator),
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::kernel::given::{at, given, person};
    use crate::requests::catalog::Condition;
    use crate::requests::demo::{two_steps, vm_definition};

    fn chan() -> Actor {
        person("u-chan", "財政局", &["requester", "approver"])
    }
    fn ho() -> Actor {
        person("u-ho", "財政局", &["approver"])
    }
    fn wong() -> Actor {
        person("u-wong", "運維中心", &["operator"])
    }
    fn lee() -> Actor {
        person("u-lee", "運維中心", &["operator"])
    }

    fn item(approval: ApprovalPolicy) -> CatalogSnapshot {
        CatalogSnapshot {
            item_id: Uuid::from_u128(1),
            version: 3,
            definition: vm_definition(approval),
            retired: false,
        }
    }

    fn new_vm(cpu: i64, quantity: u32) -> RequestDetails {
        crate::requests::demo::new_vm(cpu, quantity, "電子公文交換")
    }

    fn submit(approval: ApprovalPolicy, details: RequestDetails) -> RequestCommand {
        RequestCommand::SubmitRequest {
            request_id: Uuid::from_u128(7),
            item: item(approval),
            details,
            over_quota: None,
        }
    }

    /// A request for a VM, waiting at its first step of two.
    fn submitted() -> Vec<RequestEvent> {
        given::<Request>([])
            .when(submit(two_steps(), new_vm(4, 1)), &chan())
            .events()
    }

    fn approve(step: usize) -> RequestCommand {
        RequestCommand::ApproveRequest {
            step,
            comment: Some("同意".into()),
            on_behalf_of: None,
        }
    }

    fn granted(step: usize, by: &Actor, on_behalf_of: Option<Actor>) -> RequestEvent {
        RequestEvent::ApprovalGranted {
            step,
            decider: Decider {
                user: by.id.clone(),
                roles: by.roles.clone(),
                on_behalf_of,
            },
            comment: Some("同意".into()),
        }
    }

    fn pre_approval() -> ApprovalPolicy {
        ApprovalPolicy::PreApproved {
            policy: "小型虛擬機預審批".into(),
            conditions: vec![Condition {
                field: "cpu".into(),
                at_most: 8,
            }],
            otherwise: match two_steps() {
                ApprovalPolicy::Steps { steps } => steps,
                ApprovalPolicy::PreApproved { .. } => unreachable!(),
            },
        }
    }

    #[test]
    fn a_request_within_the_pre_approval_conditions_is_approved_at_once_naming_the_policy() {
        let events = given::<Request>([])
            .when(submit(pre_approval(), new_vm(4, 2)), &chan())
            .events();
        assert_eq!(
            events[1..],
            [
                RequestEvent::RequestPreApproved {
                    policy: "小型虛擬機預審批".into(),
                    item_version: 3
                },
                RequestEvent::RequestApproved,
            ]
        );
    }

    #[test]
    fn a_request_over_its_quota_goes_through_the_items_extra_step_or_is_refused() {
        let over = |item: CatalogSnapshot| RequestCommand::SubmitRequest {
            request_id: Uuid::from_u128(7),
            item,
            details: new_vm(4, 1),
            over_quota: Some("the quota of department 財政局 would be exceeded".into()),
        };
        // Even a request the pre-approval would pass waits for the over-quota step.
        let events = given::<Request>([])
            .when(over(item(pre_approval())), &chan())
            .events();
        let RequestEvent::RequestSubmitted { steps, .. } = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(events.len(), 1, "not pre-approved: {events:?}");
        assert_eq!(steps.last().map(|s| s.name.as_str()), Some("超額審批"));
        let mut plain = item(two_steps());
        plain.definition.over_quota_step = None;
        given::<Request>([])
            .when(over(plain), &chan())
            .then_err(RequestError::OverQuota(
                "the quota of department 財政局 would be exceeded".into(),
            ));
    }

    #[test]
    fn a_request_above_the_threshold_goes_through_the_steps() {
        // 2 × 8 cores is over the 8-core pre-approval.
        let events = given::<Request>([])
            .when(submit(pre_approval(), new_vm(8, 2)), &chan())
            .events();
        assert_eq!(events.len(), 1);
        let RequestEvent::RequestSubmitted {
            steps,
            item_version,
            requester,
            department,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(
            (
                steps.len(),
                *item_version,
                requester.as_str(),
                department.as_str()
            ),
            (2, 3, "u-chan", "財政局")
        );
    }

    #[test]
    fn a_bad_configuration_value_is_refused_naming_the_field() {
        given::<Request>([])
            .when(submit(two_steps(), new_vm(33, 1)), &chan())
            .then_err(RequestError::Invalid(InvalidField {
                field: "configuration.cpu".into(),
                problem: "33 is not allowed: 1 to 32 in steps of 1".into(),
            }));
        let mut backwards = new_vm(4, 1);
        if let RequestDetails::NewResource { period, .. } = &mut backwards {
            std::mem::swap(&mut period.start, &mut period.end);
        }
        given::<Request>([])
            .when(submit(two_steps(), backwards), &chan())
            .then_err(RequestError::Invalid(InvalidField {
                field: "periodEnd".into(),
                problem: "2026-12-01 is not after the period's start, 2027-06-01".into(),
            }));
    }

    #[test]
    fn an_item_not_offered_to_the_requester_is_refused() {
        given::<Request>([])
            .when(submit(two_steps(), new_vm(4, 1)), &wong())
            .then_err(RequestError::NotOffered);
        let mut retired = item(two_steps());
        retired.retired = true;
        given::<Request>([])
            .when(
                RequestCommand::SubmitRequest {
                    request_id: Uuid::from_u128(7),
                    item: retired,
                    details: new_vm(4, 1),
                    over_quota: None,
                },
                &chan(),
            )
            .then_err(RequestError::ItemRetired);
    }

    #[test]
    fn a_requester_cannot_approve_their_own_request() {
        given::<Request>(submitted())
            .when(approve(0), &chan())
            .then_err(RequestError::SelfApproval);
    }

    #[test]
    fn the_department_step_is_decided_in_the_requesters_department() {
        let outsider = person("u-siu", "教育局", &["approver"]);
        given::<Request>(submitted())
            .when(approve(0), &outsider)
            .then_err(RequestError::NotEligible(
                "u-siu is not in the deciding department".into(),
            ));
        given::<Request>(submitted())
            .when(approve(0), &wong())
            .then_err(RequestError::NotEligible(
                "u-wong does not hold the role approver".into(),
            ));
    }

    #[test]
    fn the_last_approval_approves_the_request() {
        given::<Request>(submitted())
            .at(at(10))
            .when(approve(0), &ho())
            .then([
                granted(0, &ho(), None),
                RequestEvent::StepCompleted {
                    step: 0,
                    at: at(10),
                },
            ]);
        let mut history = submitted();
        history.extend([
            granted(0, &ho(), None),
            RequestEvent::StepCompleted {
                step: 0,
                at: at(10),
            },
        ]);
        given::<Request>(history.clone())
            .at(at(11))
            .when(approve(1), &wong())
            .then([
                granted(1, &wong(), None),
                RequestEvent::StepCompleted {
                    step: 1,
                    at: at(11),
                },
                RequestEvent::RequestApproved,
            ]);
        given::<Request>(history)
            .when(approve(0), &wong())
            .then_err(RequestError::NotTheOpenStep { given: 0, open: 1 });
    }

    #[test]
    fn one_person_decides_at_most_one_step() {
        let both = person("u-ho", "財政局", &["approver", "operator"]);
        let mut history = submitted();
        history.extend([
            granted(0, &both, None),
            RequestEvent::StepCompleted {
                step: 0,
                at: at(10),
            },
        ]);
        given::<Request>(history)
            .when(approve(1), &both)
            .then_err(RequestError::AlreadyDecidedAStep("u-ho".into(), 0));
    }

    #[test]
    fn a_quorum_of_two_needs_two_people() {
        let mut policy = two_steps();
        if let ApprovalPolicy::Steps { steps } = &mut policy {
            steps[1].quorum = Quorum::AtLeast(2);
        }
        let mut history = given::<Request>([])
            .when(submit(policy, new_vm(4, 1)), &chan())
            .events();
        history.extend([
            granted(0, &ho(), None),
            RequestEvent::StepCompleted {
                step: 0,
                at: at(10),
            },
        ]);
        let after_one = given::<Request>(history.clone())
            .when(approve(1), &wong())
            .events();
        assert_eq!(
            after_one,
            [granted(1, &wong(), None)],
            "one of two: the step stays open"
        );
        history.extend(after_one);
        given::<Request>(history.clone())
            .when(approve(1), &wong())
            .then_err(RequestError::AlreadyDecidedAStep("u-wong".into(), 1));
        let done = given::<Request>(history).when(approve(1), &lee()).events();
        assert_eq!(done.last(), Some(&RequestEvent::RequestApproved));
    }

    #[test]
    fn a_substitute_approves_on_behalf_of_an_approver_who_is_away() {
        let substitute = person("u-yip", "財政局", &["requester"]);
        let delegation = Delegation {
            delegator: ho(),
            substitute: "u-yip".into(),
            from: at(8),
            until: at(18),
        };
        let command = |d: &Delegation| RequestCommand::ApproveRequest {
            step: 0,
            comment: Some("同意".into()),
            on_behalf_of: Some(d.clone()),
        };
        given::<Request>(submitted())
            .at(at(10))
            .when(command(&delegation), &substitute)
            .then([
                granted(0, &substitute, Some(ho())),
                RequestEvent::StepCompleted {
                    step: 0,
                    at: at(10),
                },
            ]);
        given::<Request>(submitted())
            .at(at(19))
            .when(command(&delegation), &substitute)
            .then_err(RequestError::DelegationNotValid(format!(
                "it runs from {} to {}",
                at(8),
                at(18)
            )));
        given::<Request>(submitted())
            .at(at(10))
            .when(command(&delegation), &wong())
            .then_err(RequestError::DelegationNotValid(
                "it names u-yip as substitute".into(),
            ));
    }

    #[test]
    fn a_rejection_ends_the_request() {
        let reject = RequestCommand::RejectRequest {
            step: 0,
            comment: "預算不足".into(),
            on_behalf_of: None,
        };
        let events = given::<Request>(submitted()).when(reject, &ho()).events();
        assert_eq!(events.last(), Some(&RequestEvent::RequestRejected));
        let mut history = submitted();
        history.extend(events);
        given::<Request>(history)
            .when(approve(0), &ho())
            .then_err(RequestError::NotPendingApproval(RequestStatus::Rejected));
    }

    #[test]
    fn a_step_waiting_past_its_time_is_escalated_once() {
        let scheduler = Actor::system("scheduler");
        let escalate = || RequestCommand::EscalateStep { step: 0 };
        given::<Request>(submitted())
            .at(at(20))
            .when(escalate(), &scheduler)
            .then_err(RequestError::EscalationNotDue(0));
        let tomorrow = at(9) + Duration::hours(25);
        let escalated = RequestEvent::StepEscalated {
            step: 0,
            to: Some(Role::Admin),
            waited_hours: 25,
        };
        given::<Request>(submitted())
            .at(tomorrow)
            .when(escalate(), &scheduler)
            .then([escalated.clone()]);
        let mut history = submitted();
        history.push(escalated);
        given::<Request>(history)
            .at(tomorrow)
            .when(escalate(), &scheduler)
            .then_err(RequestError::EscalationNotDue(0));
    }

    #[test]
    fn another_departments_request_is_not_found_whatever_its_state() {
        let siu = person("u-siu", "教育局", &["requester"]);
        let mut cancelled = submitted();
        cancelled.push(RequestEvent::RequestCancelled { reason: None });
        for history in [vec![], submitted(), cancelled] {
            for command in [
                approve(0),
                RequestCommand::CancelRequest { reason: None },
                RequestCommand::MarkFulfilled { note: "x".into() },
            ] {
                given::<Request>(history.clone())
                    .when(command, &siu)
                    .then_err(RequestError::NotFound);
            }
        }
    }

    #[test]
    fn the_requester_cancels_before_fulfilment_and_not_after() {
        let cancel = || RequestCommand::CancelRequest {
            reason: Some("項目延期".into()),
        };
        given::<Request>(submitted())
            .when(cancel(), &ho())
            .then_err(RequestError::NotRequester);
        given::<Request>(submitted()).when(cancel(), &chan()).then([
            RequestEvent::RequestCancelled {
                reason: Some("項目延期".into()),
            },
        ]);
        let mut fulfilled = given::<Request>([])
            .when(submit(pre_approval(), new_vm(2, 1)), &chan())
            .events();
        fulfilled.push(RequestEvent::RequestFulfilled {
            note: "vm-0042".into(),
        });
        given::<Request>(fulfilled)
            .when(cancel(), &chan())
            .then_err(RequestError::CannotCancel(RequestStatus::Fulfilled));
    }

    #[test]
    fn an_operator_records_fulfilment_of_an_approved_request_only() {
        let fulfil = || RequestCommand::MarkFulfilled {
            note: "vm-0042 交付".into(),
        };
        given::<Request>(submitted())
            .when(fulfil(), &wong())
            .then_err(RequestError::NotApproved(RequestStatus::PendingApproval));
        let approved = given::<Request>([])
            .when(submit(pre_approval(), new_vm(2, 1)), &chan())
            .events();
        given::<Request>(approved.clone())
            .when(fulfil(), &ho())
            .then_err(RequestError::NotOperator);
        given::<Request>(approved)
            .when(fulfil(), &wong())
            .then([RequestEvent::RequestFulfilled {
                note: "vm-0042 交付".into(),
            }]);
    }

    #[test]
    fn events_are_stored_by_their_stable_names() {
        let event = granted(0, &ho(), None);
        let stored = event.to_new_event().unwrap();
        assert_eq!(
            (stored.event_type.as_str(), stored.schema_version),
            ("ApprovalGranted", 1)
        );
        let recorded = crate::kernel::event::RecordedEvent {
            position: 1,
            stream: "request-7".into(),
            version: 0,
            id: Uuid::from_u128(1),
            event_type: stored.event_type,
            schema_version: 1,
            data: stored.data.get().to_owned(),
            metadata: crate::kernel::event::Metadata::new(ho(), Uuid::from_u128(2), at(9)),
            hash: crate::kernel::event::Hash::GENESIS,
        };
        assert_eq!(RequestEvent::from_recorded(&recorded).unwrap(), event);
    }
}
