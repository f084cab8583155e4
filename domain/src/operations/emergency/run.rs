//! A plan run: one execution of one version of an emergency plan, for an incident or as a
//! drill. Steps are settled in order: a step is reached once every required step before it
//! is done or skipped, and optional steps hold nothing back. A step is done by a holder of
//! its role or by the operations manager or the head of the operations centre; an optional
//! step may be skipped by the same people, a required one only by the head. The decision
//! that settles the last required step also completes the run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{note, required, run_id, validate_steps, PlanStep, Scenario};
use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::event::Actor;
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// Orders to a plan run.
#[derive(Clone, Debug)]
pub enum PlanRunCommand {
    /// Starts version `plan_version` of `plan_id` with the steps copied from it (see
    /// [`super::EmergencyPlan::run_for_incident`] and [`super::EmergencyPlan::drill`]). A run
    /// for an incident names it and its `run_id` is [`run_id`]`(incident_id, plan_id)`; a
    /// drill names no incident. By an engineer, an operator, the operations manager or the
    /// head of the operations centre.
    StartRun {
        run_id: Uuid,
        plan_id: Uuid,
        plan_version: u32,
        name: String,
        scenario: Scenario,
        steps: Vec<PlanStep>,
        incident_id: Option<Uuid>,
        drill: bool,
        note: Option<String>,
    },
    /// The step `key` is done.
    CompleteStep { key: String, note: Option<String> },
    /// The step `key` is passed over, and why.
    SkipStep { key: String, reason: String },
    /// The run stops with steps outstanding. By the operations manager or the head of the
    /// operations centre.
    AbortRun { reason: String },
}

/// What happened to a plan run. The types are prefixed (`PlanStepCompleted`, not
/// `StepCompleted`) because an event type names one thing across the whole log, and
/// requests already have a `StepCompleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PlanRunEvent {
    PlanRunStarted {
        run_id: Uuid,
        plan_id: Uuid,
        plan_version: u32,
        name: String,
        scenario: Scenario,
        steps: Vec<PlanStep>,
        /// `None` for a drill.
        incident_id: Option<Uuid>,
        drill: bool,
        note: Option<String>,
        by: String,
        at: DateTime<Utc>,
    },
    PlanStepCompleted {
        key: String,
        by: String,
        note: Option<String>,
        at: DateTime<Utc>,
    },
    PlanStepSkipped {
        key: String,
        by: String,
        reason: String,
        /// Whether the plan required the step: a required step skipped is for the report.
        required: bool,
        at: DateTime<Utc>,
    },
    /// Every required step is done or skipped; follows the step that settled the last one.
    PlanRunCompleted {
        at: DateTime<Utc>,
        duration_secs: u64,
    },
    PlanRunAborted {
        reason: String,
        by: String,
        at: DateTime<Utc>,
        /// The required steps neither done nor skipped, in plan order.
        outstanding: Vec<String>,
    },
}

impl DomainEvent for PlanRunEvent {}

/// Why a plan run refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanRunError {
    /// The actor's roles do not start plans (forbidden)
    #[error("only engineers, operators, the operations manager and the head of the operations centre start emergency plans")]
    NotPermitted,
    /// Only the operations leads abort a run (forbidden)
    #[error("only the operations manager and the head of the operations centre abort a plan run")]
    NotLead,
    /// The step is done by its role or an operations lead (forbidden)
    #[error("step {key} is done by the {} or an operations lead", .role.as_str())]
    NotStepRole { key: String, role: Role },
    /// Only the head of the operations centre skips a required step (forbidden)
    #[error("step {key} is required; only the head of the operations centre skips it")]
    RequiredStep { key: String },
    /// The run is started already (conflict)
    #[error("this plan run is already started")]
    AlreadyStarted,
    /// There is no such run (not found)
    #[error("there is no such plan run")]
    NotStarted,
    /// The run is completed (conflict)
    #[error("the plan run is completed and takes no more commands")]
    Completed,
    /// The run was aborted (conflict)
    #[error("the plan run was aborted and takes no more commands")]
    Aborted,
    /// The step is done already (conflict)
    #[error("step {key} is already done")]
    StepAlreadyCompleted { key: String },
    /// The step was skipped (conflict)
    #[error("step {key} was skipped")]
    StepAlreadySkipped { key: String },
    /// The step waits for an earlier one (conflict)
    #[error("step {key} waits for step {waiting}, which is neither done nor skipped")]
    OutOfOrder { key: String, waiting: String },
    /// A field of the run breaks its rules (invalid)
    #[error("invalid plan run: {0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for PlanRunError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotPermitted
            | Self::NotLead
            | Self::NotStepRole { .. }
            | Self::RequiredStep { .. } => Refusal::Forbidden,
            Self::AlreadyStarted
            | Self::Completed
            | Self::Aborted
            | Self::StepAlreadyCompleted { .. }
            | Self::StepAlreadySkipped { .. }
            | Self::OutOfOrder { .. } => Refusal::Conflict,
            Self::NotStarted => Refusal::NotFound,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Aborted,
}

