//! The provisioning engine: the process manager that turns an approved request into
//! workflow runs, and carries each run out step by step through the ledger's aggregates
//! (quota, pool, subnet, CMDB) and the configured driver.
//!
//! It follows the event feed: a `RequestApproved` whose catalogue item names a workflow
//! starts one run per unit asked for, with ids derived from the request, and a run that
//! an operator moves on (a manual step recorded, an abort) is taken up again. At start it
//! resumes every run the log shows unfinished. Each step's start is recorded before the
//! step is carried out and its outcome after, so a crash in between repeats only that
//! step, and the aggregates (and drivers, told the run and step) recognise the repeat.
//! Command ids are derived from the run, the step and what is done, so a second replica
//! or a duplicate delivery records nothing twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{NaiveTime, TimeZone, Utc};
use futures::StreamExt;
use opsledger_domain::automation::provisioning::{
    run_ci_id, run_id, undo_incident_id, Log, Next, Outcome, Provisioning, ProvisioningCommand,
    ProvisioningError, RunPlan, RunStatus, RunStep,
};
use opsledger_domain::automation::workflow::{fill, StepKind, Workflow};
use opsledger_domain::kernel::aggregate::{Aggregate, Context, DomainEvent};
use opsledger_domain::operations::incident::{
    Assessment, Extent, Importance, Incident, IncidentCommand, IncidentError, Opening, Priority,
    Source,
};
use opsledger_domain::requests::catalog::CatalogItem;
use opsledger_domain::requests::request::{
    Request, RequestCommand, RequestDetails, RequestError, RequestEvent, RequestStatus,
};
use opsledger_domain::resources::cmdb::{
    Address, AttrValue, CiCommand, CiError, CiRecord, CiType, ConfigurationItem, Lease, Placement,
    Relation,
};
use opsledger_domain::resources::ipam::SubnetCommand;
use opsledger_domain::resources::pool::{Amount, Pool, PoolCommand, PoolError};
use opsledger_domain::resources::quota::{quota_id, Quota, QuotaCommand, QuotaError};
use opsledger_domain::{Actor, RecordedEvent};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::App;
use crate::drivers::{DriverCall, DriverError, Phase};
use crate::runtime::supervise::TaskError;
use crate::sagas::deploy::{give_back, Taken};
use crate::store::commands::CommandError;
use crate::store::ExpectedVersion;

/// How many approved requests the engine starts side by side when it resumes.
const STARTS_AT_ONCE: usize = 256;

/// The engine's own name in the events it records.
pub const ACTOR: &str = "engine";

fn key(text: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:engine:{text}").as_bytes(),
    )
}

/// A run as the engine last saw it, and the version to expect when appending to it.
type Kept = (Provisioning, ExpectedVersion);

/// What follows a recorded step.
enum Then {
    Continue,
    Fulfil(RunPlan),
    Fail(RunPlan, String),
}

/// The runs this process is carrying out, so each has one task.
#[derive(Clone)]
pub struct Engine {
    app: App,
    active: Arc<Mutex<HashSet<Uuid>>>,
    /// Whether this process still leads the engine's role; its runs stop when not.
    leading: Arc<AtomicBool>,
}

/// Starts the engine on `app` once this process leads the `engine` role among the
/// processes sharing the store (one engine calls the drivers): resumes what the log shows
/// unfinished, then follows the feed. It is the supervised task `engine` (on `standby`
/// while another process leads); a dropped connection is retried. Aborting the task gives
/// the role up.
pub fn start(app: App) -> tokio::task::JoinHandle<()> {
    let supervisor = app.supervisor.clone();
    supervisor.spawn(ROLE, move |task| lead_and_run(app.clone(), task))
}

async fn lead_and_run(app: App, task: crate::runtime::supervise::Task) -> Result<(), TaskError> {
    loop {
        task.standby();
        let mut lead = app.store.lead(ROLE).await?;
        task.running();
        let engine = Engine {
            app: app.clone(),
            active: Arc::default(),
            leading: Arc::new(AtomicBool::new(true)),
        };
        let ended = tokio::select! {
            ended = engine.clone().run() => Some(ended),
            () = lead.lost() => None,
        };
        if ended.is_none() {
            tracing::error!("the provisioning engine lost its role (the connection holding it dropped); it stops, and waits to lead again");
        }
        // Another process may lead now (or this one leads again after a retry): this
        // one's runs stop at their next step first.
        engine.leading.store(false, Ordering::SeqCst);
        while !engine.active.lock().expect("the active set").is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(ended) = ended {
            return ended;
        }
    }
}

/// The role the engine leads among the processes sharing a store.
pub const ROLE: &str = "engine";

