//! Change management: a change request (standard, normal or emergency) with its risk,
//! implementation and rollback plans, schedule window and the CIs and services it touches;
//! its approval by a change manager; its implementation; and its post-implementation
//! review.
//!
//! The service plan's rules hold here: no trial configuration on production, and every
//! change needs a written plan, discussed and approved, before it starts. So a change is
//! approved only with both plans written (amending a plan withdraws the approval), and it
//! starts only approved, within its window, and outside any freeze of what it touches. A
//! chargeable change needs the product manager's confirmation of its commercial terms
//! before approval; a normal change needs the change advisory board's advice in favour;
//! an emergency change skips the board. A standard change is pre-authorised: when it is
//! neither chargeable nor in conflict with another change it is approved as it is raised.
//! The requester of a change never advises on or approves it.
//!
//! Facts from other aggregates travel in the commands: the [`Conflict`]s the caller found
//! with [`conflicts`] (two changes in overlapping windows on the same CI, or on CIs the
//! CMDB relates, such as a host and the VMs on it), and the [`FreezeFact`]s of the freezes
//! declared. A conflict must be acknowledged by the approver; a freeze may be overridden,
//! for an emergency change only, by a change manager (or an admin) with a reason, and the
//! override is recorded as [`ChangeEvent::FreezeOverridden`] for compliance to list.
//! [`ChangeEvent::ChangeImplemented`] carries the CI attributes the change set, for a
//! process manager to apply to the CMDB.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::changes::freeze::Window;
use crate::changes::freeze::{freeze_in_force, FreezeFact, Frozen};
use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};
use crate::resources::cmdb::{check_attributes, AttrValue};

/// How a change is authorised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Routine and pre-authorised: follows a known plan.
    Standard,
    /// Reviewed by the change advisory board, then approved by a change manager.
    #[default]
    Normal,
    /// Restores service now: approved by a change manager without the board, and the only
    /// kind that may override a freeze.
    Emergency,
}

/// The risk the requester assesses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    #[default]
    Low,
    Medium,
    High,
}

/// The change advisory board's advice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    Approve,
    Reject,
}

/// How an implementation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// Left as it was when it failed: the CI updates say what was changed.
    Failed,
    /// Put back as it was before: no CI changed.
    RolledBack,
}

/// Where a change stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Waiting for commercial confirmation, advice or approval.
    #[default]
    Raised,
    Approved,
    Rejected,
    Implementing,
    /// Implemented, waiting for its review.
    Implemented,
    /// Reviewed.
    Closed,
    Cancelled,
}

impl ChangeStatus {
    /// Whether the change takes no further commands.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChangeStatus::Rejected | ChangeStatus::Closed | ChangeStatus::Cancelled
        )
    }
}

/// Everything said when a change is raised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeProposal {
    pub title: String,
    pub description: String,
    pub kind: ChangeKind,
    pub risk: Risk,
    /// May be left empty when raised (except for a standard change); required before approval.
    pub implementation_plan: String,
    /// May be left empty when raised (except for a standard change); required before approval.
    pub rollback_plan: String,
    pub window: Window,
    pub ci_ids: Vec<Uuid>,
    pub services: Vec<String>,
    /// The requester pays for it: the product manager confirms the terms first.
    pub chargeable: bool,
    pub work_order: Option<Uuid>,
    pub incident: Option<Uuid>,
}

/// Attributes a change set on one CI, for the CMDB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiUpdate {
    pub ci_id: Uuid,
    pub attributes: BTreeMap<String, AttrValue>,
}

/// Another change scheduled on the same CI (`ci_id == other_ci_id`) or on a related one,
/// in an overlapping window.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conflict {
    /// The other change.
    pub change_id: Uuid,
    /// This change's CI.
    pub ci_id: Uuid,
    /// The other change's CI.
    pub other_ci_id: Uuid,
    /// The period both windows share.
    pub overlap: Window,
}

/// A change as conflict detection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub change_id: Uuid,
    pub window: Window,
    pub ci_ids: Vec<Uuid>,
}

/// The conflicts of `change` with `others`: each other change whose window overlaps and
/// that touches one of its CIs, or a CI `related` to one of them. `related(ci)` answers
/// the CIs the CMDB relates to `ci` in either direction (the host of a VM, the VMs on a
/// host). `change` itself among `others` is skipped. Windows are half-open, so changes
/// back to back do not conflict.
pub fn conflicts(
    change: &Scheduled,
    others: &[Scheduled],
    related: &dyn Fn(Uuid) -> Vec<Uuid>,
) -> Vec<Conflict> {
    let reach: Vec<(Uuid, Vec<Uuid>)> = change.ci_ids.iter().map(|&ci| (ci, related(ci))).collect();
    let mut found = Vec::new();
    for other in others.iter().filter(|o| o.change_id != change.change_id) {
        let Some(overlap) = change.window.overlap(&other.window) else {
            continue;
        };
        for (ci, near) in &reach {
            for &other_ci in std::iter::once(ci).chain(near) {
                let conflict = Conflict {
                    change_id: other.change_id,
                    ci_id: *ci,
                    other_ci_id: other_ci,
                    overlap,
                };
                if other.ci_ids.contains(&other_ci) && !found.contains(&conflict) {
                    found.push(conflict);
                }
            }
        }
    }
    found
}

/// Who approved a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovedBy {
    /// A standard change, neither chargeable nor in conflict: approved as it was raised.
    PreAuthorised,
    /// The change manager's id.
    ChangeManager(String),
}

/// Orders to a change.
#[derive(Clone, Debug)]
pub enum ChangeCommand {
    /// By an engineer, the service desk, a change manager or an operator.
    Raise {
        change_id: Uuid,
        proposal: Box<ChangeProposal>,
        /// Found with [`conflicts`]; recorded, and they keep a standard change from being
        /// pre-authorised.
        conflicts: Vec<Conflict>,
    },
    /// By a product manager, for a chargeable change.
    ConfirmCommercialTerms { terms: String },
    /// The change advisory board's advice on a normal change, by a change manager; the
    /// latest counts.
    RecordAdvice {
        recommendation: Recommendation,
        note: String,
    },
    /// By a change manager who did not raise it.
    Approve {
        /// Found with [`conflicts`] now.
        conflicts: Vec<Conflict>,
        /// The other changes the approver accepts overlapping with.
        acknowledged_conflicts: Vec<Uuid>,
    },
    /// By a change manager.
    Reject { reason: String },
    /// Replaces a plan (`None` keeps it); before implementation, by the requester or a
    /// change manager. Withdraws the approval and the board's advice.
    AmendPlan {
        implementation_plan: Option<String>,
        rollback_plan: Option<String>,
    },
    /// Moves the window; before implementation, by the requester or a change manager.
    /// Withdraws the approval, except of a standard change the new window conflicts with
    /// nothing.
    Reschedule {
        window: Window,
        conflicts: Vec<Conflict>,
    },
    /// By an engineer, an operator or a change manager, within the window.
    StartImplementation {
        /// The freezes declared (see [`crate::changes::freeze::FreezeWindow::fact`]).
        freezes: Vec<FreezeFact>,
        /// The reason to go ahead despite the freezes that hold the change: an emergency
        /// change, by a change manager or an admin.
        override_freeze: Option<String>,
    },
    /// By an engineer, an operator or a change manager.
    RecordImplementation {
        outcome: Outcome,
        notes: String,
        ci_updates: Vec<CiUpdate>,
    },
    /// The post-implementation review, by a change manager; closes the change.
    Review { notes: String, successful: bool },
    /// Before implementation, by the requester or a change manager.
    Cancel { reason: String },
}

