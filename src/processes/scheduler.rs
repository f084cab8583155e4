//! The scheduler: turns due entries of the read models into commands. Approval steps
//! waiting past their time are escalated; leases ending soon are noticed (to the owner and
//! the watchers), approved extensions move lease ends, and expired leases are reclaimed
//! (unless a freeze window holds the item: then when it ends);
//! SLA clocks that reach their warning share or their target are recorded as such;
//! inspections are scheduled slot by slot from their templates, marked overdue past their
//! deadline, and each anomaly that opens an incident gets one, linked both ways; the CI
//! attributes an implemented change set and the CMDB does not show yet are applied.
//! Command ids are derived from what is due, and the aggregates refuse what was done
//! already, so a second pass, a second replica or a restart does nothing twice.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use opsledger_domain::changes::change::{ChangeStatus, CiUpdate};
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::operations::incident::{
    Assessment, Extent, Importance, Incident, IncidentCommand, IncidentError, Opening, Priority,
    Source,
};
use opsledger_domain::operations::inspection::{
    anomaly_incident_id, inspection_id, AnomalyCause, Area, IncidentLevel, Inspection,
    InspectionCommand, SITE_TIME_ZONE,
};
use opsledger_domain::requests::request::{
    Request, RequestCommand, RequestDetails, RequestError, RequestStatus,
};
use opsledger_domain::resources::cmdb::{CiCommand, ConfigurationItem};
use opsledger_domain::Actor;
use opsledger_projections::operations::incidents::Stage;
use opsledger_projections::operations::inspections::{AnomalyView, InspectionView};
use opsledger_projections::requests::{Order, RequestFilter};
use opsledger_projections::resources::inventory::Inventory;
use uuid::Uuid;

use crate::app::App;
use crate::store::commands::CommandError;

/// One pass: escalates every open step that has waited past its time. Returns how many
/// escalations it recorded.
///
/// # Errors
/// A store failure; a step someone else escalated first is not an error.
pub async fn escalate_due_steps(app: &App) -> Result<usize, CommandError<RequestError>> {
    let now = app.clock.now();
    let due: Vec<(Uuid, usize)> = {
        let models = app.runner.read().await;
        let pending = RequestFilter {
            status: Some(RequestStatus::PendingApproval),
            ..RequestFilter::default()
        };
        models
            .requests
            .list(&pending, None, Order::OldestFirst)
            .filter_map(|(_, r)| {
                let s = &r.state;
                let hours = s.steps.get(s.open_step)?.escalate_after_hours?;
                let due = s.open_since? + Span::hours(i64::from(hours)) <= now;
                (due && !s.escalated.contains(&s.open_step)).then_some((r.request_id, s.open_step))
            })
            .collect()
    };
    let ctx = Context {
        actor: Actor::system("scheduler"),
        now,
    };
    let mut escalated = 0;
    for (request_id, step) in due {
        let command_id = Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("opsledger:escalate:{request_id}:{step}").as_bytes(),
        );
        match app
            .bus
            .execute::<Request>(
                request_id,
                RequestCommand::EscalateStep { step },
                &ctx,
                command_id,
            )
            .await
        {
            Ok(_) => escalated += 1,
            // Decided meanwhile, or escalated by another replica: nothing to do.
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(escalated)
}

/// What one lease pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeasePass {
    pub noticed: usize,
    pub extended: usize,
    pub reclaimed: usize,
    /// Expired leases whose reclamation a freeze window holds back.
    pub held: usize,
}

impl LeasePass {
    fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("noticed", self.noticed),
            ("extended", self.extended),
            ("reclaimed", self.reclaimed),
            ("held", self.held),
        ]
    }
}

/// A lease due for a notice or reclamation: the CI, its end, the notices given, and
/// whether a freeze window holds it now (its reclamation waits for the freeze to end).
type Due = (Uuid, DateTime<Utc>, Vec<(DateTime<Utc>, u32)>, bool);

