//! Change management over GraphQL: change requests with their plans, window, CIs and
//! services; the product manager's confirmation of a chargeable change, the change
//! advisory board's advice and the change manager's approval; implementation and review;
//! freeze windows, and the compliance list of every freeze an emergency change overrode.
//!
//! The facts a change command carries from elsewhere are gathered here from the read
//! models: the conflicts with other changes (on the same CI, or on a CI the CMDB relates
//! to it in either direction: the host of a VM, the VMs on a host) and the freezes in
//! force (a freeze on a CI holds the CIs related to it too). A change that set CI
//! attributes updates the CMDB through CI events, right after it is recorded.

use std::collections::BTreeMap;

use async_graphql::{
    ComplexObject, Context, Enum, InputObject, Json, Object, Result, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use opsledger_domain::changes::change::{
    ApprovedBy, Change as ChangeAggregate, ChangeCommand, ChangeError, ChangeProposal, CiUpdate,
    Conflict, Scheduled, Window,
};
use opsledger_domain::changes::freeze::{FreezeCommand, FreezeError, FreezeScope, FreezeWindow};
use opsledger_domain::kernel::aggregate::{Aggregate, Context as DomainContext};
use opsledger_domain::resources::cmdb::{
    AttrValue, CiCommand, CiError, ConfigurationItem as CiAggregate,
};
use opsledger_domain::Actor;
use opsledger_projections::changes::{ChangeView, FreezeView, OverrideRecord};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::kit::access::staff;
use crate::kit::errors::{bad_input, error, internal, Code};
use crate::kit::ids;
use crate::kit::{command_id, domain_context, new_id, Payload};
use crate::kit::{current_models, cursor, ledger, models, page, page_in_order, Page};
use crate::{CommandError, Operation, OperationError};

/// How a change is authorised.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::changes::change::ChangeKind")]
pub enum ChangeKind {
    /// Routine and pre-authorised: approved as raised when neither chargeable nor in
    /// conflict.
    Standard,
    /// Advised on by the change advisory board, then approved by a change manager.
    Normal,
    /// Approved by a change manager without the board; the only kind that may override a
    /// freeze.
    Emergency,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::changes::change::Risk")]
pub enum ChangeRisk {
    Low,
    Medium,
    High,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::changes::change::ChangeStatus")]
pub enum ChangeStatus {
    /// Waiting for commercial confirmation, advice or approval.
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

/// The change advisory board's advice.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::changes::change::Recommendation")]
pub enum ChangeRecommendation {
    Approve,
    Reject,
}

/// How an implementation ended.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::changes::change::Outcome")]
pub enum ChangeOutcome {
    Succeeded,
    /// Left as it was when it failed: the CI updates say what was changed.
    Failed,
    /// Put back as it was: no CI changed.
    RolledBack,
}

/// A half-open period `[start, end)`.
#[derive(SimpleObject)]
pub struct ChangeWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl From<Window> for ChangeWindow {
    fn from(w: Window) -> Self {
        ChangeWindow {
            start: w.start,
            end: w.end,
        }
    }
}

/// Another change in an overlapping window on the same CI or a related one.
#[derive(SimpleObject)]
pub struct ChangeConflict {
    /// The other change.
    pub change: ID,
    /// This change's CI.
    pub configuration_item: ID,
    /// The other change's CI: the same, or one the CMDB relates to it.
    pub other_configuration_item: ID,
    /// The period both windows share.
    pub overlap: ChangeWindow,
}

fn conflict_node(c: &Conflict) -> ChangeConflict {
    ChangeConflict {
        change: ids::global(ChangeAggregate::KIND, c.change_id),
        configuration_item: ids::global(CiAggregate::KIND, c.ci_id),
        other_configuration_item: ids::global(CiAggregate::KIND, c.other_ci_id),
        overlap: c.overlap.into(),
    }
}

#[derive(SimpleObject)]
pub struct ChangeTerms {
    pub terms: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct ChangeAdvice {
    pub recommendation: ChangeRecommendation,
    pub note: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// When an amended plan made it no longer hold.
    pub withdrawn_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct ChangeApproval {
    /// The change manager; null for a standard change pre-authorised as raised.
    pub by: Option<String>,
    pub pre_authorised: bool,
    pub at: DateTime<Utc>,
    /// The conflicts the approver accepted.
    pub acknowledged_conflicts: Vec<ChangeConflict>,
    /// When an amended plan or a new window withdrew it.
    pub withdrawn_at: Option<DateTime<Utc>>,
}

/// Attributes a change set on one CI.
#[derive(SimpleObject)]
pub struct ChangeCiUpdate {
    pub configuration_item: ID,
    pub attributes: Json<BTreeMap<String, AttrValue>>,
}

#[derive(SimpleObject)]
pub struct ChangeImplementation {
    pub outcome: ChangeOutcome,
    pub notes: String,
    pub ci_updates: Vec<ChangeCiUpdate>,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct ChangeReview {
    pub notes: String,
    pub successful: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Why, by whom and when (a rejection, a cancellation, a freeze lifted).
#[derive(SimpleObject)]
pub struct Reasoned {
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

fn reasoned(r: &opsledger_projections::changes::Reasoned) -> Reasoned {
    Reasoned {
        reason: r.reason.clone(),
        by: r.by.clone(),
        at: r.at,
    }
}

#[derive(SimpleObject)]
pub struct ChangeHistoryLine {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event_type: String,
    pub summary: String,
}

/// A freeze an emergency change went ahead despite: what compliance lists.
#[derive(SimpleObject)]
pub struct FreezeOverride {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub change: ID,
    pub freeze: ID,
    pub freeze_name: Option<String>,
    /// The role that allowed it: `change_manager` or `admin`.
    pub role: String,
    pub reason: String,
    pub by: String,
}

fn override_node(o: &OverrideRecord, m: &ReadModels) -> FreezeOverride {
    FreezeOverride {
        position: o.position,
        at: o.at,
        change: ids::global(ChangeAggregate::KIND, o.change_id),
        freeze: ids::global(FreezeWindow::KIND, o.freeze_id),
        freeze_name: m.changes.freeze(o.freeze_id).map(|f| f.freeze.name.clone()),
        role: o.role.as_str().to_owned(),
        reason: o.reason.clone(),
        by: o.by.clone(),
    }
}

/// A change request, as it stands now.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Change {
    pub id: ID,
    pub title: String,
    pub description: String,
    pub kind: ChangeKind,
    pub risk: ChangeRisk,
    pub status: ChangeStatus,
    pub implementation_plan: String,
    pub rollback_plan: String,
    pub window: ChangeWindow,
    pub configuration_items: Vec<ID>,
    pub services: Vec<String>,
    pub chargeable: bool,
    pub work_order: Option<ID>,
    pub incident: Option<ID>,
    pub raised_at: DateTime<Utc>,
    pub raised_by: String,
    pub updated_at: DateTime<Utc>,
    /// The conflicts flagged when it was raised or last rescheduled.
    pub flagged_conflicts: Vec<ChangeConflict>,
    pub terms: Option<ChangeTerms>,
    /// Every advice of the board, in order; the latest not withdrawn counts.
    pub advice: Vec<ChangeAdvice>,
    /// Every approval, in order; the latest not withdrawn holds.
    pub approvals: Vec<ChangeApproval>,
    pub started_at: Option<DateTime<Utc>>,
    pub started_by: Option<String>,
    pub implementation: Option<ChangeImplementation>,
    pub review: Option<ChangeReview>,
    pub rejection: Option<Reasoned>,
    pub cancellation: Option<Reasoned>,
    /// The freezes it went ahead despite.
    pub freeze_overrides: Vec<FreezeOverride>,
    pub history: Vec<ChangeHistoryLine>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    scheduled: bool,
}

fn change_node(v: &ChangeView, m: &ReadModels) -> Change {
    let p = v.current();
    let ci = |id: &Uuid| ids::global(CiAggregate::KIND, *id);
    Change {
        id: ids::global(ChangeAggregate::KIND, v.id),
        title: p.title.clone(),
        description: p.description.clone(),
        kind: p.kind.into(),
        risk: p.risk.into(),
        status: v.status.into(),
        implementation_plan: p.implementation_plan.clone(),
        rollback_plan: p.rollback_plan.clone(),
        window: p.window.into(),
        configuration_items: p.ci_ids.iter().map(ci).collect(),
        services: p.services.clone(),
        chargeable: p.chargeable,
        work_order: p.work_order.map(|w| ids::global(ids::WORK_ORDER, w)),
        incident: p.incident.map(|i| ids::global("incident", i)),
        raised_at: v.raised_at,
        raised_by: v.raised_by.clone(),
        updated_at: v.updated_at,
        flagged_conflicts: v.flagged_conflicts.iter().map(conflict_node).collect(),
        terms: v.terms.as_ref().map(|t| ChangeTerms {
            terms: t.terms.clone(),
            by: t.by.clone(),
            at: t.at,
        }),
        advice: v
            .advice
            .iter()
            .map(|a| ChangeAdvice {
                recommendation: a.recommendation.into(),
                note: a.note.clone(),
                by: a.by.clone(),
                at: a.at,
                withdrawn_at: a.withdrawn_at,
            })
            .collect(),
        approvals: v
            .approvals
            .iter()
            .map(|a| ChangeApproval {
                by: match &a.by {
                    ApprovedBy::PreAuthorised => None,
                    ApprovedBy::ChangeManager(id) => Some(id.clone()),
                },
                pre_authorised: a.by == ApprovedBy::PreAuthorised,
                at: a.at,
                acknowledged_conflicts: a
                    .acknowledged_conflicts
                    .iter()
                    .map(conflict_node)
                    .collect(),
                withdrawn_at: a.withdrawn_at,
            })
            .collect(),
        started_at: v.started_at,
        started_by: v.started_by.clone(),
        implementation: v.implementation.as_ref().map(|i| ChangeImplementation {
            outcome: i.outcome.into(),
            notes: i.notes.clone(),
            ci_updates: i
                .ci_updates
                .iter()
                .map(|u| ChangeCiUpdate {
                    configuration_item: ci(&u.ci_id),
                    attributes: Json(u.attributes.clone()),
                })
                .collect(),
            by: i.by.clone(),
            at: i.at,
        }),
        review: v.review.as_ref().map(|r| ChangeReview {
            notes: r.notes.clone(),
            successful: r.successful,
            by: r.by.clone(),
            at: r.at,
        }),
        rejection: v.rejection.as_ref().map(reasoned),
        cancellation: v.cancellation.as_ref().map(reasoned),
        freeze_overrides: m
            .changes
            .overrides_of(v.id)
            .map(|o| override_node(o, m))
            .collect(),
        history: v
            .history
            .iter()
            .map(|h| ChangeHistoryLine {
                position: h.position,
                at: h.at,
                actor: h.actor.clone(),
                event_type: h.event_type.clone(),
                summary: h.summary.clone(),
            })
            .collect(),
        uuid: v.id,
        scheduled: v.state.scheduled().is_some(),
    }
}

#[ComplexObject]
impl Change {
    /// The conflicts with the other changes still scheduled, as the changes and the CMDB
    /// stand now: what an approval must acknowledge. Empty once the change is no longer
    /// scheduled.
    async fn current_conflicts(&self, ctx: &Context<'_>) -> Result<Vec<ChangeConflict>> {
        if !self.scheduled {
            return Ok(Vec::new());
        }
        let m = ledger(ctx).models().await;
        let related = related_in(&m);
        let found = m.changes.conflicts_of(self.uuid, &related);
        Ok(found
            .unwrap_or_default()
            .iter()
            .map(conflict_node)
            .collect())
    }
}

/// What a freeze holds; both lists empty means everything.
#[derive(SimpleObject)]
pub struct FreezeScopeNode {
    pub configuration_items: Vec<ID>,
    pub services: Vec<String>,
    pub everything: bool,
}

#[derive(SimpleObject)]
pub struct FreezeAmendment {
    pub previous_end: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A freeze window.
#[derive(SimpleObject)]
pub struct Freeze {
    pub id: ID,
    pub name: String,
    pub reason: String,
    /// The window as declared, its end as last amended.
    pub window: ChangeWindow,
    /// The period it holds, ending when it was lifted; null when lifted before it began.
    pub in_force: Option<ChangeWindow>,
    pub scope: FreezeScopeNode,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
    pub amendments: Vec<FreezeAmendment>,
    pub lifted: Option<Reasoned>,
}

/// A change, as the operations staff read it (for its field and for `node(id:)`).
pub(crate) fn change_by_id(ctx: &Context<'_>, m: &ReadModels, id: Uuid) -> Result<Option<Change>> {
    staff(ctx)?;
    Ok(m.changes.get(id).map(|v| change_node(v, m)))
}

/// A freeze window (the operations staff).
pub(crate) fn freeze_by_id(ctx: &Context<'_>, m: &ReadModels, id: Uuid) -> Result<Option<Freeze>> {
    staff(ctx)?;
    Ok(m.changes.freeze(id).map(freeze_node))
}

fn freeze_node(f: &FreezeView) -> Freeze {
    let s = &f.freeze;
    Freeze {
        id: ids::global(FreezeWindow::KIND, f.id),
        name: s.name.clone(),
        reason: s.reason.clone(),
        window: s.window.into(),
        in_force: f.fact.as_ref().map(|fact| fact.window.into()),
        scope: FreezeScopeNode {
            configuration_items: s
                .scope
                .ci_ids
                .iter()
                .map(|c| ids::global(CiAggregate::KIND, *c))
                .collect(),
            services: s.scope.services.clone(),
            everything: s.scope.is_everything(),
        },
        declared_at: f.declared_at,
        declared_by: f.declared_by.clone(),
        amendments: f
            .amendments
            .iter()
            .map(|a| FreezeAmendment {
                previous_end: a.previous_end,
                end: a.end,
                by: a.by.clone(),
                at: a.at,
            })
            .collect(),
        lifted: f.lifted.as_ref().map(reasoned),
    }
}

/// The CIs the CMDB relates to a CI, in either direction: what it depends on (a VM's
/// host) and what depends on it (the VMs on a host), as the relationships hold now.
fn related_in(m: &ReadModels) -> impl Fn(Uuid) -> Vec<Uuid> + '_ {
    move |ci| {
        let mut out: Vec<Uuid> = m
            .inventory
            .ci(ci)
            .map(|v| v.state.relations.iter().map(|(_, to)| *to).collect())
            .unwrap_or_default();
        for link in m.inventory.dependents_at(ci, m.position) {
            if !out.contains(&link.source) {
                out.push(link.source);
            }
        }
        out
    }
}

#[derive(Default)]
pub struct ChangeQuery;

#[Object]
impl ChangeQuery {
    /// Change requests, newest first; narrowed by status and by a CI they touch.
    async fn changes(
        &self,
        ctx: &Context<'_>,
        status: Option<ChangeStatus>,
        ci: Option<ID>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Change>> {
        staff(ctx)?;
        let ci = ci
            .map(|c| ids::parse("ci", CiAggregate::KIND, &c))
            .transpose()?;
        let m = models(ctx, at_least).await?;
        let after_key = cursor(after)?;
        let start = after_key.map_or(0, |a| a + 1);
        let status = status.map(opsledger_domain::changes::change::ChangeStatus::from);
        let list: Box<dyn Iterator<Item = &ChangeView>> = match (ci, status) {
            (Some(ci), s) => Box::new(
                m.changes
                    .by_ci(ci)
                    .filter(move |v| s.is_none_or(|s| v.status == s)),
            ),
            (None, Some(s)) => Box::new(m.changes.by_status(s)),
            (None, None) => Box::new(m.changes.newest_first()),
        };
        page(
            list.enumerate().skip(start),
            |v| change_node(v, &m),
            after_key.is_some(),
            first,
            m.position,
        )
    }

    async fn change(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Change>> {
        staff(ctx)?;
        let id = ids::parse("id", ChangeAggregate::KIND, &id)?;
        change_by_id(ctx, &*models(ctx, at_least).await?, id)
    }

    /// The changes still scheduled (raised, approved or being implemented) whose window
    /// overlaps `[from, to)`, by window start.
    async fn change_calendar(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"from\")")
        )]
        from: DateTime<Utc>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"to\")")
        )]
        to: DateTime<Utc>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<Change>> {
        staff(ctx)?;
        if to <= from {
            return Err(bad_input("to", "must be after from"));
        }
        let m = models(ctx, at_least).await?;
        Ok(m.changes
            .in_window(Window::new(from, to))
            .into_iter()
            .map(|v| change_node(v, &m))
            .collect())
    }

    /// Freeze windows, newest first.
    async fn freezes(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Freeze>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        page_in_order(m.changes.freezes(), freeze_node, after, first, m.position)
    }

    /// Every freeze an emergency change overrode, in the order it happened: the change,
    /// the freeze, the role that allowed it, why, who and when.
    async fn freeze_overrides(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<FreezeOverride>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        page_in_order(
            m.changes.overrides().iter(),
            |o| override_node(o, &m),
            after,
            first,
            m.position,
        )
    }
}

// ---------------------------------------------------------------- mutations

#[derive(InputObject)]
pub struct ChangeWindowInput {
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"start\")"))]
    pub start: DateTime<Utc>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"end\")"))]
    pub end: DateTime<Utc>,
}