/// What happened to a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ChangeEvent {
    ChangeRaised {
        change_id: Uuid,
        proposal: Box<ChangeProposal>,
        requested_by: String,
        /// The conflicts flagged when it was raised.
        conflicts: Vec<Conflict>,
        at: DateTime<Utc>,
    },
    CommercialTermsConfirmed {
        terms: String,
        by: String,
        at: DateTime<Utc>,
    },
    /// The change advisory board's advice.
    ChangeAdvised {
        recommendation: Recommendation,
        note: String,
        by: String,
        at: DateTime<Utc>,
    },
    ChangeApproved {
        by: ApprovedBy,
        /// The conflicts the approver accepted.
        acknowledged_conflicts: Vec<Conflict>,
        at: DateTime<Utc>,
    },
    ChangeRejected {
        reason: String,
        by: String,
        at: DateTime<Utc>,
    },
    /// The new plans (`None`: unchanged); the approval and the advice no longer hold.
    ChangePlanAmended {
        implementation_plan: Option<String>,
        rollback_plan: Option<String>,
        approval_withdrawn: bool,
        by: String,
        at: DateTime<Utc>,
    },
    ChangeRescheduled {
        window: Window,
        /// The conflicts flagged in the new window.
        conflicts: Vec<Conflict>,
        approval_withdrawn: bool,
        by: String,
        at: DateTime<Utc>,
    },
    /// An emergency change went ahead during a freeze.
    FreezeOverridden {
        freeze_id: Uuid,
        /// The role that allowed it: `change_manager` or `admin`.
        role: Role,
        reason: String,
        by: String,
        at: DateTime<Utc>,
    },
    ImplementationStarted {
        by: String,
        at: DateTime<Utc>,
    },
    /// How the implementation ended, and the CI attributes it set (for the CMDB).
    ChangeImplemented {
        outcome: Outcome,
        notes: String,
        ci_updates: Vec<CiUpdate>,
        by: String,
        at: DateTime<Utc>,
    },
    /// The post-implementation review; the change is closed.
    ChangeReviewed {
        notes: String,
        successful: bool,
        by: String,
        at: DateTime<Utc>,
    },
    ChangeCancelled {
        reason: String,
        by: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ChangeEvent {}

/// Why a change refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// A field of the change breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The change was raised already (conflict)
    #[error("the change was already raised")]
    AlreadyRaised,
    /// There is no such change (not found)
    #[error("there is no such change")]
    NotFound,
    /// The actor's roles do not allow this step (forbidden)
    #[error("only {who} may {action}")]
    NotPermitted {
        who: &'static str,
        action: &'static str,
    },
    /// The change is over and takes no more commands (conflict)
    #[error("the change is {0:?}; it takes no further commands")]
    Ended(ChangeStatus),
    /// The requester advises on or approves their own change (forbidden)
    #[error("the requester of a change cannot advise on or approve it")]
    OwnChange,
    /// The change is not chargeable; there are no terms to confirm (conflict)
    #[error("the change is not chargeable; there are no commercial terms to confirm")]
    NotChargeable,
    /// The terms were confirmed already (conflict)
    #[error("the commercial terms were already confirmed")]
    TermsAlreadyConfirmed,
    /// The kind of change has no advisory step (conflict)
    #[error("a {0:?} change has no change advisory step")]
    NoAdvisoryStep(ChangeKind),
    /// The change is not waiting for approval (conflict)
    #[error("the change is {0:?}, not waiting for approval")]
    NotAwaitingApproval(ChangeStatus),
    /// A chargeable change's terms are not confirmed (conflict)
    #[error("the change is chargeable and the product manager has not confirmed its terms")]
    TermsNotConfirmed,
    /// The advisory board has not advised on the normal change (conflict)
    #[error("the change advisory board has not advised on this normal change")]
    NoAdvice,
    /// The advisory board advised against the change (conflict)
    #[error("the change advisory board advised against this change")]
    AdvisedAgainst,
    /// The change has no plan of the kind named (conflict)
    #[error("the change has no {0}")]
    MissingPlan(&'static str),
    /// The change conflicts with changes not acknowledged (conflict)
    #[error("the change conflicts with changes not acknowledged: {}", list(.0))]
    UnacknowledgedConflicts(Vec<Uuid>),
    /// The change is not approved (conflict)
    #[error("the change is {0:?}, not approved")]
    NotApproved(ChangeStatus),
    /// The implementation has started (conflict)
    #[error("the change is {0:?}; its implementation has started")]
    AlreadyStarted(ChangeStatus),
    /// The change's window has not started (conflict)
    #[error("the change's window starts at {0}")]
    BeforeWindow(DateTime<Utc>),
    /// The change's window ended; it is rescheduled (conflict)
    #[error("the change's window ended at {0}; reschedule it")]
    WindowPassed(DateTime<Utc>),
    /// A freeze holds what the change touches (conflict)
    #[error(transparent)]
    Frozen(#[from] Frozen),
    /// Only an emergency change overrides a freeze (forbidden)
    #[error("a {0:?} change cannot override a freeze; only an emergency change can")]
    OverrideNotAllowed(ChangeKind),
    /// The change is not being implemented (conflict)
    #[error("the change is {0:?}, not being implemented")]
    NotImplementing(ChangeStatus),
    /// The change is not implemented (conflict)
    #[error("the change is {0:?}, not implemented")]
    NotImplemented(ChangeStatus),
}

impl Refuse for ChangeError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::AlreadyRaised
            | Self::Ended(..)
            | Self::NotChargeable
            | Self::TermsAlreadyConfirmed
            | Self::NoAdvisoryStep(..)
            | Self::NotAwaitingApproval(..)
            | Self::TermsNotConfirmed
            | Self::NoAdvice
            | Self::AdvisedAgainst
            | Self::MissingPlan(..)
            | Self::UnacknowledgedConflicts(..)
            | Self::NotApproved(..)
            | Self::AlreadyStarted(..)
            | Self::BeforeWindow(..)
            | Self::WindowPassed(..)
            | Self::Frozen(..)
            | Self::NotImplementing(..)
            | Self::NotImplemented(..) => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
            Self::NotPermitted { .. } | Self::OwnChange | Self::OverrideNotAllowed(..) => {
                Refusal::Forbidden
            }
        }
    }
}

fn list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A change's state, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub change_id: Option<Uuid>,
    pub proposal: ChangeProposal,
    pub requested_by: String,
    pub status: ChangeStatus,
    pub commercial_terms: Option<String>,
    /// The board's latest advice, until the plan is amended.
    pub advice: Option<Recommendation>,
    pub approved_by: Option<ApprovedBy>,
    pub outcome: Option<Outcome>,
}

const RAISERS: &str = "engineers, the service desk, change managers and operators";
const IMPLEMENTERS: &str = "engineers, operators and change managers";
const CHANGE_MANAGERS: &str = "change managers";
const OWNERS: &str = "the requester and change managers";
/// The roles of everyone who takes part in changes (raises, advises, approves,
/// implements, confirms terms).
const PARTICIPANT_ROLES: [Role; 5] = [
    Role::Engineer,
    Role::ServiceDesk,
    Role::ChangeManager,
    Role::Operator,
    Role::ProductManager,
];
const PARTICIPANTS: &str =
    "engineers, the service desk, change managers, operators and product managers";

fn require(
    ctx: &Context,
    roles: &[Role],
    who: &'static str,
    action: &'static str,
) -> Result<(), ChangeError> {
    if roles.iter().any(|&r| ctx.actor.has_role(r)) {
        Ok(())
    } else {
        Err(ChangeError::NotPermitted { who, action })
    }
}

