//! Automation over GraphQL: provisioning workflows (create, edit as a new version,
//! delete, list) and their runs, with every step's inputs, outputs, log and undo; the
//! operator's record of a manual step, and an abort that undoes what a run did.

pub(crate) mod library;
pub(crate) mod vm;

use async_graphql::{Context, Enum, InputObject, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::automation::provisioning::{
    Provisioning, ProvisioningCommand, RunStatus as Status,
};
use opsledger_domain::automation::workflow::{
    kind_name, Workflow as WorkflowAggregate, WorkflowCommand, WorkflowDefinition,
};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::operations::incident::Incident as IncidentAggregate;
use opsledger_domain::requests::request::Request as RequestAggregate;
use opsledger_domain::resources::cmdb::ConfigurationItem as CiAggregate;
use opsledger_projections::automation::{RunView, WorkflowEntry};
use opsledger_projections::ReadModels;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::kit::access::require_automation;
use crate::kit::errors::{error, Code};
use crate::kit::ids;
use crate::kit::operate;
use crate::kit::{actor, models, page_in_order, Page};
use crate::kit::{new_id, Payload};
use crate::Operation;

/// A provisioning workflow at one version.
#[derive(SimpleObject)]
pub struct Workflow {
    pub id: ID,
    pub version: u32,
    pub name: String,
    pub description: String,
    /// The parameters, steps and their inputs, as saved (the JSON `createWorkflow` takes).
    pub definition: Json<WorkflowDefinition>,
    /// The step names in the order they run.
    pub order: Vec<String>,
    pub deleted: bool,
    pub deleted_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

fn workflow_node(w: &WorkflowEntry, version: usize) -> Workflow {
    let d = &w.versions[version];
    Workflow {
        id: ids::global(WorkflowAggregate::KIND, w.workflow_id),
        version: version as u32 + 1,
        name: d.name.clone(),
        description: d.description.clone(),
        order: d
            .validate()
            .map(|o| o.into_iter().map(|i| d.steps[i].name.clone()).collect())
            .unwrap_or_default(),
        definition: Json(d.clone()),
        deleted: w.deleted.is_some(),
        deleted_reason: w.deleted.clone(),
        updated_at: w.updated_at,
    }
}

/// Where a run is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    WaitingForOperator,
    Compensating,
    Succeeded,
    Failed,
}

impl From<Status> for RunStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::NotStarted | Status::Running => RunStatus::Running,
            Status::WaitingForOperator => RunStatus::WaitingForOperator,
            Status::Compensating => RunStatus::Compensating,
            Status::Succeeded => RunStatus::Succeeded,
            Status::Failed => RunStatus::Failed,
        }
    }
}

impl From<RunStatus> for Status {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Running => Status::Running,
            RunStatus::WaitingForOperator => Status::WaitingForOperator,
            RunStatus::Compensating => Status::Compensating,
            RunStatus::Succeeded => Status::Succeeded,
            RunStatus::Failed => Status::Failed,
        }
    }
}

/// One step of a run.
#[derive(SimpleObject)]
pub struct RunStep {
    pub name: String,
    /// `allocate_capacity`, `create_vm`, `create_volume`, `deploy_image`, `allocate_ip`,
    /// `install_software`, `run_script` or `manual`.
    pub kind: String,
    /// `pending`, `running`, `waiting_for_operator`, `done` or `failed`.
    pub status: String,
    /// The inputs as written, with their `${…}` references.
    pub inputs: Json<Map<String, Value>>,
    /// For a manual step: what the operator is to do.
    pub instructions: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What the step answered: later steps' inputs, and feedback for the operator.
    pub output: Json<Map<String, Value>>,
    pub error: Option<String>,
    /// The end of the driver's log; the whole is in the content store under `logSha256`.
    pub log: String,
    pub log_sha256: Option<String>,
    /// Who recorded a manual step done, and what they said.
    pub done_by: Option<String>,
    pub note: Option<String>,
    /// `started`, `done` or `failed`, once the step is being undone.
    pub undo: Option<String>,
    pub undo_error: Option<String>,
    pub undo_log: String,
    /// The incident raised because undoing the step failed.
    pub incident: Option<ID>,
}