impl From<&ChangeWindowInput> for Window {
    fn from(w: &ChangeWindowInput) -> Self {
        Window::new(w.start, w.end)
    }
}

#[derive(InputObject)]
pub struct RaiseChangeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"title\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub title: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"description\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub description: Option<String>,
    pub kind: ChangeKind,
    /// Low when absent.
    pub risk: Option<ChangeRisk>,
    /// Required before approval (and when raised, for a standard change).
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"implementationPlan\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub implementation_plan: Option<String>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"rollbackPlan\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub rollback_plan: Option<String>,
    pub window: ChangeWindowInput,
    pub configuration_items: Option<Vec<ID>>,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"services\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub services: Option<Vec<String>>,
    /// The requester pays: a product manager confirms the terms before approval.
    pub chargeable: Option<bool>,
    pub work_order_id: Option<ID>,
    pub incident_id: Option<ID>,
}

#[derive(InputObject)]
pub struct ConfirmChangeTermsInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"terms\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub terms: String,
}

#[derive(InputObject)]
pub struct AdviseChangeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    pub recommendation: ChangeRecommendation,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
}

#[derive(InputObject)]
pub struct ApproveChangeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    /// The other changes whose overlap the approver accepts (see `currentConflicts`).
    pub acknowledged_conflicts: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct ChangeReasonInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct AmendChangePlanInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    /// The new plan; null keeps it.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"implementationPlan\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub implementation_plan: Option<String>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"rollbackPlan\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub rollback_plan: Option<String>,
}

