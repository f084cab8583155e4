//! The scheduler: turns due entries of the read models into commands. For now, approval
//! steps waiting past their time are escalated. Command ids are derived from what is due,
//! so a second pass, a second replica or a restart does nothing twice.

use std::time::Duration;

use chrono::Duration as Span;
use opsledger_domain::aggregate::Context;
use opsledger_domain::request::{Request, RequestCommand, RequestError, RequestStatus};
use opsledger_domain::Actor;
use opsledger_projections::requests::{Order, RequestFilter};
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

/// Runs [`escalate_due_steps`] every `every`, for as long as the process runs.
pub fn start(app: App, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match escalate_due_steps(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalated = n, "escalated approval steps past their time"),
                Err(e) => tracing::warn!("the scheduler's pass failed: {e}"),
            }
        }
    })
}
