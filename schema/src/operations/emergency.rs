//! Emergency plans (應急預案) over GraphQL: the plan's runbooks with every version, loaded
//! from the service plan or written by the operations leads; runs started for an incident
//! or as drills, each step done or skipped by its role, in order.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent, Role};
use opsledger_domain::operations::emergency::{
    plan_id, plan_runbooks, EmergencyPlan as PlanAggregate, EmergencyPlanCommand,
    PlanRun as RunAggregate, PlanRunCommand, PlanStep as DomainStep, RunStatus,
};
use opsledger_domain::operations::incident::{Incident as IncidentAgg, IncidentStatus};
use opsledger_domain::Actor;
use opsledger_projections::operations::emergency::{PlanView, RunView, StepState};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::kit::access::reads_operations;
use crate::kit::errors::{bad_input, error, internal, Code};
use crate::kit::ids;
use crate::kit::operate;
use crate::kit::{actor, cursor, ledger, models, page, require, Page};
use crate::kit::{command_id, domain_context, Payload};
use crate::{CommandError, Operation, OperationError};

/// What a plan is for: the service plan's 應急預案流程.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::emergency::Scenario")]
pub enum EmergencyScenario {
    /// 網絡應急預案.
    NetworkOutage,
    /// 服務器被攻擊預案.
    ServerAttack,
    /// 市電線路例行停電.
    ScheduledPowerCut,
    /// 市電線路出現故障.
    MainsPowerFailure,
    /// UPS電源故障.
    UpsFailure,
    /// 空調應急預案.
    AirConditioningFailure,
    /// 消防應急預案.
    Fire,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::emergency::RunStatus")]
pub enum PlanRunStatus {
    Running,
    Completed,
    Aborted,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_projections::operations::emergency::StepState")]
pub enum PlanStepState {
    Pending,
    Done,
    Skipped,
}

/// One step of a runbook.
#[derive(SimpleObject)]
pub struct PlanStep {
    pub key: String,
    pub title: String,
    pub instructions: String,
    /// The role that does it (the operations manager and the head of the operations
    /// centre may do any step).
    pub role: String,
    /// Done only when the situation calls for it; the run completes without it.
    pub optional: bool,
}

fn step_node(s: &DomainStep) -> PlanStep {
    PlanStep {
        key: s.key.clone(),
        title: s.title.clone(),
        instructions: s.instructions.clone(),
        role: s.role.as_str().to_owned(),
        optional: s.optional,
    }
}

/// One version of a plan, as its history lists it.
#[derive(SimpleObject)]
pub struct EmergencyPlanVersion {
    pub version: u32,
    pub position: u64,
    pub at: DateTime<Utc>,
    pub by: String,
    /// What the revision changed and why; null for version 1.
    pub note: Option<String>,
}

/// An emergency plan at one version.
#[derive(SimpleObject)]
pub struct EmergencyPlan {
    pub id: ID,
    pub key: String,
    pub name: String,
    pub scenario: EmergencyScenario,
    /// The version shown.
    pub version: u32,
    /// The plan's current version.
    pub current_version: u32,
    /// Runs may still be started from it.
    pub in_force: bool,
    pub retired_at: Option<DateTime<Utc>>,
    pub retired_reason: Option<String>,
    /// This version's steps, in order.
    pub steps: Vec<PlanStep>,
    /// When this version took effect, who wrote it, and why (for a revision).
    pub at: DateTime<Utc>,
    pub by: String,
    pub note: Option<String>,
    /// Every version, oldest first.
    pub versions: Vec<EmergencyPlanVersion>,
}

/// An emergency plan, its current version or `version` (the operations staff; for its
/// field and for `node(id:)`).
pub(crate) fn plan_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
    version: Option<u32>,
) -> Result<Option<EmergencyPlan>> {
    staff(ctx)?;
    Ok(m.emergency.plan(id).and_then(|p| plan_node(p, version)))
}

/// A plan run: an emergency or a drill (the operations staff).
pub(crate) fn run_by_id(ctx: &Context<'_>, m: &ReadModels, id: Uuid) -> Result<Option<PlanRun>> {
    staff(ctx)?;
    Ok(m.emergency.get(id).map(run_node))
}

fn plan_node(p: &PlanView, version: Option<u32>) -> Option<EmergencyPlan> {
    let shown = match version {
        Some(n) => p.version(n)?,
        None => p.current(),
    };
    Some(EmergencyPlan {
        id: ids::global(PlanAggregate::KIND, p.id),
        key: p.key.clone(),
        name: p.name.clone(),
        scenario: p.scenario.into(),
        version: shown.version,
        current_version: p.version,
        in_force: p.in_force(),
        retired_at: p.retired.as_ref().map(|r| r.at),
        retired_reason: p.retired.as_ref().map(|r| r.reason.clone()),
        steps: shown.steps.iter().map(step_node).collect(),
        at: shown.at,
        by: shown.by.clone(),
        note: shown.note.clone(),
        versions: p
            .history
            .iter()
            .map(|v| EmergencyPlanVersion {
                version: v.version,
                position: v.position,
                at: v.at,
                by: v.by.clone(),
                note: v.note.clone(),
            })
            .collect(),
    })
}

/// A step of a run: the plan's step as copied when the run started, and what became of it.
#[derive(SimpleObject)]
pub struct PlanRunStep {
    pub key: String,
    pub title: String,
    pub instructions: String,
    pub role: String,
    pub optional: bool,
    pub state: PlanStepState,
    /// Who did or skipped it, and when.
    pub by: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// The note it was done with, or why it was skipped.
    pub note: Option<String>,
    pub position: Option<u64>,
}

/// One run of one version of an emergency plan, for an incident or as a drill.
#[derive(SimpleObject)]
pub struct PlanRun {
    pub id: ID,
    pub plan: ID,
    pub plan_name: String,
    /// The version whose steps it copied.
    pub plan_version: u32,
    pub scenario: EmergencyScenario,
    /// Null for a drill.
    pub incident: Option<ID>,
    pub drill: bool,
    pub note: Option<String>,
    pub status: PlanRunStatus,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    pub steps: Vec<PlanRunStep>,
    /// The keys of the steps that may be done now.
    pub next_steps: Vec<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<u64>,
    pub aborted_at: Option<DateTime<Utc>>,
    pub aborted_by: Option<String>,
    pub abort_reason: Option<String>,
    /// The required steps left undone when it was aborted.
    pub outstanding: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) fn run_node(r: &RunView) -> PlanRun {
    PlanRun {
        id: ids::global(RunAggregate::KIND, r.id),
        plan: ids::global(PlanAggregate::KIND, r.plan_id),
        plan_name: r.name.clone(),
        plan_version: r.plan_version,
        scenario: r.scenario.into(),
        incident: r.incident_id.map(|i| ids::global(IncidentAgg::KIND, i)),
        drill: r.drill,
        note: r.note.clone(),
        status: r.status.into(),
        started_at: r.started_at,
        started_by: r.started_by.clone(),
        steps: r
            .steps
            .iter()
            .map(|s| PlanRunStep {
                key: s.step.key.clone(),
                title: s.step.title.clone(),
                instructions: s.step.instructions.clone(),
                role: s.step.role.as_str().to_owned(),
                optional: s.step.optional,
                state: s.state.into(),
                by: s.by.clone(),
                at: s.at,
                note: s.note.clone(),
                position: s.position,
            })
            .collect(),
        next_steps: r.next_steps(),
        completed_at: r.completed_at,
        duration_seconds: r.duration_secs,
        aborted_at: r.aborted.as_ref().map(|a| a.at),
        aborted_by: r.aborted.as_ref().map(|a| a.by.clone()),
        abort_reason: r.aborted.as_ref().map(|a| a.reason.clone()),
        outstanding: r
            .aborted
            .as_ref()
            .map(|a| a.outstanding.clone())
            .unwrap_or_default(),
        updated_at: r.updated_at,
    }
}

/// The report's "Emergency plan" section: each run for the incident, its steps, who did
/// them and when. Nothing when no plan was run.
pub(crate) fn report_runs<'a>(out: &mut String, runs: impl Iterator<Item = &'a RunView>) {
    use std::fmt::Write;
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut runs = runs.peekable();
    if runs.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "## Emergency plan\n");
    for r in runs {
        let status = match r.status {
            RunStatus::Running => "running".to_owned(),
            RunStatus::Completed => format!(
                "completed at {}, in {} min",
                r.completed_at.map(when).unwrap_or_default(),
                r.duration_secs.unwrap_or(0) / 60
            ),
            RunStatus::Aborted => r.aborted.as_ref().map_or_else(String::new, |a| {
                format!("aborted at {} by {}: {}", when(a.at), a.by, cell(&a.reason))
            }),
        };
        let _ = writeln!(out, "### {} (version {})\n", r.name, r.plan_version);
        let _ = writeln!(
            out,
            "Started {} by {}{}; {status}.\n",
            when(r.started_at),
            r.started_by,
            r.note
                .as_deref()
                .map(|n| format!(": {}", cell(n)))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "| # | Step | Role | Outcome | By | When | Note |\n|---|---|---|---|---|---|---|"
        );
        for (i, s) in r.steps.iter().enumerate() {
            let outcome = match s.state {
                StepState::Done => "done",
                StepState::Skipped => "skipped",
                StepState::Pending if s.step.optional => "not needed",
                StepState::Pending => "not done",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {outcome} | {} | {} | {} |",
                i + 1,
                cell(&s.step.title),
                s.step.role.as_str(),
                s.by.as_deref().unwrap_or("—"),
                s.at.map_or_else(|| "—".to_owned(), when),
                s.note.as_deref().map_or_else(|| "—".to_owned(), cell)
            );
        }
        let _ = writeln!(out);
    }
}