/// How many days before its end a lease is noticed, from `OPSLEDGER_LEASE_NOTICE_DAYS`
/// (e.g. `7,1`, the default).
pub fn notice_days() -> Vec<u32> {
    std::env::var("OPSLEDGER_LEASE_NOTICE_DAYS")
        .ok()
        .map(|v| v.split(',').filter_map(|d| d.trim().parse().ok()).collect())
        .filter(|d: &Vec<u32>| !d.is_empty())
        .unwrap_or_else(|| vec![7, 1])
}

fn key(parts: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:{parts}").as_bytes(),
    )
}

/// One pass over leases: applies approved extensions, notices leases ending within each
/// of `notice_days`, and reclaims those that have ended.
///
/// # Errors
/// A store failure; what another replica did first is not an error.
pub async fn run_leases(app: &App, notice_days: &[u32]) -> anyhow::Result<LeasePass> {
    let now = app.clock.now();
    let ctx = Context {
        actor: Actor::system("scheduler"),
        now,
    };
    let mut pass = LeasePass {
        extended: apply_extensions(app, &ctx).await?,
        ..LeasePass::default()
    };
    let horizon = now + Span::days(i64::from(notice_days.iter().copied().max().unwrap_or(0)));
    let due: Vec<Due> = {
        let models = app.runner.read().await;
        let instant = opsledger_domain::changes::freeze::Window {
            start: now,
            end: now + Span::seconds(1),
        };
        models
            .inventory
            .leases_ending_by(horizon)
            .filter_map(|v| {
                let frozen = !models
                    .changes
                    .freezes_in_force(instant, &[v.id()], &[])
                    .is_empty();
                Some((
                    v.id(),
                    v.state.lease()?.end,
                    v.state.noticed.clone(),
                    frozen,
                ))
            })
            .collect()
    };
    for (ci_id, end, noticed, frozen) in due {
        // An automated operation on a frozen item waits for the freeze to end.
        if end <= now && frozen {
            pass.held += 1;
            continue;
        }
        if end <= now {
            match crate::sagas::deploy::reclaim(app, ci_id, "租期屆滿，自動回收", &ctx).await
            {
                Ok(_) => pass.reclaimed += 1,
                Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
                Err(e) => {
                    return Err(not_recorded(
                        format!("reclaiming ci-{ci_id} at its lease end"),
                        e,
                    ))
                }
            }
            continue;
        }
        for &days in notice_days {
            let due = end - Span::days(i64::from(days)) <= now;
            if !due || noticed.contains(&(end, days)) {
                continue;
            }
            let command_id = key(&format!("lease-notice:{ci_id}:{}:{days}", end.timestamp()));
            let command = CiCommand::NoticeLeaseEnd { days_before: days };
            match app
                .bus
                .execute::<ConfigurationItem>(ci_id, command, &ctx, command_id)
                .await
            {
                Ok(_) => pass.noticed += 1,
                Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
                Err(e) => {
                    return Err(not_recorded(
                        format!("noticing the lease end of ci-{ci_id}"),
                        e,
                    ))
                }
            }
        }
    }
    Ok(pass)
}