fn required(field: &'static str, text: &str) -> Result<(), InvalidField> {
    if text.trim().is_empty() {
        Err(invalid(field, "is required"))
    } else {
        Ok(())
    }
}

impl Change {
    /// The change as conflict detection sees it, while it may still happen.
    pub fn scheduled(&self) -> Option<Scheduled> {
        let change_id = self.change_id?;
        matches!(
            self.status,
            ChangeStatus::Raised | ChangeStatus::Approved | ChangeStatus::Implementing
        )
        .then(|| Scheduled {
            change_id,
            window: self.proposal.window,
            ci_ids: self.proposal.ci_ids.clone(),
        })
    }

    /// The first plan not written, if any.
    pub fn missing_plan(&self) -> Option<&'static str> {
        if self.proposal.implementation_plan.trim().is_empty() {
            Some("implementation_plan")
        } else if self.proposal.rollback_plan.trim().is_empty() {
            Some("rollback_plan")
        } else {
            None
        }
    }

    /// A change that exists and still takes commands.
    fn open(&self) -> Result<(), ChangeError> {
        if self.change_id.is_none() {
            return Err(ChangeError::NotFound);
        }
        if self.status.is_final() {
            return Err(ChangeError::Ended(self.status));
        }
        Ok(())
    }

    /// A change that has not started: it may still be amended, moved or cancelled by its
    /// requester or a change manager.
    fn before_implementation(
        &self,
        ctx: &Context,
        action: &'static str,
    ) -> Result<(), ChangeError> {
        if !matches!(self.status, ChangeStatus::Raised | ChangeStatus::Approved) {
            return Err(ChangeError::AlreadyStarted(self.status));
        }
        if ctx.actor.id != self.requested_by {
            require(ctx, &[Role::ChangeManager], OWNERS, action)?;
        }
        Ok(())
    }

    fn raise(
        &self,
        change_id: Uuid,
        proposal: ChangeProposal,
        conflicts: Vec<Conflict>,
        ctx: &Context,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        require(
            ctx,
            &[
                Role::Engineer,
                Role::ServiceDesk,
                Role::ChangeManager,
                Role::Operator,
            ],
            RAISERS,
            "raise a change",
        )?;
        if self.change_id.is_some() {
            return Err(ChangeError::AlreadyRaised);
        }
        required("title", &proposal.title)?;
        proposal.window.check("window", ctx.now)?;
        if proposal.ci_ids.is_empty() && proposal.services.is_empty() {
            return Err(invalid("ci_ids", "names no CI, and services no service").into());
        }
        if proposal.services.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid("services", "holds an empty name").into());
        }
        if proposal.kind == ChangeKind::Standard {
            // Pre-authorised means following a plan known beforehand.
            for (field, plan) in [
                ("implementation_plan", &proposal.implementation_plan),
                ("rollback_plan", &proposal.rollback_plan),
            ] {
                if plan.trim().is_empty() {
                    return Err(invalid(field, "is required for a standard change").into());
                }
            }
        }
        let pre_authorised =
            proposal.kind == ChangeKind::Standard && !proposal.chargeable && conflicts.is_empty();
        let mut events = vec![ChangeEvent::ChangeRaised {
            change_id,
            proposal: Box::new(proposal),
            requested_by: ctx.actor.id.clone(),
            conflicts,
            at: ctx.now,
        }];
        if pre_authorised {
            events.push(ChangeEvent::ChangeApproved {
                by: ApprovedBy::PreAuthorised,
                acknowledged_conflicts: Vec::new(),
                at: ctx.now,
            });
        }
        Ok(events)
    }

    fn approve(
        &self,
        conflicts: Vec<Conflict>,
        acknowledged: &[Uuid],
        ctx: &Context,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        require(
            ctx,
            &[Role::ChangeManager],
            CHANGE_MANAGERS,
            "approve a change",
        )?;
        if self.status != ChangeStatus::Raised {
            return Err(ChangeError::NotAwaitingApproval(self.status));
        }
        if ctx.actor.id == self.requested_by {
            return Err(ChangeError::OwnChange);
        }
        if self.proposal.chargeable && self.commercial_terms.is_none() {
            return Err(ChangeError::TermsNotConfirmed);
        }
        if self.proposal.kind == ChangeKind::Normal {
            match self.advice {
                None => return Err(ChangeError::NoAdvice),
                Some(Recommendation::Reject) => return Err(ChangeError::AdvisedAgainst),
                Some(Recommendation::Approve) => {}
            }
        }
        if let Some(plan) = self.missing_plan() {
            return Err(ChangeError::MissingPlan(plan));
        }
        if self.proposal.window.end <= ctx.now {
            return Err(ChangeError::WindowPassed(self.proposal.window.end));
        }
        let mut unacknowledged: Vec<Uuid> = conflicts
            .iter()
            .map(|c| c.change_id)
            .filter(|id| !acknowledged.contains(id))
            .collect();
        if !unacknowledged.is_empty() {
            unacknowledged.sort();
            unacknowledged.dedup();
            return Err(ChangeError::UnacknowledgedConflicts(unacknowledged));
        }
        Ok(vec![ChangeEvent::ChangeApproved {
            by: ApprovedBy::ChangeManager(ctx.actor.id.clone()),
            acknowledged_conflicts: conflicts,
            at: ctx.now,
        }])
    }

    fn start(
        &self,
        freezes: &[FreezeFact],
        override_freeze: Option<String>,
        ctx: &Context,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        require(
            ctx,
            &[Role::Engineer, Role::Operator, Role::ChangeManager],
            IMPLEMENTERS,
            "implement a change",
        )?;
        if self.status != ChangeStatus::Approved {
            return Err(ChangeError::NotApproved(self.status));
        }
        // Approval already required both plans; a history from before that rule is held
        // to it here.
        if let Some(plan) = self.missing_plan() {
            return Err(ChangeError::MissingPlan(plan));
        }
        let window = self.proposal.window;
        if ctx.now < window.start {
            return Err(ChangeError::BeforeWindow(window.start));
        }
        if window.end <= ctx.now {
            return Err(ChangeError::WindowPassed(window.end));
        }
        // The freezes that hold any of the time the change may still take.
        let held = freeze_in_force(
            freezes,
            &Window::new(ctx.now, window.end),
            &self.proposal.ci_ids,
            &self.proposal.services,
        );
        let mut events = Vec::new();
        if let Some(first) = held.first() {
            let Some(reason) = override_freeze else {
                return Err(Frozen::from(*first).into());
            };
            if self.proposal.kind != ChangeKind::Emergency {
                return Err(ChangeError::OverrideNotAllowed(self.proposal.kind));
            }
            require(
                ctx,
                &[Role::ChangeManager],
                "change managers and admins",
                "override a freeze",
            )?;
            if reason.trim().is_empty() {
                return Err(invalid("override_freeze", "gives no reason").into());
            }
            let role = if ctx
                .actor
                .roles
                .iter()
                .any(|r| r == Role::ChangeManager.as_str())
            {
                Role::ChangeManager
            } else {
                Role::Admin
            };
            events.extend(held.iter().map(|f| ChangeEvent::FreezeOverridden {
                freeze_id: f.freeze_id,
                role,
                reason: reason.clone(),
                by: ctx.actor.id.clone(),
                at: ctx.now,
            }));
        }
        events.push(ChangeEvent::ImplementationStarted {
            by: ctx.actor.id.clone(),
            at: ctx.now,
        });
        Ok(events)
    }

    fn record_implementation(
        &self,
        outcome: Outcome,
        notes: String,
        ci_updates: Vec<CiUpdate>,
        ctx: &Context,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        require(
            ctx,
            &[Role::Engineer, Role::Operator, Role::ChangeManager],
            IMPLEMENTERS,
            "implement a change",
        )?;
        if self.status != ChangeStatus::Implementing {
            return Err(ChangeError::NotImplementing(self.status));
        }
        required("notes", &notes)?;
        if outcome == Outcome::RolledBack && !ci_updates.is_empty() {
            return Err(invalid("ci_updates", "must be empty: the change was rolled back").into());
        }
        for (i, update) in ci_updates.iter().enumerate() {
            if !self.proposal.ci_ids.contains(&update.ci_id) {
                return Err(invalid(
                    format!("ci_updates[{i}].ci_id"),
                    "is not a CI of this change",
                )
                .into());
            }
            if update.attributes.is_empty() {
                return Err(invalid(format!("ci_updates[{i}].attributes"), "is empty").into());
            }
            check_attributes(&update.attributes).map_err(|e| InvalidField {
                field: format!("ci_updates[{i}].{}", e.field),
                problem: e.problem,
            })?;
        }
        Ok(vec![ChangeEvent::ChangeImplemented {
            outcome,
            notes,
            ci_updates,
            by: ctx.actor.id.clone(),
            at: ctx.now,
        }])
    }
}

