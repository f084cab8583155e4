//! Service operations over GraphQL: the service desk's tickets and work orders, incidents
//! with their severity, warning level, duties and SLA clocks, business calendars and SLA
//! policies, compliance figures and the incident report.

pub(crate) mod emergency;
pub(crate) mod inspections;
pub(crate) mod knowledge;

use std::collections::BTreeMap;

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::operations::calendar::{
    BusinessHours, Calendar as CalendarAggregate, CalendarCommand,
};
use opsledger_domain::operations::desk::{
    Assignee, Caller, Ticket as TicketAggregate, TicketCommand, WorkOrderStatus as WoStatus,
};
use opsledger_domain::operations::incident::{
    Assessment, Extent as DomainExtent, Importance as DomainImportance, Incident as IncidentAgg,
    IncidentCommand, LinkKind, Opening, PauseReason as DomainPause, Priority as DomainPriority,
    Resolution, Severity as DomainSeverity, Source,
};
use opsledger_domain::operations::sla::{
    sla_policy_id, ClockKind, SlaClock, SlaCommand, SlaTerms, Targets,
};
use opsledger_domain::resources::cmdb::{AttrValue, ConfigurationItem as CiAggregate};
use opsledger_projections::operations::desk::{TicketView, WorkOrderView};
use opsledger_projections::operations::incidents::{CalendarView, IncidentView, Incidents};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::kit::access::staff;
use crate::kit::errors::{bad_input, error, internal, Code};
use crate::kit::ids;
use crate::kit::{current_models, cursor, ledger, models, page, Page};
use crate::kit::{domain_context, new_id, operate, Payload};
use crate::{Operation, OperationError};

/// The plan's grades.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::incident::Severity")]
pub enum Severity {
    /// 一般事件 (Ⅰ)
    General,
    /// 重要事件 (Ⅱ)
    Important,
    /// 緊急事件 (Ⅲ)
    Urgent,
}

/// How important the affected system is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::incident::Importance")]
pub enum Importance {
    General,
    Important,
    EspeciallyImportant,
}

