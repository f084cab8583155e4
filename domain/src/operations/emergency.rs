//! Emergency plans (應急預案): the service plan's contingency procedures for a network
//! outage, a server under attack, a scheduled power cut, a mains power failure, a UPS
//! failure, an air-conditioning failure and a fire, kept as versioned runbooks of ordered
//! steps, each done by a role. An [`EmergencyPlan`] is revised as a new version; a
//! [`PlanRun`] is one execution of one version, for an incident or as a drill, with the
//! steps copied from that version, so a later revision never changes a run under way.
//! Each step done or skipped is an event, and the run completes in the decision that
//! settles its last required step: the run's events are the plan's part of the incident's
//! timeline and report, and a drill's events are its record.
//!
//! A run links to its incident by id only; the incident aggregate knows nothing of plans.
//! A run's id is derived from the incident (or drill) and the plan, so a retried or
//! duplicated start cannot run the same plan twice for one incident.

mod plan;
mod run;
mod runbooks;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::Role;
use crate::requests::catalog::{invalid, InvalidField};

pub use plan::{EmergencyPlan, EmergencyPlanCommand, EmergencyPlanError, EmergencyPlanEvent};
pub use run::{PlanRun, PlanRunCommand, PlanRunError, PlanRunEvent, RunStatus};
pub use runbooks::plan_runbooks;

/// The id of the plan named by a stable key, e.g. `network_outage`: the UUID v5 (OID
/// namespace) of `opsledger:emergency_plan:<key>`.
pub fn plan_id(key: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:emergency_plan:{key}").as_bytes(),
    )
}

/// The id of the run of `plan_id` for an incident (its id) or a drill (the drill's id):
/// the UUID v5 (OID namespace) of `opsledger:plan_run:<incident or drill>:<plan_id>`. The
/// same on every retry, so one incident runs one plan once.
pub fn run_id(incident_or_drill: Uuid, plan_id: Uuid) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:plan_run:{incident_or_drill}:{plan_id}").as_bytes(),
    )
}

/// What a plan is for: the service plan's 應急預案流程.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// 網絡應急預案: the network is down, in part or in whole.
    NetworkOutage,
    /// 服務器被攻擊預案.
    ServerAttack,
    /// 市電線路例行停電: the utility announced a power cut.
    ScheduledPowerCut,
    /// 市電線路出現故障: the mains supply failed.
    MainsPowerFailure,
    /// UPS電源故障.
    UpsFailure,
    /// 空調應急預案: an air conditioner (or all of them) failed.
    AirConditioningFailure,
    /// 消防應急預案: the fire alarm panel sounds.
    Fire,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::NetworkOutage,
        Scenario::ServerAttack,
        Scenario::ScheduledPowerCut,
        Scenario::MainsPowerFailure,
        Scenario::UpsFailure,
        Scenario::AirConditioningFailure,
        Scenario::Fire,
    ];

    /// The name used in events, e.g. `mains_power_failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::NetworkOutage => "network_outage",
            Scenario::ServerAttack => "server_attack",
            Scenario::ScheduledPowerCut => "scheduled_power_cut",
            Scenario::MainsPowerFailure => "mains_power_failure",
            Scenario::UpsFailure => "ups_failure",
            Scenario::AirConditioningFailure => "air_conditioning_failure",
            Scenario::Fire => "fire",
        }
    }
}

/// One step of a runbook: what is done, how, and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// Lower-case letters, digits and `_`, starting with a letter; unique in the plan.
    pub key: String,
    /// What is done, e.g. `啟動備用空調`.
    pub title: String,
    /// How, in the plan's words.
    pub instructions: String,
    /// Who does it; the operations manager and the head of the operations centre may do
    /// any step.
    pub role: Role,
    /// Done only when the situation calls for it (e.g. `火勢較小`); it holds back no later
    /// step and the run completes without it.
    pub optional: bool,
}

impl PlanStep {
    /// A required step.
    pub fn new(key: &str, title: &str, instructions: &str, role: Role) -> Self {
        PlanStep {
            key: key.into(),
            title: title.into(),
            instructions: instructions.into(),
            role,
            optional: false,
        }
    }