/// A provisioning run: one workflow for one unit of a request.
#[derive(SimpleObject)]
pub struct ProvisioningRun {
    pub id: ID,
    pub workflow: ID,
    pub workflow_name: String,
    pub workflow_version: u32,
    pub request: Option<ID>,
    /// Which unit of the request (from 1).
    pub unit: u32,
    pub status: RunStatus,
    /// Why it is compensating or failed.
    pub reason: Option<String>,
    pub owner: String,
    pub department: String,
    pub project: Option<String>,
    /// The values it started with.
    pub params: Json<Map<String, Value>>,
    /// The configuration item it brings into service (or updates).
    pub configuration_item: ID,
    pub steps: Vec<RunStep>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub(crate) fn run_node(r: &RunView) -> ProvisioningRun {
    let waiting = |i: usize| {
        r.status == Status::WaitingForOperator
            && r.steps[i].started_at.is_some()
            && r.steps[i].outcome.is_none()
    };
    ProvisioningRun {
        id: ids::global(Provisioning::KIND, r.run_id),
        workflow: ids::global(WorkflowAggregate::KIND, r.plan.workflow_id),
        workflow_name: r.plan.workflow_name.clone(),
        workflow_version: r.plan.workflow_version,
        request: r
            .plan
            .request_id
            .map(|id| ids::global(RequestAggregate::KIND, id)),
        unit: r.plan.unit + 1,
        status: r.status.into(),
        reason: r.reason.clone(),
        owner: r.plan.owner.clone(),
        department: r.plan.department.clone(),
        project: r.plan.project.clone(),
        params: Json(r.plan.params.clone()),
        configuration_item: ids::global(CiAggregate::KIND, r.plan.ci_id),
        steps: r
            .plan
            .steps
            .iter()
            .zip(&r.steps)
            .enumerate()
            .map(|(i, (s, v))| RunStep {
                name: s.name.clone(),
                kind: kind_name(s.kind).into(),
                status: match (&v.outcome, v.started_at) {
                    (Some(o), _) => o.clone(),
                    (None, Some(_)) if waiting(i) => "waiting_for_operator".into(),
                    (None, Some(_)) => "running".into(),
                    (None, None) => "pending".into(),
                },
                inputs: Json(
                    s.inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                instructions: s.instructions.clone(),
                started_at: v.started_at,
                finished_at: v.finished_at,
                output: Json(v.output.clone()),
                error: v.error.clone(),
                log: v.log.excerpt.clone(),
                log_sha256: v.log.full_sha256.clone(),
                done_by: v.done_by.clone(),
                note: v.note.clone(),
                undo: v.undo.clone(),
                undo_error: v.undo_error.clone(),
                undo_log: v.undo_log.excerpt.clone(),
                incident: v
                    .incident_id
                    .map(|id| ids::global(IncidentAggregate::KIND, id)),
            })
            .collect(),
        started_at: r.started_at,
        ended_at: r.ended_at,
    }
}

#[derive(Default)]
pub struct AutomationQuery;

#[Object]
impl AutomationQuery {
    /// Provisioning workflows by name (deleted ones when asked for).
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        include_deleted: Option<bool>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Workflow>> {
        require_automation(ctx)?;
        let m = models(ctx, at_least).await?;
        let all = m.automation.workflows(include_deleted.unwrap_or(false));
        page_in_order(
            all.into_iter(),
            |w| workflow_node(w, w.versions.len() - 1),
            after,
            first,
            m.position,
        )
    }

    /// A workflow, at its current version or at `version`.
    async fn workflow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Range: 0–1000000.",
            validator(
                custom = "crate::kit::bounds::within(\"version\", opsledger_domain::kernel::limits::ORDINAL)"
            )
        )]
        version: Option<u32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Workflow>> {
        require_automation(ctx)?;
        let id = ids::parse("id", WorkflowAggregate::KIND, &id)?;
        let m = models(ctx, at_least).await?;
        Ok(workflow_of(&m, id, version))
    }

    /// Provisioning runs, newest first: of one status, or of one request.
    async fn provisioning_runs(
        &self,
        ctx: &Context<'_>,
        status: Option<RunStatus>,
        request_id: Option<ID>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<ProvisioningRun>> {
        require_automation(ctx)?;
        let m = models(ctx, at_least).await?;
        let status = status.map(Status::from);
        match request_id {
            Some(r) => {
                let r = ids::parse("requestId", RequestAggregate::KIND, &r)?;
                let runs = m
                    .automation
                    .runs_of_request(r)
                    .filter(|v| status.is_none_or(|s| v.status == s));
                page_in_order(runs, run_node, after, first, m.position)
            }
            None => page_in_order(
                m.automation.runs(status),
                run_node,
                after,
                first,
                m.position,
            ),
        }
    }

    /// A provisioning run.
    async fn provisioning_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<ProvisioningRun>> {
        require_automation(ctx)?;
        let id = ids::parse("id", Provisioning::KIND, &id)?;
        let m = models(ctx, at_least).await?;
        Ok(run_of(&m, id))
    }
}

/// Workflow `id` at its current version or at `version`.
pub(crate) fn workflow_of(m: &ReadModels, id: Uuid, version: Option<u32>) -> Option<Workflow> {
    m.automation.workflow(id).and_then(|w| {
        let n = version.map_or(w.versions.len(), |v| v as usize);
        (1..=w.versions.len())
            .contains(&n)
            .then(|| workflow_node(w, n - 1))
    })
}

/// Provisioning run `id`.
pub(crate) fn run_of(m: &ReadModels, id: Uuid) -> Option<ProvisioningRun> {
    m.automation.run(id).map(run_node)
}

#[derive(InputObject)]
pub struct CreateWorkflowInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// Name, description, params (name, type text|integer|boolean|choice, required,
    /// default, choices) and steps (name, kind, inputs with `${params.x}` and
    /// `${steps.s.output}` references, after, outputs, instructions).
    pub definition: Json<WorkflowDefinition>,
}