/// How large a loss or a social impact is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::incident::Extent")]
pub enum Extent {
    Minor,
    Serious,
    Major,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::incident::IncidentStatus")]
pub enum IncidentStatus {
    New,
    InProgress,
    Pending,
    Resolved,
    Closed,
}

/// A duty a warning level brings.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::incident::Duty")]
pub enum Duty {
    ReportToOperationsManager,
    ReportToDepartmentLeaders,
    CallVendor,
    ReportToOperationsHead,
    ReplaceHardware,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::incident::PauseReason")]
pub enum PauseReason {
    WaitingOnCustomer,
    WaitingOnVendor,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::sla::ClockKind")]
pub enum SlaClockKind {
    Response,
    Resolution,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::desk::TicketKind")]
pub enum TicketKind {
    Fault,
    Consultation,
    Change,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::desk::TicketStatus")]
pub enum TicketStatus {
    Open,
    AwaitingTerms,
    WithSecondLine,
    AwaitingCallback,
    Closed,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::desk::WorkOrderStatus")]
pub enum WorkOrderStatus {
    Issued,
    Accepted,
    Completed,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// One of an incident's SLA clocks as it stands now.
#[derive(SimpleObject)]
pub struct SlaClockState {
    pub clock: SlaClockKind,
    /// The target in open minutes of the calendar; null when the policy has none.
    pub target_minutes: Option<i64>,
    /// Open minutes counted so far (not while paused, only in open hours).
    pub elapsed_minutes: i64,
    pub remaining_minutes: Option<i64>,
    pub percent_used: Option<f64>,
    /// When the warning and the breach fall due, while the clock runs.
    pub warning_due_at: Option<DateTime<Utc>>,
    pub breach_due_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub running: bool,
    pub paused: bool,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Stopped within its target.
    pub met: bool,
}

fn clock_state(
    kind: ClockKind,
    c: &SlaClock,
    hours: &BusinessHours,
    now: DateTime<Utc>,
) -> SlaClockState {
    let elapsed = c.elapsed_at(now, hours);
    SlaClockState {
        clock: kind.into(),
        target_minutes: c.target_secs.map(|t| t / 60),
        elapsed_minutes: elapsed / 60,
        remaining_minutes: c.target_secs.map(|t| (t - elapsed).max(0) / 60),
        percent_used: c
            .target_secs
            .filter(|t| *t > 0)
            .map(|t| (elapsed as f64 * 1000.0 / t as f64).round() / 10.0),
        warning_due_at: c.warning_due(hours),
        breach_due_at: c.breach_due(hours),
        warned_at: c.warned_at,
        breached_at: c.breached_at,
        running: c.running,
        paused: c.paused,
        stopped_at: c.stopped_at,
        met: c.stopped_at.is_some()
            && c.breached_at.is_none()
            && c.owed_breach.is_none()
            && c.target_secs.is_some(),
    }
}

#[derive(SimpleObject)]
pub struct PriorityView {
    /// 1 (high) to 3 (low).
    pub impact: u8,
    pub urgency: u8,
    /// 1 (critical) to 5: impact + urgency − 1.
    pub number: u8,
}

#[derive(SimpleObject)]
pub struct AssessmentView {
    pub importance: Importance,
    pub loss: Extent,
    pub social_impact: Extent,
}

#[derive(SimpleObject)]
pub struct DutyState {
    pub duty: Duty,
    /// The role that does it.
    pub role: String,
    pub done: bool,
}

#[derive(SimpleObject)]
pub struct IncidentLink {
    /// `ticket`, `work_order`, `change`, `article`, `ci`.
    pub kind: String,
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct TimelineLine {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event_type: String,
    pub summary: String,
}

#[derive(SimpleObject)]
pub struct ResolutionView {
    pub cause: String,
    pub resolution: String,
    pub preventive_measures: String,
}

/// Where an incident came from.
#[derive(SimpleObject)]
pub struct IncidentSource {
    /// `desk`, `inspection`, `monitoring` or `automation`.
    pub kind: String,
    /// The service-desk ticket, for one from the desk.
    pub ticket: Option<ID>,
    /// The inspection whose anomaly opened it.
    pub inspection: Option<ID>,
    /// The checklist item of that anomaly, or the step whose undo failed.
    pub item: Option<String>,
    /// The provisioning run whose undo failed, for one from automation.
    pub run: Option<ID>,
}

fn source_node(source: &Source) -> IncidentSource {
    let none = IncidentSource {
        kind: String::new(),
        ticket: None,
        inspection: None,
        item: None,
        run: None,
    };
    match source {
        Source::Desk { ticket_id } => IncidentSource {
            kind: "desk".into(),
            ticket: ticket_id.map(|t| ids::global(TicketAggregate::KIND, t)),
            ..none
        },
        Source::Inspection {
            inspection_id,
            item,
        } => IncidentSource {
            kind: "inspection".into(),
            inspection: Some(ids::global(
                opsledger_domain::operations::inspection::Inspection::KIND,
                *inspection_id,
            )),
            item: Some(item.clone()),
            ..none
        },
        Source::Monitoring => IncidentSource {
            kind: "monitoring".into(),
            ..none
        },
        Source::Automation { run_id, step } => IncidentSource {
            kind: "automation".into(),
            run: Some(ids::global(
                opsledger_domain::automation::provisioning::Provisioning::KIND,
                *run_id,
            )),
            item: Some(step.clone()),
            ..none
        },
    }
}

/// An incident.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Incident {
    pub id: ID,
    pub title: String,
    pub description: String,
    pub service: String,
    pub department: Option<String>,
    pub status: IncidentStatus,
    pub severity: Severity,
    /// Ⅰ, Ⅱ or Ⅲ.
    pub severity_numeral: String,
    pub assessment: AssessmentView,
    pub priority: PriorityView,
    pub warning_level: u8,
    pub vendor_needed: bool,
    pub hardware_replacement: bool,
    /// The duties the warning level brings, done or not: who must act now.
    pub duties: Vec<DutyState>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub configuration_items: Vec<ID>,
    pub links: Vec<IncidentLink>,
    /// Where it came from: the desk, an inspection's anomaly, or monitoring.
    pub source: IncidentSource,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub resolution: Option<ResolutionView>,
    /// The service whose SLA policy runs the clocks (its own or `default`).
    pub sla_policy: Option<String>,
    /// The response and resolution clocks; empty when no policy applies.
    pub sla: Vec<SlaClockState>,
    pub timeline: Vec<TimelineLine>,
}

fn link_kind(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Ticket => TicketAggregate::KIND,
        LinkKind::WorkOrder => ids::WORK_ORDER,
        LinkKind::Change => "change",
        LinkKind::Article => "article",
        LinkKind::ConfigurationItem => CiAggregate::KIND,
    }
}

pub(crate) fn incident_node(v: &IncidentView, models: &Incidents, now: DateTime<Utc>) -> Incident {
    let s = &v.state;
    let hours = models.hours(v.calendar_id);
    let priority = s.priority.unwrap_or(v.opening.priority);
    Incident {
        id: ids::global(IncidentAgg::KIND, v.id),
        title: v.opening.title.clone(),
        description: v.opening.description.clone(),
        service: v.opening.service.clone(),
        department: v.opening.department.clone(),
        status: s.status.into(),
        severity: s.severity.into(),
        severity_numeral: s.severity.numeral().to_owned(),
        assessment: AssessmentView {
            importance: s.assessment.importance.into(),
            loss: s.assessment.loss.into(),
            social_impact: s.assessment.social_impact.into(),
        },
        priority: PriorityView {
            impact: priority.impact,
            urgency: priority.urgency,
            number: priority.number(),
        },
        warning_level: s.warning_level,
        vendor_needed: s.vendor_needed,
        hardware_replacement: s.hardware_replacement,
        duties: s
            .duties()
            .into_iter()
            .map(|d| DutyState {
                duty: d.into(),
                role: d.role().as_str().to_owned(),
                done: s.duties_done.contains(&d),
            })
            .collect(),
        team: v.team.clone(),
        assignee: v.assignee.clone(),
        configuration_items: v
            .opening
            .ci_ids
            .iter()
            .map(|c| ids::global(CiAggregate::KIND, *c))
            .collect(),
        links: s
            .links
            .iter()
            .map(|(k, id)| IncidentLink {
                kind: link_kind(*k).to_owned(),
                id: ids::global(link_kind(*k), *id),
            })
            .collect(),
        source: source_node(&v.opening.source),
        opened_at: v.opened_at,
        opened_by: v.opened_by.clone(),
        updated_at: v.updated_at,
        resolved_at: v.resolved_at,
        closed_at: v.closed_at,
        resolution: v.resolution.as_ref().map(|r| ResolutionView {
            cause: r.cause.clone(),
            resolution: r.resolution.clone(),
            preventive_measures: r.preventive_measures.clone(),
        }),
        sla_policy: v.policy.clone(),
        sla: [ClockKind::Response, ClockKind::Resolution]
            .into_iter()
            .filter_map(|k| v.clock(k).map(|c| clock_state(k, c, hours, now)))
            .collect(),
        timeline: v
            .timeline
            .iter()
            .map(|t| TimelineLine {
                position: t.position,
                at: t.at,
                actor: t.actor.clone(),
                event_type: t.event_type.clone(),
                summary: t.summary.clone(),
            })
            .collect(),
    }
}

/// A configuration item an incident affects, directly or through the CMDB.
#[derive(SimpleObject)]
pub struct AffectedItem {
    pub id: ID,
    pub name: Option<String>,
    /// 0 for an item the incident names; n for one n relationships away.
    pub distance: usize,
}

#[ComplexObject]
impl Incident {
    /// What the incident affects: the items it names and what depends on them, as the
    /// CMDB stands now.
    async fn affected(&self, ctx: &Context<'_>) -> Result<Vec<AffectedItem>> {
        let m = ledger(ctx).models().await;
        let inv = &m.inventory;
        let mut seen = BTreeMap::new();
        for id in &self.configuration_items {
            let Some((_, ci)) = ids::split(id) else {
                continue;
            };
            seen.entry(ci).or_insert(0);
            for (dep, _, distance) in inv.impact(ci, m.position) {
                seen.entry(dep).or_insert(distance);
            }
        }
        Ok(seen
            .into_iter()
            .map(|(id, distance)| AffectedItem {
                id: ids::global(CiAggregate::KIND, id),
                name: ci_name(inv, id).map(str::to_owned),
                distance,
            })
            .collect())
    }

    /// The incident report (機房故障報告) in Markdown.
    async fn report(&self, ctx: &Context<'_>) -> Result<String> {
        let m = ledger(ctx).models().await;
        let id = ids::parse("id", IncidentAgg::KIND, &self.id)?;
        incident_report(&m, id).ok_or_else(|| error(Code::NotFound, "no such incident"))
    }