/// Moves the lease end of each approved extension request, then marks it fulfilled (or
/// failed, with why, when the resource is gone or the new end is not later).
async fn apply_extensions(app: &App, ctx: &Context) -> anyhow::Result<usize> {
    let approved: Vec<(Uuid, Uuid, chrono::NaiveDate)> = {
        let models = app.runner.read().await;
        // Only extensions' details are read: approved requests of other kinds may be
        // many, and this runs every pass.
        let filter = RequestFilter {
            status: Some(RequestStatus::Approved),
            kind: Some("extend_lease".into()),
            ..RequestFilter::default()
        };
        models
            .requests
            .list(&filter, None, Order::OldestFirst)
            .filter_map(|(_, r)| {
                match serde_json::from_str::<RequestDetails>(r.details_json()).ok()? {
                    RequestDetails::ExtendLease {
                        resource_id,
                        new_end,
                        ..
                    } => Some((r.request_id, resource_id, new_end)),
                    _ => None,
                }
            })
            .collect()
    };
    let mut done = 0;
    for (request_id, ci_id, new_end) in approved {
        // The lease runs to the end of its last day, as a new resource's does.
        let new_end = new_end.and_time(chrono::NaiveTime::MIN).and_utc() + Span::days(1);
        let command = CiCommand::ExtendLease {
            new_end,
            request_id: Some(request_id),
        };
        let outcome = app
            .bus
            .execute::<ConfigurationItem>(ci_id, command, ctx, key(&format!("extend:{request_id}")))
            .await;
        let closing = match outcome {
            Ok(_) => RequestCommand::MarkFulfilled {
                note: format!("租期已延至 {}", new_end.format("%Y-%m-%d %H:%M")),
            },
            Err(CommandError::Domain(e)) => RequestCommand::MarkFailed {
                note: format!("無法延期：{e}"),
            },
            Err(CommandError::Conflict(_)) => continue,
            Err(e) => {
                return Err(not_recorded(
                    format!("extending the lease of ci-{ci_id} for request {request_id}"),
                    e,
                ))
            }
        };
        match app
            .bus
            .execute::<Request>(
                request_id,
                closing,
                ctx,
                key(&format!("extend-closed:{request_id}")),
            )
            .await
        {
            Ok(_) => done += 1,
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => {
                return Err(not_recorded(
                    format!("closing the lease extension request {request_id}"),
                    e,
                ))
            }
        }
    }
    Ok(done)
}

/// What one SLA pass recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlaPass {
    pub warnings: usize,
    pub breaches: usize,
}

impl SlaPass {
    fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![("warnings", self.warnings), ("breaches", self.breaches)]
    }
}

/// One pass over the SLA clocks: every warning and breach due by now is recorded, with
/// the instant the clock reached it (not the time of the pass), earliest first. The
/// incident escalates its warning level with it.
///
/// # Errors
/// A store failure; what another replica recorded first is not an error.
pub async fn run_sla(app: &App) -> anyhow::Result<SlaPass> {
    let now = app.clock.now();
    let ctx = Context {
        actor: Actor::system("scheduler"),
        now,
    };
    let due = app.runner.read().await.incidents.due_by(now);
    let mut pass = SlaPass::default();
    for d in due {
        let (command, count) = match d.stage {
            Stage::Warning => (
                IncidentCommand::RecordSlaWarning {
                    clock: d.clock,
                    at: d.at,
                },
                &mut pass.warnings,
            ),
            Stage::Breach => (
                IncidentCommand::RecordSlaBreach {
                    clock: d.clock,
                    at: d.at,
                },
                &mut pass.breaches,
            ),
        };
        let command_id = key(&format!(
            "sla:{}:{}:{:?}",
            d.incident,
            d.clock.as_str(),
            d.stage
        ));
        match app
            .bus
            .execute::<Incident>(d.incident, command, &ctx, command_id)
            .await
        {
            Ok(_) => *count += 1,
            // Recorded already (by another replica, or before a restart): nothing to do.
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => return Err(not_recorded("recording an SLA warning or breach", e)),
        }
    }
    Ok(pass)
}

/// What one inspection pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InspectionPass {
    /// Inspections scheduled, one per slot that fell due.
    pub scheduled: usize,
    /// Inspections marked overdue.
    pub overdue: usize,
    /// Anomalies an incident was opened for and linked to.
    pub incidents: usize,
}

impl InspectionPass {
    fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("scheduled", self.scheduled),
            ("overdue", self.overdue),
            ("incidents", self.incidents),
        ]
    }
}

/// The most slots of one template a pass schedules, earliest first. A normal pass
/// schedules one or two; after an outage the slots missed are scheduled too (and then
/// marked overdue), and 96 — three days of 45-minute walks — keeps one pass from writing
/// thousands of inspections after a long one: the next passes go on from the latest slot
/// scheduled, so none is skipped.
pub const CATCH_UP_SLOTS: usize = 96;