#[derive(InputObject)]
pub struct RescheduleChangeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    pub window: ChangeWindowInput,
}

#[derive(InputObject)]
pub struct StartChangeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    /// Why an emergency change goes ahead despite a freeze (change manager); recorded
    /// for compliance.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"overrideFreeze\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub override_freeze: Option<String>,
}

#[derive(InputObject)]
pub struct CiUpdateInput {
    pub ci_id: ID,
    /// The attributes set, by name: whole numbers, text, or lists of either.
    pub attributes: Json<BTreeMap<String, serde_json::Value>>,
}

#[derive(InputObject)]
pub struct RecordChangeImplementationInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    pub outcome: ChangeOutcome,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"notes\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub notes: String,
    /// The attributes the change set on its CIs; the CMDB is updated with them.
    pub ci_updates: Option<Vec<CiUpdateInput>>,
}

#[derive(InputObject)]
pub struct ReviewChangeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub change_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"notes\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub notes: String,
    pub successful: bool,
}

#[derive(InputObject)]
pub struct DeclareFreezeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
    pub window: ChangeWindowInput,
    /// The CIs it holds (and those related to them); with `services` both empty, it
    /// holds everything.
    pub configuration_items: Option<Vec<ID>>,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"services\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub services: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct AmendFreezeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub freeze_id: ID,
    /// The new end, earlier or later.
    ///
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"end\")"))]
    pub end: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct LiftFreezeInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub freeze_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