/// A run's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanRun {
    pub run_id: Option<Uuid>,
    pub plan_id: Uuid,
    pub plan_version: u32,
    pub name: String,
    pub scenario: Option<Scenario>,
    pub steps: Vec<PlanStep>,
    pub incident_id: Option<Uuid>,
    pub drill: bool,
    pub started_at: Option<DateTime<Utc>>,
    /// When each done step was done, by key.
    pub completed: BTreeMap<String, DateTime<Utc>>,
    pub skipped: BTreeSet<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub aborted_at: Option<DateTime<Utc>>,
}

impl PlanRun {
    /// Where it stands; `None` before it is started.
    pub fn status(&self) -> Option<RunStatus> {
        self.run_id?;
        Some(match (self.completed_at, self.aborted_at) {
            (Some(_), _) => RunStatus::Completed,
            (None, Some(_)) => RunStatus::Aborted,
            (None, None) => RunStatus::Running,
        })
    }

    fn settled(&self, key: &str) -> bool {
        self.completed.contains_key(key) || self.skipped.contains(key)
    }

    /// The required steps neither done nor skipped, in plan order.
    pub fn outstanding(&self) -> Vec<&PlanStep> {
        self.steps
            .iter()
            .filter(|s| !s.optional && !self.settled(&s.key))
            .collect()
    }

    /// The steps that may be done now: not settled, and every required step before them
    /// settled. Empty unless the run is running.
    pub fn next_steps(&self) -> Vec<&PlanStep> {
        if self.status() != Some(RunStatus::Running) {
            return Vec::new();
        }
        let mut next = Vec::new();
        for step in self.steps.iter().filter(|s| !self.settled(&s.key)) {
            next.push(step);
            if !step.optional {
                break;
            }
        }
        next
    }

    fn running(&self) -> Result<DateTime<Utc>, PlanRunError> {
        match (self.status(), self.started_at) {
            (Some(RunStatus::Running), Some(started_at)) => Ok(started_at),
            (Some(RunStatus::Completed), _) => Err(PlanRunError::Completed),
            (Some(RunStatus::Aborted), _) => Err(PlanRunError::Aborted),
            _ => Err(PlanRunError::NotStarted),
        }
    }

    /// The step `key`, if the run is running, the step is unsettled and reached.
    fn reached(&self, key: &str) -> Result<&PlanStep, PlanRunError> {
        self.running()?;
        let (i, step) = self
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.key == key)
            .ok_or_else(|| invalid("key", format!("{key:?} is not a step of this run")))?;
        if self.completed.contains_key(key) {
            return Err(PlanRunError::StepAlreadyCompleted { key: key.into() });
        }
        if self.skipped.contains(key) {
            return Err(PlanRunError::StepAlreadySkipped { key: key.into() });
        }
        if let Some(waiting) = self.steps[..i]
            .iter()
            .find(|s| !s.optional && !self.settled(&s.key))
        {
            return Err(PlanRunError::OutOfOrder {
                key: key.into(),
                waiting: waiting.key.clone(),
            });
        }
        Ok(step)
    }

    /// The completion that follows settling `key`, if it was the last required step.
    fn completion(&self, key: &str, ctx: &Context) -> Result<Option<PlanRunEvent>, PlanRunError> {
        let started_at = self.running()?;
        let last = self.outstanding().iter().all(|s| s.key == key);
        Ok(last.then(|| PlanRunEvent::PlanRunCompleted {
            at: ctx.now,
            duration_secs: u64::try_from((ctx.now - started_at).num_seconds()).unwrap_or(0),
        }))
    }
}