fn staff<'a>(ctx: &Context<'a>) -> Result<&'a Actor> {
    let actor = actor(ctx)?;
    if reads_operations(actor) {
        Ok(actor)
    } else {
        Err(error(
            Code::Forbidden,
            "emergency plans are read by the operations staff and auditors",
        ))
    }
}

/// The plan `id` names: its global id, its uuid, or its key (e.g. `ups_failure`).
fn plan_of(field: &str, id: &ID) -> Result<Uuid> {
    if !id.contains('-') && id.parse::<Uuid>().is_err() {
        return Ok(plan_id(id.trim()));
    }
    ids::parse(field, PlanAggregate::KIND, id)
}

#[derive(Default)]
pub struct EmergencyQuery;

#[Object]
impl EmergencyQuery {
    /// The emergency plans at their current versions, in the order defined; retired ones
    /// only when asked.
    async fn emergency_plans(
        &self,
        ctx: &Context<'_>,
        include_retired: Option<bool>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<EmergencyPlan>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let retired = include_retired.unwrap_or(false);
        Ok(m.emergency
            .plans()
            .filter(|p| retired || p.in_force())
            .filter_map(|p| plan_node(p, None))
            .collect())
    }

    /// A plan (by id or key), at its current version or at `version`.
    async fn emergency_plan(
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
    ) -> Result<Option<EmergencyPlan>> {
        staff(ctx)?;
        let id = plan_of("id", &id)?;
        plan_by_id(ctx, &*models(ctx, at_least).await?, id, version)
    }

