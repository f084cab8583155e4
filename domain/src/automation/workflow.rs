//! Provisioning workflows (the plan's 自動化流程): the ordered steps that fulfil a
//! catalogue item — allocate capacity, create the VM, carve and attach storage, deploy the
//! image, allocate the IP, install software, run a script, or wait for an operator — with
//! typed parameters, their defaults, and outputs later steps use.
//!
//! A step's inputs are JSON values; a string `"${params.cpu}"` is replaced by the
//! parameter's value (keeping its type), `"${steps.vm.vm_ref}"` by an earlier step's
//! output, and a longer string with such references has them written into it. A step runs
//! after the steps it names in `after` and the steps whose outputs it uses: a definition
//! whose steps wait on each other in a cycle, or that names a parameter, step or output
//! it does not have, is refused when saved. Every edit is a new version; a run keeps the
//! version it started with.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The most steps a workflow has.
pub const MAX_STEPS: usize = 50;
/// The most parameters a workflow has.
pub const MAX_PARAMS: usize = 50;

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Takes capacity from a pool, within the department's quota.
    AllocateCapacity,
    CreateVm,
    /// Creates a volume and attaches it to the VM.
    CreateVolume,
    DeployImage,
    /// Takes an address from a subnet.
    AllocateIp,
    InstallSoftware,
    RunScript,
    /// Waits for an operator to do something by hand and record it.
    Manual,
}

impl StepKind {
    /// The inputs a step of this kind cannot do without.
    pub fn required_inputs(self) -> &'static [&'static str] {
        match self {
            StepKind::AllocateCapacity => &["pool_id", "cpu", "memory_gib"],
            StepKind::AllocateIp => &["subnet_id"],
            StepKind::CreateVolume => &["size_gb"],
            StepKind::DeployImage => &["image"],
            StepKind::InstallSoftware => &["package"],
            StepKind::RunScript => &["script"],
            StepKind::CreateVm | StepKind::Manual => &[],
        }
    }

    /// The outputs every step of this kind answers with.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            StepKind::AllocateCapacity => &["pool_id", "cpu", "memory_gib", "storage_gib"],
            StepKind::AllocateIp => &["address", "subnet_id"],
            StepKind::CreateVm => &["vm_ref", "hostname", "power"],
            StepKind::CreateVolume => &["volume_ref", "size_gb"],
            StepKind::DeployImage => &["image", "os"],
            StepKind::InstallSoftware => &["package", "restore_point"],
            StepKind::RunScript => &["exit_code"],
            StepKind::Manual => &[],
        }
    }

    /// Whether it acts on the OpsLedger's own aggregates (pools, quotas, subnets) rather
    /// than through a driver.
    pub fn is_ledger_step(self) -> bool {
        matches!(self, StepKind::AllocateCapacity | StepKind::AllocateIp)
    }

    /// The driver operation it calls, for a step that calls one.
    pub fn operation(self) -> Option<&'static str> {
        Some(match self {
            StepKind::CreateVm => "create_vm",
            StepKind::CreateVolume => "create_volume",
            StepKind::DeployImage => "deploy_image",
            StepKind::InstallSoftware => "install_software",
            StepKind::RunScript => "run_script",
            _ => return None,
        })
    }
}

/// A parameter's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    Text,
    Integer,
    Boolean,
    /// One of the parameter's `choices`.
    Choice,
}

/// A value the workflow is started with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub param_type: ParamType,
    #[serde(default)]
    pub description: String,
    /// Without a default, a required parameter must be given when the run starts.
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

impl Param {
    /// Checks `value` is of this parameter's type.
    fn accepts(&self, value: &Value) -> Result<(), String> {
        let ok = match self.param_type {
            ParamType::Text => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Choice => value
                .as_str()
                .is_some_and(|v| self.choices.iter().any(|c| c == v)),
        };
        if ok {
            Ok(())
        } else if self.param_type == ParamType::Choice {
            Err(format!("must be one of {}", self.choices.join(", ")))
        } else {
            Err(format!(
                "must be {}",
                match self.param_type {
                    ParamType::Text => "a string",
                    ParamType::Integer => "an integer",
                    _ => "true or false",
                }
            ))
        }
    }
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Unique in its workflow: lower-case letters, digits, `_` and `-`.
    pub name: String,
    pub kind: StepKind,
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// Steps it runs after, besides those whose outputs it uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Outputs besides those of its kind (a script's or an operator's answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// For a manual step: what the operator is to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// A workflow as its owner writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: Vec<Param>,
    pub steps: Vec<Step>,
}