fn is_lead(actor: &Actor) -> bool {
    actor.has_role(Role::OperationsManager) || actor.has_role(Role::OperationsHead)
}

fn starts_runs(actor: &Actor) -> bool {
    actor.operates() || actor.has_role(Role::Engineer) || is_lead(actor)
}

fn does_step(actor: &Actor, step: &PlanStep) -> bool {
    actor.has_role(step.role) || is_lead(actor)
}

impl Aggregate for PlanRun {
    const KIND: &'static str = "plan_run";
    type Command = PlanRunCommand;
    type Event = PlanRunEvent;
    type Error = PlanRunError;

    fn decide(
        &self,
        command: PlanRunCommand,
        ctx: &Context,
    ) -> Result<Vec<PlanRunEvent>, PlanRunError> {
        let actor = &ctx.actor;
        match command {
            PlanRunCommand::StartRun {
                run_id: id,
                plan_id,
                plan_version,
                name,
                scenario,
                steps,
                incident_id,
                drill,
                note: text,
            } => {
                if !starts_runs(actor) {
                    return Err(PlanRunError::NotPermitted);
                }
                if self.run_id.is_some() {
                    return Err(PlanRunError::AlreadyStarted);
                }
                match (incident_id, drill) {
                    (None, false) => {
                        return Err(invalid(
                            "incident_id",
                            "is required: a run is for an incident unless it is a drill",
                        )
                        .into());
                    }
                    (Some(_), true) => {
                        return Err(invalid("incident_id", "must be empty for a drill").into());
                    }
                    (Some(incident), false) if id != run_id(incident, plan_id) => {
                        return Err(invalid(
                            "run_id",
                            "must be run_id(incident_id, plan_id): an incident runs a plan once",
                        )
                        .into());
                    }
                    _ => {}
                }
                if plan_version == 0 {
                    return Err(invalid("plan_version", "must be 1 or more").into());
                }
                required("name", &name)?;
                validate_steps(&steps)?;
                Ok(vec![PlanRunEvent::PlanRunStarted {
                    run_id: id,
                    plan_id,
                    plan_version,
                    name,
                    scenario,
                    steps,
                    incident_id,
                    drill,
                    note: note(text),
                    by: actor.id.clone(),
                    at: ctx.now,
                }])
            }
            PlanRunCommand::CompleteStep { key, note: text } => {
                let step = self.reached(&key)?;
                if !does_step(actor, step) {
                    return Err(PlanRunError::NotStepRole {
                        key,
                        role: step.role,
                    });
                }
                let completion = self.completion(&key, ctx)?;
                let mut events = vec![PlanRunEvent::PlanStepCompleted {
                    key,
                    by: actor.id.clone(),
                    note: note(text),
                    at: ctx.now,
                }];
                events.extend(completion);
                Ok(events)
            }
            PlanRunCommand::SkipStep { key, reason } => {
                let step = self.reached(&key)?;
                if step.optional {
                    if !does_step(actor, step) {
                        return Err(PlanRunError::NotStepRole {
                            key,
                            role: step.role,
                        });
                    }
                } else if !actor.has_role(Role::OperationsHead) {
                    return Err(PlanRunError::RequiredStep { key });
                }
                let reason = note(Some(reason)).unwrap_or_default();
                required("reason", &reason)?;
                let completion = self.completion(&key, ctx)?;
                let mut events = vec![PlanRunEvent::PlanStepSkipped {
                    required: !step.optional,
                    key,
                    by: actor.id.clone(),
                    reason,
                    at: ctx.now,
                }];
                events.extend(completion);
                Ok(events)
            }
            PlanRunCommand::AbortRun { reason } => {
                self.running()?;
                if !is_lead(actor) {
                    return Err(PlanRunError::NotLead);
                }
                required("reason", &reason)?;
                Ok(vec![PlanRunEvent::PlanRunAborted {
                    reason,
                    by: actor.id.clone(),
                    at: ctx.now,
                    outstanding: self.outstanding().iter().map(|s| s.key.clone()).collect(),
                }])
            }
        }
    }

