//! Changes and freeze windows as the change manager sees them: each change with its
//! proposal, its approvals, the board's advice, the commercial terms, the implementation
//! and its review, and a history in sentences; every change newest first, by status, by
//! the CI it touches, and by its window; each freeze with who declared, amended and lifted
//! it; and every freeze override, in log order, for compliance.
//!
//! This is also where commands find the facts they carry from other aggregates: the
//! [`Conflict`]s of a change (found with the domain's [`conflicts`], among only the
//! changes still scheduled whose windows overlap, through an index ordered by window
//! start) and the [`FreezeFact`]s of the freezes that hold a window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use chrono::{DateTime, Duration, Utc};
use opsledger_domain::changes::change::{
    conflicts, ApprovedBy, Change, ChangeEvent, ChangeKind, ChangeProposal, ChangeStatus, CiUpdate,
    Conflict, Outcome, Recommendation, Risk, Scheduled, Window,
};
use opsledger_domain::changes::freeze::{FreezeEvent, FreezeFact, FreezeWindow};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent, Role};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_id, stream_kind, Projection};

/// An event of the change and freeze streams, decoded once.
#[derive(Debug)]
pub enum ChangeOrFreeze {
    Change(ChangeEvent),
    Freeze(FreezeEvent),
}

impl ChangeOrFreeze {
    /// The event decoded, when its stream is a change's or a freeze's.
    pub fn of(event: &RecordedEvent) -> Option<Result<ChangeOrFreeze, serde_json::Error>> {
        Some(match stream_kind(&event.stream) {
            Change::KIND => ChangeEvent::from_recorded(event).map(ChangeOrFreeze::Change),
            FreezeWindow::KIND => FreezeEvent::from_recorded(event).map(ChangeOrFreeze::Freeze),
            _ => return None,
        })
    }
}

/// One line of a change's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event_type: String,
    /// What happened, in a sentence.
    pub summary: String,
}

/// The product manager's confirmation of a chargeable change's terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub terms: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// The change advisory board's advice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    pub recommendation: Recommendation,
    pub note: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// When an amended plan made the advice no longer hold.
    pub withdrawn_at: Option<DateTime<Utc>>,
}

/// An approval of a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: ApprovedBy,
    pub at: DateTime<Utc>,
    /// The conflicts the approver accepted.
    pub acknowledged_conflicts: Vec<Conflict>,
    /// When an amended plan or a new window withdrew it.
    pub withdrawn_at: Option<DateTime<Utc>>,
}

/// How an implementation ended, and the CI attributes it set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Implementation {
    pub outcome: Outcome,
    pub notes: String,
    pub ci_updates: Vec<CiUpdate>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// The post-implementation review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub notes: String,
    pub successful: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Why a change was rejected or cancelled, by whom and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoned {
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A change as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeView {
    pub id: Uuid,
    /// The proposal as it was raised; `state.proposal` is as it stands now (plans
    /// amended, window moved).
    pub proposal: ChangeProposal,
    pub status: ChangeStatus,
    /// The change's state, folded with the domain's own `evolve`.
    pub state: Change,
    pub raised_at: DateTime<Utc>,
    pub raised_by: String,
    pub updated_at: DateTime<Utc>,
    /// The conflicts flagged when it was raised or last rescheduled.
    pub flagged_conflicts: Vec<Conflict>,
    pub terms: Option<Terms>,
    /// Every advice of the board, in order; the latest not withdrawn counts.
    pub advice: Vec<Advice>,
    /// Every approval, in order; the latest not withdrawn holds.
    pub approvals: Vec<Approval>,
    pub started_at: Option<DateTime<Utc>>,
    pub started_by: Option<String>,
    pub implementation: Option<Implementation>,
    pub review: Option<Review>,
    pub rejection: Option<Reasoned>,
    pub cancellation: Option<Reasoned>,
    pub history: Vec<Entry>,
    /// Its place in the order raised.
    seq: usize,
}

impl ChangeView {
    /// The proposal as it stands now.
    pub fn current(&self) -> &ChangeProposal {
        &self.state.proposal
    }

    /// The window as it stands now.
    pub fn window(&self) -> Window {
        self.state.proposal.window
    }
}

/// A freeze's change of end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amendment {
    pub previous_end: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A freeze window as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeView {
    pub id: Uuid,
    pub freeze: FreezeWindow,
    /// The freeze as commands carry it now; `None` when it was lifted before it began.
    pub fact: Option<FreezeFact>,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
    pub amendments: Vec<Amendment>,
    pub lifted: Option<Reasoned>,
}

/// A freeze an emergency change went ahead despite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideRecord {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub change_id: Uuid,
    pub freeze_id: Uuid,
    /// The role that allowed it: `change_manager` or `admin`.
    pub role: Role,
    pub reason: String,
    pub by: String,
}

/// The windows of the changes still scheduled, ordered by start.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WindowIndex {
    by_start: BTreeSet<(DateTime<Utc>, DateTime<Utc>, Uuid)>,
    /// How many indexed windows last each number of seconds (rounded up). The longest
    /// says how long before a period a window overlapping it can start.
    spans: BTreeMap<i64, usize>,
}

fn span(window: Window) -> i64 {
    // Rounded up, so no window is longer than its span.
    (window.end - window.start).num_seconds() + 1
}

impl WindowIndex {
    fn insert(&mut self, id: Uuid, window: Window) {
        if self.by_start.insert((window.start, window.end, id)) {
            *self.spans.entry(span(window)).or_default() += 1;
        }
    }

    fn remove(&mut self, id: Uuid, window: Window) {
        if self.by_start.remove(&(window.start, window.end, id)) {
            if let Some(n) = self.spans.get_mut(&span(window)) {
                *n -= 1;
                if *n == 0 {
                    self.spans.remove(&span(window));
                }
            }
        }
    }

    /// The changes whose windows overlap `period`, by window start. Only the windows
    /// starting within the longest span before it are looked at.
    fn overlapping(&self, period: Window) -> impl Iterator<Item = Uuid> + '_ {
        let longest = self.spans.last_key_value().map_or(0, |(s, _)| *s);
        let earliest = period
            .start
            .checked_sub_signed(Duration::seconds(longest))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let from = (earliest, DateTime::<Utc>::MIN_UTC, Uuid::nil());
        let to = (period.end, DateTime::<Utc>::MIN_UTC, Uuid::nil());
        self.by_start
            .range((Bound::Included(from), Bound::Excluded(to)))
            .filter(move |(_, end, _)| period.start < *end)
            .map(|(_, _, id)| *id)
    }
}