/// How long a pass waits for the read models to show the inspections it scheduled before
/// it looks for overdue ones (those it does not see yet, the next pass marks).
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// One pass over inspections: schedules every slot of every template in force that fell
/// due by now (at most [`CATCH_UP_SLOTS`] per template), marks overdue the open ones whose
/// deadline has passed, and opens an incident for each anomaly whose item opens one,
/// linking it to the inspection. Ids and command ids are derived from the template and
/// slot, the inspection and the item, so a second pass, a second replica or a restart
/// does nothing twice.
///
/// # Errors
/// A store failure; what another replica did first is not an error.
pub async fn run_inspections(app: &App) -> anyhow::Result<InspectionPass> {
    let now = app.clock.now();
    let ctx = Context {
        actor: Actor::system("scheduler"),
        now,
    };
    let mut pass = InspectionPass::default();

    let due: Vec<(Uuid, InspectionCommand)> = {
        let models = app.runner.read().await;
        let inspections = &models.inspections;
        let mut due = Vec::new();
        for template in inspections.templates() {
            let Some(from) = inspections.next_due(template.id, now) else {
                continue;
            };
            let state = template.state();
            // Slots are due in [from, to): one due right now is due.
            for slot in state
                .slots(from, now + Span::nanoseconds(1))
                .into_iter()
                .take(CATCH_UP_SLOTS)
            {
                if let Ok(command) = state.inspection_for(slot) {
                    due.push((inspection_id(template.id, slot.due), command));
                }
            }
        }
        due
    };
    let mut written = 0;
    for (id, command) in due {
        let command_id = key(&format!("inspection-scheduled:{id}"));
        match app
            .bus
            .execute::<Inspection>(id, command, &ctx, command_id)
            .await
        {
            Ok(done) => {
                pass.scheduled += 1;
                written = written.max(done.last_position);
            }
            // Scheduled already, by another replica or before a restart.
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => return Err(not_recorded("scheduling an inspection", e)),
        }
    }
    if written > 0 {
        // Slots missed in an outage are past their deadline already: mark them now if the
        // models show them in time, else in the next pass.
        let _ = app.runner.wait_for(written, CATCH_UP_WAIT).await;
    }

    let past_deadline: Vec<Uuid> = {
        let models = app.runner.read().await;
        models
            .inspections
            .open_past_deadline(now)
            .map(|v| v.id)
            .collect()
    };
    for id in past_deadline {
        let command_id = key(&format!("inspection-overdue:{id}"));
        match app
            .bus
            .execute::<Inspection>(id, InspectionCommand::MarkOverdue, &ctx, command_id)
            .await
        {
            Ok(_) => pass.overdue += 1,
            // Completed meanwhile, or marked by another replica.
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => return Err(not_recorded("marking an inspection overdue", e)),
        }
    }

    let anomalies: Vec<(Uuid, String, Opening)> = {
        let models = app.runner.read().await;
        models
            .inspections
            .anomalies_without_incident()
            .map(|(inspection, anomaly)| {
                (
                    inspection.id,
                    anomaly.key.clone(),
                    anomaly_opening(inspection, anomaly),
                )
            })
            .collect()
    };
    for (inspection, item, opening) in anomalies {
        let incident_id = anomaly_incident_id(inspection, &item);
        let open = IncidentCommand::Open {
            incident_id,
            opening: Box::new(opening),
            priority: None,
        };
        match app
            .bus
            .execute::<Incident>(
                incident_id,
                open,
                &ctx,
                key(&format!("inspection-incident:{incident_id}")),
            )
            .await
        {
            // Opened before a restart, or by another replica: link it.
            Ok(_) | Err(CommandError::Domain(IncidentError::AlreadyOpened)) => {}
            Err(CommandError::Domain(e)) => {
                tracing::warn!(%inspection, item, "no incident opened for an anomaly: {e}");
                continue;
            }
            Err(CommandError::Conflict(_)) => continue,
            Err(e) => {
                return Err(not_recorded(
                    "opening an incident for an inspection anomaly",
                    e,
                ))
            }
        }
        let link = InspectionCommand::LinkIncident {
            key: item.clone(),
            incident_id,
        };
        match app
            .bus
            .execute::<Inspection>(
                inspection,
                link,
                &ctx,
                key(&format!("inspection-linked:{inspection}:{item}")),
            )
            .await
        {
            Ok(_) => pass.incidents += 1,
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => {
                return Err(not_recorded(
                    "linking an inspection anomaly to its incident",
                    e,
                ))
            }
        }
    }
    Ok(pass)
}