impl Aggregate for Change {
    const KIND: &'static str = "change";
    type Command = ChangeCommand;
    type Event = ChangeEvent;
    type Error = ChangeError;

    fn decide(
        &self,
        command: ChangeCommand,
        ctx: &Context,
    ) -> Result<Vec<ChangeEvent>, ChangeError> {
        if !matches!(command, ChangeCommand::Raise { .. }) {
            // Who may, before anything about the change: the same answer for a change
            // that is open, ended or absent.
            if !ctx.actor.is_system() && !PARTICIPANT_ROLES.iter().any(|&r| ctx.actor.has_role(r)) {
                return Err(ChangeError::NotPermitted {
                    who: PARTICIPANTS,
                    action: "act on a change",
                });
            }
            self.open()?;
        }
        let by = ctx.actor.id.clone();
        let at = ctx.now;
        match command {
            ChangeCommand::Raise {
                change_id,
                proposal,
                conflicts,
            } => self.raise(change_id, *proposal, conflicts, ctx),
            ChangeCommand::ConfirmCommercialTerms { terms } => {
                require(
                    ctx,
                    &[Role::ProductManager],
                    "product managers",
                    "confirm commercial terms",
                )?;
                if self.status != ChangeStatus::Raised {
                    return Err(ChangeError::NotAwaitingApproval(self.status));
                }
                if !self.proposal.chargeable {
                    return Err(ChangeError::NotChargeable);
                }
                if self.commercial_terms.is_some() {
                    return Err(ChangeError::TermsAlreadyConfirmed);
                }
                required("terms", &terms)?;
                Ok(vec![ChangeEvent::CommercialTermsConfirmed {
                    terms,
                    by,
                    at,
                }])
            }
            ChangeCommand::RecordAdvice {
                recommendation,
                note,
            } => {
                require(
                    ctx,
                    &[Role::ChangeManager],
                    CHANGE_MANAGERS,
                    "record the board's advice",
                )?;
                if self.status != ChangeStatus::Raised {
                    return Err(ChangeError::NotAwaitingApproval(self.status));
                }
                if self.proposal.kind != ChangeKind::Normal {
                    return Err(ChangeError::NoAdvisoryStep(self.proposal.kind));
                }
                if by == self.requested_by {
                    return Err(ChangeError::OwnChange);
                }
                required("note", &note)?;
                Ok(vec![ChangeEvent::ChangeAdvised {
                    recommendation,
                    note,
                    by,
                    at,
                }])
            }
            ChangeCommand::Approve {
                conflicts,
                acknowledged_conflicts,
            } => self.approve(conflicts, &acknowledged_conflicts, ctx),
            ChangeCommand::Reject { reason } => {
                require(
                    ctx,
                    &[Role::ChangeManager],
                    CHANGE_MANAGERS,
                    "reject a change",
                )?;
                if self.status != ChangeStatus::Raised {
                    return Err(ChangeError::NotAwaitingApproval(self.status));
                }
                required("reason", &reason)?;
                Ok(vec![ChangeEvent::ChangeRejected { reason, by, at }])
            }
            ChangeCommand::AmendPlan {
                implementation_plan,
                rollback_plan,
            } => {
                self.before_implementation(ctx, "amend a change's plan")?;
                if implementation_plan.is_none() && rollback_plan.is_none() {
                    return Err(invalid("implementation_plan", "nothing to amend").into());
                }
                if let Some(plan) = &implementation_plan {
                    required("implementation_plan", plan)?;
                }
                if let Some(plan) = &rollback_plan {
                    required("rollback_plan", plan)?;
                }
                Ok(vec![ChangeEvent::ChangePlanAmended {
                    implementation_plan,
                    rollback_plan,
                    approval_withdrawn: self.status == ChangeStatus::Approved,
                    by,
                    at,
                }])
            }
            ChangeCommand::Reschedule { window, conflicts } => {
                self.before_implementation(ctx, "reschedule a change")?;
                window.check("window", ctx.now)?;
                let keeps = self.proposal.kind == ChangeKind::Standard && conflicts.is_empty();
                Ok(vec![ChangeEvent::ChangeRescheduled {
                    window,
                    conflicts,
                    approval_withdrawn: self.status == ChangeStatus::Approved && !keeps,
                    by,
                    at,
                }])
            }
            ChangeCommand::StartImplementation {
                freezes,
                override_freeze,
            } => self.start(&freezes, override_freeze, ctx),
            ChangeCommand::RecordImplementation {
                outcome,
                notes,
                ci_updates,
            } => self.record_implementation(outcome, notes, ci_updates, ctx),
            ChangeCommand::Review { notes, successful } => {
                require(
                    ctx,
                    &[Role::ChangeManager],
                    CHANGE_MANAGERS,
                    "review a change",
                )?;
                if self.status != ChangeStatus::Implemented {
                    return Err(ChangeError::NotImplemented(self.status));
                }
                required("notes", &notes)?;
                Ok(vec![ChangeEvent::ChangeReviewed {
                    notes,
                    successful,
                    by,
                    at,
                }])
            }
            ChangeCommand::Cancel { reason } => {
                self.before_implementation(ctx, "cancel a change")?;
                required("reason", &reason)?;
                Ok(vec![ChangeEvent::ChangeCancelled { reason, by, at }])
            }
        }
    }