    /// The emergency plans run for it, in the order started.
    async fn plan_runs(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::operations::emergency::PlanRun>> {
        let m = ledger(ctx).models().await;
        let id = ids::parse("id", IncidentAgg::KIND, &self.id)?;
        Ok(m.emergency
            .runs_for(id)
            .map(crate::operations::emergency::run_node)
            .collect())
    }

    /// Knowledge articles that may help: linked to its items first, then by its words.
    async fn suggested_articles(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = 5,
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: i32,
    ) -> Result<Vec<crate::operations::knowledge::Article>> {
        let m = ledger(ctx).models().await;
        let id = ids::parse("id", IncidentAgg::KIND, &self.id)?;
        let Some(v) = m.incidents.get(id) else {
            return Ok(Vec::new());
        };
        let text = format!("{} {}", v.opening.title, v.opening.description);
        let limit = usize::try_from(first.clamp(0, 50)).unwrap_or(5);
        Ok(m.knowledge
            .suggest(&v.opening.ci_ids, &text, limit)
            .into_iter()
            .filter_map(|h| m.knowledge.get(h.id))
            .map(crate::operations::knowledge::article_node)
            .collect())
    }
}

fn ci_name(inv: &opsledger_projections::resources::inventory::Inventory, id: Uuid) -> Option<&str> {
    inv.ci(id)?.state.record.as_ref().map(|r| r.name.as_str())
}

/// The incident report (the plan's 機房故障報告) in Markdown: what happened, what it
/// affected, the cause, the resolution, the preventive measures, the emergency plans run
/// for it, and the timeline.
pub fn incident_report(m: &ReadModels, id: Uuid) -> Option<String> {
    use std::fmt::Write;
    let v = m.incidents.get(id)?;
    let s = &v.state;
    let mut out = String::new();
    let _ = writeln!(out, "# 機房故障報告 — {}\n", v.opening.title);
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Incident | `{}-{}` |", IncidentAgg::KIND, v.id);
    let _ = writeln!(out, "| Service | {} |", v.opening.service);
    let _ = writeln!(
        out,
        "| Severity | {} ({}) |",
        s.severity.numeral(),
        s.severity.as_str()
    );
    let _ = writeln!(out, "| Warning level | {} |", s.warning_level);
    let _ = writeln!(out, "| Opened | {} by {} |", v.opened_at, v.opened_by);
    if let Some(r) = v.resolved_at {
        let _ = writeln!(out, "| Resolved | {r} |");
    }
    if let Some(c) = v.closed_at {
        let _ = writeln!(out, "| Closed | {c} |");
    }
    let _ = writeln!(out, "\n## Description\n\n{}\n", v.opening.description);
    if !v.opening.ci_ids.is_empty() {
        let _ = writeln!(out, "## Affected configuration items\n");
        for ci in &v.opening.ci_ids {
            let name = ci_name(&m.inventory, *ci).unwrap_or("?");
            let _ = writeln!(out, "- {name} (`ci-{ci}`)");
            for (dep, relation, distance) in m.inventory.impact(*ci, m.position) {
                let name = ci_name(&m.inventory, dep).unwrap_or("?");
                let _ = writeln!(
                    out,
                    "  - {name} (`ci-{dep}`), {relation:?}, {distance} away"
                );
            }
        }
        let _ = writeln!(out);
    }
    let none = "—".to_owned();
    let r = v.resolution.clone().unwrap_or_default();
    let or_none = |t: &str| {
        if t.trim().is_empty() {
            none.clone()
        } else {
            t.to_owned()
        }
    };
    let _ = writeln!(out, "## Cause\n\n{}\n", or_none(&r.cause));
    let _ = writeln!(out, "## Resolution\n\n{}\n", or_none(&r.resolution));
    let _ = writeln!(
        out,
        "## Preventive measures\n\n{}\n",
        or_none(&r.preventive_measures)
    );
    if let Some(clocks) = &v.clocks {
        let _ = writeln!(out, "## SLA\n");
        for (kind, c) in [ClockKind::Response, ClockKind::Resolution]
            .into_iter()
            .zip(clocks.iter())
        {
            let target = c
                .target_secs
                .map_or("no target".to_owned(), |t| format!("{} min", t / 60));
            let outcome = match (c.breached_at, c.stopped_at) {
                (Some(b), _) => format!("breached at {b}"),
                (None, Some(_)) => "met".to_owned(),
                (None, None) => "running".to_owned(),
            };
            let _ = writeln!(
                out,
                "- {}: target {target}, {} min counted, {outcome}",
                kind.as_str(),
                c.elapsed_secs / 60
            );
        }
        let _ = writeln!(out);
    }
    crate::operations::emergency::report_runs(&mut out, m.emergency.runs_for(id));
    let _ = writeln!(out, "## Timeline\n");
    let _ = writeln!(out, "| Time | Who | What |\n|---|---|---|");
    for t in &v.timeline {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            t.at.format("%Y-%m-%d %H:%M:%S"),
            t.actor,
            t.summary.replace('|', "\\|").replace('\n', " ")
        );
    }
    Some(out)
}

/// A clock at risk: it will breach at `breachDueAt` unless the incident moves on.
#[derive(SimpleObject)]
pub struct SlaRisk {
    pub incident: Incident,
    pub clock: SlaClockKind,
    pub breach_due_at: DateTime<Utc>,
}

/// How many incidents of a severity are open.
#[derive(SimpleObject)]
pub struct SeverityCount {
    pub severity: Severity,
    pub open: u64,
}

/// A duty someone must do now.
#[derive(SimpleObject)]
pub struct OutstandingDuty {
    pub incident: ID,
    pub title: String,
    pub warning_level: u8,
    pub duty: Duty,
    pub role: String,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ComplianceGroup {
    Service,
    Team,
    Severity,
    Month,
}

/// SLA compliance of the incidents opened in a period, in one group.
#[derive(SimpleObject)]
pub struct SlaComplianceRow {
    pub key: String,
    pub incidents: u64,
    /// Responded to within the target.
    pub response_met: u64,
    /// Resolved within the target.
    pub resolution_met: u64,
    /// Incidents with a breached clock.
    pub breached: u64,
    /// Still open.
    pub open: u64,
    /// Resolution met over incidents resolved or breached, in percent.
    pub compliance_percent: Option<f64>,
}

#[derive(SimpleObject)]
pub struct CalendarNode {
    pub id: ID,
    pub name: String,
    pub version: u32,
    pub time_zone: String,
    pub always_open: bool,
    /// Each day's intervals as `HH:MM-HH:MM`, Monday first.
    pub hours: Vec<Vec<String>>,
    pub holidays: Vec<String>,
}

fn calendar_node(c: &CalendarView) -> CalendarNode {
    CalendarNode {
        id: ids::global(CalendarAggregate::KIND, c.id),
        name: c.name.clone(),
        version: c.version,
        time_zone: c.hours.zone.name().to_owned(),
        always_open: c.hours.always_open,
        hours: c
            .hours
            .week
            .iter()
            .map(|day| {
                day.iter()
                    .map(|(a, b)| format!("{}-{}", a.format("%H:%M"), b.format("%H:%M")))
                    .collect()
            })
            .collect(),
        holidays: c.hours.holidays.iter().map(|d| d.to_string()).collect(),
    }
}

// ---------------------------------------------------------------- reads by id
// The one place each kind's read rule is written, for its own field and for `node(id:)`.

/// An incident, as the operations staff read it.
pub(crate) fn incident_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
) -> Result<Option<Incident>> {
    staff(ctx)?;
    let now = ledger(ctx).now();
    Ok(m.incidents
        .get(id)
        .map(|v| incident_node(v, &m.incidents, now)))
}

/// A service-desk ticket (the operations staff).
pub(crate) fn ticket_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
) -> Result<Option<TicketNode>> {
    staff(ctx)?;
    Ok(m.desk.get(id).map(ticket_node))
}

/// A work order (the operations staff).
pub(crate) fn work_order_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
) -> Result<Option<WorkOrder>> {
    staff(ctx)?;
    Ok(m.desk.work_order(id).map(|(_, w)| work_order_node(w)))
}

/// A business-hours calendar (the operations staff).
pub(crate) fn calendar_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
) -> Result<Option<CalendarNode>> {
    staff(ctx)?;
    Ok(m.incidents.calendars.get(&id).map(calendar_node))
}

#[derive(SimpleObject)]
pub struct SlaTarget {
    pub severity: Severity,
    pub response_minutes: u32,
    pub resolution_minutes: u32,
}

#[derive(SimpleObject)]
pub struct SlaPolicyNode {
    pub service: String,
    pub version: u32,
    pub calendar: ID,
    pub warn_percent: u8,
    pub targets: Vec<SlaTarget>,
}

#[derive(SimpleObject)]
pub struct NoteLine {
    pub at: DateTime<Utc>,
    pub by: String,
    pub text: String,
}

#[derive(SimpleObject)]
pub struct WorkOrder {
    pub id: ID,
    pub ticket: ID,
    pub team: Option<String>,
    pub person: Option<String>,
    pub instructions: String,
    /// The order this one follows after an unconfirmed callback.
    pub follows: Option<ID>,
    pub status: WorkOrderStatus,
    pub issued_at: DateTime<Utc>,
    pub issued_by: String,
    pub accepted_by: Option<String>,
    pub log: Vec<NoteLine>,
    pub result: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
}

fn work_order_node(w: &WorkOrderView) -> WorkOrder {
    WorkOrder {
        id: ids::global(ids::WORK_ORDER, w.id),
        ticket: ids::global(TicketAggregate::KIND, w.ticket_id),
        team: w.to.team.clone(),
        person: w.to.person.clone(),
        instructions: w.instructions.clone(),
        follows: w.follows.map(|f| ids::global(ids::WORK_ORDER, f)),
        status: w.status.into(),
        issued_at: w.issued_at,
        issued_by: w.issued_by.clone(),
        accepted_by: w.accepted_by.clone(),
        log: w.log.iter().map(note_line).collect(),
        result: w.result.clone(),
        completed_at: w.completed_at,
    }
}

fn note_line(n: &opsledger_projections::operations::desk::Note) -> NoteLine {
    NoteLine {
        at: n.at,
        by: n.by.clone(),
        text: n.text.clone(),
    }
}

#[derive(SimpleObject)]
pub struct CallbackNode {
    pub at: DateTime<Utc>,
    pub by: String,
    pub confirmed: bool,
    pub note: String,
}

#[derive(SimpleObject)]
pub struct TicketNode {
    pub id: ID,
    pub kind: TicketKind,
    pub status: TicketStatus,
    pub caller_name: String,
    pub contact: String,
    pub department: String,
    pub user: Option<String>,
    pub description: String,
    pub configuration_item: Option<ID>,
    pub chargeable: bool,
    pub terms: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
    pub resolution: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub work_orders: Vec<WorkOrder>,
    pub callbacks: Vec<CallbackNode>,
    pub incidents: Vec<ID>,
}

fn ticket_node(t: &TicketView) -> TicketNode {
    TicketNode {
        id: ids::global(TicketAggregate::KIND, t.id),
        kind: t.kind.into(),
        status: t.state.status.into(),
        caller_name: t.caller.name.clone(),
        contact: t.caller.contact.clone(),
        department: t.caller.department.clone(),
        user: t.caller.user.clone(),
        description: t.description.clone(),
        configuration_item: t.ci_id.map(|c| ids::global(CiAggregate::KIND, c)),
        chargeable: t.chargeable,
        terms: t.terms.clone(),
        recorded_at: t.recorded_at,
        recorded_by: t.recorded_by.clone(),
        resolution: t.resolution.clone(),
        closed_at: t.closed_at,
        work_orders: t.work_orders.iter().map(work_order_node).collect(),
        callbacks: t
            .callbacks
            .iter()
            .map(|c| CallbackNode {
                at: c.at,
                by: c.by.clone(),
                confirmed: c.confirmed,
                note: c.note.clone(),
            })
            .collect(),
        incidents: t
            .state
            .incidents
            .iter()
            .map(|i| ids::global(IncidentAgg::KIND, *i))
            .collect(),
    }
}

/// Which incidents a list holds.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncidentScope {
    /// Not yet resolved, most severe first, oldest first within a severity.
    #[default]
    Open,
    /// Every incident, newest first.
    All,
}

#[derive(Default)]
pub struct OperationsQuery;

#[Object]
impl OperationsQuery {
    /// Incidents: open ones most severe first (the duty board), or all newest first;
    /// narrowed by severity and service.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field takes each of its arguments as a parameter"
    )]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] scope: IncidentScope,
        severity: Option<Severity>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"service\", opsledger_domain::kernel::limits::NAME_CHARS)"
            )
        )]
        service: Option<String>,
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
    ) -> Result<Page<Incident>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let now = ledger(ctx).now();
        let after_key = cursor(after)?;
        let start = after_key.map_or(0, |a| a + 1);
        let matches = |v: &&IncidentView| service.as_ref().is_none_or(|s| *s == v.opening.service);
        let list: Box<dyn Iterator<Item = &IncidentView>> =
            match (scope, severity) {
                (IncidentScope::Open, Some(s)) => Box::new(m.incidents.open_of(s.into())),
                (IncidentScope::Open, None) => Box::new(m.incidents.open()),
                (IncidentScope::All, s) => Box::new(m.incidents.newest_first().filter(move |v| {
                    s.is_none_or(|s| DomainSeverity::from(s) == v.state.severity)
                })),
            };
        page(
            list.filter(matches).enumerate().skip(start),
            |v| incident_node(v, &m.incidents, now),
            after_key.is_some(),
            first,
            m.position,
        )
    }

    /// How many incidents of each severity are open.
    async fn open_incident_counts(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<SeverityCount>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let counts = m.incidents.open_counts();
        Ok(DomainSeverity::ALL
            .into_iter()
            .rev()
            .map(|s| SeverityCount {
                severity: s.into(),
                open: counts[s as usize] as u64,
            })
            .collect())
    }

    async fn incident(
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
    ) -> Result<Option<Incident>> {
        staff(ctx)?;
        let id = ids::parse("id", IncidentAgg::KIND, &id)?;
        incident_by_id(ctx, &*models(ctx, at_least).await?, id)
    }

    /// Clocks that have not breached yet, by the time they will (soonest first); only
    /// those due within `withinMinutes` when given.
    async fn sla_at_risk(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–525600.",
            validator(
                custom = "crate::kit::bounds::within(\"withinMinutes\", crate::kit::bounds::AHEAD_MINUTES)"
            )
        )]
        within_minutes: Option<i64>,
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
    ) -> Result<Page<SlaRisk>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let now = ledger(ctx).now();
        let until = within_minutes.map(|w| now + chrono::Duration::minutes(w));
        let after_key = cursor(after)?;
        let start = after_key.map_or(0, |a| a + 1);
        let items = m
            .incidents
            .at_risk()
            .take_while(|d| until.is_none_or(|u| d.at <= u))
            .enumerate()
            .skip(start);
        page(
            items,
            |d| SlaRisk {
                incident: incident_node(
                    m.incidents
                        .get(d.incident)
                        .expect("a due time belongs to an incident"),
                    &m.incidents,
                    now,
                ),
                clock: d.clock.into(),
                breach_due_at: d.at,
            },
            after_key.is_some(),
            first,
            m.position,
        )
    }

    /// The duties of escalated incidents not yet done: who must act now. `mine` keeps
    /// those of the signed-in user's roles.
    async fn outstanding_duties(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] mine: bool,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<OutstandingDuty>> {
        let actor = staff(ctx)?;
        let m = models(ctx, at_least).await?;
        Ok(m.incidents
            .escalated()
            .flat_map(|v| {
                v.state
                    .outstanding_duties()
                    .into_iter()
                    .map(move |d| (v, d))
            })
            .filter(|(_, d)| !mine || actor.has_role(d.role()))
            .map(|(v, d)| OutstandingDuty {
                incident: ids::global(IncidentAgg::KIND, v.id),
                title: v.opening.title.clone(),
                warning_level: v.state.warning_level,
                duty: d.into(),
                role: d.role().as_str().to_owned(),
            })
            .collect())
    }

    /// SLA compliance of the incidents opened in [from, until), grouped.
    async fn sla_compliance(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"from\")")
        )]
        from: DateTime<Utc>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"until\")")
        )]
        until: DateTime<Utc>,
        group_by: ComplianceGroup,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<SlaComplianceRow>> {
        staff(ctx)?;
        if until <= from {
            return Err(bad_input("until", "must be after from"));
        }
        let m = models(ctx, at_least).await?;
        let mut rows: BTreeMap<String, SlaComplianceRow> = BTreeMap::new();
        // Every incident is read: the log's order is not strictly the order of opening
        // (an imported history), and a pass over them all takes a few milliseconds.
        for v in m.incidents.newest_first() {
            if v.opened_at < from || v.opened_at >= until {
                continue;
            }
            let key = match group_by {
                ComplianceGroup::Service => v.opening.service.clone(),
                ComplianceGroup::Team => v.team.clone().unwrap_or_else(|| "—".into()),
                ComplianceGroup::Severity => v.state.severity.as_str().to_owned(),
                ComplianceGroup::Month => {
                    format!("{}-{:02}", v.opened_at.year(), v.opened_at.month())
                }
            };
            let row = rows.entry(key.clone()).or_insert_with(|| SlaComplianceRow {
                key,
                incidents: 0,
                response_met: 0,
                resolution_met: 0,
                breached: 0,
                open: 0,
                compliance_percent: None,
            });
            row.incidents += 1;
            let met = |k| {
                v.clock(k).is_some_and(|c| {
                    c.stopped_at.is_some() && c.breached_at.is_none() && c.owed_breach.is_none()
                })
            };
            row.response_met += u64::from(met(ClockKind::Response));
            row.resolution_met += u64::from(met(ClockKind::Resolution));
            let breached = [ClockKind::Response, ClockKind::Resolution]
                .into_iter()
                .any(|k| {
                    v.clock(k)
                        .is_some_and(|c| c.breached_at.is_some() || c.owed_breach.is_some())
                });
            row.breached += u64::from(breached);
            row.open += u64::from(v.is_open());
        }
        Ok(rows
            .into_values()
            .map(|mut r| {
                let decided = r.incidents - r.open + r.breached.min(r.open);
                r.compliance_percent = (decided > 0)
                    .then(|| (r.resolution_met as f64 * 1000.0 / decided as f64).round() / 10.0);
                r
            })
            .collect())
    }

    async fn calendars(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<CalendarNode>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let mut list: Vec<CalendarNode> =
            m.incidents.calendars.values().map(calendar_node).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    async fn sla_policies(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<SlaPolicyNode>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        Ok(m.incidents
            .policies
            .values()
            .map(|p| SlaPolicyNode {
                service: p.terms.service.clone(),
                version: p.version,
                calendar: ids::global(CalendarAggregate::KIND, p.terms.calendar_id),
                warn_percent: p.terms.warn_percent,
                targets: p
                    .terms
                    .targets
                    .iter()
                    .map(|(s, t)| SlaTarget {
                        severity: (*s).into(),
                        response_minutes: t.response_minutes,
                        resolution_minutes: t.resolution_minutes,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Service-desk tickets, newest first.
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        status: Option<TicketStatus>,
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
    ) -> Result<Page<TicketNode>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let after_key = cursor(after)?;
        let start = after_key.map_or(0, |a| a + 1);
        let status = status.map(opsledger_domain::operations::desk::TicketStatus::from);
        page(
            m.desk
                .newest_first()
                .filter(|t| status.is_none_or(|s| t.state.status == s))
                .enumerate()
                .skip(start),
            ticket_node,
            after_key.is_some(),
            first,
            m.position,
        )
    }

    async fn ticket(
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
    ) -> Result<Option<TicketNode>> {
        staff(ctx)?;
        let id = ids::parse("id", TicketAggregate::KIND, &id)?;
        ticket_by_id(ctx, &*models(ctx, at_least).await?, id)
    }

    /// Work orders, newest first: `mine` keeps those issued to the signed-in user (or,
    /// with `team`, to that team); `open` those not completed.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field takes each of its arguments as a parameter"
    )]
    async fn work_orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] mine: bool,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"team\", opsledger_domain::kernel::limits::NAME_CHARS)"
            )
        )]
        team: Option<String>,
        #[graphql(default)] open: bool,
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
    ) -> Result<Page<WorkOrder>> {
        let actor = staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let after_key = cursor(after)?;
        let start = after_key.map_or(0, |a| a + 1);
        page(
            m.desk
                .work_orders()
                .map(|(_, w)| w)
                .filter(|w| !mine || w.to.person.as_deref() == Some(actor.id.as_str()))
                .filter(|w| team.as_ref().is_none_or(|t| w.to.team.as_ref() == Some(t)))
                .filter(|w| !open || w.status != WoStatus::Completed)
                .enumerate()
                .skip(start),
            work_order_node,
            after_key.is_some(),
            first,
            m.position,
        )
    }

    /// What confirmed changes did for a customer (department), oldest first.
    async fn customer_record(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
            )
        )]
        department: String,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<NoteLine>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        Ok(m.desk
            .customer_records
            .get(&department)
            .map(|notes| notes.iter().map(note_line).collect())
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------- mutations

#[derive(InputObject)]
pub struct DayHoursInput {
    pub day: Weekday,
    /// Opening intervals in local time, `HH:MM-HH:MM`, in order.
    ///
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"intervals\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub intervals: Vec<String>,
}

#[derive(InputObject)]
pub struct SetCalendarInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The calendar to revise; a new one when absent.
    pub calendar_id: Option<ID>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    /// An IANA time zone, e.g. `Asia/Shanghai`.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"timeZone\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub time_zone: String,
    /// Open around the clock (7×24): `hours` and `holidays` do not apply.
    pub always_open: Option<bool>,
    pub hours: Option<Vec<DayHoursInput>>,
    /// Days closed all day, `YYYY-MM-DD`.
    ///
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"holidays\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub holidays: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct SlaTargetInput {
    pub severity: Severity,
    /// Range: 1–525600.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"responseMinutes\", opsledger_domain::kernel::limits::MINUTES)"
    ))]
    pub response_minutes: u32,
    /// Range: 1–525600.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"resolutionMinutes\", opsledger_domain::kernel::limits::MINUTES)"
    ))]
    pub resolution_minutes: u32,
}

