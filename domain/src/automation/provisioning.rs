//! A provisioning run: one workflow carried out for one unit of an approved request (or
//! started by hand). Every step's start, output and failure, every compensation and the
//! end are events, so the run's state says exactly what to do next ([`Provisioning::next`]):
//! a restart after a crash resumes at the step that was under way, and never does again a
//! step whose outcome is recorded.
//!
//! When a step fails (or the run is aborted), the steps that completed are undone in
//! reverse order — capacity and address given back, VM and volumes deleted, software
//! rolled back to its restore point — and each undo is recorded. An undo that fails is
//! recorded with the incident raised for it, and the rest are still undone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::automation::workflow::StepKind;
use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The id of unit `unit` of request `request_id`'s run: the same on every replica and
/// after every restart.
pub fn run_id(request_id: Uuid, unit: u32) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:provisioning:{request_id}:{unit}").as_bytes(),
    )
}

/// The id of the configuration item run `run_id` brings into service.
pub fn run_ci_id(run_id: Uuid) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:provisioned-ci:{run_id}").as_bytes(),
    )
}

/// The id of the incident raised when undoing step `step` of run `run_id` fails.
pub fn undo_incident_id(run_id: Uuid, step: usize) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:undo-incident:{run_id}:{step}").as_bytes(),
    )
}

/// One step as the run carries it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStep {
    pub name: String,
    pub kind: StepKind,
    /// With `${…}` references still in: they are filled in when the step starts.
    pub inputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Everything a run needs, fixed when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlan {
    pub workflow_id: Uuid,
    pub workflow_version: u32,
    pub workflow_name: String,
    /// The request it fulfils, and which unit of it (0 for the first).
    pub request_id: Option<Uuid>,
    #[serde(default)]
    pub unit: u32,
    /// The requester (the new resource's owner), their department and project.
    pub owner: String,
    pub department: String,
    #[serde(default)]
    pub project: Option<String>,
    /// When the resource's lease starts and ends.
    #[serde(default)]
    pub lease: Option<crate::resources::cmdb::Lease>,
    /// The request went through its over-quota step.
    #[serde(default)]
    pub over_quota_approved: bool,
    pub params: Map<String, Value>,
    /// In the order they run.
    pub steps: Vec<RunStep>,
    /// The configuration item the run brings into service (its VM, or its first volume),
    /// under whose id capacity, address and quota are taken.
    pub ci_id: Uuid,
    /// The existing resource a software installation or configuration change is for:
    /// the run updates it instead of registering a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Uuid>,
}

/// Where a run is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    #[default]
    NotStarted,
    Running,
    /// A manual step waits for an operator.
    WaitingForOperator,
    /// Undoing what was done, after a failure or an abort.
    Compensating,
    Succeeded,
    Failed,
}

/// A step's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done { output: Map<String, Value> },
    Failed { error: String },
}

/// An undo's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Undo {
    Started,
    Done,
    Failed { error: String, incident_id: Uuid },
}

/// What a step of a run has come to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepState {
    pub started_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub undo: Option<Undo>,
}

/// What the engine does next for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Carry out step `n` (started, no outcome yet: also after a crash).
    Execute(usize),
    /// Step `n` is manual: wait for an operator to record it.
    AwaitOperator(usize),
    /// Every step is done: bring the result into the CMDB, then finish.
    Finish,
    /// Undo step `n`, which completed.
    Undo(usize),
    /// Everything is undone: record the failure.
    Close,
    /// Nothing: not started, or over.
    Nothing,
}

/// A bounded log excerpt and, when the log was longer, the hash of the whole in the
/// content store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub excerpt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_sha256: Option<String>,
}

