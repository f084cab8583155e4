//! The emergency plan: a runbook of ordered steps for one scenario, written by the
//! operations manager or the head of the operations centre. Every revision is a new
//! version; a run records the version whose steps it copied.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::run::PlanRunCommand;
use super::{note, plan_id, required, run_id, validate_key, validate_steps, PlanStep, Scenario};
use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// Orders to an emergency plan; the operations manager, the head of the operations centre
/// (and admins) give them.
#[derive(Clone, Debug)]
pub enum EmergencyPlanCommand {
    /// Version 1. `plan_id` must be [`plan_id`]`(key)`, so a key names one plan.
    DefinePlan {
        plan_id: Uuid,
        key: String,
        name: String,
        scenario: Scenario,
        steps: Vec<PlanStep>,
    },
    /// New steps as the next version; runs under way keep the steps they copied.
    RevisePlan { steps: Vec<PlanStep>, note: String },
    /// No more runs are started from it.
    RetirePlan { reason: String },
}

/// What happened to an emergency plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EmergencyPlanEvent {
    EmergencyPlanDefined {
        plan_id: Uuid,
        key: String,
        name: String,
        scenario: Scenario,
        version: u32,
        steps: Vec<PlanStep>,
    },
    EmergencyPlanRevised {
        version: u32,
        steps: Vec<PlanStep>,
        /// What changed and why.
        note: String,
    },
    EmergencyPlanRetired {
        version: u32,
        reason: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for EmergencyPlanEvent {}

/// Why an emergency plan refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmergencyPlanError {
    /// Only the operations leads and administrators write plans (forbidden)
    #[error("only the operations manager, the head of the operations centre and administrators write emergency plans")]
    NotPermitted,
    /// The plan is defined already (conflict)
    #[error("the emergency plan is already defined")]
    AlreadyDefined,
    /// There is no such plan (not found)
    #[error("there is no such emergency plan")]
    NotFound,
    /// The plan is retired (conflict)
    #[error("the emergency plan is retired")]
    Retired,
    /// The revision leaves the steps as they are (conflict)
    #[error("the steps are those of version {0}; a revision changes them")]
    Unchanged(u32),
    /// A field of the plan breaks its rules (invalid)
    #[error("invalid emergency plan: {0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for EmergencyPlanError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotPermitted => Refusal::Forbidden,
            Self::AlreadyDefined | Self::Retired | Self::Unchanged(..) => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// A plan's state: its current version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmergencyPlan {
    pub plan_id: Option<Uuid>,
    pub key: String,
    pub name: String,
    pub scenario: Option<Scenario>,
    pub version: u32,
    pub steps: Vec<PlanStep>,
    pub retired: bool,
}

impl EmergencyPlan {
    /// The current steps, if the plan may still start runs.
    ///
    /// # Errors
    /// `NotFound` before it is defined, `Retired` after.
    pub fn in_force(&self) -> Result<&[PlanStep], EmergencyPlanError> {
        match (self.plan_id, self.retired) {
            (None, _) => Err(EmergencyPlanError::NotFound),
            (Some(_), true) => Err(EmergencyPlanError::Retired),
            (Some(_), false) => Ok(&self.steps),
        }
    }

    /// The order that starts this version for `incident_id`, with its steps copied in. Its
    /// stream is the command's `run_id`, [`run_id`]`(incident_id, plan)`.
    ///
    /// # Errors
    /// `NotFound` or `Retired`: such a plan starts no run.
    pub fn run_for_incident(
        &self,
        incident_id: Uuid,
        note: Option<String>,
    ) -> Result<PlanRunCommand, EmergencyPlanError> {
        self.start(incident_id, Some(incident_id), note)
    }

    /// The order that starts this version as the drill `drill_id` (e.g. the id of the
    /// scheduled drill), with its steps copied in. Its stream is the command's `run_id`,
    /// [`run_id`]`(drill_id, plan)`.
    ///
    /// # Errors
    /// `NotFound` or `Retired`: such a plan starts no run.
    pub fn drill(
        &self,
        drill_id: Uuid,
        note: Option<String>,
    ) -> Result<PlanRunCommand, EmergencyPlanError> {
        self.start(drill_id, None, note)
    }