/// A reference in an input: to a parameter, or to a step's output.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reference<'a> {
    Param(&'a str),
    Output(&'a str, &'a str),
}

/// The references written in `text` as `${…}`, or what is wrong with one.
fn references(text: &str) -> Result<Vec<Reference<'_>>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{text}` opens a reference with ${{ and does not close it"))?;
        let inner = &after[..end];
        let parts: Vec<&str> = inner.split('.').collect();
        found.push(match parts.as_slice() {
            ["params", name] if !name.is_empty() => Reference::Param(name),
            ["steps", step, output] if !step.is_empty() && !output.is_empty() => {
                Reference::Output(step, output)
            }
            _ => {
                return Err(format!(
                    "`${{{inner}}}` is neither ${{params.<name>}} nor ${{steps.<step>.<output>}}"
                ))
            }
        });
        rest = &after[end + 1..];
    }
    Ok(found)
}

/// Every string inside `value`, with its path below `path`.
fn strings<'a>(path: String, value: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((path, s)),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                strings(format!("{path}[{i}]"), v, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                strings(format!("{path}.{k}"), v, out);
            }
        }
        _ => {}
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl WorkflowDefinition {
    /// Checks the definition and answers the order its steps run in: each after the
    /// steps it waits on, otherwise in the order written.
    ///
    /// # Errors
    /// The first field that is wrong, by its path: an empty or repeated name, a
    /// parameter whose default is not of its type, a step without an input its kind
    /// needs, a reference to a parameter, step or output that does not exist, steps
    /// that wait on each other in a cycle.
    pub fn validate(&self) -> Result<Vec<usize>, InvalidField> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.steps.is_empty() {
            return Err(invalid("steps", "a workflow has at least one step"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(invalid("steps", format!("at most {MAX_STEPS} steps")));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(invalid(
                "params",
                format!("at most {MAX_PARAMS} parameters"),
            ));
        }
        let mut params = BTreeMap::new();
        for (i, p) in self.params.iter().enumerate() {
            let path = format!("params[{i}]");
            if !valid_name(&p.name) {
                return Err(invalid(
                    format!("{path}.name"),
                    "must be lower-case letters, digits, _ or -",
                ));
            }
            if params.insert(p.name.as_str(), p).is_some() {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("`{}` is named twice", p.name),
                ));
            }
            if p.param_type == ParamType::Choice && p.choices.is_empty() {
                return Err(invalid(
                    format!("{path}.choices"),
                    "a choice needs at least one option",
                ));
            }
            if let Some(default) = &p.default {
                p.accepts(default)
                    .map_err(|problem| invalid(format!("{path}.default"), problem))?;
            }
        }
        let mut index = BTreeMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            if !valid_name(&s.name) {
                return Err(invalid(
                    format!("steps[{i}].name"),
                    "must be lower-case letters, digits, _ or -",
                ));
            }
            if index.insert(s.name.as_str(), i).is_some() {
                return Err(invalid(
                    format!("steps[{i}].name"),
                    format!("`{}` is named twice", s.name),
                ));
            }
        }
        // What each step waits on.
        let mut waits: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            for needed in s.kind.required_inputs() {
                if !s.inputs.contains_key(*needed) {
                    return Err(invalid(
                        format!("{path}.inputs.{needed}"),
                        format!("a {} step needs it", kind_name(s.kind)),
                    ));
                }
            }
            if s.kind == StepKind::Manual
                && s.instructions
                    .as_deref()
                    .is_none_or(|t| t.trim().is_empty())
            {
                return Err(invalid(
                    format!("{path}.instructions"),
                    "a manual step says what to do",
                ));
            }
            for (j, name) in s.after.iter().enumerate() {
                let &target = index.get(name.as_str()).ok_or_else(|| {
                    invalid(
                        format!("{path}.after[{j}]"),
                        format!("no step is named `{name}`"),
                    )
                })?;
                if target == i {
                    return Err(invalid(
                        format!("{path}.after[{j}]"),
                        "a step cannot wait on itself",
                    ));
                }
                waits[i].insert(target);
            }
            let mut texts = Vec::new();
            for (name, value) in &s.inputs {
                strings(format!("{path}.inputs.{name}"), value, &mut texts);
            }
            for (field, text) in texts {
                for r in references(text).map_err(|p| invalid(field.clone(), p))? {
                    match r {
                        Reference::Param(name) => {
                            if !params.contains_key(name) {
                                return Err(invalid(
                                    field,
                                    format!("uses the parameter `{name}`, which the workflow does not declare"),
                                ));
                            }
                        }
                        Reference::Output(step, output) => {
                            let &target = index.get(step).ok_or_else(|| {
                                invalid(
                                    field.clone(),
                                    format!(
                                        "uses the step `{step}`, which the workflow does not have"
                                    ),
                                )
                            })?;
                            if target == i {
                                return Err(invalid(field, "a step cannot use its own output"));
                            }
                            let source = &self.steps[target];
                            if !source.kind.outputs().contains(&output)
                                && !source.outputs.iter().any(|o| o == output)
                            {
                                return Err(invalid(
                                    field,
                                    format!("the step `{step}` has no output `{output}`"),
                                ));
                            }
                            waits[i].insert(target);
                        }
                    }
                }
            }
        }
        order(&waits).map_err(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&i| self.steps[i].name.as_str()).collect();
            invalid(
                "steps",
                format!(
                    "the steps {} wait on each other in a cycle",
                    names.join(" → ")
                ),
            )
        })
    }

    /// The values a run starts with: those given, then the defaults.
    ///
    /// # Errors
    /// A value given for no parameter or of the wrong type, or a required parameter
    /// neither given nor defaulted, by `params.<name>`.
    pub fn resolve_params(
        &self,
        given: &Map<String, Value>,
    ) -> Result<Map<String, Value>, InvalidField> {
        let mut values = Map::new();
        for p in &self.params {
            match given.get(&p.name).filter(|v| !v.is_null()) {
                Some(v) => {
                    p.accepts(v)
                        .map_err(|problem| invalid(format!("params.{}", p.name), problem))?;
                    values.insert(p.name.clone(), v.clone());
                }
                None => match &p.default {
                    Some(d) => {
                        values.insert(p.name.clone(), d.clone());
                    }
                    None if p.required => {
                        return Err(invalid(
                            format!("params.{}", p.name),
                            "is required and has no default",
                        ))
                    }
                    None => {}
                },
            }
        }
        Ok(values)
    }
}