/// The input path of a field a change or freeze names (`ci_updates[0].ci_id` →
/// `ciUpdates[0].ciId`); attribute names are kept as they are.
fn input_path(field: &str) -> String {
    match field {
        "ci_ids" => return "configurationItems".to_owned(),
        "scope.services" => return "services".to_owned(),
        _ => {}
    }
    let mut out: Vec<String> = Vec::new();
    let mut verbatim = false;
    for segment in field.split('.') {
        if verbatim {
            out.push(segment.to_owned());
            continue;
        }
        let mut camel = String::new();
        let mut upper = false;
        for c in segment.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                camel.extend(c.to_uppercase());
                upper = false;
            } else {
                camel.push(c);
            }
        }
        verbatim = segment == "attributes";
        out.push(camel);
    }
    out.join(".")
}

/// A refusal as the client sees it: bad input names the input's field.
fn refused(failure: CommandError<OperationError>) -> async_graphql::Error {
    match failure {
        CommandError::Domain(OperationError::Change(ChangeError::Invalid(f)))
        | CommandError::Domain(OperationError::Freeze(FreezeError::Invalid(f))) => {
            bad_input(&input_path(&f.field), f.problem)
        }
        other => other.into(),
    }
}

async fn operate(
    ctx: &Context<'_>,
    domain: &DomainContext,
    client_mutation_id: Option<String>,
    kind: &str,
    id: Uuid,
    operation: Operation,
) -> Result<Payload> {
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let w = ledger(ctx)
        .operate(operation, domain, key)
        .await
        .map_err(refused)?;
    Ok(Payload {
        client_mutation_id,
        id: ids::global(kind, id),
        position: w.position,
    })
}