#[derive(InputObject)]
pub struct SetSlaPolicyInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The service (`default` for incidents of services without their own policy).
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"service\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub service: String,
    pub calendar_id: ID,
    /// The share of a target after which a warning is recorded (75 when absent).
    ///
    /// Range: 1–100.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"warnPercent\", opsledger_domain::kernel::limits::PERCENT)"
    ))]
    pub warn_percent: Option<u8>,
    pub targets: Vec<SlaTargetInput>,
}

#[derive(InputObject)]
pub struct OpenIncidentInput {
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
    pub description: String,
    /// The service whose SLA policy applies.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"service\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub service: String,
    pub configuration_items: Option<Vec<ID>>,
    /// How important the affected system is; when absent, the highest `importance`
    /// attribute of the affected items (general when none has one).
    pub importance: Option<Importance>,
    /// Minor when absent.
    pub loss: Option<Extent>,
    /// Minor when absent.
    pub social_impact: Option<Extent>,
    /// ITIL impact and urgency (1 high – 3 low) when they differ from the assessment's.
    ///
    /// Range: 1–3.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"impact\", opsledger_domain::kernel::limits::PRIORITY)"
    ))]
    pub impact: Option<u8>,
    /// Range: 1–3.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"urgency\", opsledger_domain::kernel::limits::PRIORITY)"
    ))]
    pub urgency: Option<u8>,
    /// 1 when absent.
    ///
    /// Range: 1–3.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"warningLevel\", opsledger_domain::kernel::limits::WARNING_LEVEL)"
    ))]
    pub warning_level: Option<u8>,
    /// The service-desk ticket it comes from, if any (linked both ways).
    pub ticket_id: Option<ID>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub department: Option<String>,
}