    /// The same step, done only when the situation calls for it.
    #[must_use]
    pub fn optional(self) -> Self {
        PlanStep {
            optional: true,
            ..self
        }
    }
}

/// Whether `key` is lower-case letters, digits and `_`, starting with a letter.
fn is_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks a key field.
///
/// # Errors
/// `field` when `key` is not lower-case letters, digits and `_` starting with a letter.
fn validate_key(field: &str, key: &str) -> Result<(), InvalidField> {
    if is_key(key) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{key:?} must be lower-case letters, digits and _, starting with a letter"),
        ))
    }
}

/// Checks a runbook's steps; fields are named `steps[i].…`.
///
/// # Errors
/// The first field that is wrong: no steps, a key malformed or repeated, a title empty, or
/// a last step that is optional (the run completes with the last required step, so an
/// optional step after it could never be recorded).
pub fn validate_steps(steps: &[PlanStep]) -> Result<(), InvalidField> {
    let Some(last) = steps.len().checked_sub(1) else {
        return Err(invalid("steps", "must list at least one step"));
    };
    for (i, step) in steps.iter().enumerate() {
        let field = |name: &str| format!("steps[{i}].{name}");
        validate_key(&field("key"), &step.key)?;
        if steps[..i].iter().any(|earlier| earlier.key == step.key) {
            return Err(invalid(field("key"), format!("{:?} is repeated", step.key)));
        }
        if step.title.trim().is_empty() {
            return Err(invalid(field("title"), "must not be empty"));
        }
    }
    if steps[last].optional {
        return Err(invalid(
            format!("steps[{last}].optional"),
            "the last step must be required: the run completes when it is done",
        ));
    }
    Ok(())
}

/// `text` trimmed, `None` when nothing is left.
fn note(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Checks a free-text field that must say something.
///
/// # Errors
/// `field` when `text` is blank.
fn required(field: &str, text: &str) -> Result<(), InvalidField> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &str) -> PlanStep {
        PlanStep::new(key, "判斷網絡中斷範圍", "", Role::Engineer)
    }

    #[test]
    fn ids_depend_only_on_their_keys() {
        // Fixed: a change to how ids are derived would orphan every stored plan, and let a
        // retried start run a plan a second time for an incident.
        assert_eq!(
            plan_id("fire").to_string(),
            "b28283b7-e1aa-5738-8a28-1177ec36af20"
        );
        assert_ne!(plan_id("fire"), plan_id("ups_failure"));
        let incident = Uuid::from_u128(7);
        assert_eq!(
            run_id(incident, plan_id("fire")).to_string(),
            "48e7943f-1315-5716-a584-4da906d3d03e"
        );
        assert_ne!(
            run_id(incident, plan_id("fire")),
            run_id(incident, plan_id("ups_failure"))
        );
        assert_ne!(
            run_id(incident, plan_id("fire")),
            run_id(Uuid::from_u128(8), plan_id("fire"))
        );
    }

    #[test]
    fn steps_are_checked_by_their_path() {
        assert_eq!(
            validate_steps(&[]),
            Err(invalid("steps", "must list at least one step"))
        );
        assert_eq!(
            validate_steps(&[step("assess"), step("Notify")]),
            Err(invalid(
                "steps[1].key",
                "\"Notify\" must be lower-case letters, digits and _, starting with a letter"
            ))
        );
        assert_eq!(
            validate_steps(&[step("assess"), step("notify"), step("assess")]),
            Err(invalid("steps[2].key", "\"assess\" is repeated"))
        );
        let untitled = PlanStep {
            title: "  ".into(),
            ..step("notify")
        };
        assert_eq!(
            validate_steps(&[step("assess"), untitled]),
            Err(invalid("steps[1].title", "must not be empty"))
        );
        assert_eq!(
            validate_steps(&[step("assess"), step("notify").optional()]),
            Err(invalid(
                "steps[1].optional",
                "the last step must be required: the run completes when it is done"
            ))
        );
        assert_eq!(
            validate_steps(&[step("assess").optional(), step("notify")]),
            Ok(())
        );
    }
}