/// The service whose SLA policy an incident from an inspection of `area` runs under.
pub fn inspection_service(area: Area) -> &'static str {
    match area {
        Area::MachineRoom => "machine-room",
        Area::Devices => "devices",
        Area::Platform => "platform",
        Area::Backups => "backups",
        Area::Optimisation => "optimisation",
    }
}

/// The assessment that grades an incident at the item's level: the importance of what was
/// found and the loss it threatens rise with the level; the social impact is not known yet.
pub fn level_assessment(level: IncidentLevel) -> Assessment {
    let (importance, loss) = match level {
        IncidentLevel::General => (Importance::General, Extent::Minor),
        IncidentLevel::Important => (Importance::Important, Extent::Serious),
        IncidentLevel::Urgent => (Importance::EspeciallyImportant, Extent::Major),
    };
    Assessment {
        importance,
        loss,
        social_impact: Extent::Minor,
    }
}

/// The incident for an anomaly: titled by the item and its reading, described with what
/// the inspector noted, graded at the item's level, its source the inspection's item.
fn anomaly_opening(inspection: &InspectionView, anomaly: &AnomalyView) -> Opening {
    let reading = match (anomaly.reading, &anomaly.unit) {
        (Some(r), Some(unit)) => format!(" {r} {unit}"),
        (Some(r), None) => format!(" {r}"),
        (None, _) => String::new(),
    };
    let bound = match anomaly.cause {
        AnomalyCause::AboveMaximum { max } => format!("（上限 {max}）"),
        AnomalyCause::BelowMinimum { min } => format!("（下限 {min}）"),
        AnomalyCause::Reported => String::new(),
    };
    let due = inspection
        .due
        .with_timezone(&SITE_TIME_ZONE)
        .format("%Y-%m-%d %H:%M");
    let mut description = format!(
        "{}（{due}）發現異常：{}{reading}{bound}，{} 記錄。",
        inspection.name, anomaly.name, anomaly.found_by
    );
    if let Some(note) = &anomaly.note {
        description.push_str(&format!("\n{note}"));
    }
    let assessment = level_assessment(anomaly.level);
    Opening {
        title: format!("巡檢異常：{}{reading}{bound}", anomaly.name),
        description,
        service: inspection_service(inspection.area).to_owned(),
        ci_ids: Vec::new(),
        assessment,
        priority: Priority::from_assessment(&assessment),
        warning_level: 1,
        source: Source::Inspection {
            inspection_id: inspection.id,
            item: anomaly.key.clone(),
        },
        department: None,
    }
}

/// Runs [`escalate_due_steps`], [`run_leases`], [`run_sla`] and [`run_inspections`] every
/// Whether the CMDB shows what `update` set (or the CI is gone or retired: nothing to do).
fn shown(inventory: &Inventory, update: &CiUpdate) -> bool {
    let Some(view) = inventory.ci(update.ci_id) else {
        return true;
    };
    let Some(record) = &view.state.record else {
        return true;
    };
    view.state.status == opsledger_domain::resources::cmdb::CiStatus::Retired
        || update
            .attributes
            .iter()
            .all(|(name, value)| record.attributes.get(name) == Some(value))
}

/// One pass over the implemented changes waiting for their review: the CI attributes
/// each set that the CMDB does not show are applied, under the same ids the
/// `recordChangeImplementation` mutation uses, so an update lost to a crash between the
/// change's event and the CI's is made, once. Returns how many CI updates it recorded.
///
/// # Errors
/// A store failure; what another replica recorded first is not an error.
pub async fn run_change_cmdb(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let due: Vec<(Uuid, Vec<CiUpdate>)> = {
        let models = app.runner.read().await;
        models
            .changes
            .by_status(ChangeStatus::Implemented)
            .filter_map(|v| {
                let pending: Vec<CiUpdate> = v
                    .implementation
                    .as_ref()?
                    .ci_updates
                    .iter()
                    .filter(|u| !shown(&models.inventory, u))
                    .cloned()
                    .collect();
                (!pending.is_empty()).then_some((v.id, pending))
            })
            .collect()
    };
    let mut applied = 0;
    for (change_id, pending) in due {
        let (actor, commands) = opsledger_schema::cmdb_updates(change_id, &pending);
        let ctx = Context { actor, now };
        for (ci_id, command, command_id) in commands {
            match app
                .bus
                .execute::<ConfigurationItem>(ci_id, command, &ctx, command_id)
                .await
            {
                Ok(_) => applied += 1,
                // Already so, or gone, or recorded by another replica: nothing to do.
                Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
                Err(e) => {
                    return Err(not_recorded(
                        format!("applying the CMDB update of change {change_id} to ci-{ci_id}"),
                        e,
                    ))
                }
            }
        }
    }
    Ok(applied)
}

