//! Automation as operators see it: the provisioning workflows with every version, and
//! every run with each step's start, output, failure, manual record and undo; the runs of
//! a request; the runs still under way (what the engine resumes after a restart) and
//! those waiting for an operator.

pub mod baselines;
pub mod library;
pub mod vm;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use opsledger_domain::automation::provisioning::{
    Log, Provisioning, ProvisioningEvent, RunPlan, RunStatus,
};
use opsledger_domain::automation::workflow::{Workflow, WorkflowDefinition, WorkflowEvent};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{stream_id, stream_kind};

/// A workflow or a run event.
#[derive(Clone, Debug)]
pub enum AutomationEvent {
    Workflow(WorkflowEvent),
    Run(ProvisioningEvent),
}

impl AutomationEvent {
    /// The event decoded, `None` when it is of neither stream kind.
    pub fn of(event: &RecordedEvent) -> Option<Result<AutomationEvent, String>> {
        match stream_kind(&event.stream) {
            Workflow::KIND => Some(
                WorkflowEvent::from_recorded(event)
                    .map(AutomationEvent::Workflow)
                    .map_err(|e| e.to_string()),
            ),
            Provisioning::KIND => Some(
                ProvisioningEvent::from_recorded(event)
                    .map(AutomationEvent::Run)
                    .map_err(|e| e.to_string()),
            ),
            _ => None,
        }
    }
}

/// One workflow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowEntry {
    pub workflow_id: Uuid,
    /// Oldest first; the last is current.
    pub versions: Vec<WorkflowDefinition>,
    pub deleted: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowEntry {
    pub fn current(&self) -> &WorkflowDefinition {
        &self.versions[self.versions.len() - 1]
    }
}

/// What a step of a run came to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepView {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `done`, `failed`, or none yet.
    pub outcome: Option<String>,
    pub output: Map<String, Value>,
    pub error: Option<String>,
    pub log: Log,
    /// For a manual step: who recorded it, and what they said.
    pub done_by: Option<String>,
    pub note: Option<String>,
    /// `started`, `done`, `failed`.
    pub undo: Option<String>,
    pub undo_error: Option<String>,
    pub undo_log: Log,
    pub incident_id: Option<Uuid>,
}

/// One run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunView {
    pub run_id: Uuid,
    pub plan: RunPlan,
    pub status: RunStatus,
    pub steps: Vec<StepView>,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The position of its last event.
    pub position: u64,
}

/// Every workflow and run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Automation {
    workflows: BTreeMap<Uuid, WorkflowEntry>,
    runs: BTreeMap<Uuid, RunView>,
    /// Runs in the order they started.
    order: Vec<Uuid>,
    by_request: BTreeMap<Uuid, Vec<Uuid>>,
    /// Runs not over yet.
    open: BTreeSet<Uuid>,
}

impl Automation {
    pub fn workflow(&self, id: Uuid) -> Option<&WorkflowEntry> {
        self.workflows.get(&id)
    }

    /// Workflows by name, deleted ones only when asked for.
    pub fn workflows(&self, include_deleted: bool) -> Vec<&WorkflowEntry> {
        let mut all: Vec<_> = self
            .workflows
            .values()
            .filter(|w| include_deleted || w.deleted.is_none())
            .collect();
        all.sort_by(|a, b| {
            a.current()
                .name
                .cmp(&b.current().name)
                .then(a.workflow_id.cmp(&b.workflow_id))
        });
        all
    }

    pub fn run(&self, id: Uuid) -> Option<&RunView> {
        self.runs.get(&id)
    }