async fn on_change(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    change_id: &ID,
    command: impl FnOnce(Uuid) -> ChangeCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let id = ids::parse("changeId", ChangeAggregate::KIND, change_id)?;
    operate(
        ctx,
        &domain,
        client_mutation_id,
        ChangeAggregate::KIND,
        id,
        Operation::Change(id, command(id)),
    )
    .await
}

async fn on_freeze(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    freeze_id: &ID,
    command: FreezeCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let id = ids::parse("freezeId", FreezeWindow::KIND, freeze_id)?;
    operate(
        ctx,
        &domain,
        client_mutation_id,
        FreezeWindow::KIND,
        id,
        Operation::Freeze(id, command),
    )
    .await
}

/// The CIs named in `field`, each of which the CMDB must know.
fn known_cis(m: &ReadModels, field: &str, list: Option<&Vec<ID>>) -> Result<Vec<Uuid>> {
    let mut out = Vec::new();
    for (i, id) in list.into_iter().flatten().enumerate() {
        let path = format!("{field}[{i}]");
        let ci = ids::parse(&path, CiAggregate::KIND, id)?;
        if m.inventory.ci(ci).is_none() {
            return Err(bad_input(
                &path,
                format!("there is no configuration item {}", id.as_str()),
            ));
        }
        if !out.contains(&ci) {
            out.push(ci);
        }
    }
    Ok(out)
}