    fn evolve(mut self, event: &ChangeEvent) -> Self {
        match event {
            ChangeEvent::ChangeRaised {
                change_id,
                proposal,
                requested_by,
                ..
            } => {
                self.change_id = Some(*change_id);
                self.proposal = (**proposal).clone();
                self.requested_by.clone_from(requested_by);
                self.status = ChangeStatus::Raised;
            }
            ChangeEvent::CommercialTermsConfirmed { terms, .. } => {
                self.commercial_terms = Some(terms.clone());
            }
            ChangeEvent::ChangeAdvised { recommendation, .. } => {
                self.advice = Some(*recommendation);
            }
            ChangeEvent::ChangeApproved { by, .. } => {
                self.approved_by = Some(by.clone());
                self.status = ChangeStatus::Approved;
            }
            ChangeEvent::ChangeRejected { .. } => self.status = ChangeStatus::Rejected,
            ChangeEvent::ChangePlanAmended {
                implementation_plan,
                rollback_plan,
                ..
            } => {
                if let Some(plan) = implementation_plan {
                    self.proposal.implementation_plan.clone_from(plan);
                }
                if let Some(plan) = rollback_plan {
                    self.proposal.rollback_plan.clone_from(plan);
                }
                self.advice = None;
                self.approved_by = None;
                self.status = ChangeStatus::Raised;
            }
            ChangeEvent::ChangeRescheduled {
                window,
                approval_withdrawn,
                ..
            } => {
                self.proposal.window = *window;
                if *approval_withdrawn {
                    self.approved_by = None;
                    self.status = ChangeStatus::Raised;
                }
            }
            ChangeEvent::FreezeOverridden { .. } => {}
            ChangeEvent::ImplementationStarted { .. } => self.status = ChangeStatus::Implementing,
            ChangeEvent::ChangeImplemented { outcome, .. } => {
                self.outcome = Some(*outcome);
                self.status = ChangeStatus::Implemented;
            }
            ChangeEvent::ChangeReviewed { .. } => self.status = ChangeStatus::Closed,
            ChangeEvent::ChangeCancelled { .. } => self.status = ChangeStatus::Cancelled,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::freeze::FreezeScope;
    use crate::kernel::given::{at, given, person};
    use crate::Actor;

    fn change_id() -> Uuid {
        Uuid::from_u128(0xc0)
    }

    fn other_change() -> Uuid {
        Uuid::from_u128(0xc1)
    }

    /// A virtualisation host, and a VM of the social security system that runs on it.
    fn host() -> Uuid {
        Uuid::from_u128(0x40)
    }

    fn vm() -> Uuid {
        Uuid::from_u128(0x41)
    }

    fn engineer() -> Actor {
        person("u-wong", "運維中心", &["engineer"])
    }

    fn change_manager() -> Actor {
        person("u-lam", "運維中心", &["change_manager"])
    }

    fn product_manager() -> Actor {
        person("u-ho", "客戶服務部", &["product_manager"])
    }

    fn proposal(kind: ChangeKind) -> ChangeProposal {
        ChangeProposal {
            title: "宿主機內存擴容".into(),
            description: "虛擬化平台主機內存由256GiB擴容至512GiB".into(),
            kind,
            risk: Risk::Medium,
            implementation_plan: "遷移虛擬機,停機,加裝內存,開機自檢,遷回虛擬機".into(),
            rollback_plan: "拆除新增內存,開機,遷回虛擬機".into(),
            window: Window::new(at(10), at(12)),
            ci_ids: vec![host()],
            services: vec!["政務云".into()],
            chargeable: false,
            work_order: None,
            incident: None,
        }
    }

    fn raised_as(proposal: ChangeProposal) -> ChangeEvent {
        ChangeEvent::ChangeRaised {
            change_id: change_id(),
            proposal: Box::new(proposal),
            requested_by: "u-wong".into(),
            conflicts: Vec::new(),
            at: at(8),
        }
    }

    fn raised(kind: ChangeKind) -> ChangeEvent {
        raised_as(proposal(kind))
    }

    fn advised(recommendation: Recommendation) -> ChangeEvent {
        ChangeEvent::ChangeAdvised {
            recommendation,
            note: "變更評審會議:方案可行".into(),
            by: "u-lam".into(),
            at: at(8),
        }
    }

    fn approved() -> ChangeEvent {
        ChangeEvent::ChangeApproved {
            by: ApprovedBy::ChangeManager("u-lam".into()),
            acknowledged_conflicts: Vec::new(),
            at: at(9),
        }
    }

    fn started() -> ChangeEvent {
        ChangeEvent::ImplementationStarted {
            by: "u-wong".into(),
            at: at(10),
        }
    }

    fn implemented() -> ChangeEvent {
        ChangeEvent::ChangeImplemented {
            outcome: Outcome::Succeeded,
            notes: "擴容完成".into(),
            ci_updates: Vec::new(),
            by: "u-wong".into(),
            at: at(11),
        }
    }

    /// A normal change the board advised on and a change manager approved.
    fn approved_normal() -> Vec<ChangeEvent> {
        vec![
            raised(ChangeKind::Normal),
            advised(Recommendation::Approve),
            approved(),
        ]
    }

    fn approve() -> ChangeCommand {
        ChangeCommand::Approve {
            conflicts: Vec::new(),
            acknowledged_conflicts: Vec::new(),
        }
    }

    fn start(freezes: Vec<FreezeFact>, override_freeze: Option<&str>) -> ChangeCommand {
        ChangeCommand::StartImplementation {
            freezes,
            override_freeze: override_freeze.map(Into::into),
        }
    }

    fn conflict_with_other_on(other_ci: Uuid) -> Conflict {
        Conflict {
            change_id: other_change(),
            ci_id: host(),
            other_ci_id: other_ci,
            overlap: Window::new(at(11), at(12)),
        }
    }

    /// The year-end close freezes the host from 09:00 to 18:00.
    fn year_end_freeze() -> FreezeFact {
        FreezeFact {
            freeze_id: Uuid::from_u128(0xf1),
            name: "年終結算".into(),
            window: Window::new(at(9), at(18)),
            scope: FreezeScope {
                ci_ids: vec![host()],
                services: Vec::new(),
            },
        }
    }

    #[test]
    fn a_standard_change_without_conflicts_is_pre_authorised_when_raised() {
        given::<Change>([])
            .at(at(8))
            .when(
                ChangeCommand::Raise {
                    change_id: change_id(),
                    proposal: Box::new(proposal(ChangeKind::Standard)),
                    conflicts: Vec::new(),
                },
                &engineer(),
            )
            .then([
                raised(ChangeKind::Standard),
                ChangeEvent::ChangeApproved {
                    by: ApprovedBy::PreAuthorised,
                    acknowledged_conflicts: Vec::new(),
                    at: at(8),
                },
            ]);
    }

    #[test]
    fn a_standard_change_in_conflict_or_chargeable_waits_for_a_change_manager() {
        let raise = |proposal, conflicts| ChangeCommand::Raise {
            change_id: change_id(),
            proposal: Box::new(proposal),
            conflicts,
        };
        let events = given::<Change>([])
            .at(at(8))
            .when(
                raise(
                    proposal(ChangeKind::Standard),
                    vec![conflict_with_other_on(host())],
                ),
                &engineer(),
            )
            .events();
        assert!(matches!(
            events.as_slice(),
            [ChangeEvent::ChangeRaised { conflicts, .. }] if conflicts.len() == 1
        ));
        let chargeable = ChangeProposal {
            chargeable: true,
            ..proposal(ChangeKind::Standard)
        };
        given::<Change>([])
            .at(at(8))
            .when(raise(chargeable.clone(), Vec::new()), &engineer())
            .then([raised_as(chargeable)]);
    }

    #[test]
    fn a_standard_change_is_raised_with_both_plans() {
        let without_rollback = ChangeProposal {
            rollback_plan: " ".into(),
            ..proposal(ChangeKind::Standard)
        };
        given::<Change>([])
            .at(at(8))
            .when(
                ChangeCommand::Raise {
                    change_id: change_id(),
                    proposal: Box::new(without_rollback),
                    conflicts: Vec::new(),
                },
                &engineer(),
            )
            .then_err(invalid("rollback_plan", "is required for a standard change").into());
    }

    #[test]
    fn a_change_is_raised_by_engineers_the_service_desk_change_managers_and_operators() {
        let raise = || ChangeCommand::Raise {
            change_id: change_id(),
            proposal: Box::new(proposal(ChangeKind::Normal)),
            conflicts: Vec::new(),
        };
        for roles in [
            ["engineer"],
            ["service_desk"],
            ["change_manager"],
            ["operator"],
        ] {
            given::<Change>([])
                .at(at(8))
                .when(raise(), &person("u-wong", "運維中心", &roles))
                .events();
        }
        given::<Change>([])
            .at(at(8))
            .when(raise(), &person("u-chan", "財政局", &["requester"]))
            .then_err(ChangeError::NotPermitted {
                who: RAISERS,
                action: "raise a change",
            });
    }

    #[test]
    fn a_change_window_ends_after_it_starts_and_is_still_ahead() {
        let raise = |start, end| ChangeCommand::Raise {
            change_id: change_id(),
            proposal: Box::new(ChangeProposal {
                window: Window::new(at(start), at(end)),
                ..proposal(ChangeKind::Normal)
            }),
            conflicts: Vec::new(),
        };
        given::<Change>([])
            .at(at(8))
            .when(raise(12, 10), &engineer())
            .then_err(invalid("window.end", "is not after window.start").into());
        given::<Change>([])
            .at(at(8))
            .when(raise(6, 7), &engineer())
            .then_err(invalid("window.end", "is already past").into());
    }

    #[test]
    fn a_chargeable_change_needs_the_product_managers_confirmation_before_approval() {
        let chargeable = raised_as(ChangeProposal {
            chargeable: true,
            ..proposal(ChangeKind::Emergency)
        });
        given::<Change>([chargeable.clone()])
            .when(approve(), &change_manager())
            .then_err(ChangeError::TermsNotConfirmed);
        let confirm = || ChangeCommand::ConfirmCommercialTerms {
            terms: "按合同單價計費,每GiB內存每月20元".into(),
        };
        given::<Change>([chargeable.clone()])
            .when(confirm(), &engineer())
            .then_err(ChangeError::NotPermitted {
                who: "product managers",
                action: "confirm commercial terms",
            });
        let confirmed = ChangeEvent::CommercialTermsConfirmed {
            terms: "按合同單價計費,每GiB內存每月20元".into(),
            by: "u-ho".into(),
            at: at(9),
        };
        given::<Change>([chargeable.clone()])
            .when(confirm(), &product_manager())
            .then([confirmed.clone()]);
        given::<Change>([chargeable, confirmed])
            .when(approve(), &change_manager())
            .then([ChangeEvent::ChangeApproved {
                by: ApprovedBy::ChangeManager("u-lam".into()),
                acknowledged_conflicts: Vec::new(),
                at: at(9),
            }]);
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(confirm(), &product_manager())
            .then_err(ChangeError::NotChargeable);
    }

    #[test]
    fn a_normal_change_needs_the_boards_advice_in_favour_before_approval() {
        given::<Change>([raised(ChangeKind::Normal)])
            .when(approve(), &change_manager())
            .then_err(ChangeError::NoAdvice);
        given::<Change>([raised(ChangeKind::Normal), advised(Recommendation::Reject)])
            .when(approve(), &change_manager())
            .then_err(ChangeError::AdvisedAgainst);
        given::<Change>([
            raised(ChangeKind::Normal),
            advised(Recommendation::Reject),
            advised(Recommendation::Approve),
        ])
        .when(approve(), &change_manager())
        .then([approved()]);
    }

    #[test]
    fn the_board_advises_on_normal_changes_only() {
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(
                ChangeCommand::RecordAdvice {
                    recommendation: Recommendation::Approve,
                    note: "同意".into(),
                },
                &change_manager(),
            )
            .then_err(ChangeError::NoAdvisoryStep(ChangeKind::Emergency));
    }

    #[test]
    fn a_change_whose_window_has_passed_is_rescheduled_before_approval() {
        given::<Change>([raised(ChangeKind::Emergency)])
            .at(at(12))
            .when(approve(), &change_manager())
            .then_err(ChangeError::WindowPassed(at(12)));
    }

    #[test]
    fn an_emergency_change_is_approved_without_the_board() {
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(approve(), &change_manager())
            .then([approved()]);
    }

    #[test]
    fn the_requester_cannot_advise_on_or_approve_their_own_change() {
        let requester = person("u-wong", "運維中心", &["engineer", "change_manager"]);
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(approve(), &requester)
            .then_err(ChangeError::OwnChange);
        given::<Change>([raised(ChangeKind::Normal)])
            .when(
                ChangeCommand::RecordAdvice {
                    recommendation: Recommendation::Approve,
                    note: "同意".into(),
                },
                &requester,
            )
            .then_err(ChangeError::OwnChange);
    }

    #[test]
    fn only_a_change_manager_approves() {
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(approve(), &person("u-yip", "運維中心", &["engineer"]))
            .then_err(ChangeError::NotPermitted {
                who: CHANGE_MANAGERS,
                action: "approve a change",
            });
    }

    #[test]
    fn a_change_without_both_plans_is_not_approved() {
        let no_rollback = raised_as(ChangeProposal {
            rollback_plan: String::new(),
            ..proposal(ChangeKind::Emergency)
        });
        given::<Change>([no_rollback.clone()])
            .when(approve(), &change_manager())
            .then_err(ChangeError::MissingPlan("rollback_plan"));
        let written = ChangeEvent::ChangePlanAmended {
            implementation_plan: None,
            rollback_plan: Some("拆除新增內存".into()),
            approval_withdrawn: false,
            by: "u-wong".into(),
            at: at(9),
        };
        given::<Change>([no_rollback, written])
            .when(approve(), &change_manager())
            .then([approved()]);
    }

    #[test]
    fn no_implementation_starts_without_approval() {
        given::<Change>([raised(ChangeKind::Normal), advised(Recommendation::Approve)])
            .at(at(10))
            .when(start(Vec::new(), None), &engineer())
            .then_err(ChangeError::NotApproved(ChangeStatus::Raised));
    }

    #[test]
    fn no_implementation_starts_without_both_plans() {
        // A history from before approval required the plans.
        let no_plan = raised_as(ChangeProposal {
            implementation_plan: String::new(),
            ..proposal(ChangeKind::Emergency)
        });
        given::<Change>([no_plan, approved()])
            .at(at(10))
            .when(start(Vec::new(), None), &engineer())
            .then_err(ChangeError::MissingPlan("implementation_plan"));
    }

    #[test]
    fn an_approved_change_starts_within_its_window_only() {
        given::<Change>(approved_normal())
            .at(at(10))
            .when(start(Vec::new(), None), &engineer())
            .then([started()]);
        given::<Change>(approved_normal())
            .at(at(9))
            .when(start(Vec::new(), None), &engineer())
            .then_err(ChangeError::BeforeWindow(at(10)));
        given::<Change>(approved_normal())
            .at(at(12))
            .when(start(Vec::new(), None), &engineer())
            .then_err(ChangeError::WindowPassed(at(12)));
    }

    #[test]
    fn a_freeze_refuses_the_start_of_a_change_on_what_it_holds() {
        given::<Change>(approved_normal())
            .at(at(10))
            .when(start(vec![year_end_freeze()], None), &engineer())
            .then_err(ChangeError::Frozen(Frozen {
                freeze_id: Uuid::from_u128(0xf1),
                name: "年終結算".into(),
                until: at(18),
            }));
        let elsewhere = FreezeFact {
            scope: FreezeScope {
                ci_ids: vec![vm()],
                services: vec!["財政預算系統".into()],
            },
            ..year_end_freeze()
        };
        given::<Change>(approved_normal())
            .at(at(10))
            .when(start(vec![elsewhere], None), &engineer())
            .then([started()]);
    }

    #[test]
    fn a_freeze_later_in_the_window_refuses_the_start_too() {
        let from_eleven = FreezeFact {
            window: Window::new(at(11), at(18)),
            ..year_end_freeze()
        };
        given::<Change>(approved_normal())
            .at(at(10))
            .when(start(vec![from_eleven], None), &engineer())
            .then_err(ChangeError::Frozen(Frozen {
                freeze_id: Uuid::from_u128(0xf1),
                name: "年終結算".into(),
                until: at(18),
            }));
    }

    #[test]
    fn a_change_manager_overrides_a_freeze_for_an_emergency_change_with_a_reason() {
        given::<Change>([raised(ChangeKind::Emergency), approved()])
            .at(at(10))
            .when(
                start(vec![year_end_freeze()], Some("宿主機內存故障,社保系統中斷")),
                &change_manager(),
            )
            .then([
                ChangeEvent::FreezeOverridden {
                    freeze_id: Uuid::from_u128(0xf1),
                    role: Role::ChangeManager,
                    reason: "宿主機內存故障,社保系統中斷".into(),
                    by: "u-lam".into(),
                    at: at(10),
                },
                ChangeEvent::ImplementationStarted {
                    by: "u-lam".into(),
                    at: at(10),
                },
            ]);
        let events = given::<Change>([raised(ChangeKind::Emergency), approved()])
            .at(at(10))
            .when(
                start(vec![year_end_freeze()], Some("故障搶修")),
                &person("u-root", "運維中心", &["admin"]),
            )
            .events();
        assert!(matches!(
            events[0],
            ChangeEvent::FreezeOverridden {
                role: Role::Admin,
                ..
            }
        ));
    }

    #[test]
    fn a_freeze_is_not_overridden_for_a_normal_change_without_a_reason_or_by_an_engineer() {
        given::<Change>(approved_normal())
            .at(at(10))
            .when(
                start(vec![year_end_freeze()], Some("趕進度")),
                &change_manager(),
            )
            .then_err(ChangeError::OverrideNotAllowed(ChangeKind::Normal));
        given::<Change>([raised(ChangeKind::Emergency), approved()])
            .at(at(10))
            .when(start(vec![year_end_freeze()], Some(" ")), &change_manager())
            .then_err(invalid("override_freeze", "gives no reason").into());
        given::<Change>([raised(ChangeKind::Emergency), approved()])
            .at(at(10))
            .when(
                start(vec![year_end_freeze()], Some("故障搶修")),
                &engineer(),
            )
            .then_err(ChangeError::NotPermitted {
                who: "change managers and admins",
                action: "override a freeze",
            });
    }

    #[test]
    fn changes_on_the_same_ci_in_overlapping_windows_conflict() {
        let this = Scheduled {
            change_id: change_id(),
            window: Window::new(at(10), at(12)),
            ci_ids: vec![host()],
        };
        let other = Scheduled {
            change_id: other_change(),
            window: Window::new(at(11), at(14)),
            ci_ids: vec![host()],
        };
        let found = conflicts(&this, &[this.clone(), other], &|_| Vec::new());
        assert_eq!(found, vec![conflict_with_other_on(host())]);
    }

    #[test]
    fn changes_on_a_host_and_a_vm_on_it_conflict() {
        let on_host = Scheduled {
            change_id: change_id(),
            window: Window::new(at(10), at(12)),
            ci_ids: vec![host()],
        };
        let on_vm = Scheduled {
            change_id: other_change(),
            window: Window::new(at(11), at(14)),
            ci_ids: vec![vm()],
        };
        let related = |ci: Uuid| {
            if ci == host() {
                vec![vm()]
            } else if ci == vm() {
                vec![host()]
            } else {
                Vec::new()
            }
        };
        assert_eq!(
            conflicts(&on_host, std::slice::from_ref(&on_vm), &related),
            vec![conflict_with_other_on(vm())]
        );
        assert_eq!(
            conflicts(&on_vm, std::slice::from_ref(&on_host), &related),
            vec![Conflict {
                change_id: change_id(),
                ci_id: vm(),
                other_ci_id: host(),
                overlap: Window::new(at(11), at(12)),
            }]
        );
        assert_eq!(conflicts(&on_host, &[on_vm], &|_| Vec::new()), Vec::new());
    }

    #[test]
    fn changes_back_to_back_do_not_conflict() {
        let this = Scheduled {
            change_id: change_id(),
            window: Window::new(at(10), at(12)),
            ci_ids: vec![host()],
        };
        let next = Scheduled {
            change_id: other_change(),
            window: Window::new(at(12), at(14)),
            ci_ids: vec![host()],
        };
        assert_eq!(conflicts(&this, &[next], &|_| Vec::new()), Vec::new());
    }

    #[test]
    fn an_unacknowledged_conflict_refuses_approval() {
        let approve_with = |acknowledged| ChangeCommand::Approve {
            conflicts: vec![conflict_with_other_on(host())],
            acknowledged_conflicts: acknowledged,
        };
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(approve_with(Vec::new()), &change_manager())
            .then_err(ChangeError::UnacknowledgedConflicts(vec![other_change()]));
        given::<Change>([raised(ChangeKind::Emergency)])
            .when(approve_with(vec![other_change()]), &change_manager())
            .then([ChangeEvent::ChangeApproved {
                by: ApprovedBy::ChangeManager("u-lam".into()),
                acknowledged_conflicts: vec![conflict_with_other_on(host())],
                at: at(9),
            }]);
    }

    #[test]
    fn rescheduling_withdraws_the_approval_of_a_normal_change() {
        let reschedule = || ChangeCommand::Reschedule {
            window: Window::new(at(20), at(22)),
            conflicts: Vec::new(),
        };
        let rescheduled = ChangeEvent::ChangeRescheduled {
            window: Window::new(at(20), at(22)),
            conflicts: Vec::new(),
            approval_withdrawn: true,
            by: "u-wong".into(),
            at: at(9),
        };
        given::<Change>(approved_normal())
            .when(reschedule(), &engineer())
            .then([rescheduled.clone()]);
        let mut history = approved_normal();
        history.push(rescheduled);
        given::<Change>(history.clone())
            .at(at(20))
            .when(start(Vec::new(), None), &engineer())
            .then_err(ChangeError::NotApproved(ChangeStatus::Raised));
        // The board's advice still holds: the plan did not change.
        given::<Change>(history)
            .when(approve(), &change_manager())
            .then([approved()]);
    }

    #[test]
    fn a_standard_change_keeps_its_approval_when_rescheduled_without_conflict() {
        let pre_authorised = ChangeEvent::ChangeApproved {
            by: ApprovedBy::PreAuthorised,
            acknowledged_conflicts: Vec::new(),
            at: at(8),
        };
        let reschedule = |conflicts| ChangeCommand::Reschedule {
            window: Window::new(at(20), at(22)),
            conflicts,
        };
        let history = [raised(ChangeKind::Standard), pre_authorised];
        let withdrawn = |events: Vec<ChangeEvent>| match &events[..] {
            [ChangeEvent::ChangeRescheduled {
                approval_withdrawn, ..
            }] => *approval_withdrawn,
            other => panic!("unexpected {other:?}"),
        };
        assert!(!withdrawn(
            given::<Change>(history.clone())
                .when(reschedule(Vec::new()), &engineer())
                .events()
        ));
        assert!(withdrawn(
            given::<Change>(history)
                .when(
                    reschedule(vec![conflict_with_other_on(host())]),
                    &engineer()
                )
                .events()
        ));
    }

    #[test]
    fn amending_the_plan_withdraws_the_approval_and_the_boards_advice() {
        let amended = ChangeEvent::ChangePlanAmended {
            implementation_plan: Some("分兩批遷移虛擬機後加裝內存".into()),
            rollback_plan: None,
            approval_withdrawn: true,
            by: "u-wong".into(),
            at: at(9),
        };
        given::<Change>(approved_normal())
            .when(
                ChangeCommand::AmendPlan {
                    implementation_plan: Some("分兩批遷移虛擬機後加裝內存".into()),
                    rollback_plan: None,
                },
                &engineer(),
            )
            .then([amended.clone()]);
        let mut history = approved_normal();
        history.push(amended);
        given::<Change>(history)
            .when(approve(), &change_manager())
            .then_err(ChangeError::NoAdvice);
    }

    #[test]
    fn only_the_requester_or_a_change_manager_amends_moves_or_cancels_a_change() {
        given::<Change>(approved_normal())
            .when(
                ChangeCommand::Cancel {
                    reason: "不需要了".into(),
                },
                &person("u-yip", "運維中心", &["engineer"]),
            )
            .then_err(ChangeError::NotPermitted {
                who: OWNERS,
                action: "cancel a change",
            });
        given::<Change>(approved_normal())
            .at(at(9))
            .when(
                ChangeCommand::Cancel {
                    reason: "業務部門要求延後".into(),
                },
                &change_manager(),
            )
            .then([ChangeEvent::ChangeCancelled {
                reason: "業務部門要求延後".into(),
                by: "u-lam".into(),
                at: at(9),
            }]);
    }

    #[test]
    fn someone_who_takes_no_part_in_changes_learns_nothing_of_one() {
        let cancelled = ChangeEvent::ChangeCancelled {
            reason: "x".into(),
            by: "u-lam".into(),
            at: at(9),
        };
        let mut ended = approved_normal();
        ended.push(cancelled);
        let chan = person("u-chan", "財政局", &["requester"]);
        for history in [Vec::new(), approved_normal(), ended] {
            given::<Change>(history)
                .when(ChangeCommand::Cancel { reason: "x".into() }, &chan)
                .then_err(ChangeError::NotPermitted {
                    who: PARTICIPANTS,
                    action: "act on a change",
                });
        }
    }

    #[test]
    fn a_started_change_is_no_longer_cancelled_or_moved() {
        let mut history = approved_normal();
        history.push(started());
        given::<Change>(history.clone())
            .when(
                ChangeCommand::Cancel {
                    reason: "改期".into(),
                },
                &engineer(),
            )
            .then_err(ChangeError::AlreadyStarted(ChangeStatus::Implementing));
        given::<Change>(history)
            .when(
                ChangeCommand::Reschedule {
                    window: Window::new(at(20), at(22)),
                    conflicts: Vec::new(),
                },
                &engineer(),
            )
            .then_err(ChangeError::AlreadyStarted(ChangeStatus::Implementing));
    }

    #[test]
    fn the_implementation_records_the_ci_attributes_it_set() {
        let mut history = approved_normal();
        history.push(started());
        let memory = |ci: Uuid, gib: i64| CiUpdate {
            ci_id: ci,
            attributes: BTreeMap::from([("memory_gib".to_owned(), AttrValue::Integer(gib))]),
        };
        given::<Change>(history.clone())
            .at(at(11))
            .when(
                ChangeCommand::RecordImplementation {
                    outcome: Outcome::Succeeded,
                    notes: "擴容完成,自檢通過".into(),
                    ci_updates: vec![memory(host(), 512)],
                },
                &engineer(),
            )
            .then([ChangeEvent::ChangeImplemented {
                outcome: Outcome::Succeeded,
                notes: "擴容完成,自檢通過".into(),
                ci_updates: vec![memory(host(), 512)],
                by: "u-wong".into(),
                at: at(11),
            }]);
        let record = |outcome, ci_updates| ChangeCommand::RecordImplementation {
            outcome,
            notes: "記錄".into(),
            ci_updates,
        };
        given::<Change>(history.clone())
            .when(
                record(Outcome::Succeeded, vec![memory(vm(), 64)]),
                &engineer(),
            )
            .then_err(invalid("ci_updates[0].ci_id", "is not a CI of this change").into());
        given::<Change>(history.clone())
            .when(
                record(
                    Outcome::Succeeded,
                    vec![CiUpdate {
                        ci_id: host(),
                        attributes: BTreeMap::from([(
                            "memory_gib".to_owned(),
                            AttrValue::Text("512G".into()),
                        )]),
                    }],
                ),
                &engineer(),
            )
            .then_err(
                invalid(
                    "ci_updates[0].attributes.memory_gib",
                    "must be a whole number",
                )
                .into(),
            );
        given::<Change>(history)
            .when(
                record(Outcome::RolledBack, vec![memory(host(), 512)]),
                &engineer(),
            )
            .then_err(invalid("ci_updates", "must be empty: the change was rolled back").into());
    }

    #[test]
    fn the_review_closes_an_implemented_change() {
        let mut history = approved_normal();
        history.extend([started(), implemented()]);
        let review = || ChangeCommand::Review {
            notes: "按計劃完成,無業務影響".into(),
            successful: true,
        };
        given::<Change>(history.clone())
            .at(at(13))
            .when(review(), &change_manager())
            .then([ChangeEvent::ChangeReviewed {
                notes: "按計劃完成,無業務影響".into(),
                successful: true,
                by: "u-lam".into(),
                at: at(13),
            }]);
        given::<Change>(approved_normal())
            .when(review(), &change_manager())
            .then_err(ChangeError::NotImplemented(ChangeStatus::Approved));
    }

    #[test]
    fn a_closed_change_takes_no_further_commands() {
        let mut history = approved_normal();
        history.extend([
            started(),
            implemented(),
            ChangeEvent::ChangeReviewed {
                notes: "完成".into(),
                successful: true,
                by: "u-lam".into(),
                at: at(13),
            },
        ]);
        given::<Change>(history.clone())
            .when(
                ChangeCommand::Review {
                    notes: "再評審".into(),
                    successful: false,
                },
                &change_manager(),
            )
            .then_err(ChangeError::Ended(ChangeStatus::Closed));
        given::<Change>(history)
            .when(
                ChangeCommand::RecordImplementation {
                    outcome: Outcome::Succeeded,
                    notes: "補錄".into(),
                    ci_updates: Vec::new(),
                },
                &engineer(),
            )
            .then_err(ChangeError::Ended(ChangeStatus::Closed));
    }

    #[test]
    fn a_rejected_or_cancelled_change_takes_no_further_commands() {
        let rejected = ChangeEvent::ChangeRejected {
            reason: "風險過高".into(),
            by: "u-lam".into(),
            at: at(9),
        };
        given::<Change>([raised(ChangeKind::Emergency), rejected])
            .when(approve(), &change_manager())
            .then_err(ChangeError::Ended(ChangeStatus::Rejected));
        let cancelled = ChangeEvent::ChangeCancelled {
            reason: "不需要了".into(),
            by: "u-wong".into(),
            at: at(9),
        };
        given::<Change>([raised(ChangeKind::Emergency), cancelled])
            .when(
                ChangeCommand::AmendPlan {
                    implementation_plan: Some("新方案".into()),
                    rollback_plan: None,
                },
                &engineer(),
            )
            .then_err(ChangeError::Ended(ChangeStatus::Cancelled));
        given::<Change>([])
            .when(approve(), &change_manager())
            .then_err(ChangeError::NotFound);
    }

    #[test]
    fn a_change_is_stored_and_read_back_with_its_ci_updates() {
        let event = ChangeEvent::ChangeImplemented {
            outcome: Outcome::Failed,
            notes: "第二條內存未識別".into(),
            ci_updates: vec![CiUpdate {
                ci_id: host(),
                attributes: BTreeMap::from([
                    ("memory_gib".to_owned(), AttrValue::Integer(384)),
                    ("model".to_owned(), AttrValue::Text("R740".into())),
                ]),
            }],
            by: "u-wong".into(),
            at: at(11),
        };
        let stored = event.to_new_event().unwrap();
        assert_eq!(stored.event_type, "ChangeImplemented");
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<ChangeEvent>(&json).unwrap(), event);
    }
}