impl Engine {
    fn leads(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    fn ctx(&self) -> Context {
        Context {
            actor: Actor::system(ACTOR),
            now: self.app.clock.now(),
        }
    }

    async fn run(self) -> Result<(), TaskError> {
        // Everything up to `from` is in the models: resume from them, then follow.
        let from = self.app.runner.position();
        let (approved, open): (Vec<(Uuid, bool)>, Vec<Uuid>) = {
            let models = self.app.runner.read().await;
            let approved = models
                .requests
                .list(
                    &opsledger_projections::requests::RequestFilter {
                        status: Some(RequestStatus::Approved),
                        ..Default::default()
                    },
                    None,
                    opsledger_projections::requests::Order::OldestFirst,
                )
                .filter_map(|(_, r)| {
                    let mut runs = models.automation.runs_of_request(r.request_id).peekable();
                    let started = runs.peek().is_some();
                    let ended = runs
                        .all(|run| matches!(run.status, RunStatus::Succeeded | RunStatus::Failed));
                    // Not started, or every run ended before the request was concluded.
                    (!started || ended).then_some((r.request_id, started))
                })
                .collect();
            let open = models.automation.open_runs().map(|r| r.run_id).collect();
            (approved, open)
        };
        let engine = &self;
        futures::stream::iter(approved)
            .for_each_concurrent(STARTS_AT_ONCE, |(request, started)| async move {
                if started {
                    engine.conclude(request).await;
                } else {
                    engine.start_request(request).await;
                }
            })
            .await;
        for run in open {
            self.drive(run, None);
        }
        let mut feed = self.app.store.subscribe(from + 1);
        while let Some(event) = feed.next().await {
            match event {
                Ok(event) => self.on_event(&event).await,
                Err(e) => {
                    tracing::error!("the provisioning engine stopped following the log: {e}");
                    return Err(e.into());
                }
            }
        }
        Err(TaskError::Transient("the log's feed ended".into()))
    }

    async fn on_event(&self, event: &RecordedEvent) {
        let kind = opsledger_projections::stream_kind(&event.stream);
        let Some(id) = opsledger_projections::stream_id(&event.stream) else {
            return;
        };
        if kind == Request::KIND && event.event_type == "RequestApproved" {
            // Its own task: approvals in a burst start side by side.
            let engine = self.clone();
            tokio::spawn(async move { engine.start_request(id).await });
        } else if kind == Provisioning::KIND
            && matches!(
                event.event_type.as_str(),
                "RunStarted" | "ManualStepDone" | "CompensationStarted"
            )
        {
            self.drive(id, None);
        }
    }

    /// Concludes a request whose runs all ended while the request stayed approved (the
    /// engine stopped in between): fulfilled when every run succeeded, failed otherwise.
    async fn conclude(&self, request_id: Uuid) {
        let mut runs = Vec::new();
        for unit in 0.. {
            match self
                .app
                .bus
                .load::<Provisioning>(run_id(request_id, unit))
                .await
            {
                Ok((run, _)) if run.plan.is_some() => runs.push(run),
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(%request_id, "concluding a provisioned request failed: {e}");
                    return;
                }
            }
        }
        let failed = runs.iter().find(|r| r.status == RunStatus::Failed);
        let outcome = match (failed, runs.first().and_then(|r| r.plan.as_ref())) {
            (Some(run), _) => {
                self.fail_request(request_id, run.reason.as_deref().unwrap_or(""))
                    .await;
                Ok(())
            }
            (None, Some(plan)) => {
                let made: Vec<Uuid> = runs
                    .iter()
                    .filter_map(|r| Some(r.plan.as_ref()?.ci_id))
                    .collect();
                self.fulfil_request(request_id, plan, &made).await
            }
            (None, None) => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::error!(%request_id, "concluding a provisioned request failed: {e:#}");
        }
    }

    /// Starts the runs of an approved request whose item names a workflow.
    async fn start_request(&self, request_id: Uuid) {
        if let Err(e) = self.try_start_request(request_id).await {
            tracing::error!(%request_id, "starting the provisioning of a request failed: {e:#}");
        }
    }