    /// Plan runs: an incident's in the order started; otherwise newest first, only drills
    /// (`drills: true`) or only runs for incidents (`drills: false`) when asked.
    async fn plan_runs(
        &self,
        ctx: &Context<'_>,
        incident: Option<ID>,
        drills: Option<bool>,
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
    ) -> Result<Page<PlanRun>> {
        staff(ctx)?;
        let incident = incident
            .map(|i| ids::parse("incident", IncidentAgg::KIND, &i))
            .transpose()?;
        if incident.is_some() && drills == Some(true) {
            return Err(bad_input("drills", "a drill is run for no incident"));
        }
        let after_key = cursor(after)?;
        let start = after_key.map_or(0, |a| a + 1);
        let m = models(ctx, at_least).await?;
        let list: Box<dyn Iterator<Item = &RunView>> = match (incident, drills) {
            (Some(i), _) => Box::new(m.emergency.runs_for(i)),
            (None, Some(true)) => Box::new(m.emergency.drills()),
            (None, Some(false)) => Box::new(m.emergency.runs().filter(|r| !r.drill)),
            (None, None) => Box::new(m.emergency.runs()),
        };
        page(
            list.enumerate().skip(start),
            run_node,
            after_key.is_some(),
            first,
            m.position,
        )
    }

    async fn plan_run(
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
    ) -> Result<Option<PlanRun>> {
        staff(ctx)?;
        let id = ids::parse("id", RunAggregate::KIND, &id)?;
        run_by_id(ctx, &*models(ctx, at_least).await?, id)
    }
}