/// The read model.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    changes: HashMap<Uuid, ChangeView>,
    /// Every change, in the order raised.
    order: Vec<Uuid>,
    /// The places (in `order`) of the changes of each status.
    by_status: HashMap<ChangeStatus, BTreeSet<usize>>,
    /// The changes touching each CI, in the order raised.
    by_ci: HashMap<Uuid, Vec<Uuid>>,
    /// The changes raised, approved or being implemented, by window.
    windows: WindowIndex,
    freezes: HashMap<Uuid, FreezeView>,
    /// Every freeze, in the order declared.
    freeze_order: Vec<Uuid>,
    /// The freezes with a fact, by the end of the fact's window.
    freeze_ends: BTreeSet<(DateTime<Utc>, Uuid)>,
    overrides: Vec<OverrideRecord>,
}

impl Changes {
    pub fn get(&self, id: Uuid) -> Option<&ChangeView> {
        self.changes.get(&id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Every change, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &ChangeView> + '_ {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.changes.get(id))
    }

    /// The changes of one status, newest first.
    pub fn by_status(&self, status: ChangeStatus) -> impl Iterator<Item = &ChangeView> + '_ {
        self.by_status
            .get(&status)
            .into_iter()
            .flat_map(|places| places.iter().rev())
            .filter_map(|&place| self.changes.get(self.order.get(place)?))
    }