    /// Runs newest first, of one status when given.
    pub fn runs(&self, status: Option<RunStatus>) -> impl Iterator<Item = &RunView> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.runs.get(id))
            .filter(move |r| status.is_none_or(|s| r.status == s))
    }

    pub fn runs_of_request(&self, request_id: Uuid) -> impl Iterator<Item = &RunView> {
        self.by_request
            .get(&request_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.runs.get(id))
    }

    /// Runs not over, oldest first: what the engine carries on with.
    pub fn open_runs(&self) -> impl Iterator<Item = &RunView> {
        self.open.iter().filter_map(|id| self.runs.get(id))
    }

    pub fn on_event(&mut self, event: &RecordedEvent, e: &AutomationEvent) {
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        match e {
            AutomationEvent::Workflow(e) => self.on_workflow(id, at, e),
            AutomationEvent::Run(e) => self.on_run(id, event.position, e),
        }
    }

    fn on_workflow(&mut self, id: Uuid, at: DateTime<Utc>, e: &WorkflowEvent) {
        match e {
            WorkflowEvent::WorkflowCreated { definition, .. } => {
                self.workflows.insert(
                    id,
                    WorkflowEntry {
                        workflow_id: id,
                        versions: vec![definition.clone()],
                        deleted: None,
                        updated_at: at,
                    },
                );
            }
            WorkflowEvent::WorkflowEdited { definition, .. } => {
                if let Some(w) = self.workflows.get_mut(&id) {
                    w.versions.push(definition.clone());
                    w.updated_at = at;
                }
            }
            WorkflowEvent::WorkflowDeleted { reason } => {
                if let Some(w) = self.workflows.get_mut(&id) {
                    w.deleted = Some(reason.clone());
                    w.updated_at = at;
                }
            }
        }
    }

    fn on_run(&mut self, id: Uuid, position: u64, e: &ProvisioningEvent) {
        if let ProvisioningEvent::RunStarted { plan, at, .. } = e {
            self.runs.insert(
                id,
                RunView {
                    run_id: id,
                    plan: plan.clone(),
                    status: RunStatus::Running,
                    steps: vec![StepView::default(); plan.steps.len()],
                    reason: None,
                    started_at: *at,
                    ended_at: None,
                    position,
                },
            );
            self.order.push(id);
            self.open.insert(id);
            if let Some(request) = plan.request_id {
                self.by_request.entry(request).or_default().push(id);
            }
            return;
        }
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        run.position = position;
        match e {
            ProvisioningEvent::RunStarted { .. } => {}
            ProvisioningEvent::StepStarted { step: n, at, .. } => {
                let manual = run.plan.steps.get(*n).map(|s| s.kind)
                    == Some(opsledger_domain::automation::workflow::StepKind::Manual);
                if manual {
                    run.status = RunStatus::WaitingForOperator;
                }
                if let Some(s) = run.steps.get_mut(*n) {
                    s.started_at = Some(*at);
                }
            }
            ProvisioningEvent::StepSucceeded {
                step: n,
                output,
                log,
                at,
            } => {
                if run.status == RunStatus::WaitingForOperator {
                    run.status = RunStatus::Running;
                }
                if let Some(s) = run.steps.get_mut(*n) {
                    s.outcome = Some("done".into());
                    s.output = output.clone();
                    s.log = log.clone();
                    s.finished_at = Some(*at);
                }
            }
            ProvisioningEvent::ManualStepDone {
                step: n,
                by,
                note,
                output,
                at,
            } => {
                run.status = RunStatus::Running;
                if let Some(s) = run.steps.get_mut(*n) {
                    s.outcome = Some("done".into());
                    s.output = output.clone();
                    s.done_by = Some(by.clone());
                    s.note = Some(note.clone());
                    s.finished_at = Some(*at);
                }
            }
            ProvisioningEvent::StepFailed {
                step: n,
                error,
                log,
                at,
            } => {
                if let Some(s) = run.steps.get_mut(*n) {
                    s.outcome = Some("failed".into());
                    s.error = Some(error.clone());
                    s.log = log.clone();
                    s.finished_at = Some(*at);
                }
            }
            ProvisioningEvent::CompensationStarted { reason, .. } => {
                run.status = RunStatus::Compensating;
                run.reason = Some(reason.clone());
            }
            ProvisioningEvent::UndoStarted { step: n, .. } => {
                if let Some(s) = run.steps.get_mut(*n) {
                    s.undo = Some("started".into());
                }
            }
            ProvisioningEvent::StepUndone { step: n, log, .. } => {
                if let Some(s) = run.steps.get_mut(*n) {
                    s.undo = Some("done".into());
                    s.undo_log = log.clone();
                }
            }
            ProvisioningEvent::UndoFailed {
                step: n,
                error,
                log,
                incident_id,
                ..
            } => {
                if let Some(s) = run.steps.get_mut(*n) {
                    s.undo = Some("failed".into());
                    s.undo_error = Some(error.clone());
                    s.undo_log = log.clone();
                    s.incident_id = Some(*incident_id);
                }
            }
            ProvisioningEvent::RunSucceeded { at } => {
                run.status = RunStatus::Succeeded;
                run.ended_at = Some(*at);
                self.open.remove(&id);
            }
            ProvisioningEvent::RunFailed { reason, at, .. } => {
                run.status = RunStatus::Failed;
                run.reason = Some(reason.clone());
                run.ended_at = Some(*at);
                self.open.remove(&id);
            }
        }
    }
}