fn no_change(change_id: &ID) -> async_graphql::Error {
    error(
        Code::NotFound,
        format!("there is no change {}", change_id.as_str()),
    )
}

/// The CMDB commands that apply the attributes an implemented change set: one
/// `UpdateAttributes` per CI (a CI named twice takes the later values), each under an id
/// derived from the change and the CI, so whoever issues them (the mutation, or the
/// scheduler after a crash between the change's event and the CI's) does nothing twice;
/// and the actor they run as, the change itself (`system:change-<id>`).
pub fn cmdb_updates(
    change_id: Uuid,
    updates: &[CiUpdate],
) -> (Actor, Vec<(Uuid, CiCommand, Uuid)>) {
    let mut by_ci: Vec<(Uuid, BTreeMap<String, Option<AttrValue>>)> = Vec::new();
    for u in updates {
        let set = u
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())));
        match by_ci.iter_mut().find(|(ci, _)| *ci == u.ci_id) {
            Some((_, changes)) => changes.extend(set),
            None => by_ci.push((u.ci_id, set.collect())),
        }
    }
    let actor = Actor::system(&format!("{}-{change_id}", ChangeAggregate::KIND));
    let commands = by_ci
        .into_iter()
        .map(|(ci_id, changes)| {
            let key = Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("opsledger:change-cmdb:{change_id}:{ci_id}").as_bytes(),
            );
            (ci_id, CiCommand::UpdateAttributes { changes }, key)
        })
        .collect();
    (actor, commands)
}

/// Applies the attributes an implemented change set to the CMDB (see [`cmdb_updates`]).
/// A CI that already has the values, or is gone, is left as it is. The position of the
/// last CI event written, if any.
async fn apply_to_cmdb(
    ctx: &Context<'_>,
    change_id: Uuid,
    updates: &[CiUpdate],
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    let (actor, commands) = cmdb_updates(change_id, updates);
    let domain = DomainContext { actor, now };
    let mut last = None;
    for (ci_id, command, key) in commands {
        match ledger(ctx).ci(ci_id, command, &domain, key).await {
            Ok(w) => last = Some(w.position),
            // Already so, or no longer there: nothing to record.
            Err(CommandError::Domain(
                CiError::Invalid(_) | CiError::Retired | CiError::NotFound,
            )) => {}
            Err(e) => {
                // What the client can do is theirs to know; the cause is logged.
                let mut error = internal(e.report());
                error.message = format!(
                    "the implementation was recorded, but the CMDB update of ci-{ci_id} \
                     failed ({}); the scheduler applies it, or retry the mutation with the \
                     same clientMutationId",
                    error.message
                );
                return Err(error);
            }
        }
    }
    Ok(last)
}

#[derive(Default)]
pub struct ChangeMutation;

#[Object]
impl ChangeMutation {
    /// Raises a change (engineer, service desk, change manager, operator); conflicts with
    /// other changes are flagged. A standard change neither chargeable nor in conflict is
    /// approved as raised.
    async fn raise_change(&self, ctx: &Context<'_>, input: RaiseChangeInput) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let cmid = input.client_mutation_id.as_deref();
        let change_id = new_id(ctx, &domain.actor.id, cmid);
        let work_order = input
            .work_order_id
            .as_ref()
            .map(|w| ids::parse("workOrderId", ids::WORK_ORDER, w))
            .transpose()?;
        let incident = input
            .incident_id
            .as_ref()
            .map(|i| ids::parse("incidentId", "incident", i))
            .transpose()?;
        let window = Window::from(&input.window);
        let (ci_ids, conflicts) = {
            let m = current_models(ctx).await?;
            let ci_ids = known_cis(&m, "configurationItems", input.configuration_items.as_ref())?;
            if work_order.is_some_and(|w| m.desk.work_order(w).is_none()) {
                return Err(bad_input("workOrderId", "names no work order"));
            }
            if incident.is_some_and(|i| m.incidents.get(i).is_none()) {
                return Err(bad_input("incidentId", "names no incident"));
            }
            let candidate = Scheduled {
                change_id,
                window,
                ci_ids: ci_ids.clone(),
            };
            let conflicts = m.changes.conflicts_for(&candidate, &related_in(&m));
            (ci_ids, conflicts)
        };
        let proposal = ChangeProposal {
            title: input.title,
            description: input.description.unwrap_or_default(),
            kind: input.kind.into(),
            risk: input.risk.map_or_else(Default::default, Into::into),
            implementation_plan: input.implementation_plan.unwrap_or_default(),
            rollback_plan: input.rollback_plan.unwrap_or_default(),
            window,
            ci_ids,
            services: input.services.unwrap_or_default(),
            chargeable: input.chargeable.unwrap_or(false),
            work_order,
            incident,
        };
        let command = ChangeCommand::Raise {
            change_id,
            proposal: Box::new(proposal),
            conflicts,
        };
        operate(
            ctx,
            &domain,
            input.client_mutation_id,
            ChangeAggregate::KIND,
            change_id,
            Operation::Change(change_id, command),
        )
        .await
    }