    fn start(
        &self,
        occasion: Uuid,
        incident_id: Option<Uuid>,
        note: Option<String>,
    ) -> Result<PlanRunCommand, EmergencyPlanError> {
        let steps = self.in_force()?.to_vec();
        let (Some(plan), Some(scenario)) = (self.plan_id, self.scenario) else {
            return Err(EmergencyPlanError::NotFound);
        };
        Ok(PlanRunCommand::StartRun {
            run_id: run_id(occasion, plan),
            plan_id: plan,
            plan_version: self.version,
            name: self.name.clone(),
            scenario,
            steps,
            incident_id,
            drill: incident_id.is_none(),
            note,
        })
    }
}

fn writes_plans(ctx: &Context) -> bool {
    ctx.actor.has_role(Role::OperationsManager) || ctx.actor.has_role(Role::OperationsHead)
}

impl Aggregate for EmergencyPlan {
    const KIND: &'static str = "emergency_plan";
    type Command = EmergencyPlanCommand;
    type Event = EmergencyPlanEvent;
    type Error = EmergencyPlanError;

    fn decide(
        &self,
        command: EmergencyPlanCommand,
        ctx: &Context,
    ) -> Result<Vec<EmergencyPlanEvent>, EmergencyPlanError> {
        if !writes_plans(ctx) {
            return Err(EmergencyPlanError::NotPermitted);
        }
        match command {
            EmergencyPlanCommand::DefinePlan {
                plan_id: id,
                key,
                name,
                scenario,
                steps,
            } => {
                if self.plan_id.is_some() {
                    return Err(EmergencyPlanError::AlreadyDefined);
                }
                validate_key("key", &key)?;
                if id != plan_id(&key) {
                    return Err(invalid("plan_id", format!("is not the id of key {key:?}")).into());
                }
                if name.trim().is_empty() {
                    return Err(invalid("name", "must not be empty").into());
                }
                validate_steps(&steps)?;
                Ok(vec![EmergencyPlanEvent::EmergencyPlanDefined {
                    plan_id: id,
                    key,
                    name: name.trim().to_owned(),
                    scenario,
                    version: 1,
                    steps,
                }])
            }
            EmergencyPlanCommand::RevisePlan { steps, note: text } => {
                let current = self.in_force()?;
                validate_steps(&steps)?;
                let text = note(Some(text)).unwrap_or_default();
                required("note", &text)?;
                if steps == current {
                    return Err(EmergencyPlanError::Unchanged(self.version));
                }
                Ok(vec![EmergencyPlanEvent::EmergencyPlanRevised {
                    version: self.version + 1,
                    steps,
                    note: text,
                }])
            }
            EmergencyPlanCommand::RetirePlan { reason } => {
                self.in_force()?;
                required("reason", &reason)?;
                Ok(vec![EmergencyPlanEvent::EmergencyPlanRetired {
                    version: self.version,
                    reason,
                    at: ctx.now,
                }])
            }
        }
    }