    async fn try_start_request(&self, request_id: Uuid) -> anyhow::Result<()> {
        // Read from the log itself, not the read models: what the engine decides on is
        // exactly what was recorded, however far the models have got.
        let store = &self.app.store;
        let events = store
            .read_stream(&format!("{}-{request_id}", Request::KIND), 0)
            .await
            .with_context(|| format!("reading request {request_id}"))?;
        let Some((item_id, item_version, details)) =
            events
                .iter()
                .find_map(|e| match RequestEvent::from_recorded(e) {
                    Ok(RequestEvent::RequestSubmitted {
                        item_id,
                        item_version,
                        details,
                        ..
                    }) => Some((item_id, item_version, details)),
                    _ => None,
                })
        else {
            anyhow::bail!("request {request_id} has no submission");
        };
        let request = events
            .iter()
            .map(RequestEvent::from_recorded)
            .try_fold(Request::default(), |r, e| e.map(|e| r.evolve(&e)))
            .with_context(|| format!("folding request {request_id}"))?;
        if request.status != RequestStatus::Approved {
            return Ok(());
        }
        let mut catalog = opsledger_projections::requests::catalog::Catalog::default();
        for e in store
            .read_stream(&format!("{}-{item_id}", CatalogItem::KIND), 0)
            .await
            .with_context(|| format!("reading catalogue item {item_id}"))?
        {
            opsledger_projections::Projection::apply(&mut catalog, &e);
        }
        let workflow_id = catalog
            .get(item_id)
            .and_then(|item| item.versions.get(item_version.checked_sub(1)? as usize))
            .and_then(|d| d.workflow_id);
        let Some(workflow_id) = workflow_id else {
            return Ok(()); // No workflow: fulfilled by hand.
        };
        let (owner, department, over_quota) =
            (request.requester, request.department, request.over_quota);
        let (workflow, _) = self
            .app
            .bus
            .load::<Workflow>(workflow_id)
            .await
            .with_context(|| format!("loading workflow {workflow_id}"))?;
        let plan = match plan(
            workflow_id,
            &workflow,
            request_id,
            &details,
            owner,
            department,
        ) {
            Ok(plan) => plan,
            Err(why) => {
                self.fail_request(request_id, &why).await;
                return Ok(());
            }
        };
        let units = match &details {
            RequestDetails::NewResource { quantity, .. } => (*quantity).max(1),
            _ => 1,
        };
        for unit in 0..units {
            let id = run_id(request_id, unit);
            let mut plan = plan.clone();
            plan.unit = unit;
            plan.over_quota_approved = over_quota;
            plan.ci_id = plan.target.unwrap_or_else(|| run_ci_id(id));
            let start = ProvisioningCommand::Start {
                run_id: id,
                plan: Box::new(plan),
            };
            let mut kept = (Provisioning::default(), ExpectedVersion::NoStream);
            match self
                .app
                .bus
                .execute_on::<Provisioning>(
                    id,
                    &mut kept,
                    start,
                    &self.ctx(),
                    key(&format!("start:{id}")),
                )
                .await
            {
                Ok(_) => self.drive(id, Some(kept)),
                Err(CommandError::Domain(ProvisioningError::AlreadyStarted)) => {
                    self.drive(id, None)
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "starting provisioning run {id}: {}",
                        e.report()
                    ))
                }
            }
        }
        Ok(())
    }

    async fn fail_request(&self, request_id: Uuid, why: &str) {
        let fail = RequestCommand::MarkFailed {
            note: why.to_owned(),
        };
        match self
            .app
            .bus
            .execute::<Request>(
                request_id,
                fail,
                &self.ctx(),
                key(&format!("request-failed:{request_id}")),
            )
            .await
        {
            Ok(_) | Err(CommandError::Domain(RequestError::NotApproved(_))) => {}
            Err(e) => tracing::error!(%request_id, "recording the request failed: {}", e.report()),
        }
    }

    /// Carries run `run_id` on, on a task of its own unless one is at it already; `kept`
    /// is the run as the caller has just seen it, if it has.
    fn drive(&self, run_id: Uuid, kept: Option<Kept>) {
        if !self.leads() || !self.active.lock().expect("the active set").insert(run_id) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            // The run as this task last saw it: each step is decided on it and folded into
            // it, so the stream is read again only when someone else moved the run on.
            let mut kept = kept;
            let mut pause = Duration::from_millis(50);
            while engine.leads() {
                match engine.advance(run_id, &mut kept).await {
                    Ok(true) => pause = Duration::from_millis(50),
                    Ok(false) => break,
                    Err(e) => {
                        kept = None;
                        crate::metrics::metrics().engine_retries.inc();
                        tracing::warn!(%run_id, "a provisioning step will be tried again: {e:#}");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                }
            }
            engine
                .active
                .lock()
                .expect("the active set")
                .remove(&run_id);
            // Moved on while the task was ending (a manual step recorded just now).
            if let Ok(run) = engine.app.bus.load::<Provisioning>(run_id).await {
                if matches!(
                    run.0.next(),
                    Next::Execute(_) | Next::Undo(_) | Next::Finish | Next::Close
                ) {
                    engine.drive(run_id, Some(run));
                }
            }
        });
    }

    /// Does the run's next thing; `false` when there is nothing to do now.
    async fn advance(&self, run_id: Uuid, kept: &mut Option<Kept>) -> anyhow::Result<bool> {
        let run = match kept.take() {
            Some(run) => run,
            None => self
                .app
                .bus
                .load::<Provisioning>(run_id)
                .await
                .with_context(|| format!("loading provisioning run {run_id}"))?,
        };
        let kept = kept.insert(run);
        let run = &kept.0;
        let Some(plan) = run.plan.as_ref() else {
            return Ok(false);
        };
        let command = match run.next() {
            Next::Nothing | Next::AwaitOperator(_) => return Ok(false),
            Next::Execute(n) => match self.execute(run_id, run, n).await {
                Ok((output, log)) => ProvisioningCommand::Complete {
                    step: n,
                    output,
                    log: self.keep(&log).await,
                },
                Err((error, log)) => ProvisioningCommand::Fail {
                    step: n,
                    error,
                    log: self.keep(&log).await,
                },
            },
            Next::Finish => match self.bring_into_service(run_id, plan, run).await {
                Ok(()) => {
                    self.audit_baselines(run_id, plan).await;
                    ProvisioningCommand::Finish
                }
                Err(Refused(why)) => ProvisioningCommand::Abort {
                    reason: format!("the CMDB refused the result: {why}"),
                },
                Err(Retry(e)) => return Err(anyhow::anyhow!(e)),
            },
            // The undo's start is recorded first, on its own.
            Next::Undo(n) if run.steps[n].undo.is_none() => {
                ProvisioningCommand::BeginUndo { step: n }
            }
            Next::Undo(n) => match self.undo(run_id, run, n).await {
                Ok(log) => ProvisioningCommand::CompleteUndo {
                    step: n,
                    log: self.keep(&log).await,
                },
                Err((error, log)) => {
                    let incident_id = self.raise_incident(run_id, plan, n, &error).await?;
                    ProvisioningCommand::FailUndo {
                        step: n,
                        error,
                        log: self.keep(&log).await,
                        incident_id,
                    }
                }
            },
            Next::Close => ProvisioningCommand::Close,
        };
        let (verb, outcome) = match &command {
            ProvisioningCommand::Complete { step, .. } => (format!("complete:{step}"), "complete"),
            ProvisioningCommand::Fail { step, .. } => (format!("fail:{step}"), "fail"),
            ProvisioningCommand::BeginUndo { step } => (format!("begin-undo:{step}"), "begin_undo"),
            ProvisioningCommand::CompleteUndo { step, .. } => (format!("undone:{step}"), "undone"),
            ProvisioningCommand::FailUndo { step, .. } => {
                (format!("undo-failed:{step}"), "undo_failed")
            }
            ProvisioningCommand::Finish => ("finish".into(), "finish"),
            ProvisioningCommand::Abort { .. } => ("abort-unregistered".into(), "abort"),
            _ => ("close".into(), "close"),
        };
        let then = match &command {
            ProvisioningCommand::Finish => Then::Fulfil(plan.clone()),
            ProvisioningCommand::Close => {
                Then::Fail(plan.clone(), run.reason.clone().unwrap_or_default())
            }
            _ => Then::Continue,
        };
        if !self.record(run_id, kept, command, &verb).await? {
            return Ok(true); // Moved on by someone else: look again.
        }
        crate::metrics::metrics()
            .engine_steps
            .get_or_create(&crate::metrics::StepLabel { outcome })
            .inc();
        match then {
            Then::Fulfil(plan) => self.after_success(run_id, &kept.0, &plan).await?,
            Then::Fail(plan, reason) => self.after_failure(run_id, &plan, &reason).await?,
            Then::Continue => {}
        }
        Ok(true)
    }

    /// Records a command on the run as `kept` has it: `false` when the run had been moved
    /// on (another replica, an operator's abort) and `kept` now holds the log's state.
    async fn record(
        &self,
        run_id: Uuid,
        kept: &mut Kept,
        command: ProvisioningCommand,
        verb: &str,
    ) -> anyhow::Result<bool> {
        let key = key(&format!("{verb}:{run_id}"));
        match self
            .app
            .bus
            .execute_on::<Provisioning>(run_id, kept, command, &self.ctx(), key)
            .await
        {
            Ok(_) => Ok(true),
            Err(CommandError::Conflict(_)) => Ok(false),
            Err(CommandError::Domain(
                ProvisioningError::NotCurrent { .. }
                | ProvisioningError::NotNextUndo { .. }
                | ProvisioningError::WrongStatus(_)
                | ProvisioningError::Over(_),
            )) => {
                *kept = self
                    .app
                    .bus
                    .load::<Provisioning>(run_id)
                    .await
                    .with_context(|| format!("loading provisioning run {run_id}"))?;
                Ok(false)
            }
            Err(e) => Err(anyhow::anyhow!(
                "{}: {}",
                "recording a provisioning step",
                e.report()
            )),
        }
    }

    /// Keeps a log: a bounded excerpt in the event, the whole in the content store.
    async fn keep(&self, log: &str) -> Log {
        let (excerpt, full) = crate::drivers::keep_log(&self.app.content, log).await;
        Log {
            excerpt,
            full_sha256: full.map(|h| h.to_string()),
        }
    }

    /// Carries out step `n`: its outputs and log, or why it failed and the log.
    async fn execute(
        &self,
        run_id: Uuid,
        run: &Provisioning,
        n: usize,
    ) -> Result<(Map<String, Value>, String), (String, String)> {
        let plan = run.plan.as_ref().expect("a started run has a plan");
        let step = &plan.steps[n];
        let inputs = inputs(step, plan, &run.outputs).map_err(|e| (e, String::new()))?;
        let ctx = self.ctx();
        match step.kind {
            StepKind::AllocateCapacity => self.allocate_capacity(plan, &inputs, &ctx).await,
            StepKind::AllocateIp => self.allocate_ip(plan, &inputs, &ctx).await,
            StepKind::Manual => Err((
                "a manual step is recorded by an operator".into(),
                String::new(),
            )),
            kind => {
                let script = match kind {
                    StepKind::RunScript => {
                        Some(self.script(&inputs).await.map_err(|e| (e, String::new()))?)
                    }
                    _ => None,
                };
                let call = DriverCall {
                    operation: kind.operation().unwrap_or_default().to_owned(),
                    phase: Phase::Do,
                    run_id,
                    step: step.name.clone(),
                    params: with_context(inputs, plan),
                    output: None,
                    script,
                };
                self.app
                    .driver
                    .call(&call)
                    .await
                    .map(|o| (o.output, o.log))
                    .map_err(|e| (e.to_string(), e.log().to_owned()))
            }
        }
    }

    /// The library script a `run_script` step names by its item id (`script`), at its
    /// current version or at `version`.
    async fn script(&self, inputs: &Map<String, Value>) -> Result<crate::drivers::Script, String> {
        let item: Uuid = inputs
            .get("script")
            .and_then(Value::as_str)
            .map(|s| s.rsplit_once("library_item-").map_or(s, |(_, id)| id))
            .and_then(|s| s.parse().ok())
            .ok_or("inputs.script: not a library item id")?;
        let wanted = inputs.get("version").and_then(Value::as_u64);
        let models = self.app.runner.read().await;
        let entry = models
            .library
            .get(item)
            .ok_or_else(|| format!("inputs.script: the library has no item {item}"))?;
        let version = match wanted {
            Some(n) => entry.versions.iter().find(|v| u64::from(v.version) == n),
            None => entry.current(),
        }
        .ok_or_else(|| format!("inputs.script: {} has no version in use", entry.name))?;
        let hash = crate::store::content::Sha256Hex::parse(&version.sha256)?;
        Ok(crate::drivers::Script {
            name: entry.name.clone(),
            version: version.version,
            sha256: version.sha256.clone(),
            path: self.app.content.path(&hash),
        })
    }

    async fn allocate_capacity(
        &self,
        plan: &RunPlan,
        inputs: &Map<String, Value>,
        ctx: &Context,
    ) -> Result<(Map<String, Value>, String), (String, String)> {
        let pool_id = uuid_input(inputs, "pool_id")?;
        let amount = Amount {
            cpu_cores: count_input(inputs, "cpu")?,
            memory_gib: count_input(inputs, "memory_gib")?,
            storage_gib: if inputs.contains_key("storage_gib") {
                count_input(inputs, "storage_gib")?
            } else {
                0
            },
        };
        let consume = QuotaCommand::Consume {
            resource_id: plan.ci_id,
            department: plan.department.clone(),
            project: plan.project.clone(),
            amount,
            over_quota_approved: plan.over_quota_approved,
        };
        crate::sagas::deploy::step::<Quota>(
            &self.app,
            quota_id(&plan.department),
            consume,
            ctx,
            |e| matches!(e, QuotaError::AlreadyConsumed(_)),
        )
        .await
        .map_err(|e| (format!("quota: {}", failure_text(e)), String::new()))?;
        let allocate = PoolCommand::AllocateCapacity {
            allocation_id: plan.ci_id,
            amount,
            units: Default::default(),
            request_id: plan.request_id,
        };
        if let Err(e) = crate::sagas::deploy::step::<Pool>(&self.app, pool_id, allocate, ctx, |e| {
            matches!(e, PoolError::AlreadyAllocated(_))
        })
        .await
        {
            // The quota taken for it goes back before the step is reported failed.
            if let Err(undo) =
                give_back(&self.app, &Taken::Quota, plan.ci_id, &plan.department, ctx).await
            {
                return Err((
                    format!(
                        "pool: {}; giving the quota back also failed: {}",
                        failure_text(e),
                        failure_text(undo)
                    ),
                    String::new(),
                ));
            }
            return Err((format!("pool: {}", failure_text(e)), String::new()));
        }
        let output = json!({
            "pool_id": pool_id,
            "cpu": amount.cpu_cores,
            "memory_gib": amount.memory_gib,
            "storage_gib": amount.storage_gib,
        });
        Ok((
            as_map(output),
            format!(
                "allocated {amount:?} in pool {pool_id} within the quota of {}\n",
                plan.department
            ),
        ))
    }

    async fn allocate_ip(
        &self,
        plan: &RunPlan,
        inputs: &Map<String, Value>,
        ctx: &Context,
    ) -> Result<(Map<String, Value>, String), (String, String)> {
        let subnet_id = uuid_input(inputs, "subnet_id")?;
        let address = match inputs.get("address") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_str().and_then(|a| a.parse().ok()).ok_or_else(|| {
                (
                    "inputs.address: not an IPv4 address".to_owned(),
                    String::new(),
                )
            })?),
        };
        let allocate = SubnetCommand::AllocateAddress {
            ci_id: plan.ci_id,
            address,
        };
        let address = crate::sagas::deploy::allocate_address(&self.app, subnet_id, allocate, ctx)
            .await
            .map_err(|e| (format!("subnet: {}", e.report()), String::new()))?;
        Ok((
            as_map(json!({ "address": address.to_string(), "subnet_id": subnet_id })),
            format!("allocated {address} in subnet {subnet_id}\n"),
        ))
    }

    /// Undoes step `n`: its log, or why the undo failed and the log.
    async fn undo(
        &self,
        run_id: Uuid,
        run: &Provisioning,
        n: usize,
    ) -> Result<String, (String, String)> {
        let plan = run.plan.as_ref().expect("a started run has a plan");
        let step = &plan.steps[n];
        let output = match &run.steps[n].outcome {
            Some(Outcome::Done { output }) => output.clone(),
            _ => Map::new(),
        };
        let ctx = self.ctx();
        match step.kind {
            StepKind::AllocateCapacity => {
                if let Some(pool_id) = output
                    .get("pool_id")
                    .and_then(Value::as_str)
                    .and_then(|p| p.parse::<Uuid>().ok())
                {
                    let capacity = Taken::Capacity(pool_id);
                    give_back(&self.app, &capacity, plan.ci_id, &plan.department, &ctx)
                        .await
                        .map_err(|e| (format!("pool: {}", failure_text(e)), String::new()))?;
                }
                give_back(&self.app, &Taken::Quota, plan.ci_id, &plan.department, &ctx)
                    .await
                    .map_err(|e| (format!("quota: {}", failure_text(e)), String::new()))?;
                Ok("capacity and quota given back\n".into())
            }
            StepKind::AllocateIp => {
                let subnet_id = output
                    .get("subnet_id")
                    .and_then(Value::as_str)
                    .and_then(|p| p.parse::<Uuid>().ok())
                    .ok_or_else(|| {
                        (
                            "the step's output names no subnet".to_owned(),
                            String::new(),
                        )
                    })?;
                let address = Taken::Address(subnet_id);
                give_back(&self.app, &address, plan.ci_id, &plan.department, &ctx)
                    .await
                    .map_err(|e| (format!("subnet: {}", failure_text(e)), String::new()))?;
                Ok("address given back\n".into())
            }
            StepKind::Manual => Ok("a manual step: nothing to undo by the engine\n".into()),
            kind => {
                let inputs = inputs(step, plan, &run.outputs).unwrap_or_default();
                let call = DriverCall {
                    operation: kind.operation().unwrap_or_default().to_owned(),
                    phase: Phase::Undo,
                    run_id,
                    step: step.name.clone(),
                    params: with_context(inputs, plan),
                    output: Some(output),
                    script: None,
                };
                self.app
                    .driver
                    .call(&call)
                    .await
                    .map(|o| o.log)
                    .map_err(|e: DriverError| (e.to_string(), e.log().to_owned()))
            }
        }
    }

    /// Opens the incident for an undo that failed (once, whatever happens after).
    async fn raise_incident(
        &self,
        run_id: Uuid,
        plan: &RunPlan,
        n: usize,
        error: &str,
    ) -> anyhow::Result<Uuid> {
        let incident_id = undo_incident_id(run_id, n);
        let step = &plan.steps[n];
        let assessment = Assessment {
            importance: Importance::Important,
            loss: Extent::Minor,
            social_impact: Extent::Minor,
        };
        let opening = Opening {
            title: format!("自動化回滾失敗 / rollback failed: {} ({})", step.name, plan.workflow_name),
            description: format!(
                "Undoing step `{}` of provisioning run {run_id} (workflow {} v{}, request {}) failed: {error}. \
                 What the step did may still be there and must be removed by hand.",
                step.name,
                plan.workflow_name,
                plan.workflow_version,
                plan.request_id.map_or_else(|| "none".into(), |r| r.to_string()),
            ),
            service: opsledger_domain::operations::sla::DEFAULT_SERVICE.into(),
            ci_ids: Vec::new(),
            assessment,
            priority: Priority::from_assessment(&assessment),
            warning_level: 1,
            source: Source::Automation { run_id, step: step.name.clone() },
            department: Some(plan.department.clone()),
        };
        let open = IncidentCommand::Open {
            incident_id,
            opening: Box::new(opening),
            priority: None,
        };
        match self
            .app
            .bus
            .execute::<Incident>(
                incident_id,
                open,
                &self.ctx(),
                key(&format!("undo-incident:{incident_id}")),
            )
            .await
        {
            Ok(_) | Err(CommandError::Domain(IncidentError::AlreadyOpened)) => Ok(incident_id),
            Err(e) => Err(anyhow::anyhow!(
                "raising the incident for a failed undo: {}",
                e.report()
            )),
        }
    }

    /// Registers what the run made in the CMDB (or updates the resource it was for).
    async fn bring_into_service(
        &self,
        run_id: Uuid,
        plan: &RunPlan,
        run: &Provisioning,
    ) -> Result<(), Registration> {
        let ctx = self.ctx();
        let done = |kind: StepKind| {
            plan.steps
                .iter()
                .enumerate()
                .filter(move |(_, s)| s.kind == kind)
                .filter_map(|(i, s)| match &run.steps[i].outcome {
                    Some(Outcome::Done { output }) => Some((s, output)),
                    _ => None,
                })
        };
        let text = |o: &Map<String, Value>, k: &str| {
            o.get(k).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
        };
        let mut attributes = BTreeMap::new();
        let software: Vec<String> = done(StepKind::InstallSoftware)
            .filter_map(|(_, o)| text(o, "package"))
            .collect();
        if let Some(target) = plan.target {
            if !software.is_empty() {
                let (ci, _) = self
                    .app
                    .bus
                    .load::<ConfigurationItem>(target)
                    .await
                    .map_err(|e| Retry(e.to_string()))?;
                let mut installed = match ci
                    .record
                    .as_ref()
                    .and_then(|r| r.attributes.get("software"))
                {
                    Some(AttrValue::Texts(t)) => t.clone(),
                    _ => Vec::new(),
                };
                for s in software {
                    if !installed.contains(&s) {
                        installed.push(s);
                    }
                }
                attributes.insert("software".to_owned(), Some(AttrValue::Texts(installed)));
                let update = CiCommand::UpdateAttributes {
                    changes: attributes,
                };
                return cmdb(
                    crate::sagas::deploy::step::<ConfigurationItem>(
                        &self.app,
                        target,
                        update,
                        &ctx,
                        |_| false,
                    )
                    .await,
                );
            }
            return Ok(());
        }
        let placement = done(StepKind::AllocateCapacity).next().and_then(|(_, o)| {
            Some(Placement {
                pool_id: o.get("pool_id")?.as_str()?.parse().ok()?,
                amount: Amount {
                    cpu_cores: o.get("cpu")?.as_u64()?,
                    memory_gib: o.get("memory_gib")?.as_u64()?,
                    storage_gib: o.get("storage_gib").and_then(Value::as_u64).unwrap_or(0),
                },
            })
        });
        let addresses: Vec<Address> = done(StepKind::AllocateIp)
            .filter_map(|(_, o)| {
                Some(Address {
                    subnet_id: o.get("subnet_id")?.as_str()?.parse().ok()?,
                    address: o.get("address")?.as_str()?.parse().ok()?,
                })
            })
            .collect();
        let vm = done(StepKind::CreateVm).next().map(|(_, o)| o.clone());
        let volumes: Vec<(String, Map<String, Value>)> = done(StepKind::CreateVolume)
            .map(|(s, o)| (s.name.clone(), o.clone()))
            .collect();
        let short = &run_id.simple().to_string()[20..];
        if let Some(p) = placement {
            attributes.insert(
                "cpu".to_owned(),
                Some(AttrValue::Integer(p.amount.cpu_cores as i64)),
            );
            attributes.insert(
                "memory_gib".to_owned(),
                Some(AttrValue::Integer(p.amount.memory_gib as i64)),
            );
        }
        if !addresses.is_empty() {
            attributes.insert(
                "ip_addresses".to_owned(),
                Some(AttrValue::Texts(
                    addresses.iter().map(|a| a.address.to_string()).collect(),
                )),
            );
        }
        if !software.is_empty() {
            attributes.insert("software".to_owned(), Some(AttrValue::Texts(software)));
        }
        if let Some(image) = done(StepKind::DeployImage)
            .next()
            .and_then(|(_, o)| text(o, "image"))
        {
            attributes.insert("os_image".to_owned(), Some(AttrValue::Text(image)));
        }
        let disks: Vec<i64> = volumes
            .iter()
            .filter_map(|(_, o)| o.get("size_gb").and_then(Value::as_i64))
            .collect();
        if !disks.is_empty() {
            attributes.insert("disks_gib".to_owned(), Some(AttrValue::Integers(disks)));
        }
        if let Some(vm) = &vm {
            for k in ["vm_ref", "hostname"] {
                if let Some(v) = text(vm, k) {
                    attributes.insert(k.to_owned(), Some(AttrValue::Text(v)));
                }
            }
        }
        attributes.insert(
            "workflow".to_owned(),
            Some(AttrValue::Text(format!(
                "{} v{}",
                plan.workflow_name, plan.workflow_version
            ))),
        );
        attributes.insert(
            "provisioning_run".to_owned(),
            Some(AttrValue::Text(run_id.to_string())),
        );
        let record = |ci_type,
                      name: String,
                      attributes: BTreeMap<String, Option<AttrValue>>,
                      placement,
                      addresses| CiRecord {
            ci_type,
            name,
            attributes: attributes
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect(),
            placement,
            addresses,
            department: plan.department.clone(),
            project: plan.project.clone(),
            owner: Some(plan.owner.clone()),
            watchers: Vec::new(),
            request_id: plan.request_id,
            lease: plan.lease,
        };
        // The volumes first (the VM's own placement carries their storage), then the VM.
        let main_is_vm = vm.is_some();
        let mut volume_ids = Vec::new();
        for (i, (name, o)) in volumes.iter().enumerate() {
            let volume_id = if !main_is_vm && i == 0 {
                plan.ci_id
            } else {
                volume_ci_id(run_id, name)
            };
            let mut attrs = BTreeMap::new();
            if let Some(r) = text(o, "volume_ref") {
                attrs.insert("volume_ref".to_owned(), Some(AttrValue::Text(r)));
            }
            if let Some(size) = o.get("size_gb").and_then(Value::as_i64) {
                attrs.insert("storage_gib".to_owned(), Some(AttrValue::Integer(size)));
            }
            let (placement, addresses) = if volume_id == plan.ci_id {
                (placement, addresses.clone())
            } else {
                (None, Vec::new())
            };
            let register = CiCommand::Register {
                ci_id: volume_id,
                record: Box::new(record(
                    CiType::StorageVolume,
                    format!("vol-{short}-{name}"),
                    attrs,
                    placement,
                    addresses,
                )),
            };
            self.register(run_id, volume_id, register).await?;
            volume_ids.push(volume_id);
        }
        if main_is_vm {
            let name = vm
                .as_ref()
                .and_then(|o| text(o, "hostname"))
                .unwrap_or_else(|| format!("vm-{short}"));
            let register = CiCommand::Register {
                ci_id: plan.ci_id,
                record: Box::new(record(
                    CiType::VirtualMachine,
                    name,
                    attributes,
                    placement,
                    addresses,
                )),
            };
            let mut ci = self.register(run_id, plan.ci_id, register).await?;
            for volume in volume_ids {
                if !ci.0.relations.contains(&(Relation::Uses, volume)) {
                    let relate = CiCommand::Relate {
                        relation: Relation::Uses,
                        target: volume,
                    };
                    let key = key(&format!("relate:{run_id}:{volume}"));
                    self.app
                        .bus
                        .execute_on::<ConfigurationItem>(plan.ci_id, &mut ci, relate, &ctx, key)
                        .await
                        .map_err(ci_failure)?;
                }
            }
        }
        Ok(())
    }

    /// Registers a CI the run made: its state after, also when it was registered already
    /// (a repeat after a restart).
    async fn register(
        &self,
        run_id: Uuid,
        ci_id: Uuid,
        register: CiCommand,
    ) -> Result<(ConfigurationItem, ExpectedVersion), Registration> {
        let mut ci = (ConfigurationItem::default(), ExpectedVersion::NoStream);
        let key = key(&format!("register:{run_id}:{ci_id}"));
        for _ in 0..2 {
            match self
                .app
                .bus
                .execute_on::<ConfigurationItem>(ci_id, &mut ci, register.clone(), &self.ctx(), key)
                .await
            {
                Ok(_) | Err(CommandError::Domain(CiError::AlreadyExists)) => return Ok(ci),
                // The stream existed: `ci` holds it now, decide again.
                Err(CommandError::Conflict(_)) => {}
                Err(e) => return Err(ci_failure(e)),
            }
        }
        Err(Retry(format!("registering {ci_id} kept conflicting")))
    }

    /// Compares what was made with the baselines attached to the workflow; differences
    /// are recorded on the CI as findings. An audit that cannot be done is logged and
    /// does not hold the run (it can be repeated on demand).
    async fn audit_baselines(&self, run_id: Uuid, plan: &RunPlan) {
        let baselines: Vec<Uuid> = {
            let models = self.app.runner.read().await;
            models
                .baselines
                .for_workflow(plan.workflow_id)
                .map(|b| b.id)
                .collect()
        };
        let ci = plan.target.unwrap_or(plan.ci_id);
        for baseline in baselines {
            let command_id = key(&format!("baseline:{run_id}:{baseline}"));
            if let Err(e) =
                crate::sagas::baseline::audit(&self.app, ci, baseline, command_id, &self.ctx())
                    .await
            {
                tracing::warn!(%run_id, %baseline, "the baseline audit after provisioning failed: {e:?}");
            }
        }
    }

    /// A run finished: the request is fulfilled when every unit of it is (`run` is this
    /// unit's, as just recorded).
    async fn after_success(
        &self,
        run_id_: Uuid,
        run: &Provisioning,
        plan: &RunPlan,
    ) -> anyhow::Result<()> {
        let Some(request_id) = plan.request_id else {
            return Ok(());
        };
        let units = {
            let models = self.app.runner.read().await;
            models.automation.runs_of_request(request_id).count() as u32
        };
        let mut made = Vec::new();
        for unit in 0..units.max(plan.unit + 1) {
            let id = run_id(request_id, unit);
            let sibling;
            let run = if id == run_id_ {
                run
            } else {
                sibling = self
                    .app
                    .bus
                    .load::<Provisioning>(id)
                    .await
                    .with_context(|| format!("loading provisioning run {id}"))?
                    .0;
                &sibling
            };
            if run.status != RunStatus::Succeeded {
                return Ok(());
            }
            if let Some(p) = &run.plan {
                made.push(p.ci_id);
            }
        }
        self.fulfil_request(request_id, plan, &made).await
    }

    async fn fulfil_request(
        &self,
        request_id: Uuid,
        plan: &RunPlan,
        made: &[Uuid],
    ) -> anyhow::Result<()> {
        let note = format!(
            "provisioned by workflow {} v{}: {}",
            plan.workflow_name,
            plan.workflow_version,
            made.iter()
                .map(|id| format!("{}-{id}", ConfigurationItem::KIND))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let fulfil = RequestCommand::MarkFulfilled { note };
        match self
            .app
            .bus
            .execute::<Request>(
                request_id,
                fulfil,
                &self.ctx(),
                key(&format!("request-fulfilled:{request_id}")),
            )
            .await
        {
            Ok(_) | Err(CommandError::Domain(RequestError::NotApproved(_))) => Ok(()),
            Err(e) => Err(anyhow::anyhow!(
                "recording request {request_id} fulfilled: {}",
                e.report()
            )),
        }
    }

    /// A run failed and was undone: the request fails with its reason, and the other
    /// units of it are undone too (a request is provisioned whole or not at all).
    async fn after_failure(
        &self,
        run_id_: Uuid,
        plan: &RunPlan,
        reason: &str,
    ) -> anyhow::Result<()> {
        let Some(request_id) = plan.request_id else {
            return Ok(());
        };
        self.fail_request(request_id, reason).await;
        let siblings: Vec<Uuid> = {
            let models = self.app.runner.read().await;
            models
                .automation
                .runs_of_request(request_id)
                .map(|r| r.run_id)
                .filter(|id| *id != run_id_)
                .collect()
        };
        for sibling in siblings {
            let abort = ProvisioningCommand::Abort {
                reason: format!("unit {} of the request failed: {reason}", plan.unit + 1),
            };
            match self
                .app
                .bus
                .execute::<Provisioning>(
                    sibling,
                    abort,
                    &self.ctx(),
                    key(&format!("abort:{sibling}")),
                )
                .await
            {
                Ok(_) | Err(CommandError::Domain(_)) => {}
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "aborting provisioning run {sibling}: {}",
                        e.report()
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The id of the volume CI a run's `create_volume` step `name` makes.
pub fn volume_ci_id(run_id: Uuid, name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:provisioned-volume:{run_id}:{name}").as_bytes(),
    )
}

/// Why registering failed: refused (the run is aborted and undone), or to try again.
enum Registration {
    Refused(String),
    Retry(String),
}
use Registration::{Refused, Retry};

fn ci_failure(e: CommandError<CiError>) -> Registration {
    match e {
        CommandError::Domain(e) => Refused(e.to_string()),
        e => Retry(e.report().to_string()),
    }
}

fn cmdb(
    outcome: Result<Option<u64>, opsledger_schema::CommandError<opsledger_schema::ResourceError>>,
) -> Result<(), Registration> {
    match outcome {
        Ok(_) => Ok(()),
        Err(opsledger_schema::CommandError::Domain(e)) => Err(Refused(e.to_string())),
        Err(e) => Err(Retry(failure_text(e))),
    }
}

fn failure_text(f: opsledger_schema::CommandError<opsledger_schema::ResourceError>) -> String {
    match f {
        opsledger_schema::CommandError::Domain(e) => e.to_string(),
        opsledger_schema::CommandError::Conflict(m) => m,
        opsledger_schema::CommandError::Internal(cause) => cause.to_string(),
    }
}

/// The plan of a run of `workflow` for a request.
fn plan(
    workflow_id: Uuid,
    workflow: &Workflow,
    request_id: Uuid,
    details: &RequestDetails,
    owner: String,
    department: String,
) -> Result<RunPlan, String> {
    let definition = match (workflow.current(), &workflow.deleted) {
        (Some(_), Some(reason)) => {
            return Err(format!(
                "the item's workflow {workflow_id} was deleted ({reason})"
            ))
        }
        (None, _) => return Err(format!("the item's workflow {workflow_id} does not exist")),
        (Some(d), None) => d,
    };
    let order = definition
        .validate()
        .map_err(|e| format!("the workflow is not valid: {e}"))?;
    let (configuration, project, lease, target) = match details {
        RequestDetails::NewResource {
            configuration,
            project,
            period,
            ..
        } => {
            let day = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
            (
                configuration,
                Some(project.clone()),
                Some(Lease {
                    start: day(period.start),
                    end: day(period.end),
                }),
                None,
            )
        }
        RequestDetails::ChangeConfiguration {
            configuration,
            project,
            resource_id,
        }
        | RequestDetails::InstallSoftware {
            configuration,
            project,
            resource_id,
        } => (
            configuration,
            Some(project.clone()),
            None,
            Some(*resource_id),
        ),
        RequestDetails::ExtendLease { .. } => {
            return Err("a lease extension is not provisioned by a workflow".into())
        }
    };
    let given: Map<String, Value> = configuration
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let params = definition
        .resolve_params(&given)
        .map_err(|e| format!("the workflow cannot start: {e}"))?;
    Ok(RunPlan {
        workflow_id,
        workflow_version: workflow.versions.len() as u32,
        workflow_name: definition.name.clone(),
        request_id: Some(request_id),
        unit: 0,
        owner,
        department,
        project,
        lease,
        over_quota_approved: false,
        params,
        steps: order
            .into_iter()
            .map(|i| {
                let s = &definition.steps[i];
                RunStep {
                    name: s.name.clone(),
                    kind: s.kind,
                    inputs: s.inputs.clone(),
                    instructions: s.instructions.clone(),
                }
            })
            .collect(),
        ci_id: Uuid::nil(),
        target,
    })
}

/// A step's inputs with the parameters and earlier outputs filled in.
fn inputs(
    step: &RunStep,
    plan: &RunPlan,
    outputs: &BTreeMap<String, Map<String, Value>>,
) -> Result<Map<String, Value>, String> {
    step.inputs
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                fill(v, &plan.params, outputs).map_err(|e| format!("inputs.{k}: {e}"))?,
            ))
        })
        .collect()
}

/// The inputs a driver sees: the step's own, and what it is for.
fn with_context(mut inputs: Map<String, Value>, plan: &RunPlan) -> Map<String, Value> {
    inputs.entry("ci_id").or_insert_with(|| json!(plan.ci_id));
    inputs
        .entry("department")
        .or_insert_with(|| json!(plan.department));
    inputs.entry("owner").or_insert_with(|| json!(plan.owner));
    // The failure a request asks the simulator for travels with every step.
    if let Some(v) = plan.params.get(crate::drivers::simulator::FAILURE_PARAM) {
        inputs
            .entry(crate::drivers::simulator::FAILURE_PARAM)
            .or_insert_with(|| v.clone());
    }
    inputs
}

fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn uuid_input(inputs: &Map<String, Value>, name: &str) -> Result<Uuid, (String, String)> {
    inputs
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| (format!("inputs.{name}: not an id"), String::new()))
}

fn count_input(inputs: &Map<String, Value>, name: &str) -> Result<u64, (String, String)> {
    let v = inputs.get(name);
    v.and_then(Value::as_u64)
        .or_else(|| v.and_then(Value::as_str).and_then(|s| s.parse().ok()))
        .ok_or_else(|| (format!("inputs.{name}: not a whole number"), String::new()))
}