    /// The changes touching a CI, newest first.
    pub fn by_ci(&self, ci_id: Uuid) -> impl Iterator<Item = &ChangeView> + '_ {
        self.by_ci
            .get(&ci_id)
            .into_iter()
            .flat_map(|ids| ids.iter().rev())
            .filter_map(|id| self.changes.get(id))
    }

    /// The changes raised, approved or being implemented whose window overlaps `period`
    /// (half-open), by window start.
    pub fn in_window(&self, period: Window) -> Vec<&ChangeView> {
        self.windows
            .overlapping(period)
            .filter_map(|id| self.changes.get(&id))
            .collect()
    }

    /// The changes raised, approved or being implemented, as conflict detection sees
    /// them, by window start.
    pub fn scheduled(&self) -> Vec<Scheduled> {
        self.windows
            .by_start
            .iter()
            .filter_map(|(_, _, id)| self.changes.get(id)?.state.scheduled())
            .collect()
    }

    /// The conflicts of `candidate` (a change about to be raised or moved) with the
    /// changes still scheduled: what a Raise or Reschedule command carries. `related(ci)`
    /// answers the CIs the CMDB relates to `ci`. Only the changes whose windows overlap
    /// the candidate's are looked at.
    pub fn conflicts_for(
        &self,
        candidate: &Scheduled,
        related: &dyn Fn(Uuid) -> Vec<Uuid>,
    ) -> Vec<Conflict> {
        let others: Vec<Scheduled> = self
            .windows
            .overlapping(candidate.window)
            .filter(|id| *id != candidate.change_id)
            .filter_map(|id| self.changes.get(&id)?.state.scheduled())
            .collect();
        conflicts(candidate, &others, related)
    }

    /// The conflicts of a change as it stands now with the other changes still scheduled:
    /// what an Approve command carries. `None` when there is no such change.
    pub fn conflicts_of(
        &self,
        change_id: Uuid,
        related: &dyn Fn(Uuid) -> Vec<Uuid>,
    ) -> Option<Vec<Conflict>> {
        let view = self.changes.get(&change_id)?;
        let candidate = Scheduled {
            change_id,
            window: view.window(),
            ci_ids: view.current().ci_ids.clone(),
        };
        Some(self.conflicts_for(&candidate, related))
    }

    pub fn freeze(&self, id: Uuid) -> Option<&FreezeView> {
        self.freezes.get(&id)
    }

    /// Every freeze, newest first.
    pub fn freezes(&self) -> impl Iterator<Item = &FreezeView> + '_ {
        self.freeze_order
            .iter()
            .rev()
            .filter_map(|id| self.freezes.get(id))
    }

    /// The facts of the freezes that hold any instant of `window` for an operation on
    /// `ci_ids` and `services`, by start: what a StartImplementation command is given
    /// (for the change's window), and what refuses an automated operation (for the
    /// period it runs). Freezes that ended before `window` are not looked at.
    pub fn freezes_in_force(
        &self,
        window: Window,
        ci_ids: &[Uuid],
        services: &[String],
    ) -> Vec<FreezeFact> {
        let after = (window.start, Uuid::max());
        let mut facts: Vec<FreezeFact> = self
            .freeze_ends
            .range((Bound::Excluded(after), Bound::Unbounded))
            .filter_map(|(_, id)| self.freezes.get(id)?.fact.as_ref())
            .filter(|f| f.covers(&window, ci_ids, services))
            .cloned()
            .collect();
        facts.sort_by_key(|f| (f.window.start, f.freeze_id));
        facts
    }

    /// Every freeze override, in log order.
    pub fn overrides(&self) -> &[OverrideRecord] {
        &self.overrides
    }

    /// The freeze overrides of one change, in log order.
    pub fn overrides_of(&self, change_id: Uuid) -> impl Iterator<Item = &OverrideRecord> + '_ {
        self.overrides
            .iter()
            .filter(move |o| o.change_id == change_id)
    }

    pub fn on_event(&mut self, event: &RecordedEvent, e: &ChangeOrFreeze) {
        match e {
            ChangeOrFreeze::Change(e) => self.on_change(event, e),
            ChangeOrFreeze::Freeze(e) => self.on_freeze(event, e),
        }
    }

    fn on_change(&mut self, event: &RecordedEvent, e: &ChangeEvent) {
        use ChangeEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        if let E::ChangeRaised {
            proposal,
            requested_by,
            ..
        } = e
        {
            if self.changes.contains_key(&id) {
                return;
            }
            for ci in &proposal.ci_ids {
                let ids = self.by_ci.entry(*ci).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            self.changes.insert(
                id,
                ChangeView {
                    id,
                    proposal: (**proposal).clone(),
                    status: ChangeStatus::Raised,
                    state: Change::default(),
                    raised_at: at,
                    raised_by: requested_by.clone(),
                    updated_at: at,
                    flagged_conflicts: Vec::new(),
                    terms: None,
                    advice: Vec::new(),
                    approvals: Vec::new(),
                    started_at: None,
                    started_by: None,
                    implementation: None,
                    review: None,
                    rejection: None,
                    cancellation: None,
                    history: Vec::new(),
                    seq: self.order.len(),
                },
            );
            self.by_status
                .entry(ChangeStatus::Raised)
                .or_default()
                .insert(self.order.len());
            self.order.push(id);
        }
        let summary = self.summary(e);
        let Some(view) = self.changes.get_mut(&id) else {
            return;
        };
        let was = (view.status, view.state.scheduled().map(|s| s.window));
        view.state = std::mem::take(&mut view.state).evolve(e);
        view.status = view.state.status;
        view.updated_at = at;
        view.history.push(Entry {
            position: event.position,
            at,
            actor: by.clone(),
            event_type: event.event_type.clone(),
            summary,
        });
        match e {
            E::ChangeRaised { conflicts, .. } => view.flagged_conflicts.clone_from(conflicts),
            E::CommercialTermsConfirmed { terms, .. } => {
                view.terms = Some(Terms {
                    terms: terms.clone(),
                    by,
                    at,
                });
            }
            E::ChangeAdvised {
                recommendation,
                note,
                ..
            } => view.advice.push(Advice {
                recommendation: *recommendation,
                note: note.clone(),
                by,
                at,
                withdrawn_at: None,
            }),
            E::ChangeApproved {
                by: approved_by,
                acknowledged_conflicts,
                ..
            } => view.approvals.push(Approval {
                by: approved_by.clone(),
                at,
                acknowledged_conflicts: acknowledged_conflicts.clone(),
                withdrawn_at: None,
            }),
            E::ChangeRejected { reason, .. } => {
                view.rejection = Some(Reasoned {
                    reason: reason.clone(),
                    by,
                    at,
                });
            }
            E::ChangePlanAmended {
                approval_withdrawn, ..
            } => {
                for advice in view.advice.iter_mut().filter(|a| a.withdrawn_at.is_none()) {
                    advice.withdrawn_at = Some(at);
                }
                if *approval_withdrawn {
                    withdraw(&mut view.approvals, at);
                }
            }
            E::ChangeRescheduled {
                conflicts,
                approval_withdrawn,
                ..
            } => {
                view.flagged_conflicts.clone_from(conflicts);
                if *approval_withdrawn {
                    withdraw(&mut view.approvals, at);
                }
            }
            E::FreezeOverridden {
                freeze_id,
                role,
                reason,
                ..
            } => self.overrides.push(OverrideRecord {
                position: event.position,
                at,
                change_id: id,
                freeze_id: *freeze_id,
                role: *role,
                reason: reason.clone(),
                by,
            }),
            E::ImplementationStarted { .. } => {
                view.started_at = Some(at);
                view.started_by = Some(by);
            }
            E::ChangeImplemented {
                outcome,
                notes,
                ci_updates,
                ..
            } => {
                view.implementation = Some(Implementation {
                    outcome: *outcome,
                    notes: notes.clone(),
                    ci_updates: ci_updates.clone(),
                    by,
                    at,
                });
            }
            E::ChangeReviewed {
                notes, successful, ..
            } => {
                view.review = Some(Review {
                    notes: notes.clone(),
                    successful: *successful,
                    by,
                    at,
                });
            }
            E::ChangeCancelled { reason, .. } => {
                view.cancellation = Some(Reasoned {
                    reason: reason.clone(),
                    by,
                    at,
                });
            }
        }
        let now = (view.status, view.state.scheduled().map(|s| s.window));
        let seq = view.seq;
        if was.0 != now.0 {
            if let Some(places) = self.by_status.get_mut(&was.0) {
                places.remove(&seq);
                if places.is_empty() {
                    self.by_status.remove(&was.0);
                }
            }
            self.by_status.entry(now.0).or_default().insert(seq);
        }
        if was.1 != now.1 {
            if let Some(window) = was.1 {
                self.windows.remove(id, window);
            }
            if let Some(window) = now.1 {
                self.windows.insert(id, window);
            }
        }
    }

    fn on_freeze(&mut self, event: &RecordedEvent, e: &FreezeEvent) {
        use FreezeEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        if let E::FreezeDeclared { .. } = e {
            if self.freezes.contains_key(&id) {
                return;
            }
            self.freezes.insert(
                id,
                FreezeView {
                    id,
                    freeze: FreezeWindow::default(),
                    fact: None,
                    declared_at: at,
                    declared_by: by.clone(),
                    amendments: Vec::new(),
                    lifted: None,
                },
            );
            self.freeze_order.push(id);
        }
        let Some(view) = self.freezes.get_mut(&id) else {
            return;
        };
        if let Some(fact) = &view.fact {
            self.freeze_ends.remove(&(fact.window.end, id));
        }
        view.freeze = std::mem::take(&mut view.freeze).evolve(e);
        view.fact = view.freeze.fact();
        if let Some(fact) = &view.fact {
            self.freeze_ends.insert((fact.window.end, id));
        }
        match e {
            E::FreezeDeclared { .. } => {}
            E::FreezeAmended {
                previous_end, end, ..
            } => view.amendments.push(Amendment {
                previous_end: *previous_end,
                end: *end,
                by,
                at,
            }),
            E::FreezeLifted { reason, .. } => {
                view.lifted = Some(Reasoned {
                    reason: reason.clone(),
                    by,
                    at,
                });
            }
        }
    }

    /// An event in a sentence, for the history.
    fn summary(&self, e: &ChangeEvent) -> String {
        use ChangeEvent as E;
        match e {
            E::ChangeRaised {
                proposal,
                conflicts,
                ..
            } => {
                let mut touching: Vec<String> = Vec::new();
                if !proposal.ci_ids.is_empty() {
                    touching.push(count(proposal.ci_ids.len(), "CI", "CIs"));
                }
                if !proposal.services.is_empty() {
                    touching.push(proposal.services.join(", "));
                }
                format!(
                    "Raised {} change of {} risk{}: {}, in {}, touching {}{}",
                    kind_name(proposal.kind),
                    risk_name(proposal.risk),
                    if proposal.chargeable {
                        ", chargeable"
                    } else {
                        ""
                    },
                    proposal.title,
                    period(proposal.window),
                    touching.join(" and "),
                    flagged(conflicts)
                )
            }
            E::CommercialTermsConfirmed { terms, .. } => {
                format!("Commercial terms confirmed: {terms}")
            }
            E::ChangeAdvised {
                recommendation,
                note,
                ..
            } => match recommendation {
                Recommendation::Approve => {
                    format!("The change advisory board advised approval: {note}")
                }
                Recommendation::Reject => {
                    format!("The change advisory board advised against it: {note}")
                }
            },
            E::ChangeApproved {
                by,
                acknowledged_conflicts,
                ..
            } => {
                let who = match by {
                    ApprovedBy::PreAuthorised => "Pre-authorised as a standard change".to_owned(),
                    ApprovedBy::ChangeManager(id) => format!("Approved by {id}"),
                };
                if acknowledged_conflicts.is_empty() {
                    who
                } else {
                    format!(
                        "{who}, accepting the overlap with {}",
                        changes_named(acknowledged_conflicts)
                    )
                }
            }
            E::ChangeRejected { reason, .. } => format!("Rejected: {reason}"),
            E::ChangePlanAmended {
                implementation_plan,
                rollback_plan,
                approval_withdrawn,
                ..
            } => {
                let plans = match (implementation_plan.is_some(), rollback_plan.is_some()) {
                    (true, true) => "the implementation and rollback plans",
                    (true, false) => "the implementation plan",
                    _ => "the rollback plan",
                };
                if *approval_withdrawn {
                    format!("Amended {plans}; the board's advice and the approval no longer hold")
                } else {
                    format!("Amended {plans}; the board's advice no longer holds")
                }
            }
            E::ChangeRescheduled {
                window,
                conflicts,
                approval_withdrawn,
                ..
            } => format!(
                "Rescheduled to {}{}{}",
                period(*window),
                flagged(conflicts),
                if *approval_withdrawn {
                    "; the approval is withdrawn"
                } else {
                    ""
                }
            ),
            E::FreezeOverridden {
                freeze_id,
                role,
                reason,
                by,
                ..
            } => {
                let name = self
                    .freezes
                    .get(freeze_id)
                    .map_or_else(|| freeze_id.to_string(), |f| f.freeze.name.clone());
                format!(
                    "Went ahead despite the freeze {name}, allowed by {by} as {}: {reason}",
                    role.as_str()
                )
            }
            E::ImplementationStarted { .. } => "Implementation started".to_owned(),
            E::ChangeImplemented {
                outcome,
                notes,
                ci_updates,
                ..
            } => {
                let outcome = match outcome {
                    Outcome::Succeeded => "Implemented",
                    Outcome::Failed => "The implementation failed",
                    Outcome::RolledBack => "Rolled back",
                };
                if ci_updates.is_empty() {
                    format!("{outcome}: {notes}")
                } else {
                    format!(
                        "{outcome}: {notes} (set attributes of {})",
                        count(ci_updates.len(), "CI", "CIs")
                    )
                }
            }
            E::ChangeReviewed {
                notes, successful, ..
            } => format!(
                "Reviewed as {}, and closed: {notes}",
                if *successful {
                    "successful"
                } else {
                    "unsuccessful"
                }
            ),
            E::ChangeCancelled { reason, .. } => format!("Cancelled: {reason}"),
        }
    }
}

