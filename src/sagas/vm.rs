//! Virtual-server operations: start, stop, restart, back up, restore and delete a VM, on
//! the word of its owner or an operator. Each is checked against the CI's own rules
//! first (a refusal calls no driver), then against the freezes in force, then carried
//! out by the driver and recorded on the CI, so the CMDB says what the driver did.
//!
//! The command id is the driver call's run id and the recorded event's idempotency key:
//! a retry of a command carried out returns its outcome and calls nothing again (a
//! deletion finishes the reclamation a crash cut short). A driver failure is recorded on
//! the CI as `CiOperationFailed` (once per command) with the end of the driver's log, and
//! changes nothing else; a retry of a failed command calls the driver again.
//!
//! The driver is given the CI's id, name and attributes as the call's parameters. With
//! the simulator, a CI attribute `simulate_failure` (e.g. `stop_vm`) fails that operation
//! and `simulate_drift` (a JSON object as text) changes what a baseline audit collects:
//! operators set them with `updateConfigurationItem`.

use opsledger_domain::changes::freeze::{Frozen, Window};
use opsledger_domain::kernel::aggregate::{Aggregate, Context};
use opsledger_domain::resources::cmdb::{
    CiCommand, CiError, CiRecord, CiStatus, CiType, ConfigurationItem,
};
use opsledger_domain::Actor;
use opsledger_schema::{backup_id, VmError, VmOperation, Written};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::App;
use crate::drivers::{simulator, DriverCall, DriverError, DriverOutput, Phase};
use crate::store::commands::CommandError;

pub(crate) type Outcome<T> = Result<T, CommandError<VmError>>;

pub(crate) fn internal(e: impl std::fmt::Display) -> CommandError<VmError> {
    CommandError::internal(e.to_string())
}

pub(crate) fn refused(e: impl Into<VmError>) -> CommandError<VmError> {
    CommandError::Domain(e.into())
}

pub(crate) fn failure(e: CommandError<CiError>) -> CommandError<VmError> {
    e.map_domain(VmError::from)
}

/// The CI stream's name.
pub(crate) fn stream(ci_id: Uuid) -> String {
    format!("{}-{ci_id}", ConfigurationItem::KIND)
}

/// Where `command_id` landed before, if it did (on the CI; elsewhere it is a conflict).
pub(crate) async fn done_before(
    app: &App,
    ci_id: Uuid,
    command_id: Uuid,
) -> Outcome<Option<crate::Appended>> {
    match app.store.command(command_id).await.map_err(internal)? {
        Some(done) if done.stream == stream(ci_id) => Ok(Some(done)),
        Some(done) => Err(CommandError::Conflict(format!(
            "command id {command_id} was already used on {}",
            done.stream
        ))),
        None => Ok(None),
    }
}

/// The CI as its stream has it now.
pub(crate) async fn load(app: &App, ci_id: Uuid) -> Outcome<(ConfigurationItem, CiRecord)> {
    let (ci, _) = app
        .bus
        .load::<ConfigurationItem>(ci_id)
        .await
        .map_err(internal)?;
    let record = ci
        .record
        .clone()
        .ok_or_else(|| refused(CiError::NotFound))?;
    Ok((ci, record))
}

/// What the driver is told of a CI: its id, name and attributes. The simulator's
/// `simulate_drift`, kept as text in the CMDB, is passed as the object it spells.
pub(crate) fn driver_params(ci_id: Uuid, record: &CiRecord) -> Map<String, Value> {
    let mut params = Map::new();
    for (name, value) in &record.attributes {
        let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
        if name == simulator::DRIFT_PARAM {
            if let Some(object) = value
                .as_str()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .filter(Value::is_object)
            {
                value = object;
            }
        }
        params.insert(name.clone(), value);
    }
    params.insert("ci_id".into(), json!(ci_id));
    params.insert("name".into(), json!(record.name));
    params
}

/// Calls the driver for `operation` on the CI, as run `command_id`.
pub(crate) async fn call(
    app: &App,
    operation: &str,
    params: Map<String, Value>,
    command_id: Uuid,
) -> Result<DriverOutput, DriverError> {
    let call = DriverCall {
        operation: operation.to_owned(),
        phase: Phase::Do,
        run_id: command_id,
        step: operation.to_owned(),
        params,
        output: None,
        script: None,
    };
    app.driver.call(&call).await
}

/// Records that the driver failed `operation` (once per command: a retry that fails again
/// finds it recorded), and the error the caller hears.
pub(crate) async fn driver_failed(
    app: &App,
    ci_id: Uuid,
    operation: &str,
    error: &DriverError,
    ctx: &Context,
    command_id: Uuid,
) -> CommandError<VmError> {
    let record = CiCommand::RecordFailure {
        operation: operation.to_owned(),
        error: error.to_string(),
        log: error.log().to_owned(),
    };
    let failure_id = Uuid::new_v5(&command_id, b"driver-failure");
    if let Err(e) = app
        .bus
        .execute::<ConfigurationItem>(ci_id, record, ctx, failure_id)
        .await
    {
        tracing::error!(ci = %ci_id, operation, "recording a driver failure failed: {}", e.report());
    }
    refused(VmError::Driver {
        operation: operation.to_owned(),
        message: error.to_string(),
    })
}

