//! Baseline audits: the driver collects a CI's configuration (`collect_configuration`,
//! given the baseline's settings as `expected` beside the CI's attributes), the settings
//! found are compared with the baseline's, and the findings are recorded on the CI
//! (`BaselineAudited`, naming the baseline's version). The provisioning engine calls
//! [`audit`] for the baselines attached to its workflow
//! (`ReadModels::baselines.for_workflow`); `auditBaseline` calls it on demand.

use std::collections::BTreeMap;

use opsledger_domain::automation::baseline::{compare, Baseline, BaselineError};
use opsledger_domain::kernel::aggregate::{Aggregate, Context, DomainEvent};
use opsledger_domain::resources::cmdb::{CiCommand, CiEvent, ConfigurationItem};
use opsledger_schema::{Audited, CommandError};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::App;
use crate::drivers::{operation, DriverError};
use crate::sagas::vm::{
    call, done_before, driver_failed, driver_params, failure, internal, load, refused, Outcome,
};

/// Audits the CI `ci_id` against the baseline `baseline_id` at its current version, for
/// `ctx.actor` (the CI's owner or an operator; the engine acts as a `system:` actor).
/// `command_id` is the idempotency key and the driver call's run id: a retry returns the
/// findings recorded the first time.
///
/// # Errors
/// `NOT_FOUND` for an unknown CI or baseline; `FORBIDDEN` for anyone but the owner or an
/// operator; `CONFLICT` for a retired CI; the driver's failure (recorded on the CI).
pub async fn audit(
    app: &App,
    ci_id: Uuid,
    baseline_id: Uuid,
    command_id: Uuid,
    ctx: &Context,
) -> Outcome<Audited> {
    if let Some(done) = done_before(app, ci_id, command_id).await? {
        return recorded(app, done.first_position).await;
    }
    let (baseline, _) = app
        .bus
        .load::<Baseline>(baseline_id)
        .await
        .map_err(internal)?;
    let definition = baseline
        .definition
        .ok_or_else(|| refused(BaselineError::NotFound))?;
    let (ci, record) = load(app, ci_id).await?;
    let record_audit = |findings| CiCommand::RecordAudit {
        baseline_id,
        baseline_version: baseline.version,
        findings,
    };
    // Who may, and whether the CI is in service, before the driver is called.
    ci.decide(record_audit(Vec::new()), ctx).map_err(refused)?;
    let mut params = driver_params(ci_id, &record);
    params.insert("expected".into(), json!(definition.settings));
    params.insert("baseline_id".into(), json!(baseline_id));
    let op = operation::COLLECT_CONFIGURATION;
    let output = match call(app, op, params, command_id).await {
        Ok(output) => output,
        Err(e) => return Err(driver_failed(app, ci_id, op, &e, ctx, command_id).await),
    };
    let Some(Value::Object(settings)) = output.output.get("settings") else {
        let e = DriverError::Malformed {
            message: "the answer has no settings object".into(),
            log: output.log,
        };
        return Err(driver_failed(app, ci_id, op, &e, ctx, command_id).await);
    };
    let actual: BTreeMap<String, Option<String>> = settings
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            (k.clone(), text)
        })
        .collect();
    let findings = compare(&definition.settings, &actual);
    let done = app
        .bus
        .execute::<ConfigurationItem>(ci_id, record_audit(findings.clone()), ctx, command_id)
        .await
        .map_err(failure)?;
    Ok(Audited {
        findings,
        baseline_version: baseline.version,
        position: done.last_position,
    })
}

/// The audit recorded at `position`.
async fn recorded(app: &App, position: u64) -> Outcome<Audited> {
    let events = app.store.read_all(position, 1).await.map_err(internal)?;
    let event = events
        .first()
        .ok_or_else(|| internal(format!("no event at position {position}")))?;
    match CiEvent::from_recorded(event).map_err(internal)? {
        CiEvent::BaselineAudited {
            findings,
            baseline_version,
            ..
        } => Ok(Audited {
            findings,
            baseline_version,
            position,
        }),
        _ => Err(CommandError::Conflict(
            "the command id was used for another command on this configuration item".into(),
        )),
    }
}
