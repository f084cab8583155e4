//! The scheduler: turns due entries of the read models into commands. Approval steps
//! waiting past their time are escalated; leases ending soon are noticed (to the owner and
//! the watchers), approved extensions move lease ends, and expired leases are reclaimed;
//! SLA clocks that reach their warning share or their target are recorded as such; the
//! CI attributes an implemented change set and the CMDB does not show yet are applied.
//! Command ids are derived from what is due, and the aggregates refuse what was done
//! already, so a second pass, a second replica or a restart does nothing twice.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use opsledger_domain::aggregate::Context;
use opsledger_domain::change::{ChangeStatus, CiUpdate};
use opsledger_domain::cmdb::{CiCommand, ConfigurationItem};
use opsledger_domain::incident::{Incident, IncidentCommand};
use opsledger_domain::request::{
    Request, RequestCommand, RequestDetails, RequestError, RequestStatus,
};
use opsledger_domain::Actor;
use opsledger_projections::incidents::Stage;
use opsledger_projections::inventory::Inventory;
use opsledger_projections::requests::{Order, RequestFilter};
use opsledger_schema::Failure;
use uuid::Uuid;

use crate::app::App;
use crate::commands::CommandError;

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
}

/// A lease due for a notice or reclamation: the CI, its end, the notices given.
type Due = (Uuid, DateTime<Utc>, Vec<(DateTime<Utc>, u32)>);

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
pub async fn run_leases(app: &App, notice_days: &[u32]) -> Result<LeasePass, String> {
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
        models
            .inventory
            .leases_ending_by(horizon)
            .filter_map(|v| Some((v.id(), v.state.lease()?.end, v.state.noticed.clone())))
            .collect()
    };
    for (ci_id, end, noticed) in due {
        if end <= now {
            match crate::resources::reclaim(app, ci_id, "租期屆滿，自動回收", &ctx).await {
                Ok(_) => pass.reclaimed += 1,
                Err(Failure::Domain(_) | Failure::Conflict(_)) => {}
                Err(Failure::Internal(e)) => return Err(e),
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
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(pass)
}

/// Moves the lease end of each approved extension request, then marks it fulfilled (or
/// failed, with why, when the resource is gone or the new end is not later).
async fn apply_extensions(app: &App, ctx: &Context) -> Result<usize, String> {
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
            Err(e) => return Err(e.to_string()),
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
            Err(e) => return Err(e.to_string()),
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

/// One pass over the SLA clocks: every warning and breach due by now is recorded, with
/// the instant the clock reached it (not the time of the pass), earliest first. The
/// incident escalates its warning level with it.
///
/// # Errors
/// A store failure; what another replica recorded first is not an error.
pub async fn run_sla(app: &App) -> Result<SlaPass, String> {
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
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(pass)
}

/// Whether the CMDB shows what `update` set (or the CI is gone or retired: nothing to do).
fn shown(inventory: &Inventory, update: &CiUpdate) -> bool {
    let Some(view) = inventory.ci(update.ci_id) else {
        return true;
    };
    let Some(record) = &view.state.record else {
        return true;
    };
    view.state.status == opsledger_domain::cmdb::CiStatus::Retired
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
pub async fn run_change_cmdb(app: &App) -> Result<usize, String> {
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
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(applied)
}

/// Runs [`escalate_due_steps`], [`run_leases`], [`run_sla`] and [`run_change_cmdb`] every
/// `every`, for as long as the process runs.
pub fn start(app: App, every: Duration) -> tokio::task::JoinHandle<()> {
    let days = notice_days();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match escalate_due_steps(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalated = n, "escalated approval steps past their time"),
                Err(e) => tracing::warn!("the scheduler's pass failed: {e}"),
            }
            match run_leases(&app, &days).await {
                Ok(pass) if pass == LeasePass::default() => {}
                Ok(pass) => tracing::info!(?pass, "lease pass"),
                Err(e) => tracing::warn!("the lease pass failed: {e}"),
            }
            match run_sla(&app).await {
                Ok(pass) if pass == SlaPass::default() => {}
                Ok(pass) => tracing::info!(?pass, "SLA pass"),
                Err(e) => tracing::warn!("the SLA pass failed: {e}"),
            }
            match run_change_cmdb(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(applied = n, "applied implemented changes to the CMDB"),
                Err(e) => tracing::warn!("the change CMDB pass failed: {e}"),
            }
        }
    })
}