/// The freeze that holds the CI now, if one does.
async fn freeze_on(app: &App, ci_id: Uuid, ctx: &Context) -> Option<Frozen> {
    let instant = Window::new(ctx.now, ctx.now + chrono::Duration::seconds(1));
    let models = app.runner.read().await;
    models
        .changes
        .freezes_in_force(instant, &[ci_id], &[])
        .first()
        .map(Frozen::from)
}

/// The CMDB command recording `op`; a backup's reference and size come from the driver.
fn ci_command(op: &VmOperation, command_id: Uuid, output: Option<&DriverOutput>) -> CiCommand {
    match op {
        VmOperation::Start => CiCommand::Start,
        VmOperation::Stop { reason } => CiCommand::Stop {
            reason: reason.clone(),
        },
        VmOperation::Restart => CiCommand::Restart,
        VmOperation::Backup => {
            let out = output.map(|o| &o.output);
            CiCommand::TakeBackup {
                backup_id: backup_id(command_id),
                reference: out
                    .and_then(|o| o.get("backup_ref"))
                    .and_then(Value::as_str)
                    .unwrap_or(if output.is_some() { "" } else { "pending" })
                    .to_owned(),
                size_bytes: out
                    .and_then(|o| o.get("size_bytes"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            }
        }
        VmOperation::Restore { backup_id } => CiCommand::RestoreBackup {
            backup_id: *backup_id,
        },
        VmOperation::Delete { .. } => CiCommand::MarkDeleted,
    }
}

/// Carries out `op` on the VM `ci_id` for `ctx.actor`.
///
/// # Errors
/// `FORBIDDEN` for anyone but the owner or an operator; `BAD_USER_INPUT` for a CI that
/// is not a VM; `NOT_FOUND` for an unknown CI or backup; `CONFLICT` for a state that
/// forbids it (already running, stopped, retired, deleted) or a freeze holding the VM;
/// the driver's failure (recorded on the CI).
pub async fn operate(
    app: &App,
    ci_id: Uuid,
    op: VmOperation,
    ctx: &Context,
    command_id: Uuid,
) -> Outcome<Written> {
    if let Some(done) = done_before(app, ci_id, command_id).await? {
        if let VmOperation::Delete { reason } = &op {
            return reclaim_deleted(app, ci_id, reason, ctx).await;
        }
        return Ok(Written {
            position: done.last_position,
        });
    }
    let (ci, record) = load(app, ci_id).await?;
    // Who may, before anything about its state: behind the department wall it is absent.
    ci.admit(&ctx.actor, true).map_err(refused)?;
    if record.ci_type != CiType::VirtualMachine {
        return Err(refused(CiError::Invalid(
            opsledger_domain::requests::catalog::InvalidField {
                field: "ciId".into(),
                problem: "is not a virtual machine".into(),
            },
        )));
    }
    if ci.deleted && ci.status != CiStatus::Retired {
        return Err(refused(CiError::Deleted));
    }
    // The CI's rules (who, which state) decide before anything is called.
    ci.decide(ci_command(&op, command_id, None), ctx)
        .map_err(refused)?;
    if op.held_by_freezes() {
        if let Some(frozen) = freeze_on(app, ci_id, ctx).await {
            return Err(refused(frozen));
        }
    }
    let operation = op.driver_operation();
    let mut params = driver_params(ci_id, &record);
    if let VmOperation::Restore { backup_id } = &op {
        params.insert("backup_id".into(), json!(backup_id));
        if let Some(b) = ci.backup(*backup_id) {
            params.insert("backup_ref".into(), json!(b.reference));
        }
    }
    let output = match call(app, operation, params, command_id).await {
        Ok(output) => output,
        Err(e) => return Err(driver_failed(app, ci_id, operation, &e, ctx, command_id).await),
    };
    let command = ci_command(&op, command_id, Some(&output));
    if matches!(&command, CiCommand::TakeBackup { reference, .. } if reference.is_empty()) {
        let e = DriverError::Malformed {
            message: "the answer names no backup_ref".into(),
            log: output.log,
        };
        return Err(driver_failed(app, ci_id, operation, &e, ctx, command_id).await);
    }
    let done = app
        .bus
        .execute::<ConfigurationItem>(ci_id, command, ctx, command_id)
        .await
        .map_err(failure)?;
    match &op {
        VmOperation::Delete { reason } => reclaim_deleted(app, ci_id, reason, ctx).await,
        _ => Ok(Written {
            position: done.last_position,
        }),
    }
}

/// Gives back a deleted VM's capacity, address and quota and retires it (each step
/// skipped when done already). An owner who is not an operator asked for the deletion,
/// which is recorded as theirs; the reclamation is the system's.
async fn reclaim_deleted(app: &App, ci_id: Uuid, reason: &str, ctx: &Context) -> Outcome<Written> {
    let (ci, _) = load(app, ci_id).await?;
    if ci.status == CiStatus::Retired {
        let position = app.store.head().await.map_err(internal)?;
        return Ok(Written { position });
    }
    let by = if ctx.actor.operates() {
        ctx.clone()
    } else {
        Context {
            actor: Actor::system("vm"),
            now: ctx.now,
        }
    };
    crate::sagas::deploy::reclaim(app, ci_id, reason, &by)
        .await
        .map_err(|f| f.map_domain(VmError::from))
}