    fn evolve(mut self, event: &EmergencyPlanEvent) -> Self {
        match event {
            EmergencyPlanEvent::EmergencyPlanDefined {
                plan_id,
                key,
                name,
                scenario,
                version,
                steps,
            } => {
                self.plan_id = Some(*plan_id);
                self.key.clone_from(key);
                self.name.clone_from(name);
                self.scenario = Some(*scenario);
                self.version = *version;
                self.steps.clone_from(steps);
            }
            EmergencyPlanEvent::EmergencyPlanRevised { version, steps, .. } => {
                self.version = *version;
                self.steps.clone_from(steps);
            }
            EmergencyPlanEvent::EmergencyPlanRetired { .. } => self.retired = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::kernel::given::{at, given, person};
    use crate::operations::emergency::plan_runbooks;
    use crate::Actor;

    fn manager() -> Actor {
        person("u-wong", "運維中心", &["operations_manager"])
    }

    fn defined(command: EmergencyPlanCommand) -> EmergencyPlanEvent {
        let EmergencyPlanCommand::DefinePlan {
            plan_id,
            key,
            name,
            scenario,
            steps,
        } = command
        else {
            panic!("the plan's runbooks are definitions, not {command:?}")
        };
        EmergencyPlanEvent::EmergencyPlanDefined {
            plan_id,
            key,
            name,
            scenario,
            version: 1,
            steps,
        }
    }

    fn ups() -> EmergencyPlanCommand {
        plan_runbooks()
            .into_iter()
            .find(|c| matches!(c, EmergencyPlanCommand::DefinePlan { key, .. } if key == "ups_failure"))
            .expect("the plan has a UPS runbook")
    }

    fn ups_steps() -> Vec<PlanStep> {
        match ups() {
            EmergencyPlanCommand::DefinePlan { steps, .. } => steps,
            _ => unreachable!(),
        }
    }

    /// The UPS runbook with a vendor call added as its second step.
    fn with_vendor_call() -> Vec<PlanStep> {
        let mut steps = ups_steps();
        steps.insert(
            1,
            PlanStep::new(
                "call_vendor",
                "聯繫UPS廠商",
                "需要時聯繫UPS廠商工程師到場檢修。",
                Role::Engineer,
            )
            .optional(),
        );
        steps
    }

    fn revised() -> EmergencyPlanEvent {
        let steps = with_vendor_call();
        EmergencyPlanEvent::EmergencyPlanRevised {
            version: 2,
            steps,
            note: "加入聯繫廠商".into(),
        }
    }

    fn fold(events: impl IntoIterator<Item = EmergencyPlanEvent>) -> EmergencyPlan {
        events
            .into_iter()
            .fold(EmergencyPlan::default(), |s, e| s.evolve(&e))
    }

    #[test]
    fn the_service_plan_has_seven_runbooks_each_a_valid_definition() {
        let runbooks = plan_runbooks();
        assert_eq!(runbooks.len(), 7);
        let mut scenarios = BTreeSet::new();
        for command in runbooks {
            let EmergencyPlanCommand::DefinePlan {
                plan_id: id,
                key,
                scenario,
                ..
            } = &command
            else {
                panic!("the plan's runbooks are definitions, not {command:?}")
            };
            assert_eq!(*id, plan_id(key));
            scenarios.insert(*scenario);
            let expected = defined(command.clone());
            given::<EmergencyPlan>([])
                .when(command, &manager())
                .then([expected]);
        }
        assert_eq!(scenarios, Scenario::ALL.into_iter().collect());
    }

    #[test]
    fn a_plan_is_defined_once() {
        given::<EmergencyPlan>([defined(ups())])
            .when(ups(), &manager())
            .then_err(EmergencyPlanError::AlreadyDefined);
    }

    #[test]
    fn a_plan_id_is_the_id_of_its_key() {
        let EmergencyPlanCommand::DefinePlan {
            key,
            name,
            scenario,
            steps,
            ..
        } = ups()
        else {
            unreachable!()
        };
        given::<EmergencyPlan>([])
            .when(
                EmergencyPlanCommand::DefinePlan {
                    plan_id: plan_id("fire"),
                    key,
                    name,
                    scenario,
                    steps,
                },
                &manager(),
            )
            .then_err(invalid("plan_id", "is not the id of key \"ups_failure\"").into());
    }

    #[test]
    fn a_definition_names_the_step_that_is_wrong() {
        let mut steps = ups_steps();
        steps[2].key = steps[0].key.clone();
        let EmergencyPlanCommand::DefinePlan {
            plan_id, key, name, ..
        } = ups()
        else {
            unreachable!()
        };
        given::<EmergencyPlan>([])
            .when(
                EmergencyPlanCommand::DefinePlan {
                    plan_id,
                    key,
                    name,
                    scenario: Scenario::UpsFailure,
                    steps,
                },
                &manager(),
            )
            .then_err(invalid("steps[2].key", "\"report_to_team\" is repeated").into());
    }

    #[test]
    fn a_revision_is_the_next_version_and_new_runs_copy_it() {
        given::<EmergencyPlan>([defined(ups())])
            .when(
                EmergencyPlanCommand::RevisePlan {
                    steps: with_vendor_call(),
                    note: " 加入聯繫廠商 ".into(),
                },
                &person("u-ho", "運維中心", &["operations_head"]),
            )
            .then([revised()]);

        let plan = fold([defined(ups()), revised()]);
        assert_eq!(plan.version, 2);
        let incident = Uuid::from_u128(42);
        let PlanRunCommand::StartRun {
            run_id: run,
            plan_version,
            steps,
            incident_id,
            drill,
            ..
        } = plan.run_for_incident(incident, None).unwrap()
        else {
            panic!("a plan starts runs")
        };
        assert_eq!(run, run_id(incident, plan_id("ups_failure")));
        assert_eq!(plan_version, 2);
        assert_eq!(steps[1].key, "call_vendor");
        assert_eq!((incident_id, drill), (Some(incident), false));
    }

    #[test]
    fn a_revision_changes_the_steps_and_says_why() {
        let g = || given::<EmergencyPlan>([defined(ups())]);
        g().when(
            EmergencyPlanCommand::RevisePlan {
                steps: ups_steps(),
                note: "重新審閱".into(),
            },
            &manager(),
        )
        .then_err(EmergencyPlanError::Unchanged(1));
        g().when(
            EmergencyPlanCommand::RevisePlan {
                steps: ups_steps()[1..].to_vec(),
                note: " ".into(),
            },
            &manager(),
        )
        .then_err(invalid("note", "is required").into());
        g().when(
            EmergencyPlanCommand::RevisePlan {
                steps: vec![],
                note: "清空".into(),
            },
            &manager(),
        )
        .then_err(invalid("steps", "must list at least one step").into());
    }

    #[test]
    fn a_retired_plan_takes_no_revision_and_starts_no_run() {
        let retired = EmergencyPlanEvent::EmergencyPlanRetired {
            version: 1,
            reason: "併入電力應急預案".into(),
            at: at(9),
        };
        given::<EmergencyPlan>([defined(ups())])
            .when(
                EmergencyPlanCommand::RetirePlan {
                    reason: "併入電力應急預案".into(),
                },
                &manager(),
            )
            .then([retired.clone()]);
        given::<EmergencyPlan>([defined(ups()), retired.clone()])
            .when(
                EmergencyPlanCommand::RevisePlan {
                    steps: ups_steps()[1..].to_vec(),
                    note: "n".into(),
                },
                &manager(),
            )
            .then_err(EmergencyPlanError::Retired);
        let plan = fold([defined(ups()), retired]);
        assert_eq!(
            plan.drill(Uuid::from_u128(1), None).unwrap_err(),
            EmergencyPlanError::Retired
        );
        assert_eq!(
            EmergencyPlan::default()
                .run_for_incident(Uuid::from_u128(1), None)
                .unwrap_err(),
            EmergencyPlanError::NotFound
        );
    }

    #[test]
    fn only_the_operations_leads_and_administrators_write_plans() {
        for writer in [
            manager(),
            person("u-ho", "運維中心", &["operations_head"]),
            person("u-root", "運維中心", &["admin"]),
        ] {
            let expected = defined(ups());
            given::<EmergencyPlan>([])
                .when(ups(), &writer)
                .then([expected]);
        }
        for other in [
            person("u-lam", "運維中心", &["engineer"]),
            person("u-ops", "運維中心", &["operator"]),
        ] {
            given::<EmergencyPlan>([])
                .when(ups(), &other)
                .then_err(EmergencyPlanError::NotPermitted);
        }
    }
}