/// Runs [`escalate_due_steps`], [`run_leases`], [`run_sla`], [`run_inspections`] and
/// [`run_change_cmdb`] every `every`, for as long as the process runs: the supervised task
/// `scheduler`, `retrying` (with the error) while a pass fails, `running` once they all
/// pass again.
pub fn start(app: App, every: Duration) -> tokio::task::JoinHandle<()> {
    let days = notice_days();
    let supervisor = app.supervisor.clone();
    supervisor.spawn("scheduler", move |task| {
        tick(app.clone(), days.clone(), every, task)
    })
}

async fn tick(
    app: App,
    days: Vec<u32>,
    every: Duration,
    task: crate::runtime::supervise::Task,
) -> Result<(), crate::runtime::supervise::TaskError> {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match pass(&app, &days).await {
            Ok(()) => task.running(),
            Err(e) => task.failed(format!("{e:#}")),
        }
    }
}

/// A command a pass could not record (the store failed), with what it was recording.
fn not_recorded<E: std::fmt::Display>(
    what: impl std::fmt::Display,
    e: CommandError<E>,
) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", e.report())
}

/// What a job's pass recorded, by kind.
type Counts = Vec<(&'static str, usize)>;

/// One pass of every job, each counted in the metrics with what it recorded; the failures,
/// joined.
async fn pass(app: &App, days: &[u32]) -> anyhow::Result<()> {
    let jobs: [(&'static str, anyhow::Result<Counts>); 5] = [
        (
            "escalation",
            escalate_due_steps(app)
                .await
                .map(|n| vec![("escalated", n)])
                .map_err(|e| not_recorded("escalating an approval step", e)),
        ),
        ("leases", run_leases(app, days).await.map(|p| p.counts())),
        ("sla", run_sla(app).await.map(|p| p.counts())),
        (
            "inspections",
            run_inspections(app).await.map(|p| p.counts()),
        ),
        (
            "change_cmdb",
            run_change_cmdb(app).await.map(|n| vec![("applied", n)]),
        ),
    ];
    let metrics = crate::metrics::metrics();
    let mut failed = Vec::new();
    for (job, ran) in jobs {
        match ran {
            Ok(counts) => {
                metrics.scheduler_pass(job, Some(&counts));
                if counts.iter().any(|(_, n)| *n > 0) {
                    tracing::info!(job, ?counts, "a scheduler pass recorded");
                }
            }
            Err(e) => {
                metrics.scheduler_pass(job, None);
                let failure = format!("the scheduler's {job} pass failed: {e:#}");
                tracing::warn!("{failure}");
                failed.push(failure);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use opsledger_domain::operations::incident::Severity;

    use super::*;

    #[test]
    fn an_anomaly_opens_an_incident_of_its_item_s_level() {
        for (level, severity) in [
            (IncidentLevel::General, Severity::General),
            (IncidentLevel::Important, Severity::Important),
            (IncidentLevel::Urgent, Severity::Urgent),
        ] {
            assert_eq!(level_assessment(level).severity(), severity, "{level:?}");
        }
        let priority = |level| Priority::from_assessment(&level_assessment(level)).number();
        assert_eq!(
            [
                priority(IncidentLevel::General),
                priority(IncidentLevel::Important),
                priority(IncidentLevel::Urgent)
            ],
            [5, 3, 1],
            "the ITIL priority follows"
        );
    }
}