#[derive(InputObject)]
pub struct IncidentNoteInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct IncidentReasonInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct AssignIncidentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"team\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub team: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"assignee\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub assignee: Option<String>,
}

#[derive(InputObject)]
pub struct ReassessIncidentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    pub importance: Importance,
    pub loss: Extent,
    pub social_impact: Extent,
    /// Range: 1–3.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"impact\", opsledger_domain::kernel::limits::PRIORITY)"
    ))]
    pub impact: Option<u8>,
    /// Range: 1–3.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"urgency\", opsledger_domain::kernel::limits::PRIORITY)"
    ))]
    pub urgency: Option<u8>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct SetWarningLevelInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// Range: 1–3.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"level\", opsledger_domain::kernel::limits::WARNING_LEVEL)"
    ))]
    pub level: u8,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
    pub vendor_needed: Option<bool>,
    pub hardware_replacement: Option<bool>,
}

#[derive(InputObject)]
pub struct RecordDutyInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    pub duty: Duty,
    /// Who was told, how, or what was arranged.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
}

#[derive(InputObject)]
pub struct PauseIncidentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    pub reason: PauseReason,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
}

#[derive(InputObject)]
pub struct LinkIncidentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// The global id of a ticket, work order, change, article or configuration item.
    pub to: ID,
}