/// Orders to a run. All but `RecordManual` and `Abort` come from the engine.
#[derive(Clone, Debug)]
pub enum ProvisioningCommand {
    Start {
        run_id: Uuid,
        plan: Box<RunPlan>,
    },
    Complete {
        step: usize,
        output: Map<String, Value>,
        log: Log,
    },
    Fail {
        step: usize,
        error: String,
        log: Log,
    },
    /// An operator's record of a manual step done.
    RecordManual {
        step: usize,
        note: String,
        output: Map<String, Value>,
    },
    /// Stop and undo what was done (an operator, or the engine when a sibling unit failed).
    Abort {
        reason: String,
    },
    BeginUndo {
        step: usize,
    },
    CompleteUndo {
        step: usize,
        log: Log,
    },
    FailUndo {
        step: usize,
        error: String,
        log: Log,
        incident_id: Uuid,
    },
    Finish,
    Close,
}

/// What happened in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProvisioningEvent {
    RunStarted {
        run_id: Uuid,
        plan: RunPlan,
        at: DateTime<Utc>,
    },
    StepStarted {
        step: usize,
        name: String,
        at: DateTime<Utc>,
    },
    StepSucceeded {
        step: usize,
        output: Map<String, Value>,
        log: Log,
        at: DateTime<Utc>,
    },
    StepFailed {
        step: usize,
        error: String,
        log: Log,
        at: DateTime<Utc>,
    },
    ManualStepDone {
        step: usize,
        by: String,
        note: String,
        output: Map<String, Value>,
        at: DateTime<Utc>,
    },
    CompensationStarted {
        reason: String,
        at: DateTime<Utc>,
    },
    UndoStarted {
        step: usize,
        at: DateTime<Utc>,
    },
    StepUndone {
        step: usize,
        log: Log,
        at: DateTime<Utc>,
    },
    UndoFailed {
        step: usize,
        error: String,
        log: Log,
        incident_id: Uuid,
        at: DateTime<Utc>,
    },
    RunSucceeded {
        at: DateTime<Utc>,
    },
    RunFailed {
        reason: String,
        compensated: bool,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ProvisioningEvent {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProvisioningError {
    /// Only the engine and operators act on runs (forbidden)
    #[error("only the engine and operators act on provisioning runs")]
    NotPermitted,
    /// There is no such run (not found)
    #[error("no such provisioning run")]
    NotFound,
    /// The run was started already (conflict)
    #[error("the run was started already")]
    AlreadyStarted,
    /// The run is over (conflict)
    #[error("the run is over ({0:?})")]
    Over(RunStatus),
    /// The step is not the one under way (conflict)
    #[error("step {step} is not the step under way")]
    NotCurrent { step: usize },
    /// The step is not a manual step waiting for an operator (conflict)
    #[error("step {step} is not a manual step waiting for an operator")]
    NotWaiting { step: usize },
    /// The step is not the next to undo (conflict)
    #[error("step {step} is not the next to undo")]
    NotNextUndo { step: usize },
    /// The run is not at the point the command needs (conflict)
    #[error("the run is {0:?}, not at that point")]
    WrongStatus(RunStatus),
    /// A field of the run breaks its rules (invalid)
    #[error("{0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for ProvisioningError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotPermitted => Refusal::Forbidden,
            Self::NotFound => Refusal::NotFound,
            Self::AlreadyStarted
            | Self::Over(..)
            | Self::NotCurrent { .. }
            | Self::NotWaiting { .. }
            | Self::NotNextUndo { .. }
            | Self::WrongStatus(..) => Refusal::Conflict,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// A run's state.
#[derive(Clone, Debug, Default)]
pub struct Provisioning {
    pub run_id: Option<Uuid>,
    pub plan: Option<RunPlan>,
    pub status: RunStatus,
    pub steps: Vec<StepState>,
    /// Why it is compensating or failed.
    pub reason: Option<String>,
    /// Each step's output, by step name, for the references of later steps.
    pub outputs: BTreeMap<String, Map<String, Value>>,
}

impl Provisioning {
    /// What the engine does next.
    pub fn next(&self) -> Next {
        match self.status {
            RunStatus::NotStarted | RunStatus::Succeeded | RunStatus::Failed => Next::Nothing,
            RunStatus::Running | RunStatus::WaitingForOperator => {
                match self.steps.iter().position(|s| s.outcome.is_none()) {
                    None => Next::Finish,
                    Some(n) if self.kind(n) == Some(StepKind::Manual) => Next::AwaitOperator(n),
                    Some(n) => Next::Execute(n),
                }
            }
            RunStatus::Compensating => match self.next_undo() {
                Some(n) => Next::Undo(n),
                None => Next::Close,
            },
        }
    }

    fn kind(&self, step: usize) -> Option<StepKind> {
        self.plan.as_ref()?.steps.get(step).map(|s| s.kind)
    }

    /// The last completed step not undone yet.
    fn next_undo(&self) -> Option<usize> {
        self.steps.iter().rposition(|s| {
            matches!(s.outcome, Some(Outcome::Done { .. }))
                && matches!(s.undo, None | Some(Undo::Started))
        })
    }

    fn live(&self) -> Result<&RunPlan, ProvisioningError> {
        let plan = self.plan.as_ref().ok_or(ProvisioningError::NotFound)?;
        match self.status {
            RunStatus::Succeeded | RunStatus::Failed => Err(ProvisioningError::Over(self.status)),
            _ => Ok(plan),
        }
    }

    fn under_way(&self, step: usize) -> Result<(), ProvisioningError> {
        if !matches!(
            self.status,
            RunStatus::Running | RunStatus::WaitingForOperator
        ) {
            return Err(ProvisioningError::WrongStatus(self.status));
        }
        match self.next() {
            Next::Execute(n) | Next::AwaitOperator(n) if n == step => Ok(()),
            _ => Err(ProvisioningError::NotCurrent { step }),
        }
    }

    /// Whether `step` was under way when the run turned to compensating.
    fn in_flight_while_compensating(&self, step: usize) -> bool {
        self.status == RunStatus::Compensating
            && self
                .steps
                .get(step)
                .is_some_and(|s| s.started_at.is_some() && s.outcome.is_none())
    }

    /// The events that start the step after `step`, if there is one.
    fn start_after(
        &self,
        step: usize,
        plan: &RunPlan,
        at: DateTime<Utc>,
    ) -> Option<ProvisioningEvent> {
        plan.steps
            .get(step + 1)
            .map(|s| ProvisioningEvent::StepStarted {
                step: step + 1,
                name: s.name.clone(),
                at,
            })
    }
}

impl Aggregate for Provisioning {
    const KIND: &'static str = "provisioning";
    type Command = ProvisioningCommand;
    type Event = ProvisioningEvent;
    type Error = ProvisioningError;

    fn decide(
        &self,
        command: ProvisioningCommand,
        ctx: &Context,
    ) -> Result<Vec<ProvisioningEvent>, ProvisioningError> {
        if !ctx.actor.operates() {
            return Err(ProvisioningError::NotPermitted);
        }
        let at = ctx.now;
        match command {
            ProvisioningCommand::Start { run_id, plan } => {
                if self.plan.is_some() {
                    return Err(ProvisioningError::AlreadyStarted);
                }
                if plan.steps.is_empty() {
                    return Err(invalid("plan.steps", "a run has at least one step").into());
                }
                let first = ProvisioningEvent::StepStarted {
                    step: 0,
                    name: plan.steps[0].name.clone(),
                    at,
                };
                Ok(vec![
                    ProvisioningEvent::RunStarted {
                        run_id,
                        plan: *plan,
                        at,
                    },
                    first,
                ])
            }
            ProvisioningCommand::Complete { step, output, log } => {
                let plan = self.live()?;
                if self.in_flight_while_compensating(step) {
                    // Aborted while the step was under way: what it did is recorded, to
                    // be undone with the rest.
                    return Ok(vec![ProvisioningEvent::StepSucceeded {
                        step,
                        output,
                        log,
                        at,
                    }]);
                }
                self.under_way(step)?;
                if self.kind(step) == Some(StepKind::Manual) {
                    return Err(ProvisioningError::NotCurrent { step });
                }
                let mut events = vec![ProvisioningEvent::StepSucceeded {
                    step,
                    output,
                    log,
                    at,
                }];
                events.extend(self.start_after(step, plan, at));
                Ok(events)
            }
            ProvisioningCommand::Fail { step, error, log } => {
                self.live()?;
                if self.in_flight_while_compensating(step) {
                    return Ok(vec![ProvisioningEvent::StepFailed {
                        step,
                        error,
                        log,
                        at,
                    }]);
                }
                self.under_way(step)?;
                let reason = format!(
                    "step `{}` failed: {error}",
                    self.plan
                        .as_ref()
                        .map_or("", |p| p.steps[step].name.as_str())
                );
                Ok(vec![
                    ProvisioningEvent::StepFailed {
                        step,
                        error,
                        log,
                        at,
                    },
                    ProvisioningEvent::CompensationStarted { reason, at },
                ])
            }
            ProvisioningCommand::RecordManual { step, note, output } => {
                let plan = self.live()?;
                if self.next() != Next::AwaitOperator(step) {
                    return Err(ProvisioningError::NotWaiting { step });
                }
                if note.trim().is_empty() {
                    return Err(invalid("note", "say what was done").into());
                }
                let mut events = vec![ProvisioningEvent::ManualStepDone {
                    step,
                    by: ctx.actor.id.clone(),
                    note,
                    output,
                    at,
                }];
                events.extend(self.start_after(step, plan, at));
                Ok(events)
            }
            ProvisioningCommand::Abort { reason } => {
                self.live()?;
                if self.status == RunStatus::Compensating {
                    return Err(ProvisioningError::WrongStatus(self.status));
                }
                if reason.trim().is_empty() {
                    return Err(invalid("reason", "must not be empty").into());
                }
                Ok(vec![ProvisioningEvent::CompensationStarted { reason, at }])
            }
            ProvisioningCommand::BeginUndo { step } => {
                self.live()?;
                if self.next() != Next::Undo(step) || self.steps[step].undo.is_some() {
                    return Err(ProvisioningError::NotNextUndo { step });
                }
                Ok(vec![ProvisioningEvent::UndoStarted { step, at }])
            }
            ProvisioningCommand::CompleteUndo { step, log } => {
                self.live()?;
                if self.next() != Next::Undo(step) {
                    return Err(ProvisioningError::NotNextUndo { step });
                }
                Ok(vec![ProvisioningEvent::StepUndone { step, log, at }])
            }
            ProvisioningCommand::FailUndo {
                step,
                error,
                log,
                incident_id,
            } => {
                self.live()?;
                if self.next() != Next::Undo(step) {
                    return Err(ProvisioningError::NotNextUndo { step });
                }
                Ok(vec![ProvisioningEvent::UndoFailed {
                    step,
                    error,
                    log,
                    incident_id,
                    at,
                }])
            }
            ProvisioningCommand::Finish => {
                self.live()?;
                if self.next() != Next::Finish {
                    return Err(ProvisioningError::WrongStatus(self.status));
                }
                Ok(vec![ProvisioningEvent::RunSucceeded { at }])
            }
            ProvisioningCommand::Close => {
                self.live()?;
                if self.next() != Next::Close {
                    return Err(ProvisioningError::WrongStatus(self.status));
                }
                let compensated = !self
                    .steps
                    .iter()
                    .any(|s| matches!(s.undo, Some(Undo::Failed { .. })));
                Ok(vec![ProvisioningEvent::RunFailed {
                    reason: self.reason.clone().unwrap_or_default(),
                    compensated,
                    at,
                }])
            }
        }
    }

    fn evolve(mut self, event: &ProvisioningEvent) -> Self {
        match event {
            ProvisioningEvent::RunStarted { run_id, plan, .. } => {
                self.run_id = Some(*run_id);
                self.steps = vec![StepState::default(); plan.steps.len()];
                self.plan = Some(plan.clone());
                self.status = RunStatus::Running;
            }
            ProvisioningEvent::StepStarted { step, at, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.started_at = Some(*at);
                }
                if self.kind(*step) == Some(StepKind::Manual) {
                    self.status = RunStatus::WaitingForOperator;
                }
            }
            ProvisioningEvent::StepSucceeded { step, output, .. }
            | ProvisioningEvent::ManualStepDone { step, output, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.outcome = Some(Outcome::Done {
                        output: output.clone(),
                    });
                }
                if let Some(name) = self
                    .plan
                    .as_ref()
                    .and_then(|p| p.steps.get(*step))
                    .map(|s| s.name.clone())
                {
                    self.outputs.insert(name, output.clone());
                }
                if self.status == RunStatus::WaitingForOperator {
                    self.status = RunStatus::Running;
                }
            }
            ProvisioningEvent::StepFailed { step, error, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.outcome = Some(Outcome::Failed {
                        error: error.clone(),
                    });
                }
            }
            ProvisioningEvent::CompensationStarted { reason, .. } => {
                self.reason = Some(reason.clone());
                self.status = RunStatus::Compensating;
            }
            ProvisioningEvent::UndoStarted { step, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.undo = Some(Undo::Started);
                }
            }
            ProvisioningEvent::StepUndone { step, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.undo = Some(Undo::Done);
                }
            }
            ProvisioningEvent::UndoFailed {
                step,
                error,
                incident_id,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.undo = Some(Undo::Failed {
                        error: error.clone(),
                        incident_id: *incident_id,
                    });
                }
            }
            ProvisioningEvent::RunSucceeded { .. } => self.status = RunStatus::Succeeded,
            ProvisioningEvent::RunFailed { .. } => self.status = RunStatus::Failed,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kernel::given::{at, given, person};

    fn engine() -> crate::kernel::event::Actor {
        crate::kernel::event::Actor::system("engine")
    }

    fn plan(kinds: &[StepKind]) -> RunPlan {
        RunPlan {
            workflow_id: Uuid::from_u128(1),
            workflow_version: 1,
            workflow_name: "vm".into(),
            request_id: Some(Uuid::from_u128(2)),
            unit: 0,
            owner: "u-chan".into(),
            department: "財政局".into(),
            project: None,
            lease: None,
            over_quota_approved: false,
            params: Map::new(),
            steps: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| RunStep {
                    name: format!("s{i}"),
                    kind: *k,
                    inputs: BTreeMap::new(),
                    instructions: None,
                })
                .collect(),
            ci_id: Uuid::from_u128(3),
            target: None,
        }
    }

    fn fold(events: &[ProvisioningEvent]) -> Provisioning {
        events
            .iter()
            .fold(Provisioning::default(), |s, e| s.evolve(e))
    }

    fn run(kinds: &[StepKind], commands: Vec<ProvisioningCommand>) -> Vec<ProvisioningEvent> {
        let mut events = given::<Provisioning>([])
            .when(
                ProvisioningCommand::Start {
                    run_id: Uuid::from_u128(9),
                    plan: Box::new(plan(kinds)),
                },
                &engine(),
            )
            .events();
        for c in commands {
            let by = if matches!(c, ProvisioningCommand::RecordManual { .. }) {
                person("u-wong", "運維中心", &["operator"])
            } else {
                engine()
            };
            events.extend(given::<Provisioning>(events.clone()).when(c, &by).events());
        }
        events
    }

    fn done(step: usize) -> ProvisioningCommand {
        ProvisioningCommand::Complete {
            step,
            output: json!({ "n": step }).as_object().unwrap().clone(),
            log: Log::default(),
        }
    }

    #[test]
    fn steps_run_in_order_and_a_crash_resumes_at_the_step_under_way() {
        let kinds = [
            StepKind::AllocateCapacity,
            StepKind::CreateVm,
            StepKind::AllocateIp,
        ];
        let events = run(&kinds, vec![done(0)]);
        // Step 1 started; nothing recorded of its outcome: it is carried out (again).
        assert_eq!(fold(&events).next(), Next::Execute(1));
        given::<Provisioning>(events.clone())
            .when(done(0), &engine())
            .then_err(ProvisioningError::NotCurrent { step: 0 });
        let events = run(&kinds, vec![done(0), done(1), done(2)]);
        let state = fold(&events);
        assert_eq!(state.next(), Next::Finish);
        assert_eq!(state.outputs["s1"]["n"], 1);
        let over = given::<Provisioning>(events.clone())
            .when(ProvisioningCommand::Finish, &engine())
            .events();
        let all: Vec<_> = events.into_iter().chain(over).collect();
        assert_eq!(fold(&all).status, RunStatus::Succeeded);
        given::<Provisioning>(all)
            .when(done(2), &engine())
            .then_err(ProvisioningError::Over(RunStatus::Succeeded));
    }

    #[test]
    fn a_failure_undoes_the_completed_steps_in_reverse_and_a_failed_undo_is_kept() {
        let kinds = [
            StepKind::AllocateCapacity,
            StepKind::CreateVm,
            StepKind::CreateVolume,
            StepKind::AllocateIp,
        ];
        let fail = ProvisioningCommand::Fail {
            step: 2,
            error: "no space".into(),
            log: Log::default(),
        };
        let events = run(&kinds, vec![done(0), done(1), fail]);
        let state = fold(&events);
        assert_eq!(state.status, RunStatus::Compensating);
        assert_eq!(state.reason.as_deref(), Some("step `s2` failed: no space"));
        assert_eq!(state.next(), Next::Undo(1));
        given::<Provisioning>(events.clone())
            .when(ProvisioningCommand::BeginUndo { step: 0 }, &engine())
            .then_err(ProvisioningError::NotNextUndo { step: 0 });
        let incident = undo_incident_id(Uuid::from_u128(9), 1);
        let more = vec![
            ProvisioningCommand::BeginUndo { step: 1 },
            ProvisioningCommand::FailUndo {
                step: 1,
                error: "vm locked".into(),
                log: Log::default(),
                incident_id: incident,
            },
            ProvisioningCommand::BeginUndo { step: 0 },
            ProvisioningCommand::CompleteUndo {
                step: 0,
                log: Log::default(),
            },
        ];
        let mut all = events;
        for c in more {
            all.extend(
                given::<Provisioning>(all.clone())
                    .when(c, &engine())
                    .events(),
            );
        }
        assert_eq!(fold(&all).next(), Next::Close);
        let closed = given::<Provisioning>(all)
            .when(ProvisioningCommand::Close, &engine())
            .events();
        assert!(
            matches!(&closed[0], ProvisioningEvent::RunFailed { compensated: false, reason, .. } if reason.contains("no space"))
        );
    }

    #[test]
    fn a_manual_step_waits_for_an_operator_and_an_abort_in_flight_is_undone_too() {
        let kinds = [StepKind::CreateVm, StepKind::Manual, StepKind::RunScript];
        let events = run(&kinds, vec![done(0)]);
        let state = fold(&events);
        assert_eq!(
            (state.status, state.next()),
            (RunStatus::WaitingForOperator, Next::AwaitOperator(1))
        );
        given::<Provisioning>(events.clone())
            .when(done(1), &engine())
            .then_err(ProvisioningError::NotCurrent { step: 1 });
        given::<Provisioning>(events.clone())
            .when(
                ProvisioningCommand::RecordManual {
                    step: 1,
                    note: " ".into(),
                    output: Map::new(),
                },
                &person("u-wong", "運維中心", &["operator"]),
            )
            .then_err(invalid("note", "say what was done").into());
        given::<Provisioning>(events.clone())
            .when(
                ProvisioningCommand::RecordManual {
                    step: 1,
                    note: "racked".into(),
                    output: Map::new(),
                },
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(ProvisioningError::NotPermitted);
        let events = run(
            &kinds,
            vec![
                done(0),
                ProvisioningCommand::RecordManual {
                    step: 1,
                    note: "firewall opened".into(),
                    output: Map::new(),
                },
            ],
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, ProvisioningEvent::ManualStepDone { by, .. } if by == "u-wong")));
        assert_eq!(fold(&events).next(), Next::Execute(2));
        // Aborted while step 2 runs: its success is still recorded, then undone first.
        let abort = ProvisioningCommand::Abort {
            reason: "a sibling failed".into(),
        };
        let events = run(
            &kinds,
            vec![
                done(0),
                ProvisioningCommand::RecordManual {
                    step: 1,
                    note: "ok".into(),
                    output: Map::new(),
                },
                abort,
                done(2),
            ],
        );
        assert_eq!(fold(&events).next(), Next::Undo(2));
        let _ = at(9);
    }
}