// ---------------------------------------------------------------- mutations

/// One step of a runbook.
#[derive(InputObject)]
pub struct PlanStepInput {
    /// Lower-case letters, digits and `_`, starting with a letter; unique in the plan.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"title\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub title: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"instructions\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub instructions: Option<String>,
    /// The role that does it, e.g. `engineer`, `operator`, `operations_manager`.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"role\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub role: String,
    /// Done only when the situation calls for it (false when absent).
    pub optional: Option<bool>,
}

fn steps(input: Vec<PlanStepInput>) -> Result<Vec<DomainStep>> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let role: Role = s.role.trim().parse().map_err(|_| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                bad_input(
                    &format!("steps[{i}].role"),
                    format!("{:?} is not one of {}", s.role, names.join(", ")),
                )
            })?;
            Ok(DomainStep {
                key: s.key.trim().to_owned(),
                title: s.title.trim().to_owned(),
                instructions: s.instructions.unwrap_or_default().trim().to_owned(),
                role,
                optional: s.optional.unwrap_or(false),
            })
        })
        .collect()
}

#[derive(InputObject)]
pub struct LoadPlanRunbooksInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
}

/// What loading the service plan's runbooks did.
#[derive(SimpleObject)]
pub struct LoadPlanRunbooksPayload {
    pub client_mutation_id: Option<String>,
    /// The plans defined by this load (none when all were defined already).
    pub defined: Vec<ID>,
    /// The service plan's seven plans.
    pub plans: Vec<ID>,
    /// The log position that shows all seven: pass it as `atLeast`.
    pub position: u64,
}

#[derive(InputObject)]
pub struct DefineEmergencyPlanInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The plan's key, e.g. `ups_failure`; its id is derived from it.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    pub scenario: EmergencyScenario,
    pub steps: Vec<PlanStepInput>,
}

#[derive(InputObject)]
pub struct ReviseEmergencyPlanInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The plan's id or key.
    pub plan_id: ID,
    /// The new version's steps.
    pub steps: Vec<PlanStepInput>,
    /// What changed and why.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
}

#[derive(InputObject)]
pub struct RetireEmergencyPlanInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The plan's id or key.
    pub plan_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct StartEmergencyPlanInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// An open incident.
    pub incident_id: ID,
    /// The plan's id or key.
    pub plan_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct StartDrillInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The plan's id or key.
    pub plan_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct CompletePlanStepInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub run_id: ID,
    /// The step's key.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct SkipPlanStepInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub run_id: ID,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct AbortPlanRunInput {
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