    /// Confirms the commercial terms of a chargeable change (product manager).
    async fn confirm_change_terms(
        &self,
        ctx: &Context<'_>,
        input: ConfirmChangeTermsInput,
    ) -> Result<Payload> {
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::ConfirmCommercialTerms { terms: input.terms }
        })
        .await
    }

    /// Records the change advisory board's advice on a normal change (change manager).
    async fn advise_change(&self, ctx: &Context<'_>, input: AdviseChangeInput) -> Result<Payload> {
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::RecordAdvice {
                recommendation: input.recommendation.into(),
                note: input.note,
            }
        })
        .await
    }

    /// Approves a change (a change manager who did not raise it): its plans written, the
    /// terms confirmed when chargeable, the board in favour when normal, and every
    /// conflict found now acknowledged.
    async fn approve_change(
        &self,
        ctx: &Context<'_>,
        input: ApproveChangeInput,
    ) -> Result<Payload> {
        let id = ids::parse("changeId", ChangeAggregate::KIND, &input.change_id)?;
        let mut acknowledged = Vec::new();
        for (i, c) in input.acknowledged_conflicts.iter().flatten().enumerate() {
            acknowledged.push(ids::parse(
                &format!("acknowledgedConflicts[{i}]"),
                ChangeAggregate::KIND,
                c,
            )?);
        }
        let conflicts = {
            let m = current_models(ctx).await?;
            let related = related_in(&m);
            let found = m.changes.conflicts_of(id, &related);
            found.unwrap_or_default()
        };
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::Approve {
                conflicts,
                acknowledged_conflicts: acknowledged,
            }
        })
        .await
    }

    /// Rejects a change waiting for approval (change manager).
    async fn reject_change(&self, ctx: &Context<'_>, input: ChangeReasonInput) -> Result<Payload> {
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::Reject {
                reason: input.reason,
            }
        })
        .await
    }

    /// Replaces a plan before implementation (the requester or a change manager); the
    /// board's advice and the approval no longer hold.
    async fn amend_change_plan(
        &self,
        ctx: &Context<'_>,
        input: AmendChangePlanInput,
    ) -> Result<Payload> {
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::AmendPlan {
                implementation_plan: input.implementation_plan,
                rollback_plan: input.rollback_plan,
            }
        })
        .await
    }

    /// Moves a change's window before implementation (the requester or a change manager);
    /// conflicts in the new window are flagged.
    async fn reschedule_change(
        &self,
        ctx: &Context<'_>,
        input: RescheduleChangeInput,
    ) -> Result<Payload> {
        let id = ids::parse("changeId", ChangeAggregate::KIND, &input.change_id)?;
        let window = Window::from(&input.window);
        let conflicts = {
            let m = current_models(ctx).await?;
            let v = m
                .changes
                .get(id)
                .ok_or_else(|| no_change(&input.change_id))?;
            let candidate = Scheduled {
                change_id: id,
                window,
                ci_ids: v.current().ci_ids.clone(),
            };
            let related = related_in(&m);
            m.changes.conflicts_for(&candidate, &related)
        };
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::Reschedule { window, conflicts }
        })
        .await
    }

    /// Starts an approved change within its window (engineer, operator, change manager).
    /// A freeze on what it touches, or on a CI related to it, refuses it, unless it is an
    /// emergency change a change manager overrides the freeze for, with a reason.
    async fn start_change(&self, ctx: &Context<'_>, input: StartChangeInput) -> Result<Payload> {
        let id = ids::parse("changeId", ChangeAggregate::KIND, &input.change_id)?;
        let freezes = {
            let m = current_models(ctx).await?;
            match m.changes.get(id) {
                None => Vec::new(),
                Some(v) => {
                    let p = v.current();
                    let related = related_in(&m);
                    let mut reach = p.ci_ids.clone();
                    for ci in &p.ci_ids {
                        for r in related(*ci) {
                            if !reach.contains(&r) {
                                reach.push(r);
                            }
                        }
                    }
                    let mut facts = m.changes.freezes_in_force(p.window, &reach, &p.services);
                    // A freeze holds the CIs related to those it names, as the change
                    // sees them.
                    for fact in &mut facts {
                        let named = fact.scope.ci_ids.clone();
                        for ci in named {
                            for r in related(ci) {
                                if !fact.scope.ci_ids.contains(&r) {
                                    fact.scope.ci_ids.push(r);
                                }
                            }
                        }
                    }
                    facts
                }
            }
        };
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::StartImplementation {
                freezes,
                override_freeze: input.override_freeze,
            }
        })
        .await
    }

    /// Records how the implementation ended and the CI attributes it set (engineer,
    /// operator, change manager); the CMDB is updated with them, one CI event per CI. The
    /// position returned is that of the last CMDB event.
    async fn record_change_implementation(
        &self,
        ctx: &Context<'_>,
        input: RecordChangeImplementationInput,
    ) -> Result<Payload> {
        let mut ci_updates = Vec::new();
        for (i, u) in input.ci_updates.iter().flatten().enumerate() {
            let ci_id = ids::parse(&format!("ciUpdates[{i}].ciId"), CiAggregate::KIND, &u.ci_id)?;
            let mut attributes = BTreeMap::new();
            for (name, value) in &u.attributes.0 {
                let value = serde_json::from_value::<AttrValue>(value.clone()).map_err(|_| {
                    bad_input(
                        &format!("ciUpdates[{i}].attributes.{name}"),
                        "must be a whole number, text, or a list of either",
                    )
                })?;
                attributes.insert(name.clone(), value);
            }
            ci_updates.push(CiUpdate { ci_id, attributes });
        }
        let id = ids::parse("changeId", ChangeAggregate::KIND, &input.change_id)?;
        let now = ledger(ctx).now();
        let applied = ci_updates.clone();
        let mut payload = on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::RecordImplementation {
                outcome: input.outcome.into(),
                notes: input.notes,
                ci_updates,
            }
        })
        .await?;
        if let Some(position) = apply_to_cmdb(ctx, id, &applied, now).await? {
            payload.position = payload.position.max(position);
        }
        Ok(payload)
    }

    /// The post-implementation review, which closes the change (change manager).
    async fn review_change(&self, ctx: &Context<'_>, input: ReviewChangeInput) -> Result<Payload> {
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::Review {
                notes: input.notes,
                successful: input.successful,
            }
        })
        .await
    }

    /// Cancels a change before implementation (the requester or a change manager).
    async fn cancel_change(&self, ctx: &Context<'_>, input: ChangeReasonInput) -> Result<Payload> {
        on_change(ctx, input.client_mutation_id, &input.change_id, |_| {
            ChangeCommand::Cancel {
                reason: input.reason,
            }
        })
        .await
    }

    /// Declares a freeze window on CIs (and those related to them) and services, or on
    /// everything (change manager).
    async fn declare_freeze(
        &self,
        ctx: &Context<'_>,
        input: DeclareFreezeInput,
    ) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let freeze_id = new_id(ctx, &domain.actor.id, input.client_mutation_id.as_deref());
        let ci_ids = {
            let m = current_models(ctx).await?;
            known_cis(&m, "configurationItems", input.configuration_items.as_ref())?
        };
        let command = FreezeCommand::Declare {
            freeze_id,
            name: input.name,
            reason: input.reason,
            window: Window::from(&input.window),
            scope: FreezeScope {
                ci_ids,
                services: input.services.unwrap_or_default(),
            },
        };
        operate(
            ctx,
            &domain,
            input.client_mutation_id,
            FreezeWindow::KIND,
            freeze_id,
            Operation::Freeze(freeze_id, command),
        )
        .await
    }

    /// Moves a freeze's end, earlier or later (change manager).
    async fn amend_freeze(&self, ctx: &Context<'_>, input: AmendFreezeInput) -> Result<Payload> {
        on_freeze(
            ctx,
            input.client_mutation_id,
            &input.freeze_id,
            FreezeCommand::Amend { end: input.end },
        )
        .await
    }

    /// Ends a freeze now (change manager).
    async fn lift_freeze(&self, ctx: &Context<'_>, input: LiftFreezeInput) -> Result<Payload> {
        on_freeze(
            ctx,
            input.client_mutation_id,
            &input.freeze_id,
            FreezeCommand::Lift {
                reason: input.reason,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::input_path;

    #[test]
    fn a_domain_field_is_named_as_the_input_names_it() {
        assert_eq!(input_path("window.end"), "window.end");
        assert_eq!(input_path("ci_ids"), "configurationItems");
        assert_eq!(input_path("ci_updates[0].ci_id"), "ciUpdates[0].ciId");
        assert_eq!(
            input_path("ci_updates[1].attributes.memory_gib"),
            "ciUpdates[1].attributes.memory_gib"
        );
        assert_eq!(input_path("override_freeze"), "overrideFreeze");
        assert_eq!(input_path("scope.services"), "services");
    }
}