#[derive(InputObject)]
pub struct EditWorkflowInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub workflow_id: ID,
    pub definition: Json<WorkflowDefinition>,
}

#[derive(InputObject)]
pub struct DeleteWorkflowInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub workflow_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct CompleteManualStepInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub run_id: ID,
    /// The step's name.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"step\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub step: String,
    /// What was done.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
    /// Values later steps use, if the step declares outputs.
    pub output: Option<Json<Map<String, Value>>>,
}

#[derive(InputObject)]
pub struct AbortProvisioningRunInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub run_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

async fn on_workflow(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    id: uuid::Uuid,
    command: WorkflowCommand,
) -> Result<Payload> {
    operate(
        ctx,
        client_mutation_id,
        WorkflowAggregate::KIND,
        id,
        Operation::Workflow(id, command),
    )
    .await
}

async fn on_run(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    id: uuid::Uuid,
    command: ProvisioningCommand,
) -> Result<Payload> {
    operate(
        ctx,
        client_mutation_id,
        Provisioning::KIND,
        id,
        Operation::Provisioning(id, command),
    )
    .await
}

#[derive(Default)]
pub struct AutomationMutation;

#[Object]
impl AutomationMutation {
    /// Saves a new provisioning workflow (operators, catalogue administrators). A cycle,
    /// an unknown parameter, step or output, or a missing input is refused by its path.
    async fn create_workflow(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkflowInput,
    ) -> Result<Payload> {
        let user = actor(ctx)?.id.clone();
        let id = new_id(ctx, &user, input.client_mutation_id.as_deref());
        let command = WorkflowCommand::Create {
            workflow_id: id,
            definition: input.definition.0,
        };
        on_workflow(ctx, input.client_mutation_id, id, command).await
    }

    /// Saves a new version of a workflow; runs under way keep theirs.
    async fn edit_workflow(&self, ctx: &Context<'_>, input: EditWorkflowInput) -> Result<Payload> {
        let id = ids::parse("workflowId", WorkflowAggregate::KIND, &input.workflow_id)?;
        on_workflow(
            ctx,
            input.client_mutation_id,
            id,
            WorkflowCommand::Edit {
                definition: input.definition.0,
            },
        )
        .await
    }

    /// Deletes a workflow: items naming it can no longer be fulfilled by it.
    async fn delete_workflow(
        &self,
        ctx: &Context<'_>,
        input: DeleteWorkflowInput,
    ) -> Result<Payload> {
        let id = ids::parse("workflowId", WorkflowAggregate::KIND, &input.workflow_id)?;
        on_workflow(
            ctx,
            input.client_mutation_id,
            id,
            WorkflowCommand::Delete {
                reason: input.reason,
            },
        )
        .await
    }

    /// Records a manual step done (operators); the run goes on.
    async fn complete_manual_step(
        &self,
        ctx: &Context<'_>,
        input: CompleteManualStepInput,
    ) -> Result<Payload> {
        let id = ids::parse("runId", Provisioning::KIND, &input.run_id)?;
        let step = {
            let m = models(ctx, None).await?;
            let run = m.automation.run(id).ok_or_else(|| {
                error(
                    Code::NotFound,
                    format!("there is no provisioning run {}", input.run_id.as_str()),
                )
            })?;
            run.plan
                .steps
                .iter()
                .position(|s| s.name == input.step)
                .ok_or_else(|| {
                    crate::kit::errors::bad_input(
                        "step",
                        format!("the run has no step `{}`", input.step),
                    )
                })?
        };
        let command = ProvisioningCommand::RecordManual {
            step,
            note: input.note,
            output: input.output.map(|o| o.0).unwrap_or_default(),
        };
        on_run(ctx, input.client_mutation_id, id, command).await
    }

    /// Stops a run and undoes, in reverse order, what it did (operators).
    async fn abort_provisioning_run(
        &self,
        ctx: &Context<'_>,
        input: AbortProvisioningRunInput,
    ) -> Result<Payload> {
        let id = ids::parse("runId", Provisioning::KIND, &input.run_id)?;
        on_run(
            ctx,
            input.client_mutation_id,
            id,
            ProvisioningCommand::Abort {
                reason: input.reason,
            },
        )
        .await
    }
}