/// Marks the approval in force withdrawn at `at`.
fn withdraw(approvals: &mut [Approval], at: DateTime<Utc>) {
    if let Some(approval) = approvals.last_mut().filter(|a| a.withdrawn_at.is_none()) {
        approval.withdrawn_at = Some(at);
    }
}

/// The kind with its article.
fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Standard => "a standard",
        ChangeKind::Normal => "a normal",
        ChangeKind::Emergency => "an emergency",
    }
}

fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

fn period(window: Window) -> String {
    format!(
        "{} – {} UTC",
        window.start.format("%Y-%m-%d %H:%M"),
        window.end.format("%Y-%m-%d %H:%M")
    )
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The other changes of some conflicts, each once.
fn changes_named(conflicts: &[Conflict]) -> String {
    let ids: BTreeSet<Uuid> = conflicts.iter().map(|c| c.change_id).collect();
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn flagged(conflicts: &[Conflict]) -> String {
    if conflicts.is_empty() {
        String::new()
    } else {
        format!("; overlaps with {}", changes_named(conflicts))
    }
}

impl Projection for Changes {
    fn name(&self) -> &'static str {
        "changes"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if let Some(Ok(e)) = ChangeOrFreeze::of(event) {
            self.on_event(event, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opsledger_domain::changes::change::{ChangeCommand, ChangeError};
    use opsledger_domain::changes::freeze::{FreezeCommand, FreezeScope};
    use opsledger_domain::kernel::aggregate::Context;
    use opsledger_domain::resources::cmdb::AttrValue;
    use opsledger_domain::Actor;

    use super::*;
    use crate::test_log::{at, person, Log};

    fn wong() -> Actor {
        person("u-wong", "運維中心", &["engineer"])
    }

    fn lam() -> Actor {
        person("u-lam", "運維中心", &["change_manager"])
    }

    fn chow() -> Actor {
        person("u-chow", "運維中心", &["product_manager"])
    }

    /// A virtualisation host, a VM of the social security system on it, and the core
    /// switch.
    fn host() -> Uuid {
        Uuid::from_u128(0x40)
    }

    fn vm() -> Uuid {
        Uuid::from_u128(0x41)
    }

    fn core_switch() -> Uuid {
        Uuid::from_u128(0x42)
    }

    fn change(n: u128) -> Uuid {
        Uuid::from_u128(0x100 + n)
    }

    fn freeze(n: u128) -> Uuid {
        Uuid::from_u128(0x200 + n)
    }

    fn change_stream(n: u128) -> String {
        format!("change-{}", change(n))
    }

    fn freeze_stream(n: u128) -> String {
        format!("freeze-{}", freeze(n))
    }

    fn window(from: u32, to: u32) -> Window {
        Window::new(at(from), at(to))
    }

    fn unrelated(_: Uuid) -> Vec<Uuid> {
        Vec::new()
    }

    /// The host and the VMs on it.
    fn host_and_vm(ci: Uuid) -> Vec<Uuid> {
        if ci == host() {
            vec![vm()]
        } else if ci == vm() {
            vec![host()]
        } else {
            Vec::new()
        }
    }

    /// What an aggregate's own rules decide on `command` after its stream in `log`.
    fn decide<A: Aggregate>(
        log: &Log,
        stream: &str,
        command: A::Command,
        by: &Actor,
        hour: u32,
    ) -> Result<Vec<A::Event>, A::Error>
    where
        A::Event: DomainEvent,
    {
        let state = log
            .events
            .iter()
            .filter(|e| e.stream == stream)
            .map(|e| <A::Event as DomainEvent>::from_recorded(e).unwrap())
            .fold(A::default(), |s, e| s.evolve(&e));
        state.decide(
            command,
            &Context {
                actor: by.clone(),
                now: at(hour),
            },
        )
    }

    /// Runs `command` through the aggregate's own rules and records what it decides.
    fn run<A: Aggregate>(log: &mut Log, stream: &str, command: A::Command, by: &Actor, hour: u32)
    where
        A::Event: DomainEvent,
    {
        for event in decide::<A>(log, stream, command, by, hour).unwrap() {
            log.record(stream, &event, by, hour);
        }
    }

    fn proposal(kind: ChangeKind, title: &str, window: Window, ci_ids: &[Uuid]) -> ChangeProposal {
        ChangeProposal {
            title: title.into(),
            description: "按方案文件操作".into(),
            kind,
            risk: Risk::Medium,
            implementation_plan: "先遷移虛擬機,再加裝內存".into(),
            rollback_plan: "拆除新內存,遷回虛擬機".into(),
            window,
            ci_ids: ci_ids.to_vec(),
            services: Vec::new(),
            chargeable: false,
            work_order: None,
            incident: None,
        }
    }

    /// Raises a normal change by an engineer at 8:00, with the conflicts the model finds.
    fn raise(log: &mut Log, n: u128, window: Window, ci_ids: &[Uuid]) {
        raise_with(
            log,
            n,
            proposal(ChangeKind::Normal, "擴容", window, ci_ids),
            8,
        );
    }

    fn raise_with(log: &mut Log, n: u128, proposal: ChangeProposal, hour: u32) {
        let found = log.fold::<Changes>().conflicts_for(
            &Scheduled {
                change_id: change(n),
                window: proposal.window,
                ci_ids: proposal.ci_ids.clone(),
            },
            &unrelated,
        );
        run::<Change>(
            log,
            &change_stream(n),
            ChangeCommand::Raise {
                change_id: change(n),
                proposal: Box::new(proposal),
                conflicts: found,
            },
            &wong(),
            hour,
        );
    }

    fn on_change(log: &mut Log, n: u128, command: ChangeCommand, by: &Actor, hour: u32) {
        run::<Change>(log, &change_stream(n), command, by, hour);
    }

    fn advise_and_approve(log: &mut Log, n: u128, hour: u32) {
        on_change(
            log,
            n,
            ChangeCommand::RecordAdvice {
                recommendation: Recommendation::Approve,
                note: "變更顧問委員會同意".into(),
            },
            &lam(),
            hour,
        );
        let found = log
            .fold::<Changes>()
            .conflicts_of(change(n), &unrelated)
            .unwrap();
        let acknowledged = found.iter().map(|c| c.change_id).collect();
        on_change(
            log,
            n,
            ChangeCommand::Approve {
                conflicts: found,
                acknowledged_conflicts: acknowledged,
            },
            &lam(),
            hour,
        );
    }

    fn cancel(log: &mut Log, n: u128, hour: u32) {
        on_change(
            log,
            n,
            ChangeCommand::Cancel {
                reason: "業務部門要求延後".into(),
            },
            &wong(),
            hour,
        );
    }

    fn ids<'a>(views: impl IntoIterator<Item = &'a ChangeView>) -> Vec<Uuid> {
        views.into_iter().map(|v| v.id).collect()
    }

    fn on_host(change_id: Uuid, window: Window) -> Scheduled {
        Scheduled {
            change_id,
            window,
            ci_ids: vec![host()],
        }
    }

    fn conflict(other: Uuid, ci: Uuid, other_ci: Uuid, overlap: Window) -> Conflict {
        Conflict {
            change_id: other,
            ci_id: ci,
            other_ci_id: other_ci,
            overlap,
        }
    }

    #[test]
    fn changes_on_the_same_ci_in_overlapping_windows_are_found_through_the_index() {
        let mut log = Log::default();
        raise(&mut log, 1, window(10, 12), &[host()]);
        raise(&mut log, 2, window(12, 14), &[host()]);
        raise(&mut log, 3, window(10, 12), &[vm()]);
        let changes = log.fold::<Changes>();
        let candidate = on_host(change(9), window(11, 13));
        assert_eq!(
            changes.conflicts_for(&candidate, &unrelated),
            vec![
                conflict(change(1), host(), host(), window(11, 12)),
                conflict(change(2), host(), host(), window(12, 13)),
            ]
        );
        // Back to back with change 2: no conflict.
        assert_eq!(
            changes.conflicts_for(&on_host(change(9), window(14, 16)), &unrelated),
            Vec::new()
        );

        // Raised with them, the new change is flagged, and the others now meet it.
        raise(&mut log, 9, window(11, 13), &[host()]);
        let changes = log.fold::<Changes>();
        assert_eq!(
            changes.get(change(9)).unwrap().flagged_conflicts,
            vec![
                conflict(change(1), host(), host(), window(11, 12)),
                conflict(change(2), host(), host(), window(12, 13)),
            ]
        );
        assert_eq!(
            changes.conflicts_of(change(1), &unrelated),
            Some(vec![conflict(change(9), host(), host(), window(11, 12))])
        );
        assert_eq!(changes.conflicts_of(change(7), &unrelated), None);
    }

    #[test]
    fn a_cancelled_or_closed_change_no_longer_conflicts() {
        let mut log = Log::default();
        raise(&mut log, 1, window(10, 12), &[host()]);
        raise(&mut log, 2, window(12, 14), &[host()]);
        cancel(&mut log, 1, 9);
        advise_and_approve(&mut log, 2, 9);
        let candidate = on_host(change(9), window(11, 13));
        assert_eq!(
            log.fold::<Changes>().conflicts_for(&candidate, &unrelated),
            vec![conflict(change(2), host(), host(), window(12, 13))]
        );
        on_change(
            &mut log,
            2,
            ChangeCommand::StartImplementation {
                freezes: Vec::new(),
                override_freeze: None,
            },
            &wong(),
            12,
        );
        // Being implemented, it still conflicts.
        assert_eq!(
            log.fold::<Changes>()
                .conflicts_for(&candidate, &unrelated)
                .len(),
            1
        );
        on_change(
            &mut log,
            2,
            ChangeCommand::RecordImplementation {
                outcome: Outcome::Succeeded,
                notes: "完成".into(),
                ci_updates: Vec::new(),
            },
            &wong(),
            13,
        );
        on_change(
            &mut log,
            2,
            ChangeCommand::Review {
                notes: "按計劃完成".into(),
                successful: true,
            },
            &lam(),
            13,
        );
        let changes = log.fold::<Changes>();
        assert_eq!(changes.get(change(2)).unwrap().status, ChangeStatus::Closed);
        assert_eq!(changes.conflicts_for(&candidate, &unrelated), Vec::new());
        assert_eq!(changes.scheduled(), Vec::new());
        assert!(changes.in_window(window(0, 23)).is_empty());
    }

    #[test]
    fn changes_on_related_cis_conflict_when_the_cmdb_relates_them() {
        let mut log = Log::default();
        raise(&mut log, 1, window(10, 12), &[host()]);
        let changes = log.fold::<Changes>();
        let on_vm = Scheduled {
            change_id: change(9),
            window: window(11, 13),
            ci_ids: vec![vm()],
        };
        assert_eq!(
            changes.conflicts_for(&on_vm, &host_and_vm),
            vec![conflict(change(1), vm(), host(), window(11, 12))]
        );
        assert_eq!(changes.conflicts_for(&on_vm, &unrelated), Vec::new());
    }

    #[test]
    fn the_window_index_finds_a_long_change_that_began_long_before() {
        let mut log = Log::default();
        raise_with(
            &mut log,
            1,
            proposal(ChangeKind::Normal, "機房搬遷", window(1, 23), &[host()]),
            0,
        );
        raise(&mut log, 2, window(20, 21), &[vm()]);
        raise_with(
            &mut log,
            3,
            proposal(ChangeKind::Normal, "更換網卡", window(5, 6), &[vm()]),
            0,
        );
        let changes = log.fold::<Changes>();
        assert_eq!(
            ids(changes.in_window(window(20, 21))),
            vec![change(1), change(2)]
        );
        assert_eq!(ids(changes.in_window(window(6, 7))), vec![change(1)]);
        assert_eq!(
            changes
                .scheduled()
                .iter()
                .map(|s| s.change_id)
                .collect::<Vec<_>>(),
            vec![change(1), change(3), change(2)]
        );
        // A VM change in the long window conflicts with it through the host.
        let on_vm = Scheduled {
            change_id: change(9),
            window: window(21, 22),
            ci_ids: vec![vm()],
        };
        assert_eq!(
            changes.conflicts_for(&on_vm, &host_and_vm),
            vec![conflict(change(1), vm(), host(), window(21, 22))]
        );
        cancel(&mut log, 1, 9);
        let changes = log.fold::<Changes>();
        assert_eq!(ids(changes.in_window(window(20, 21))), vec![change(2)]);
        assert!(changes.in_window(window(6, 7)).is_empty());
    }

    #[test]
    fn rescheduling_moves_a_change_in_the_window_index() {
        let mut log = Log::default();
        raise(&mut log, 1, window(10, 12), &[host()]);
        on_change(
            &mut log,
            1,
            ChangeCommand::Reschedule {
                window: window(20, 22),
                conflicts: Vec::new(),
            },
            &wong(),
            9,
        );
        let changes = log.fold::<Changes>();
        assert!(changes.in_window(window(10, 12)).is_empty());
        assert_eq!(ids(changes.in_window(window(21, 23))), vec![change(1)]);
        let view = changes.get(change(1)).unwrap();
        assert_eq!(view.proposal.window, window(10, 12));
        assert_eq!(view.window(), window(20, 22));
    }

    #[test]
    fn changes_are_listed_newest_first_by_status_and_by_ci() {
        let mut log = Log::default();
        raise(&mut log, 1, window(10, 12), &[host()]);
        raise(&mut log, 2, window(12, 14), &[host(), vm()]);
        raise(&mut log, 3, window(14, 16), &[vm()]);
        cancel(&mut log, 2, 9);
        let changes = log.fold::<Changes>();
        assert_eq!(changes.len(), 3);
        assert_eq!(
            ids(changes.newest_first()),
            vec![change(3), change(2), change(1)]
        );
        assert_eq!(
            ids(changes.by_status(ChangeStatus::Raised)),
            vec![change(3), change(1)]
        );
        assert_eq!(
            ids(changes.by_status(ChangeStatus::Cancelled)),
            vec![change(2)]
        );
        assert!(changes.by_status(ChangeStatus::Approved).next().is_none());
        assert_eq!(ids(changes.by_ci(host())), vec![change(2), change(1)]);
        assert_eq!(ids(changes.by_ci(vm())), vec![change(3), change(2)]);
        assert!(changes.by_ci(core_switch()).next().is_none());
    }

    #[test]
    fn a_standard_change_without_conflict_is_listed_as_pre_authorised() {
        let mut log = Log::default();
        raise_with(
            &mut log,
            1,
            proposal(
                ChangeKind::Standard,
                "核心交換機例行補丁",
                window(20, 22),
                &[core_switch()],
            ),
            8,
        );
        let changes = log.fold::<Changes>();
        assert_eq!(
            ids(changes.by_status(ChangeStatus::Approved)),
            vec![change(1)]
        );
        assert!(changes.by_status(ChangeStatus::Raised).next().is_none());
        let view = changes.get(change(1)).unwrap();
        assert_eq!(view.approvals[0].by, ApprovedBy::PreAuthorised);
        assert_eq!(
            view.history.last().unwrap().summary,
            "Pre-authorised as a standard change"
        );
        assert_eq!(ids(changes.in_window(window(21, 22))), vec![change(1)]);
    }

    fn declare(log: &mut Log, n: u128, name: &str, window: Window, scope: FreezeScope) {
        run::<FreezeWindow>(
            log,
            &freeze_stream(n),
            FreezeCommand::Declare {
                freeze_id: freeze(n),
                name: name.into(),
                reason: "期間系統須穩定運行".into(),
                window,
                scope,
            },
            &lam(),
            8,
        );
    }

    fn year_end_scope() -> FreezeScope {
        FreezeScope {
            ci_ids: vec![core_switch()],
            services: vec!["財政預算系統".into()],
        }
    }

    fn freeze_ids(facts: &[FreezeFact]) -> Vec<Uuid> {
        facts.iter().map(|f| f.freeze_id).collect()
    }

    #[test]
    fn freezes_in_force_follow_their_scope_their_end_and_their_lifting() {
        let mut log = Log::default();
        declare(&mut log, 1, "年終結算", window(12, 18), year_end_scope());
        declare(
            &mut log,
            2,
            "核心系統升級封網",
            window(20, 22),
            FreezeScope::default(),
        );
        declare(&mut log, 3, "演練", window(10, 11), FreezeScope::default());
        run::<FreezeWindow>(
            &mut log,
            &freeze_stream(3),
            FreezeCommand::Lift {
                reason: "演練取消".into(),
            },
            &lam(),
            9,
        );
        let changes = log.fold::<Changes>();
        let none: &[String] = &[];
        let in_force = |w, cis: &[Uuid], services: &[String]| {
            freeze_ids(&changes.freezes_in_force(w, cis, services))
        };
        assert_eq!(
            in_force(window(13, 14), &[core_switch()], none),
            vec![freeze(1)]
        );
        assert_eq!(
            in_force(window(13, 14), &[host()], none),
            Vec::<Uuid>::new()
        );
        assert_eq!(
            in_force(window(13, 14), &[], &["財政預算系統".to_owned()]),
            vec![freeze(1)]
        );
        // A freeze of everything holds every CI.
        assert_eq!(
            in_force(window(17, 21), &[core_switch()], none),
            vec![freeze(1), freeze(2)]
        );
        assert_eq!(in_force(window(19, 21), &[host()], none), vec![freeze(2)]);
        // Lifted before it began, a freeze holds nothing.
        assert_eq!(
            in_force(window(10, 11), &[host()], none),
            Vec::<Uuid>::new()
        );
        assert_eq!(changes.freeze(freeze(3)).unwrap().fact, None);

        run::<FreezeWindow>(
            &mut log,
            &freeze_stream(1),
            FreezeCommand::Amend { end: at(16) },
            &lam(),
            9,
        );
        let changes = log.fold::<Changes>();
        let in_force = |w| freeze_ids(&changes.freezes_in_force(w, &[core_switch()], none));
        assert_eq!(in_force(window(15, 16)), vec![freeze(1)]);
        assert_eq!(in_force(window(16, 17)), Vec::<Uuid>::new());

        run::<FreezeWindow>(
            &mut log,
            &freeze_stream(1),
            FreezeCommand::Lift {
                reason: "結算提前完成".into(),
            },
            &lam(),
            13,
        );
        let changes = log.fold::<Changes>();
        let in_force = |w| freeze_ids(&changes.freezes_in_force(w, &[core_switch()], none));
        assert_eq!(in_force(window(12, 13)), vec![freeze(1)]);
        assert_eq!(in_force(window(13, 14)), Vec::<Uuid>::new());
        let year_end = changes.freeze(freeze(1)).unwrap();
        assert_eq!(year_end.declared_by, "u-lam");
        assert_eq!(year_end.declared_at, at(8));
        assert_eq!(
            year_end.amendments,
            vec![Amendment {
                previous_end: at(18),
                end: at(16),
                by: "u-lam".into(),
                at: at(9),
            }]
        );
        assert_eq!(
            year_end.lifted,
            Some(Reasoned {
                reason: "結算提前完成".into(),
                by: "u-lam".into(),
                at: at(13),
            })
        );
        assert_eq!(
            changes.freezes().map(|f| f.id).collect::<Vec<_>>(),
            vec![freeze(3), freeze(2), freeze(1)]
        );
    }

    /// A year-end freeze on the core switch, and an emergency change on it, approved.
    fn frozen_emergency() -> Log {
        let mut log = Log::default();
        declare(&mut log, 1, "年終結算", window(12, 18), year_end_scope());
        raise_with(
            &mut log,
            1,
            proposal(
                ChangeKind::Emergency,
                "更換故障核心交換機板卡",
                window(13, 15),
                &[core_switch()],
            ),
            9,
        );
        on_change(
            &mut log,
            1,
            ChangeCommand::Approve {
                conflicts: Vec::new(),
                acknowledged_conflicts: Vec::new(),
            },
            &lam(),
            9,
        );
        log
    }

    fn start(log: &Log, override_freeze: Option<&str>) -> ChangeCommand {
        let changes = log.fold::<Changes>();
        let view = changes.get(change(1)).unwrap();
        ChangeCommand::StartImplementation {
            freezes: changes.freezes_in_force(
                view.window(),
                &view.current().ci_ids,
                &view.current().services,
            ),
            override_freeze: override_freeze.map(str::to_owned),
        }
    }

    #[test]
    fn a_freeze_override_is_listed_for_compliance() {
        let mut log = frozen_emergency();
        // The freezes the model gives hold the change.
        assert!(matches!(
            decide::<Change>(&log, &change_stream(1), start(&log, None), &lam(), 13),
            Err(ChangeError::Frozen(_))
        ));
        assert!(log.fold::<Changes>().overrides().is_empty());

        let command = start(&log, Some("核心交換機故障搶修"));
        on_change(&mut log, 1, command, &lam(), 13);
        let position = log
            .events
            .iter()
            .find(|e| e.event_type == "FreezeOverridden")
            .unwrap()
            .position;
        let changes = log.fold::<Changes>();
        let expected = OverrideRecord {
            position,
            at: at(13),
            change_id: change(1),
            freeze_id: freeze(1),
            role: Role::ChangeManager,
            reason: "核心交換機故障搶修".into(),
            by: "u-lam".into(),
        };
        assert_eq!(changes.overrides(), std::slice::from_ref(&expected));
        assert_eq!(changes.overrides_of(change(1)).count(), 1);
        assert_eq!(changes.overrides_of(change(2)).count(), 0);
        let view = changes.get(change(1)).unwrap();
        assert_eq!(view.status, ChangeStatus::Implementing);
        assert_eq!(view.started_at, Some(at(13)));
        assert_eq!(
            view.history
                .iter()
                .map(|e| e.summary.as_str())
                .collect::<Vec<_>>(),
            vec![
                "Raised an emergency change of medium risk: 更換故障核心交換機板卡, in \
                 2026-11-26 13:00 – 2026-11-26 15:00 UTC, touching 1 CI",
                "Approved by u-lam",
                "Went ahead despite the freeze 年終結算, allowed by u-lam as change_manager: \
                 核心交換機故障搶修",
                "Implementation started",
            ]
        );
    }

    /// A chargeable normal change through every step, its plan amended once after
    /// approval.
    fn full_history() -> Log {
        let mut log = Log::default();
        let mut chargeable = proposal(
            ChangeKind::Normal,
            "社保系統主機擴容內存",
            window(10, 12),
            &[host()],
        );
        chargeable.chargeable = true;
        chargeable.services = vec!["社保系統".into()];
        raise_with(&mut log, 1, chargeable, 8);
        on_change(
            &mut log,
            1,
            ChangeCommand::ConfirmCommercialTerms {
                terms: "按合同單價收費".into(),
            },
            &chow(),
            8,
        );
        advise_and_approve(&mut log, 1, 8);
        on_change(
            &mut log,
            1,
            ChangeCommand::AmendPlan {
                implementation_plan: Some("分兩批遷移虛擬機後加裝內存".into()),
                rollback_plan: None,
            },
            &wong(),
            9,
        );
        advise_and_approve(&mut log, 1, 9);
        on_change(
            &mut log,
            1,
            ChangeCommand::StartImplementation {
                freezes: Vec::new(),
                override_freeze: None,
            },
            &wong(),
            10,
        );
        on_change(
            &mut log,
            1,
            ChangeCommand::RecordImplementation {
                outcome: Outcome::Succeeded,
                notes: "擴容完成,自檢通過".into(),
                ci_updates: vec![memory(512)],
            },
            &wong(),
            11,
        );
        on_change(
            &mut log,
            1,
            ChangeCommand::Review {
                notes: "按計劃完成,無業務影響".into(),
                successful: true,
            },
            &lam(),
            12,
        );
        log
    }

    fn memory(gib: i64) -> CiUpdate {
        CiUpdate {
            ci_id: host(),
            attributes: BTreeMap::from([("memory_gib".to_owned(), AttrValue::Integer(gib))]),
        }
    }

    #[test]
    fn the_history_tells_each_step_of_a_change_in_a_sentence() {
        let changes = full_history().fold::<Changes>();
        let view = changes.get(change(1)).unwrap();
        assert_eq!(
            view.history
                .iter()
                .map(|e| (e.actor.as_str(), e.summary.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (
                    "u-wong",
                    "Raised a normal change of medium risk, chargeable: 社保系統主機擴容內存, \
                     in 2026-11-26 10:00 – 2026-11-26 12:00 UTC, touching 1 CI and 社保系統"
                ),
                ("u-chow", "Commercial terms confirmed: 按合同單價收費"),
                (
                    "u-lam",
                    "The change advisory board advised approval: 變更顧問委員會同意"
                ),
                ("u-lam", "Approved by u-lam"),
                (
                    "u-wong",
                    "Amended the implementation plan; the board's advice and the approval no \
                     longer hold"
                ),
                (
                    "u-lam",
                    "The change advisory board advised approval: 變更顧問委員會同意"
                ),
                ("u-lam", "Approved by u-lam"),
                ("u-wong", "Implementation started"),
                (
                    "u-wong",
                    "Implemented: 擴容完成,自檢通過 (set attributes of 1 CI)"
                ),
                (
                    "u-lam",
                    "Reviewed as successful, and closed: 按計劃完成,無業務影響"
                ),
            ]
        );
        assert_eq!(view.history[0].event_type, "ChangeRaised");
        assert_eq!(view.history[0].at, at(8));
        assert!(view
            .history
            .windows(2)
            .all(|w| w[0].position < w[1].position));
    }

    #[test]
    fn a_change_view_keeps_its_approvals_advice_terms_implementation_and_review() {
        let changes = full_history().fold::<Changes>();
        let view = changes.get(change(1)).unwrap();
        assert_eq!(view.status, ChangeStatus::Closed);
        assert_eq!(view.state.status, ChangeStatus::Closed);
        assert_eq!(view.raised_by, "u-wong");
        assert_eq!(view.raised_at, at(8));
        assert_eq!(view.updated_at, at(12));
        assert_eq!(view.proposal.implementation_plan, "先遷移虛擬機,再加裝內存");
        assert_eq!(
            view.current().implementation_plan,
            "分兩批遷移虛擬機後加裝內存"
        );
        assert_eq!(
            view.terms,
            Some(Terms {
                terms: "按合同單價收費".into(),
                by: "u-chow".into(),
                at: at(8),
            })
        );
        assert_eq!(
            view.advice
                .iter()
                .map(|a| (a.at, a.withdrawn_at))
                .collect::<Vec<_>>(),
            vec![(at(8), Some(at(9))), (at(9), None)]
        );
        assert_eq!(
            view.approvals,
            vec![
                Approval {
                    by: ApprovedBy::ChangeManager("u-lam".into()),
                    at: at(8),
                    acknowledged_conflicts: Vec::new(),
                    withdrawn_at: Some(at(9)),
                },
                Approval {
                    by: ApprovedBy::ChangeManager("u-lam".into()),
                    at: at(9),
                    acknowledged_conflicts: Vec::new(),
                    withdrawn_at: None,
                },
            ]
        );
        assert_eq!(
            (view.started_at, view.started_by.as_deref()),
            (Some(at(10)), Some("u-wong"))
        );
        assert_eq!(
            view.implementation,
            Some(Implementation {
                outcome: Outcome::Succeeded,
                notes: "擴容完成,自檢通過".into(),
                ci_updates: vec![memory(512)],
                by: "u-wong".into(),
                at: at(11),
            })
        );
        assert_eq!(
            view.review,
            Some(Review {
                notes: "按計劃完成,無業務影響".into(),
                successful: true,
                by: "u-lam".into(),
                at: at(12),
            })
        );
        assert_eq!(
            ids(changes.by_status(ChangeStatus::Closed)),
            vec![change(1)]
        );
        assert!(changes.by_status(ChangeStatus::Approved).next().is_none());
    }

    #[test]
    fn a_snapshot_reads_back_equal_and_keeps_folding_alike() {
        let mut log = frozen_emergency();
        let command = start(&log, Some("核心交換機故障搶修"));
        on_change(&mut log, 1, command, &lam(), 13);
        raise(&mut log, 2, window(14, 16), &[host()]);
        raise(&mut log, 3, window(15, 17), &[vm()]);
        cancel(&mut log, 3, 9);
        let (head, tail) = log.events.split_at(log.events.len() - 1);
        let mut live = Changes::default();
        head.iter().for_each(|e| live.apply(e));

        let json = serde_json::to_string(&live).unwrap();
        let mut restored: Changes = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, live);

        for e in tail {
            live.apply(e);
            restored.apply(e);
        }
        assert_eq!(restored, live);
        assert_eq!(restored, log.fold::<Changes>());
        let candidate = on_host(change(9), window(14, 15));
        assert_eq!(
            restored.conflicts_for(&candidate, &host_and_vm),
            vec![conflict(change(2), host(), host(), window(14, 15))]
        );
        assert_eq!(
            freeze_ids(&restored.freezes_in_force(window(13, 14), &[core_switch()], &[])),
            vec![freeze(1)]
        );
        assert_eq!(restored.overrides().len(), 1);
    }
}