#[derive(InputObject)]
pub struct ResolveIncidentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"cause\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub cause: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"resolution\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub resolution: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"preventiveMeasures\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub preventive_measures: Option<String>,
}

#[derive(InputObject)]
pub struct RecordTicketInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub kind: TicketKind,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"callerName\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub caller_name: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"contact\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub contact: String,
    /// The customer: a department known to OpsLedger (it has requests, resources or a
    /// quota).
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub department: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"user\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub user: Option<String>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"description\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub description: String,
    pub configuration_item: Option<ID>,
    /// For a change: whether it is charged for (a product manager confirms the terms).
    pub chargeable: Option<bool>,
}

#[derive(InputObject)]
pub struct TicketTextInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ticket_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"text\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub text: String,
}

#[derive(InputObject)]
pub struct IssueWorkOrderInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ticket_id: ID,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"team\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub team: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"person\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub person: Option<String>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"instructions\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub instructions: String,
}

#[derive(InputObject)]
pub struct WorkOrderInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub work_order_id: ID,
    /// The work log entry or the result, where the mutation takes one.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"text\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub text: Option<String>,
}

#[derive(InputObject)]
pub struct CallBackInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ticket_id: ID,
    /// The user confirms the problem is solved (closes the ticket).
    pub confirmed: bool,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
    /// Where the new work order goes when not confirmed (the last one's assignee when
    /// absent).
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"team\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub team: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"person\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub person: Option<String>,
}

fn parse_interval(path: &str, s: &str) -> Result<(NaiveTime, NaiveTime)> {
    let parse = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M");
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| bad_input(path, format!("{s:?} is not HH:MM-HH:MM")))?;
    match (parse(a), parse(b)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Ok(a), Err(_)) if b.trim() == "24:00" => {
            Ok((a, NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(a)))
        }
        _ => Err(bad_input(path, format!("{s:?} is not HH:MM-HH:MM"))),
    }
}

async fn on_incident(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    incident_id: &ID,
    command: IncidentCommand,
) -> Result<Payload> {
    let id = ids::parse("incidentId", IncidentAgg::KIND, incident_id)?;
    operate(
        ctx,
        client_mutation_id,
        IncidentAgg::KIND,
        id,
        Operation::Incident(id, command),
    )
    .await
}

async fn on_ticket(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    ticket_id: Uuid,
    command: TicketCommand,
) -> Result<Payload> {
    operate(
        ctx,
        client_mutation_id,
        TicketAggregate::KIND,
        ticket_id,
        Operation::Ticket(ticket_id, command),
    )
    .await
}

/// Whether the log holds the entity (the models may not show a write just made).
async fn recorded(ctx: &Context<'_>, kind: &str, id: Uuid) -> Result<bool> {
    let events = ledger(ctx)
        .stream(&format!("{kind}-{id}"))
        .await
        .map_err(internal)?;
    Ok(!events.is_empty())
}

fn priority(impact: Option<u8>, urgency: Option<u8>, a: &Assessment) -> Option<DomainPriority> {
    let d = DomainPriority::from_assessment(a);
    (impact.is_some() || urgency.is_some()).then(|| DomainPriority {
        impact: impact.unwrap_or(d.impact),
        urgency: urgency.unwrap_or(d.urgency),
    })
}

/// The work order's ticket, as the models have it.
async fn ticket_of(ctx: &Context<'_>, work_order: &ID) -> Result<Uuid> {
    let id = ids::parse("workOrderId", ids::WORK_ORDER, work_order)?;
    let m = current_models(ctx).await?;
    m.desk.work_order(id).map(|(t, _)| t.id).ok_or_else(|| {
        error(
            Code::NotFound,
            format!("there is no work order {}", work_order.as_str()),
        )
    })
}

#[derive(Default)]
pub struct OperationsMutation;