/// The aggregate `A` with id `id` as its stream stands in the log now.
async fn current<A: Aggregate>(ctx: &Context<'_>, id: Uuid) -> Result<(A, u64)>
where
    A::Event: DomainEvent,
{
    let events = ledger(ctx)
        .stream(&format!("{}-{id}", A::KIND))
        .await
        .map_err(internal)?;
    let mut state = A::default();
    for e in &events {
        let event = A::Event::from_recorded(e).map_err(internal)?;
        state = state.evolve(&event);
    }
    Ok((state, events.last().map_or(0, |e| e.position)))
}

async fn on_plan(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    plan: Uuid,
    command: EmergencyPlanCommand,
) -> Result<Payload> {
    let operation = Operation::EmergencyPlan(plan, command);
    operate(
        ctx,
        client_mutation_id,
        PlanAggregate::KIND,
        plan,
        operation,
    )
    .await
}

async fn on_run(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    run_id: &ID,
    command: PlanRunCommand,
) -> Result<Payload> {
    let run = ids::parse("runId", RunAggregate::KIND, run_id)?;
    let operation = Operation::PlanRun(run, command);
    operate(ctx, client_mutation_id, RunAggregate::KIND, run, operation).await
}

/// Starts `command` (a `StartRun` for a plan), on the stream of its run.
async fn start(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    command: PlanRunCommand,
) -> Result<Payload> {
    let PlanRunCommand::StartRun { run_id, .. } = &command else {
        return Err(internal("a plan starts runs"));
    };
    let run = *run_id;
    let operation = Operation::PlanRun(run, command);
    operate(ctx, client_mutation_id, RunAggregate::KIND, run, operation).await
}

/// A plan's refusal as the API reports it.
fn refused(e: opsledger_domain::operations::emergency::EmergencyPlanError) -> async_graphql::Error {
    CommandError::Domain(OperationError::EmergencyPlan(e)).into()
}

#[derive(Default)]
pub struct EmergencyMutation;

#[Object]
impl EmergencyMutation {
    /// Defines the service plan's seven runbooks (operations manager, head of the
    /// operations centre, admin); those already defined are left as they are, so a
    /// second load writes nothing.
    async fn load_plan_runbooks(
        &self,
        ctx: &Context<'_>,
        input: LoadPlanRunbooksInput,
    ) -> Result<LoadPlanRunbooksPayload> {
        let domain = domain_context(ctx)?;
        require(
            &domain.actor,
            &[Role::OperationsManager, Role::OperationsHead],
        )?;
        let key = command_id(ctx, &domain.actor.id, input.client_mutation_id.as_deref());
        let (mut defined, mut plans, mut position) = (Vec::new(), Vec::new(), 0);
        for command in plan_runbooks() {
            let EmergencyPlanCommand::DefinePlan {
                plan_id: id,
                key: name,
                ..
            } = &command
            else {
                continue;
            };
            let (id, plan_key) = (*id, name.clone());
            plans.push(ids::global(PlanAggregate::KIND, id));
            let (state, last) = current::<PlanAggregate>(ctx, id).await?;
            if state.plan_id.is_some() {
                position = position.max(last);
                continue;
            }
            let command_id = match input.client_mutation_id {
                Some(_) => Uuid::new_v5(&key, plan_key.as_bytes()),
                None => Uuid::now_v7(),
            };
            let w = ledger(ctx)
                .operate(Operation::EmergencyPlan(id, command), &domain, command_id)
                .await?;
            position = position.max(w.position);
            defined.push(ids::global(PlanAggregate::KIND, id));
        }
        Ok(LoadPlanRunbooksPayload {
            client_mutation_id: input.client_mutation_id,
            defined,
            plans,
            position,
        })
    }

    /// Defines a plan as version 1 (operations manager, head of the operations centre).
    async fn define_emergency_plan(
        &self,
        ctx: &Context<'_>,
        input: DefineEmergencyPlanInput,
    ) -> Result<Payload> {
        let key = input.key.trim().to_owned();
        let id = plan_id(&key);
        let command = EmergencyPlanCommand::DefinePlan {
            plan_id: id,
            key,
            name: input.name,
            scenario: input.scenario.into(),
            steps: steps(input.steps)?,
        };
        on_plan(ctx, input.client_mutation_id, id, command).await
    }

    /// New steps as the plan's next version; runs under way keep the steps they copied.
    async fn revise_emergency_plan(
        &self,
        ctx: &Context<'_>,
        input: ReviseEmergencyPlanInput,
    ) -> Result<Payload> {
        let id = plan_of("planId", &input.plan_id)?;
        let command = EmergencyPlanCommand::RevisePlan {
            steps: steps(input.steps)?,
            note: input.note,
        };
        on_plan(ctx, input.client_mutation_id, id, command).await
    }

    /// No more runs are started from the plan.
    async fn retire_emergency_plan(
        &self,
        ctx: &Context<'_>,
        input: RetireEmergencyPlanInput,
    ) -> Result<Payload> {
        let id = plan_of("planId", &input.plan_id)?;
        let command = EmergencyPlanCommand::RetirePlan {
            reason: input.reason,
        };
        on_plan(ctx, input.client_mutation_id, id, command).await
    }

    /// Starts the plan's current version for an open incident (engineers, operators, the
    /// operations leads); a plan runs once for an incident. The payload's id is the run's.
    async fn start_emergency_plan(
        &self,
        ctx: &Context<'_>,
        input: StartEmergencyPlanInput,
    ) -> Result<Payload> {
        staff(ctx)?;
        let incident_id = ids::parse("incidentId", IncidentAgg::KIND, &input.incident_id)?;
        let plan = plan_of("planId", &input.plan_id)?;
        let (incident, _) = current::<IncidentAgg>(ctx, incident_id).await?;
        match incident.status {
            _ if incident.id.is_none() => {
                return Err(error(
                    Code::NotFound,
                    format!("there is no incident {}", input.incident_id.as_str()),
                ));
            }
            IncidentStatus::Resolved | IncidentStatus::Closed => {
                return Err(error(
                    Code::Conflict,
                    "the incident is resolved or closed: reopen it to start a plan",
                ));
            }
            _ => {}
        }
        let (plan, _) = current::<PlanAggregate>(ctx, plan).await?;
        let command = plan
            .run_for_incident(incident_id, input.note)
            .map_err(refused)?;
        start(ctx, input.client_mutation_id, command).await
    }

    /// Starts the plan's current version as a drill, for no incident; recorded as a run
    /// is. The payload's id is the run's.
    async fn start_drill(&self, ctx: &Context<'_>, input: StartDrillInput) -> Result<Payload> {
        let user = staff(ctx)?.id.clone();
        let plan = plan_of("planId", &input.plan_id)?;
        let (plan, _) = current::<PlanAggregate>(ctx, plan).await?;
        // A retried drill (same clientMutationId) is the same drill.
        let drill = match input.client_mutation_id.as_deref() {
            Some(_) => command_id(ctx, &user, input.client_mutation_id.as_deref()),
            None => Uuid::now_v7(),
        };
        let command = plan.drill(drill, input.note).map_err(refused)?;
        start(ctx, input.client_mutation_id, command).await
    }

    /// The step is done: by its role or an operations lead, once the required steps
    /// before it are settled. The last required step completes the run.
    async fn complete_plan_step(
        &self,
        ctx: &Context<'_>,
        input: CompletePlanStepInput,
    ) -> Result<Payload> {
        let command = PlanRunCommand::CompleteStep {
            key: input.key,
            note: input.note,
        };
        on_run(ctx, input.client_mutation_id, &input.run_id, command).await
    }

    /// The step is passed over, and why: an optional step by its role or an operations
    /// lead, a required one only by the head of the operations centre.
    async fn skip_plan_step(&self, ctx: &Context<'_>, input: SkipPlanStepInput) -> Result<Payload> {
        let command = PlanRunCommand::SkipStep {
            key: input.key,
            reason: input.reason,
        };
        on_run(ctx, input.client_mutation_id, &input.run_id, command).await
    }

    /// Stops a run with steps outstanding (operations manager, head of the operations
    /// centre).
    async fn abort_plan_run(&self, ctx: &Context<'_>, input: AbortPlanRunInput) -> Result<Payload> {
        let command = PlanRunCommand::AbortRun {
            reason: input.reason,
        };
        on_run(ctx, input.client_mutation_id, &input.run_id, command).await
    }
}