/// The order of steps that respects `waits` (stable: the written order where free), or
/// the steps of a cycle.
fn order(waits: &[BTreeSet<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let mut done = vec![false; waits.len()];
    let mut ordered = Vec::with_capacity(waits.len());
    while ordered.len() < waits.len() {
        let next = (0..waits.len()).find(|&i| !done[i] && waits[i].iter().all(|&w| done[w]));
        match next {
            Some(i) => {
                done[i] = true;
                ordered.push(i);
            }
            None => {
                // Walk the waits from a blocked step until one repeats: that is a cycle.
                let mut at = (0..waits.len())
                    .find(|&i| !done[i])
                    .expect("a blocked step");
                let mut path = Vec::new();
                while !path.contains(&at) {
                    path.push(at);
                    at = *waits[at]
                        .iter()
                        .find(|&&w| !done[w])
                        .expect("it waits on a blocked step");
                }
                let start = path
                    .iter()
                    .position(|&p| p == at)
                    .expect("the repeat is on the path");
                // Named in the order they would run: each before the next.
                let mut cycle = path[start..].to_vec();
                cycle.push(at);
                cycle.reverse();
                return Err(cycle);
            }
        }
    }
    Ok(ordered)
}

/// Writes the parameters and outputs into `value`'s references.
///
/// # Errors
/// A reference to something not there (a parameter without value, an output a step did
/// not give), by its text.
pub fn fill(
    value: &Value,
    params: &Map<String, Value>,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<Value, String> {
    let lookup = |r: &Reference<'_>| -> Result<Value, String> {
        match r {
            Reference::Param(name) => params
                .get(*name)
                .cloned()
                .ok_or_else(|| format!("the parameter `{name}` has no value")),
            Reference::Output(step, output) => outputs
                .get(*step)
                .and_then(|o| o.get(*output))
                .cloned()
                .ok_or_else(|| format!("the step `{step}` gave no output `{output}`")),
        }
    };
    Ok(match value {
        Value::String(text) => {
            let refs = references(text)?;
            if refs.is_empty() {
                value.clone()
            } else if refs.len() == 1
                && text.starts_with("${")
                && text.ends_with('}')
                && text.matches("${").count() == 1
            {
                lookup(&refs[0])?
            } else {
                let mut written = String::new();
                let mut rest = text.as_str();
                for r in &refs {
                    let start = rest.find("${").expect("counted");
                    let end = rest[start..].find('}').expect("closed") + start;
                    written.push_str(&rest[..start]);
                    match lookup(r)? {
                        Value::String(s) => written.push_str(&s),
                        other => written.push_str(&other.to_string()),
                    }
                    rest = &rest[end + 1..];
                }
                written.push_str(rest);
                Value::String(written)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(v, params, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, params, outputs)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

pub fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::AllocateCapacity => "allocate_capacity",
        StepKind::CreateVm => "create_vm",
        StepKind::CreateVolume => "create_volume",
        StepKind::DeployImage => "deploy_image",
        StepKind::AllocateIp => "allocate_ip",
        StepKind::InstallSoftware => "install_software",
        StepKind::RunScript => "run_script",
        StepKind::Manual => "manual",
    }
}

/// Orders to a workflow.
#[derive(Clone, Debug)]
pub enum WorkflowCommand {
    Create {
        workflow_id: Uuid,
        definition: WorkflowDefinition,
    },
    Edit {
        definition: WorkflowDefinition,
    },
    Delete {
        reason: String,
    },
}

/// What happened to a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum WorkflowEvent {
    WorkflowCreated {
        workflow_id: Uuid,
        version: u32,
        definition: WorkflowDefinition,
    },
    WorkflowEdited {
        version: u32,
        definition: WorkflowDefinition,
    },
    WorkflowDeleted {
        reason: String,
    },
}

impl DomainEvent for WorkflowEvent {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkflowError {
    /// Only operators and catalogue administrators keep workflows (forbidden)
    #[error("only operators and catalogue administrators keep workflows")]
    NotPermitted,
    /// There is no such workflow (not found)
    #[error("no such workflow")]
    NotFound,
    /// The workflow exists already (conflict)
    #[error("the workflow exists already")]
    AlreadyExists,
    /// The workflow was deleted (conflict)
    #[error("the workflow was deleted")]
    Deleted,
    /// A field of the workflow breaks its rules (invalid)
    #[error("{0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for WorkflowError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotPermitted => Refusal::Forbidden,
            Self::NotFound => Refusal::NotFound,
            Self::AlreadyExists | Self::Deleted => Refusal::Conflict,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// A workflow's versions.
#[derive(Clone, Debug, Default)]
pub struct Workflow {
    pub workflow_id: Option<Uuid>,
    /// Every version, the first at index 0.
    pub versions: Vec<WorkflowDefinition>,
    pub deleted: Option<String>,
}

impl Workflow {
    pub fn current(&self) -> Option<&WorkflowDefinition> {
        self.versions.last()
    }
}

fn keeps_workflows(ctx: &Context) -> bool {
    let a = &ctx.actor;
    a.operates() || a.has_role(Role::CatalogAdmin) || a.has_role(Role::Admin)
}

impl Aggregate for Workflow {
    const KIND: &'static str = "workflow";
    type Command = WorkflowCommand;
    type Event = WorkflowEvent;
    type Error = WorkflowError;

    fn decide(
        &self,
        command: WorkflowCommand,
        ctx: &Context,
    ) -> Result<Vec<WorkflowEvent>, WorkflowError> {
        if !keeps_workflows(ctx) {
            return Err(WorkflowError::NotPermitted);
        }
        if self.deleted.is_some() {
            return Err(WorkflowError::Deleted);
        }
        match command {
            WorkflowCommand::Create {
                workflow_id,
                definition,
            } => {
                if self.workflow_id.is_some() {
                    return Err(WorkflowError::AlreadyExists);
                }
                definition.validate()?;
                Ok(vec![WorkflowEvent::WorkflowCreated {
                    workflow_id,
                    version: 1,
                    definition,
                }])
            }
            WorkflowCommand::Edit { definition } => {
                if self.workflow_id.is_none() {
                    return Err(WorkflowError::NotFound);
                }
                definition.validate()?;
                Ok(vec![WorkflowEvent::WorkflowEdited {
                    version: self.versions.len() as u32 + 1,
                    definition,
                }])
            }
            WorkflowCommand::Delete { reason } => {
                if self.workflow_id.is_none() {
                    return Err(WorkflowError::NotFound);
                }
                if reason.trim().is_empty() {
                    return Err(invalid("reason", "must not be empty").into());
                }
                Ok(vec![WorkflowEvent::WorkflowDeleted { reason }])
            }
        }
    }

    fn evolve(mut self, event: &WorkflowEvent) -> Self {
        match event {
            WorkflowEvent::WorkflowCreated {
                workflow_id,
                definition,
                ..
            } => {
                self.workflow_id = Some(*workflow_id);
                self.versions.push(definition.clone());
            }
            WorkflowEvent::WorkflowEdited { definition, .. } => {
                self.versions.push(definition.clone())
            }
            WorkflowEvent::WorkflowDeleted { reason } => self.deleted = Some(reason.clone()),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kernel::given::{given, person};

    /// The plan's VM workflow: capacity, VM, data disk, image, address.
    pub(crate) fn vm_workflow() -> WorkflowDefinition {
        serde_json::from_value(json!({
            "name": "虛擬機開通",
            "params": [
                { "name": "cpu", "type": "integer", "default": 2 },
                { "name": "memory_gib", "type": "integer", "default": 4 },
                { "name": "pool_id", "type": "text", "required": true },
                { "name": "subnet_id", "type": "text", "required": true },
                { "name": "image", "type": "choice", "choices": ["centos-7.9", "windows-2019"], "default": "centos-7.9" }
            ],
            "steps": [
                { "name": "capacity", "kind": "allocate_capacity", "inputs": { "pool_id": "${params.pool_id}", "cpu": "${params.cpu}", "memory_gib": "${params.memory_gib}" } },
                { "name": "vm", "kind": "create_vm", "inputs": { "hostname": "vm-${params.image}" }, "after": ["capacity"] },
                { "name": "disk", "kind": "create_volume", "inputs": { "size_gb": 100, "vm": "${steps.vm.vm_ref}" } },
                { "name": "image", "kind": "deploy_image", "inputs": { "image": "${params.image}", "vm": "${steps.vm.vm_ref}" } },
                { "name": "ip", "kind": "allocate_ip", "inputs": { "subnet_id": "${params.subnet_id}" } }
            ]
        }))
        .unwrap()
    }

    fn problem(definition: &WorkflowDefinition) -> (String, String) {
        let e = definition.validate().unwrap_err();
        (e.field, e.problem)
    }

    #[test]
    fn a_workflow_runs_its_steps_after_what_they_wait_on() {
        let mut w = vm_workflow();
        assert_eq!(w.validate().unwrap(), vec![0, 1, 2, 3, 4]);
        // The address first, written last but waited on by the VM.
        w.steps[1].after.push("ip".into());
        assert_eq!(w.validate().unwrap(), vec![0, 4, 1, 2, 3]);
    }

    #[test]
    fn a_cycle_or_a_missing_parameter_is_refused_by_name() {
        let mut cycle = vm_workflow();
        cycle.steps[0].after.push("disk".into());
        let (field, text) = problem(&cycle);
        assert_eq!(field, "steps");
        assert!(text.contains("capacity → vm → disk → capacity"), "{text}");

        let mut missing = vm_workflow();
        missing.steps[0]
            .inputs
            .insert("cpu".into(), json!("${params.cores}"));
        let (field, text) = problem(&missing);
        assert_eq!(field, "steps[0].inputs.cpu");
        assert!(text.contains("`cores`"), "{text}");

        let mut no_input = vm_workflow();
        no_input.steps[4].inputs.clear();
        assert_eq!(problem(&no_input).0, "steps[4].inputs.subnet_id");

        let mut no_output = vm_workflow();
        no_output.steps[2]
            .inputs
            .insert("vm".into(), json!("${steps.vm.serial}"));
        assert!(problem(&no_output).1.contains("no output `serial`"));

        let mut bad_default = vm_workflow();
        bad_default.params[4].default = Some(json!("debian"));
        assert_eq!(problem(&bad_default).0, "params[4].default");

        let mut twice = vm_workflow();
        twice.steps[3].name = "vm".into();
        assert_eq!(problem(&twice).0, "steps[3].name");

        let mut manual = vm_workflow();
        manual.steps.push(Step {
            name: "check".into(),
            kind: StepKind::Manual,
            inputs: BTreeMap::new(),
            after: vec![],
            outputs: vec!["signed_off_by".into()],
            instructions: None,
        });
        assert_eq!(problem(&manual).0, "steps[5].instructions");
    }

    #[test]
    fn parameters_take_given_values_then_defaults_and_are_typed() {
        let w = vm_workflow();
        let given = json!({ "pool_id": "p", "subnet_id": "s", "cpu": 8 });
        let values = w.resolve_params(given.as_object().unwrap()).unwrap();
        assert_eq!(values["cpu"], 8);
        assert_eq!(values["memory_gib"], 4);
        assert_eq!(values["image"], "centos-7.9");
        let wrong = json!({ "pool_id": "p", "subnet_id": "s", "cpu": "eight" });
        assert_eq!(
            w.resolve_params(wrong.as_object().unwrap())
                .unwrap_err()
                .field,
            "params.cpu"
        );
        let absent = json!({ "pool_id": "p" });
        let e = w.resolve_params(absent.as_object().unwrap()).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.problem.as_str()),
            ("params.subnet_id", "is required and has no default")
        );
        let choice = json!({ "pool_id": "p", "subnet_id": "s", "image": "debian" });
        assert!(w
            .resolve_params(choice.as_object().unwrap())
            .unwrap_err()
            .problem
            .contains("centos-7.9"));
    }

    #[test]
    fn references_are_filled_with_their_types_or_written_into_text() {
        let params = json!({ "cpu": 4, "image": "centos-7.9" })
            .as_object()
            .unwrap()
            .clone();
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "vm".to_owned(),
            json!({ "vm_ref": "vm-17" }).as_object().unwrap().clone(),
        );
        assert_eq!(
            fill(&json!("${params.cpu}"), &params, &outputs).unwrap(),
            json!(4)
        );
        assert_eq!(
            fill(
                &json!({ "n": "${steps.vm.vm_ref}/${params.image}" }),
                &params,
                &outputs
            )
            .unwrap(),
            json!({ "n": "vm-17/centos-7.9" })
        );
        assert!(fill(&json!("${steps.disk.volume_ref}"), &params, &outputs)
            .unwrap_err()
            .contains("`disk`"));
    }

    #[test]
    fn an_operator_keeps_versions_and_a_requester_may_not() {
        let id = Uuid::from_u128(1);
        let op = person("u-wong", "運維中心", &["operator"]);
        let created = given::<Workflow>([])
            .when(
                WorkflowCommand::Create {
                    workflow_id: id,
                    definition: vm_workflow(),
                },
                &op,
            )
            .events();
        given::<Workflow>(created.clone())
            .when(
                WorkflowCommand::Edit {
                    definition: vm_workflow(),
                },
                &op,
            )
            .then([WorkflowEvent::WorkflowEdited {
                version: 2,
                definition: vm_workflow(),
            }]);
        given::<Workflow>(created.clone())
            .when(
                WorkflowCommand::Edit {
                    definition: vm_workflow(),
                },
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(WorkflowError::NotPermitted);
        let deleted = given::<Workflow>(created.clone())
            .when(
                WorkflowCommand::Delete {
                    reason: "replaced".into(),
                },
                &op,
            )
            .events();
        let all: Vec<_> = created.into_iter().chain(deleted).collect();
        given::<Workflow>(all)
            .when(
                WorkflowCommand::Edit {
                    definition: vm_workflow(),
                },
                &op,
            )
            .then_err(WorkflowError::Deleted);
    }
}