#[Object]
impl OperationsMutation {
    /// Defines or revises a business calendar (operator); a revision applies from now on.
    async fn set_calendar(&self, ctx: &Context<'_>, input: SetCalendarInput) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let cmid = input.client_mutation_id.as_deref();
        let calendar_id = match &input.calendar_id {
            Some(id) => ids::parse("calendarId", CalendarAggregate::KIND, id)?,
            None => new_id(ctx, &domain.actor.id, cmid),
        };
        let zone: chrono_tz::Tz = input.time_zone.parse().map_err(|_| {
            bad_input(
                "timeZone",
                format!(
                    "{:?} is not an IANA time zone like Asia/Shanghai",
                    input.time_zone
                ),
            )
        })?;
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for (i, d) in input.hours.iter().flatten().enumerate() {
            let day = &mut week[d.day as usize];
            for (j, s) in d.intervals.iter().enumerate() {
                day.push(parse_interval(&format!("hours[{i}].intervals[{j}]"), s)?);
            }
        }
        let mut holidays = std::collections::BTreeSet::new();
        for (i, h) in input.holidays.iter().flatten().enumerate() {
            let date = NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d").map_err(|_| {
                bad_input(
                    &format!("holidays[{i}]"),
                    format!("{h:?} is not YYYY-MM-DD"),
                )
            })?;
            holidays.insert(date);
        }
        let hours = BusinessHours {
            zone,
            always_open: input.always_open.unwrap_or(false),
            week,
            holidays,
        };
        let command = CalendarCommand::SetCalendar {
            calendar_id,
            name: input.name,
            hours,
        };
        operate(
            ctx,
            input.client_mutation_id,
            CalendarAggregate::KIND,
            calendar_id,
            Operation::Calendar(calendar_id, command),
        )
        .await
    }

    /// Sets a service's SLA policy (operator); a revision applies from now on, to the
    /// open incidents too.
    async fn set_sla_policy(&self, ctx: &Context<'_>, input: SetSlaPolicyInput) -> Result<Payload> {
        let calendar_id = ids::parse("calendarId", CalendarAggregate::KIND, &input.calendar_id)?;
        if !recorded(ctx, CalendarAggregate::KIND, calendar_id).await? {
            return Err(bad_input("calendarId", "names no calendar"));
        }
        let mut targets = BTreeMap::new();
        for (i, t) in input.targets.iter().enumerate() {
            let previous = targets.insert(
                DomainSeverity::from(t.severity),
                Targets {
                    response_minutes: t.response_minutes,
                    resolution_minutes: t.resolution_minutes,
                },
            );
            if previous.is_some() {
                return Err(bad_input(
                    &format!("targets[{i}].severity"),
                    "is given twice",
                ));
            }
        }
        let service = input.service.trim().to_owned();
        let policy_id = sla_policy_id(&service);
        let command = SlaCommand::SetSla {
            terms: SlaTerms {
                service,
                calendar_id,
                targets,
                warn_percent: input.warn_percent.unwrap_or(75),
            },
        };
        operate(
            ctx,
            input.client_mutation_id,
            "sla",
            policy_id,
            Operation::Sla(policy_id, command),
        )
        .await
    }

    /// Opens an incident (service desk, engineers, operations staff). Its severity is the
    /// plan's grading of the affected system's importance, the loss and the social impact.
    async fn open_incident(&self, ctx: &Context<'_>, input: OpenIncidentInput) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let mut ci_ids = Vec::new();
        for (i, id) in input.configuration_items.iter().flatten().enumerate() {
            ci_ids.push(ids::parse(
                &format!("configurationItems[{i}]"),
                CiAggregate::KIND,
                id,
            )?);
        }
        let ticket_id = input
            .ticket_id
            .as_ref()
            .map(|t| ids::parse("ticketId", TicketAggregate::KIND, t))
            .transpose()?;
        let importance = {
            let m = current_models(ctx).await?;
            for (i, ci) in ci_ids.iter().enumerate() {
                if m.inventory.ci(*ci).is_none() && !recorded(ctx, CiAggregate::KIND, *ci).await? {
                    return Err(bad_input(
                        &format!("configurationItems[{i}]"),
                        "names no configuration item",
                    ));
                }
            }
            if let Some(t) = ticket_id {
                if m.desk.get(t).is_none() && !recorded(ctx, TicketAggregate::KIND, t).await? {
                    return Err(bad_input("ticketId", "names no ticket"));
                }
            }
            match input.importance {
                Some(i) => i.into(),
                None => ci_ids
                    .iter()
                    .filter_map(|ci| {
                        match m
                            .inventory
                            .ci(*ci)?
                            .state
                            .record
                            .as_ref()?
                            .attributes
                            .get("importance")
                        {
                            Some(AttrValue::Text(t)) => DomainImportance::parse(t.as_str()),
                            _ => None,
                        }
                    })
                    .max()
                    .unwrap_or_default(),
            }
        };
        let assessment = Assessment {
            importance,
            loss: input.loss.map_or(DomainExtent::Minor, DomainExtent::from),
            social_impact: input
                .social_impact
                .map_or(DomainExtent::Minor, DomainExtent::from),
        };
        let cmid = input.client_mutation_id.as_deref();
        let incident_id = new_id(ctx, &domain.actor.id, cmid);
        let priority = priority(input.impact, input.urgency, &assessment);
        let opening = Opening {
            title: input.title,
            description: input.description,
            service: input.service,
            ci_ids,
            assessment,
            priority: priority.unwrap_or_else(|| DomainPriority::from_assessment(&assessment)),
            warning_level: input.warning_level.unwrap_or(1),
            source: match ticket_id {
                Some(t) => Source::Desk { ticket_id: Some(t) },
                None => Source::Monitoring,
            },
            department: input.department,
        };
        let command = IncidentCommand::Open {
            incident_id,
            opening: Box::new(opening),
            priority,
        };
        let payload = operate(
            ctx,
            input.client_mutation_id.clone(),
            IncidentAgg::KIND,
            incident_id,
            Operation::Incident(incident_id, command),
        )
        .await?;
        if let Some(t) = ticket_id {
            let key = Uuid::new_v5(&incident_id, b"link-ticket");
            let link = TicketCommand::LinkIncident { incident_id };
            match ledger(ctx)
                .operate(Operation::Ticket(t, link), &domain, key)
                .await
            {
                Ok(w) => {
                    return Ok(Payload {
                        position: w.position.max(payload.position),
                        ..payload
                    })
                }
                Err(crate::CommandError::Domain(OperationError::Ticket(
                    opsledger_domain::operations::desk::TicketError::AlreadyLinked,
                ))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(payload)
    }

    /// The first response: stops the response clock.
    async fn acknowledge_incident(
        &self,
        ctx: &Context<'_>,
        input: IncidentNoteInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::Acknowledge { note: input.note };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    async fn assign_incident(
        &self,
        ctx: &Context<'_>,
        input: AssignIncidentInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::Assign {
            team: input.team,
            assignee: input.assignee,
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// Grades the incident again; its SLA targets change from now on.
    async fn reassess_incident(
        &self,
        ctx: &Context<'_>,
        input: ReassessIncidentInput,
    ) -> Result<Payload> {
        let assessment = Assessment {
            importance: input.importance.into(),
            loss: input.loss.into(),
            social_impact: input.social_impact.into(),
        };
        let command = IncidentCommand::Reassess {
            assessment,
            priority: priority(input.impact, input.urgency, &assessment),
            reason: input.reason,
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// Sets the warning level (1–3); levels 2 and 3 bring duties (see `Incident.duties`).
    async fn set_warning_level(
        &self,
        ctx: &Context<'_>,
        input: SetWarningLevelInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::SetWarningLevel {
            level: input.level,
            reason: input.reason,
            vendor_needed: input.vendor_needed.unwrap_or(false),
            hardware_replacement: input.hardware_replacement.unwrap_or(false),
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// Records that a duty of the warning level was done.
    async fn record_duty(&self, ctx: &Context<'_>, input: RecordDutyInput) -> Result<Payload> {
        let command = IncidentCommand::RecordDuty {
            duty: input.duty.into(),
            note: input.note,
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    async fn log_incident_work(
        &self,
        ctx: &Context<'_>,
        input: IncidentNoteInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::LogWork {
            note: input.note.unwrap_or_default(),
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// Waiting on the customer or a vendor: the resolution clock stops counting.
    async fn pause_incident(
        &self,
        ctx: &Context<'_>,
        input: PauseIncidentInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::Pause {
            reason: DomainPause::from(input.reason),
            note: input.note,
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    async fn resume_incident(
        &self,
        ctx: &Context<'_>,
        input: IncidentNoteInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::Resume { note: input.note };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// Links a ticket, work order, change, article or configuration item.
    async fn link_incident(&self, ctx: &Context<'_>, input: LinkIncidentInput) -> Result<Payload> {
        let (kind, id) = ids::split(&input.to).ok_or_else(|| {
            bad_input("to", format!("{:?} is not a global id", input.to.as_str()))
        })?;
        let kind = match kind {
            "ticket" => LinkKind::Ticket,
            ids::WORK_ORDER => LinkKind::WorkOrder,
            "change" => LinkKind::Change,
            "article" => LinkKind::Article,
            "ci" => LinkKind::ConfigurationItem,
            other => {
                return Err(bad_input(
                    "to",
                    format!("a {other} cannot be linked to an incident"),
                ))
            }
        };
        let command = IncidentCommand::Link { kind, id };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    async fn resolve_incident(
        &self,
        ctx: &Context<'_>,
        input: ResolveIncidentInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::Resolve {
            resolution: Resolution {
                cause: input.cause,
                resolution: input.resolution,
                preventive_measures: input.preventive_measures.unwrap_or_default(),
            },
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// A resolved incident that is not fixed after all: the resolution clock runs on.
    async fn reopen_incident(
        &self,
        ctx: &Context<'_>,
        input: IncidentReasonInput,
    ) -> Result<Payload> {
        let command = IncidentCommand::Reopen {
            reason: input.reason,
        };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    async fn close_incident(&self, ctx: &Context<'_>, input: IncidentNoteInput) -> Result<Payload> {
        let command = IncidentCommand::Close { note: input.note };
        on_incident(ctx, input.client_mutation_id, &input.incident_id, command).await
    }

    /// First line records a call or message (service desk); the customer must be a known
    /// department.
    async fn record_ticket(&self, ctx: &Context<'_>, input: RecordTicketInput) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let department = input.department.trim().to_owned();
        let ci_id = input
            .configuration_item
            .as_ref()
            .map(|c| ids::parse("configurationItem", CiAggregate::KIND, c))
            .transpose()?;
        {
            let m = current_models(ctx).await?;
            if !department.is_empty()
                && !m.inventory.knows_department(&department)
                && !m.requests.knows_department(&department)
            {
                return Err(bad_input(
                    "department",
                    format!("{department:?} is not a customer: no requests, resources or quota are recorded for it"),
                ));
            }
            if ci_id.is_some_and(|c| m.inventory.ci(c).is_none()) {
                return Err(bad_input(
                    "configurationItem",
                    "names no configuration item",
                ));
            }
        }
        let cmid = input.client_mutation_id.as_deref();
        let ticket_id = new_id(ctx, &domain.actor.id, cmid);
        let command = TicketCommand::Record {
            ticket_id,
            kind: input.kind.into(),
            caller: Caller {
                name: input.caller_name,
                contact: input.contact,
                department,
                user: input.user,
            },
            description: input.description,
            ci_id,
            chargeable: input.chargeable.unwrap_or(false),
        };
        on_ticket(ctx, input.client_mutation_id, ticket_id, command).await
    }

    /// First line solved it on the call: the ticket closes with `text` as the resolution.
    async fn resolve_ticket(&self, ctx: &Context<'_>, input: TicketTextInput) -> Result<Payload> {
        let id = ids::parse("ticketId", TicketAggregate::KIND, &input.ticket_id)?;
        let command = TicketCommand::ResolveDirectly {
            resolution: input.text,
        };
        on_ticket(ctx, input.client_mutation_id, id, command).await
    }

    /// A product manager confirms a chargeable change's commercial terms.
    async fn confirm_ticket_terms(
        &self,
        ctx: &Context<'_>,
        input: TicketTextInput,
    ) -> Result<Payload> {
        let id = ids::parse("ticketId", TicketAggregate::KIND, &input.ticket_id)?;
        let command = TicketCommand::ConfirmTerms { terms: input.text };
        on_ticket(ctx, input.client_mutation_id, id, command).await
    }

    /// Passes the ticket to second line (a chargeable change: the product manager).
    async fn issue_work_order(
        &self,
        ctx: &Context<'_>,
        input: IssueWorkOrderInput,
    ) -> Result<Payload> {
        let id = ids::parse("ticketId", TicketAggregate::KIND, &input.ticket_id)?;
        let command = TicketCommand::IssueWorkOrder {
            to: Assignee {
                team: input.team,
                person: input.person,
            },
            instructions: input.instructions,
        };
        on_ticket(ctx, input.client_mutation_id, id, command).await
    }

    async fn accept_work_order(&self, ctx: &Context<'_>, input: WorkOrderInput) -> Result<Payload> {
        let id = ticket_of(ctx, &input.work_order_id).await?;
        on_ticket(
            ctx,
            input.client_mutation_id,
            id,
            TicketCommand::AcceptWorkOrder,
        )
        .await
    }

    async fn log_work_order(&self, ctx: &Context<'_>, input: WorkOrderInput) -> Result<Payload> {
        let id = ticket_of(ctx, &input.work_order_id).await?;
        let command = TicketCommand::LogWork {
            note: input.text.unwrap_or_default(),
        };
        on_ticket(ctx, input.client_mutation_id, id, command).await
    }

    /// Second line hands back its result (`text`).
    async fn complete_work_order(
        &self,
        ctx: &Context<'_>,
        input: WorkOrderInput,
    ) -> Result<Payload> {
        let id = ticket_of(ctx, &input.work_order_id).await?;
        let command = TicketCommand::CompleteWorkOrder {
            result: input.text.unwrap_or_default(),
        };
        on_ticket(ctx, input.client_mutation_id, id, command).await
    }

    /// First line called the user back: confirmed closes the ticket, otherwise a new work
    /// order follows the last one.
    async fn call_back(&self, ctx: &Context<'_>, input: CallBackInput) -> Result<Payload> {
        let id = ids::parse("ticketId", TicketAggregate::KIND, &input.ticket_id)?;
        let reissue_to = (input.team.is_some() || input.person.is_some()).then_some(Assignee {
            team: input.team,
            person: input.person,
        });
        let command = TicketCommand::CallBack {
            confirmed: input.confirmed,
            note: input.note,
            reissue_to,
        };
        on_ticket(ctx, input.client_mutation_id, id, command).await
    }
}
