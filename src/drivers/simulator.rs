//! The simulator: a driver that does nothing real, answers deterministically (the same
//! call always gets the same outputs), and fails or waits where it is told to — for
//! demos, tests and benchmarks.
//!
//! Failures are injected two ways: by configuration (`--simulate-failure create_volume`,
//! every call of that operation fails), or per run by a step parameter
//! `simulate_failure` naming the operation (or `undo:<operation>` to fail its
//! compensation), so one request can fail while others succeed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{operation, Driver, DriverCall, DriverError, DriverOutput, Phase};

/// The parameter that injects a failure into one run.
pub const FAILURE_PARAM: &str = "simulate_failure";
/// The parameter whose object the collected configuration differs by.
pub const DRIFT_PARAM: &str = "simulate_drift";

#[derive(Clone, Debug, Default)]
pub struct SimulatorConfig {
    /// How long every call takes.
    pub latency: Duration,
    /// How long calls of one operation take, instead.
    pub latency_of: BTreeMap<String, Duration>,
    /// Operations whose every call fails (`undo:<operation>` for their compensation).
    pub fail: BTreeSet<String>,
}

pub struct Simulator {
    config: SimulatorConfig,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        Simulator { config }
    }

    fn fails(&self, call: &DriverCall) -> bool {
        let name = match call.phase {
            Phase::Do => call.operation.clone(),
            Phase::Undo => format!("undo:{}", call.operation),
        };
        if self.config.fail.contains(&name) {
            return true;
        }
        match call.params.get(FAILURE_PARAM) {
            Some(Value::String(s)) => s.split(',').any(|s| s.trim() == name),
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(name.as_str())),
            _ => false,
        }
    }
}

fn short(call: &DriverCall) -> String {
    call.run_id.simple().to_string()[20..].to_owned()
}

fn param<'a>(call: &'a DriverCall, name: &str) -> Option<&'a Value> {
    call.params.get(name)
}

/// The outputs of a call done.
fn outputs(call: &DriverCall) -> Map<String, Value> {
    let id = short(call);
    let answer = match call.operation.as_str() {
        operation::CREATE_VM => json!({
            "vm_ref": format!("sim-vm-{id}"),
            "power": "running",
            "hostname": param(call, "hostname").cloned().unwrap_or_else(|| json!(format!("vm-{id}"))),
        }),
        operation::CREATE_VOLUME => json!({
            "volume_ref": format!("sim-vol-{id}-{}", call.step),
            "size_gb": param(call, "size_gb").cloned().unwrap_or(json!(0)),
        }),
        operation::DEPLOY_IMAGE => json!({
            "image": param(call, "image").cloned().unwrap_or(Value::Null),
            "os": param(call, "os").cloned().unwrap_or(Value::Null),
        }),
        operation::INSTALL_SOFTWARE => json!({
            "package": param(call, "package").cloned().unwrap_or(Value::Null),
            "restore_point": format!("sim-rp-{id}-{}", call.step),
        }),
        operation::RUN_SCRIPT => json!({
            "exit_code": 0,
            "script": call.script.as_ref().map(|s| s.name.clone()),
        }),
        operation::BACKUP_VM => json!({
            "backup_ref": format!("sim-bk-{id}"),
            "size_bytes": param(call, "disk_gb").and_then(Value::as_u64).unwrap_or(40) * 1_073_741_824 / 4,
        }),
        operation::START_VM | operation::RESTART_VM | operation::RESTORE_VM => {
            json!({ "power": "running" })
        }
        operation::STOP_VM => json!({ "power": "stopped" }),
        operation::DELETE_VM => json!({ "power": "deleted" }),
        operation::COLLECT_CONFIGURATION => {
            // What is there is the baseline asked about, but for the injected drift.
            let mut settings = param(call, "expected")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(Value::Object(drift)) = param(call, DRIFT_PARAM) {
                settings.extend(drift.clone());
            }
            json!({ "settings": settings })
        }
        _ => json!({}),
    };
    match answer {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[async_trait::async_trait]
impl Driver for Simulator {
    fn name(&self) -> &str {
        "simulator"
    }

    async fn call(&self, call: &DriverCall) -> Result<DriverOutput, DriverError> {
        let latency = self
            .config
            .latency_of
            .get(&call.operation)
            .copied()
            .unwrap_or(self.config.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let phase = match call.phase {
            Phase::Do => "do",
            Phase::Undo => "undo",
        };
        let log = format!(
            "simulator: {} {phase} (run {}, step {})\n",
            call.operation, call.run_id, call.step
        );
        if self.fails(call) {
            return Err(DriverError::Failed {
                message: format!("simulated failure of {} ({phase})", call.operation),
                log,
            });
        }
        let output = match call.phase {
            Phase::Do => outputs(call),
            Phase::Undo => Map::from_iter([("undone".to_owned(), json!(true))]),
        };
        Ok(DriverOutput { output, log })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn call(operation: &str, params: Value) -> DriverCall {
        DriverCall {
            operation: operation.into(),
            phase: Phase::Do,
            run_id: Uuid::from_u128(7),
            step: "vm".into(),
            params: params.as_object().cloned().unwrap_or_default(),
            output: None,
            script: None,
        }
    }

    #[tokio::test]
    async fn answers_the_same_call_the_same_way_and_fails_where_told() {
        let sim = Simulator::new(SimulatorConfig::default());
        let a = sim.call(&call("create_vm", json!({}))).await.unwrap();
        let b = sim.call(&call("create_vm", json!({}))).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.output["power"], "running");
        let failing = call("create_vm", json!({ "simulate_failure": "create_vm" }));
        assert!(matches!(
            sim.call(&failing).await,
            Err(DriverError::Failed { .. })
        ));
        let mut undo = call("create_vm", json!({ "simulate_failure": "undo:create_vm" }));
        assert!(sim.call(&undo).await.is_ok());
        undo.phase = Phase::Undo;
        assert!(sim.call(&undo).await.is_err());
        let drift = call(
            "collect_configuration",
            json!({ "expected": { "ntp": "on", "selinux": "enforcing" }, "simulate_drift": { "selinux": "permissive" } }),
        );
        let got = sim.call(&drift).await.unwrap();
        assert_eq!(
            got.output["settings"],
            json!({ "ntp": "on", "selinux": "permissive" })
        );
    }
}