    fn evolve(mut self, event: &PlanRunEvent) -> Self {
        match event {
            PlanRunEvent::PlanRunStarted {
                run_id,
                plan_id,
                plan_version,
                name,
                scenario,
                steps,
                incident_id,
                drill,
                at,
                ..
            } => {
                self.run_id = Some(*run_id);
                self.plan_id = *plan_id;
                self.plan_version = *plan_version;
                self.name.clone_from(name);
                self.scenario = Some(*scenario);
                self.steps.clone_from(steps);
                self.incident_id = *incident_id;
                self.drill = *drill;
                self.started_at = Some(*at);
            }
            PlanRunEvent::PlanStepCompleted { key, at, .. } => {
                self.completed.insert(key.clone(), *at);
            }
            PlanRunEvent::PlanStepSkipped { key, .. } => {
                self.skipped.insert(key.clone());
            }
            PlanRunEvent::PlanRunCompleted { at, .. } => self.completed_at = Some(*at),
            PlanRunEvent::PlanRunAborted { at, .. } => self.aborted_at = Some(*at),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::kernel::given::{at, given, person};
    use crate::operations::emergency::{plan_id, plan_runbooks, EmergencyPlan, EmergencyPlanEvent};

    fn engineer() -> Actor {
        person("u-lam", "運維中心", &["engineer"])
    }

    fn operator() -> Actor {
        person("u-ops", "運維中心", &["operator"])
    }

    fn manager() -> Actor {
        person("u-wong", "運維中心", &["operations_manager"])
    }

    fn head() -> Actor {
        person("u-ho", "運維中心", &["operations_head"])
    }

    fn incident() -> Uuid {
        Uuid::from_u128(42)
    }

    /// The plan's air-conditioning runbook, version 1: `check_mains` (optional, engineer),
    /// `start_standby` (operator), `repair` (engineer), `check_all` (engineer).
    fn air_conditioning() -> EmergencyPlan {
        let definition = plan_runbooks()
            .into_iter()
            .find_map(|c| match c {
                super::super::EmergencyPlanCommand::DefinePlan {
                    plan_id,
                    key,
                    name,
                    scenario,
                    steps,
                } if key == "air_conditioning_failure" => {
                    Some(EmergencyPlanEvent::EmergencyPlanDefined {
                        plan_id,
                        key,
                        name,
                        scenario,
                        version: 1,
                        steps,
                    })
                }
                _ => None,
            })
            .expect("the plan has an air-conditioning runbook");
        EmergencyPlan::default().evolve(&definition)
    }

    fn start() -> PlanRunCommand {
        air_conditioning()
            .run_for_incident(incident(), Some("2號空調停機".into()))
            .expect("the plan is in force")
    }

    fn started() -> PlanRunEvent {
        let plan = air_conditioning();
        PlanRunEvent::PlanRunStarted {
            run_id: run_id(incident(), plan_id("air_conditioning_failure")),
            plan_id: plan_id("air_conditioning_failure"),
            plan_version: 1,
            name: "空調應急預案".into(),
            scenario: Scenario::AirConditioningFailure,
            steps: plan.steps,
            incident_id: Some(incident()),
            drill: false,
            note: Some("2號空調停機".into()),
            by: "u-lam".into(),
            at: at(9),
        }
    }

    fn done(key: &str, by: &str, hour: u32) -> PlanRunEvent {
        PlanRunEvent::PlanStepCompleted {
            key: key.into(),
            by: by.into(),
            note: None,
            at: at(hour),
        }
    }

    fn complete(key: &str) -> PlanRunCommand {
        PlanRunCommand::CompleteStep {
            key: key.into(),
            note: None,
        }
    }

    fn skip(key: &str, reason: &str) -> PlanRunCommand {
        PlanRunCommand::SkipStep {
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn fold(events: impl IntoIterator<Item = PlanRunEvent>) -> PlanRun {
        events
            .into_iter()
            .fold(PlanRun::default(), |s, e| s.evolve(&e))
    }

    fn keys(steps: Vec<&PlanStep>) -> Vec<&str> {
        steps.into_iter().map(|s| s.key.as_str()).collect()
    }

    #[test]
    fn an_incident_starts_the_steps_of_the_plan_version() {
        given::<PlanRun>([])
            .when(start(), &engineer())
            .then([started()]);
        let run = fold([started()]);
        assert_eq!(run.status(), Some(RunStatus::Running));
        assert_eq!(keys(run.next_steps()), ["check_mains", "start_standby"]);
    }

    #[test]
    fn a_run_is_started_once() {
        given::<PlanRun>([started()])
            .when(start(), &engineer())
            .then_err(PlanRunError::AlreadyStarted);
    }

    #[test]
    fn an_incident_run_needs_its_incident() {
        let PlanRunCommand::StartRun {
            run_id,
            plan_id,
            plan_version,
            name,
            scenario,
            steps,
            ..
        } = start()
        else {
            unreachable!()
        };
        given::<PlanRun>([])
            .when(
                PlanRunCommand::StartRun {
                    run_id,
                    plan_id,
                    plan_version,
                    name,
                    scenario,
                    steps,
                    incident_id: None,
                    drill: false,
                    note: None,
                },
                &engineer(),
            )
            .then_err(
                invalid(
                    "incident_id",
                    "is required: a run is for an incident unless it is a drill",
                )
                .into(),
            );
    }

    #[test]
    fn an_incident_run_has_the_id_derived_from_its_incident_and_plan() {
        let PlanRunCommand::StartRun {
            plan_id,
            plan_version,
            name,
            scenario,
            steps,
            incident_id,
            ..
        } = start()
        else {
            unreachable!()
        };
        given::<PlanRun>([])
            .when(
                PlanRunCommand::StartRun {
                    run_id: Uuid::from_u128(7),
                    plan_id,
                    plan_version,
                    name,
                    scenario,
                    steps,
                    incident_id,
                    drill: false,
                    note: None,
                },
                &engineer(),
            )
            .then_err(
                invalid(
                    "run_id",
                    "must be run_id(incident_id, plan_id): an incident runs a plan once",
                )
                .into(),
            );
    }

    #[test]
    fn a_drill_runs_without_an_incident() {
        let drill_id = Uuid::from_u128(2026);
        let command = air_conditioning()
            .drill(drill_id, Some("年度空調故障演練".into()))
            .unwrap();
        let events = given::<PlanRun>([])
            .when(command.clone(), &operator())
            .events();
        assert!(matches!(
            &events[..],
            [PlanRunEvent::PlanRunStarted { run_id: id, incident_id: None, drill: true, .. }]
                if *id == run_id(drill_id, plan_id("air_conditioning_failure"))
        ));

        let PlanRunCommand::StartRun {
            run_id,
            plan_id,
            plan_version,
            name,
            scenario,
            steps,
            ..
        } = command
        else {
            unreachable!()
        };
        given::<PlanRun>([])
            .when(
                PlanRunCommand::StartRun {
                    run_id,
                    plan_id,
                    plan_version,
                    name,
                    scenario,
                    steps,
                    incident_id: Some(incident()),
                    drill: true,
                    note: None,
                },
                &operator(),
            )
            .then_err(invalid("incident_id", "must be empty for a drill").into());
    }

    #[test]
    fn a_run_copies_valid_steps() {
        let PlanRunCommand::StartRun {
            run_id,
            plan_id,
            plan_version,
            name,
            scenario,
            incident_id,
            ..
        } = start()
        else {
            unreachable!()
        };
        given::<PlanRun>([])
            .when(
                PlanRunCommand::StartRun {
                    run_id,
                    plan_id,
                    plan_version,
                    name,
                    scenario,
                    steps: vec![],
                    incident_id,
                    drill: false,
                    note: None,
                },
                &engineer(),
            )
            .then_err(invalid("steps", "must list at least one step").into());
    }

    #[test]
    fn a_requester_or_the_service_desk_cannot_start_a_plan() {
        for actor in [
            person("u-chan", "財政局", &["requester"]),
            person("u-desk", "運維中心", &["service_desk"]),
        ] {
            given::<PlanRun>([])
                .when(start(), &actor)
                .then_err(PlanRunError::NotPermitted);
        }
        given::<PlanRun>([])
            .when(start(), &Actor::system("incident_process"))
            .events();
    }

    #[test]
    fn a_step_waits_for_the_required_steps_before_it() {
        given::<PlanRun>([started()])
            .when(complete("repair"), &engineer())
            .then_err(PlanRunError::OutOfOrder {
                key: "repair".into(),
                waiting: "start_standby".into(),
            });
        given::<PlanRun>([started()])
            .when(skip("check_all", "不需要"), &head())
            .then_err(PlanRunError::OutOfOrder {
                key: "check_all".into(),
                waiting: "start_standby".into(),
            });
    }

    #[test]
    fn an_optional_step_holds_nothing_back_and_may_be_done_later() {
        given::<PlanRun>([started()])
            .at(at(10))
            .when(complete("start_standby"), &operator())
            .then([done("start_standby", "u-ops", 10)]);
        let history = [started(), done("start_standby", "u-ops", 10)];
        assert_eq!(
            keys(fold(history.clone()).next_steps()),
            ["check_mains", "repair"]
        );
        given::<PlanRun>(history)
            .at(at(10))
            .when(complete("check_mains"), &engineer())
            .then([done("check_mains", "u-lam", 10)]);
    }

    #[test]
    fn a_step_is_done_by_its_role_or_an_operations_lead() {
        given::<PlanRun>([started()])
            .when(complete("start_standby"), &engineer())
            .then_err(PlanRunError::NotStepRole {
                key: "start_standby".into(),
                role: Role::Operator,
            });
        given::<PlanRun>([started()])
            .when(complete("start_standby"), &manager())
            .then([done("start_standby", "u-wong", 9)]);
        given::<PlanRun>([started()])
            .when(complete("start_standby"), &head())
            .then([done("start_standby", "u-ho", 9)]);
    }

    #[test]
    fn an_unknown_step_is_named() {
        given::<PlanRun>([started()])
            .when(complete("evacuate"), &engineer())
            .then_err(invalid("key", "\"evacuate\" is not a step of this run").into());
    }

    #[test]
    fn a_step_is_settled_once() {
        let standby = done("start_standby", "u-ops", 10);
        given::<PlanRun>([started(), standby.clone()])
            .when(complete("start_standby"), &operator())
            .then_err(PlanRunError::StepAlreadyCompleted {
                key: "start_standby".into(),
            });
        let skipped = PlanRunEvent::PlanStepSkipped {
            key: "check_mains".into(),
            by: "u-lam".into(),
            reason: "只有一臺空調故障".into(),
            required: false,
            at: at(10),
        };
        given::<PlanRun>([started(), skipped])
            .when(complete("check_mains"), &engineer())
            .then_err(PlanRunError::StepAlreadySkipped {
                key: "check_mains".into(),
            });
    }

    #[test]
    fn an_optional_step_is_skipped_with_a_reason() {
        given::<PlanRun>([started()])
            .at(at(10))
            .when(skip("check_mains", " 只有一臺空調故障 "), &engineer())
            .then([PlanRunEvent::PlanStepSkipped {
                key: "check_mains".into(),
                by: "u-lam".into(),
                reason: "只有一臺空調故障".into(),
                required: false,
                at: at(10),
            }]);
        given::<PlanRun>([started()])
            .when(skip("check_mains", " "), &engineer())
            .then_err(invalid("reason", "is required").into());
        given::<PlanRun>([started()])
            .when(skip("check_mains", "不需要"), &operator())
            .then_err(PlanRunError::NotStepRole {
                key: "check_mains".into(),
                role: Role::Engineer,
            });
    }

    #[test]
    fn a_required_step_is_skipped_only_by_the_head_of_the_operations_centre() {
        for not_head in [operator(), manager()] {
            given::<PlanRun>([started()])
                .when(skip("start_standby", "備用空調已在運行"), &not_head)
                .then_err(PlanRunError::RequiredStep {
                    key: "start_standby".into(),
                });
        }
        given::<PlanRun>([started()])
            .when(skip("start_standby", "備用空調已在運行"), &head())
            .then([PlanRunEvent::PlanStepSkipped {
                key: "start_standby".into(),
                by: "u-ho".into(),
                reason: "備用空調已在運行".into(),
                required: true,
                at: at(9),
            }]);
    }

    #[test]
    fn the_last_required_step_completes_the_run_in_the_same_decision() {
        let history = [
            started(),
            done("start_standby", "u-ops", 9),
            done("repair", "u-lam", 10),
        ];
        given::<PlanRun>(history.clone())
            .at(at(11) + Duration::minutes(30))
            .when(complete("check_all"), &engineer())
            .then([
                PlanRunEvent::PlanStepCompleted {
                    key: "check_all".into(),
                    by: "u-lam".into(),
                    note: None,
                    at: at(11) + Duration::minutes(30),
                },
                PlanRunEvent::PlanRunCompleted {
                    at: at(11) + Duration::minutes(30),
                    duration_secs: 9000,
                },
            ]);
        // Skipping the last required step completes it too.
        let events = given::<PlanRun>(history)
            .at(at(12))
            .when(skip("check_all", "空調已整體更換"), &head())
            .events();
        assert_eq!(
            events.last(),
            Some(&PlanRunEvent::PlanRunCompleted {
                at: at(12),
                duration_secs: 3 * 3600,
            })
        );
    }

    #[test]
    fn a_step_that_is_not_the_last_required_one_leaves_the_run_running() {
        let events = given::<PlanRun>([started(), done("start_standby", "u-ops", 9)])
            .at(at(10))
            .when(complete("repair"), &engineer())
            .events();
        assert_eq!(events, [done("repair", "u-lam", 10)]);
    }

    #[test]
    fn a_completed_run_takes_nothing() {
        let history = [
            started(),
            done("start_standby", "u-ops", 9),
            done("repair", "u-lam", 10),
            done("check_all", "u-lam", 11),
            PlanRunEvent::PlanRunCompleted {
                at: at(11),
                duration_secs: 7200,
            },
        ];
        assert_eq!(fold(history.clone()).status(), Some(RunStatus::Completed));
        assert!(fold(history.clone()).next_steps().is_empty());
        given::<PlanRun>(history.clone())
            .when(complete("check_mains"), &engineer())
            .then_err(PlanRunError::Completed);
        given::<PlanRun>(history)
            .when(PlanRunCommand::AbortRun { reason: "x".into() }, &head())
            .then_err(PlanRunError::Completed);
    }

    #[test]
    fn an_aborted_run_takes_nothing() {
        let aborted = PlanRunEvent::PlanRunAborted {
            reason: "誤報:空調已自行恢復".into(),
            by: "u-wong".into(),
            at: at(10),
            outstanding: vec!["repair".into(), "check_all".into()],
        };
        let history = [started(), done("start_standby", "u-ops", 9)];
        given::<PlanRun>(history.clone())
            .at(at(10))
            .when(
                PlanRunCommand::AbortRun {
                    reason: "誤報:空調已自行恢復".into(),
                },
                &manager(),
            )
            .then([aborted.clone()]);
        let history: Vec<PlanRunEvent> = history.into_iter().chain([aborted]).collect();
        assert_eq!(fold(history.clone()).status(), Some(RunStatus::Aborted));
        for command in [
            complete("repair"),
            skip("check_mains", "不需要"),
            PlanRunCommand::AbortRun {
                reason: "again".into(),
            },
        ] {
            given::<PlanRun>(history.clone())
                .when(command, &head())
                .then_err(PlanRunError::Aborted);
        }
    }

    #[test]
    fn only_the_operations_leads_abort_a_run() {
        given::<PlanRun>([started()])
            .when(
                PlanRunCommand::AbortRun {
                    reason: "誤報".into(),
                },
                &engineer(),
            )
            .then_err(PlanRunError::NotLead);
        given::<PlanRun>([started()])
            .when(PlanRunCommand::AbortRun { reason: " ".into() }, &head())
            .then_err(invalid("reason", "is required").into());
    }

    #[test]
    fn a_run_that_is_not_started_takes_no_step() {
        given::<PlanRun>([])
            .when(complete("start_standby"), &operator())
            .then_err(PlanRunError::NotStarted);
    }

    #[test]
    fn run_events_have_types_of_their_own() {
        let types: Vec<String> = [
            started(),
            done("start_standby", "u-ops", 9),
            PlanRunEvent::PlanRunCompleted {
                at: at(11),
                duration_secs: 7200,
            },
        ]
        .iter()
        .map(|e| e.to_new_event().unwrap().event_type)
        .collect();
        assert_eq!(
            types,
            ["PlanRunStarted", "PlanStepCompleted", "PlanRunCompleted"]
        );
    }
}
