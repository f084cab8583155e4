//! Virtual servers and configuration baselines over GraphQL: start, stop, restart, back
//! up, restore and delete a VM (its owner or an operator), its backups and operations;
//! baselines created, edited, attached and audited, and each CI's findings.

use opsledger_projections::ReadModels;
use std::collections::BTreeMap;

use async_graphql::{Context, Enum, InputObject, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::automation::baseline::{
    Baseline as BaselineAggregate, BaselineCommand, BaselineDefinition, Finding,
};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::resources::cmdb::ConfigurationItem as CiAggregate;
use opsledger_projections::automation::baselines::{AuditView, BaselineView};
use opsledger_projections::automation::vm::OperationRecord;
use uuid::Uuid;

use crate::kit::errors::{bad_input, internal};
use crate::kit::ids;
use crate::kit::operate;
use crate::kit::{actor, ledger, models, page_in_order, Page};
use crate::kit::{command_id, domain_context, new_id, Payload};
use crate::{Models, Operation, VmOperation};

/// The kind in a backup's global id.
const BACKUP: &str = "backup";
/// The kind in a workflow's global id.
const WORKFLOW: &str = "workflow";

/// A backup of a VM.
#[derive(SimpleObject)]
pub struct VmBackup {
    pub id: ID,
    /// The driver's name for it.
    pub reference: String,
    pub size_bytes: u64,
    pub taken_at: DateTime<Utc>,
    pub by: String,
}

/// One operation on a VM, done or failed.
#[derive(SimpleObject)]
pub struct VmOperationRecord {
    /// The driver's operation (`stop_vm`, `backup_vm`, …).
    pub operation: String,
    pub succeeded: bool,
    /// What the driver said when it failed.
    pub error: Option<String>,
    /// The end of the driver's log, for a failure.
    pub log: Option<String>,
    pub backup: Option<ID>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    pub by: String,
}

fn operation_node(r: &OperationRecord) -> VmOperationRecord {
    VmOperationRecord {
        operation: r.operation.clone(),
        succeeded: r.error.is_none(),
        error: r.error.clone(),
        log: r.log.clone(),
        backup: r.backup_id.map(|b| ids::global(BACKUP, b)),
        reason: r.reason.clone(),
        at: r.at,
        by: r.by.clone(),
    }
}

/// What a baseline's settings are about.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::automation::baseline::BaselineScope")]
pub enum BaselineScopeKind {
    System,
    Database,
    Application,
}

/// A setting and its expected value.
#[derive(SimpleObject)]
pub struct BaselineSetting {
    pub key: String,
    pub value: String,
}

/// A configuration baseline at its current version.
#[derive(SimpleObject)]
pub struct Baseline {
    pub id: ID,
    pub version: u32,
    pub name: String,
    pub scope: BaselineScopeKind,
    pub description: String,
    pub settings: Vec<BaselineSetting>,
    pub workflows: Vec<ID>,
    pub configuration_items: Vec<ID>,
    pub updated_at: DateTime<Utc>,
    /// Who wrote this version, and why.
    pub by: String,
    pub note: String,
}

fn baseline_node(v: &BaselineView) -> Baseline {
    let current = v.current();
    let d = &current.definition;
    Baseline {
        id: ids::global(BaselineAggregate::KIND, v.id),
        version: current.version,
        name: d.name.clone(),
        scope: d.scope.into(),
        description: d.description.clone(),
        settings: d
            .settings
            .iter()
            .map(|(key, value)| BaselineSetting {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        workflows: v
            .workflow_ids
            .iter()
            .map(|w| ids::global(WORKFLOW, *w))
            .collect(),
        configuration_items: v
            .ci_ids
            .iter()
            .map(|c| ids::global(CiAggregate::KIND, *c))
            .collect(),
        updated_at: current.at,
        by: current.by.clone(),
        note: current.note.clone(),
    }
}

/// A setting that differs from its baseline.
#[derive(SimpleObject)]
pub struct BaselineFinding {
    pub key: String,
    pub expected: String,
    /// What was found; null: the setting is missing.
    pub actual: Option<String>,
}

fn finding_node(f: &Finding) -> BaselineFinding {
    BaselineFinding {
        key: f.key.clone(),
        expected: f.expected.clone(),
        actual: f.actual.clone(),
    }
}

/// A CI's latest audit against one baseline.
#[derive(SimpleObject)]
pub struct BaselineAudit {
    pub baseline: ID,
    pub baseline_name: String,
    /// The version it was compared with.
    pub baseline_version: u32,
    pub audited_at: DateTime<Utc>,
    pub by: String,
    /// No findings.
    pub compliant: bool,
    pub findings: Vec<BaselineFinding>,
}

fn audit_node(m: &Models<'_>, a: &AuditView) -> BaselineAudit {
    BaselineAudit {
        baseline: ids::global(BaselineAggregate::KIND, a.baseline_id),
        baseline_name: m
            .baselines
            .get(a.baseline_id)
            .and_then(|b| b.at_version(a.baseline_version))
            .map(|v| v.definition.name.clone())
            .unwrap_or_default(),
        baseline_version: a.baseline_version,
        audited_at: a.at,
        by: a.by.clone(),
        compliant: a.findings.is_empty(),
        findings: a.findings.iter().map(finding_node).collect(),
    }
}

#[derive(Default)]
pub struct VmQuery;

#[Object]
impl VmQuery {
    /// A VM's backups, newest first, with their time and size.
    async fn backups(
        &self,
        ctx: &Context<'_>,
        ci_id: ID,
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
    ) -> Result<Page<VmBackup>> {
        let actor = actor(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &ci_id)?;
        let m = models(ctx, at_least).await?;
        let ci = crate::kit::access::ci(&m, actor, ci_id)?;
        page_in_order(
            ci.state.backups.iter().rev(),
            |b| VmBackup {
                id: ids::global(BACKUP, b.backup_id),
                reference: b.reference.clone(),
                size_bytes: b.size_bytes,
                taken_at: b.at,
                by: b.by.clone(),
            },
            after,
            first,
            m.position,
        )
    }

    /// A VM's operations, newest first: power changes, backups, restores, deletion, and
    /// what its driver failed to do.
    async fn vm_operations(
        &self,
        ctx: &Context<'_>,
        ci_id: ID,
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
    ) -> Result<Page<VmOperationRecord>> {
        let actor = actor(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &ci_id)?;
        let m = models(ctx, at_least).await?;
        crate::kit::access::ci(&m, actor, ci_id)?;
        page_in_order(
            m.vm.operations(ci_id).iter().rev(),
            operation_node,
            after,
            first,
            m.position,
        )
    }

    /// Configuration baselines, oldest first: all, or those attached to a CI or a workflow.
    async fn baselines(
        &self,
        ctx: &Context<'_>,
        ci_id: Option<ID>,
        workflow_id: Option<ID>,
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
    ) -> Result<Page<Baseline>> {
        actor(ctx)?;
        let ci = ci_id
            .map(|c| ids::parse("ciId", CiAggregate::KIND, &c))
            .transpose()?;
        let workflow = workflow_id
            .map(|w| ids::parse("workflowId", WORKFLOW, &w))
            .transpose()?;
        let m = models(ctx, at_least).await?;
        let all = m.baselines.all().iter().filter(|b| {
            ci.is_none_or(|c| b.ci_ids.contains(&c))
                && workflow.is_none_or(|w| b.workflow_ids.contains(&w))
        });
        page_in_order(all, baseline_node, after, first, m.position)
    }

    /// A baseline at its current version.
    async fn baseline(
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
    ) -> Result<Option<Baseline>> {
        actor(ctx)?;
        let id = ids::parse("id", BaselineAggregate::KIND, &id)?;
        let m = models(ctx, at_least).await?;
        Ok(baseline_of(&m, id))
    }

    /// A CI's latest audit against each baseline it was audited against, newest first.
    async fn baseline_findings(
        &self,
        ctx: &Context<'_>,
        ci_id: ID,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<BaselineAudit>> {
        let actor = actor(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &ci_id)?;
        let m = models(ctx, at_least).await?;
        crate::kit::access::ci(&m, actor, ci_id)?;
        Ok(m.baselines
            .audits_of(ci_id)
            .into_iter()
            .map(|a| audit_node(&m, a))
            .collect())
    }
}

/// A VM to start, stop, restart, back up or delete.
#[derive(InputObject)]
pub struct VmInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    /// Why (recorded with a stop or a deletion).
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct RestoreVmInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    /// One of the VM's `backups`.
    pub backup_id: ID,
}

/// What a virtual-server operation did.
#[derive(SimpleObject)]
pub struct VmPayload {
    pub client_mutation_id: Option<String>,
    /// The VM.
    pub id: ID,
    /// The log position of its last event: pass it as `atLeast` to read your write.
    pub position: u64,
    /// The backup taken (`backupVm`).
    pub backup: Option<ID>,
}

#[derive(InputObject)]
pub struct BaselineInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    pub scope: BaselineScopeKind,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"description\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub description: Option<String>,
    /// Each setting's key and expected value (text; numbers and booleans are read as text).
    pub settings: Json<BTreeMap<String, serde_json::Value>>,
}

fn definition(input: BaselineInput) -> Result<BaselineDefinition> {
    let settings = input
        .settings
        .0
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad_input(
                        &format!("baseline.settings.{key}"),
                        "must be text, a number or a boolean",
                    ))
                }
            };
            Ok((key, text))
        })
        .collect::<Result<_>>()?;
    Ok(BaselineDefinition {
        name: input.name,
        scope: input.scope.into(),
        settings,
        description: input.description.unwrap_or_default(),
    })
}

#[derive(InputObject)]
pub struct CreateBaselineInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub baseline: BaselineInput,
}

#[derive(InputObject)]
pub struct EditBaselineInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub baseline_id: ID,
    /// The new version, whole.
    pub baseline: BaselineInput,
    /// Why it changed.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct AttachBaselineInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub baseline_id: ID,
    pub ci_ids: Option<Vec<ID>>,
    /// Provisioning workflows: audited against it after they provision.
    pub workflow_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct AuditBaselineInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    pub baseline_id: ID,
}

/// What an audit found.
#[derive(SimpleObject)]
pub struct AuditBaselinePayload {
    pub client_mutation_id: Option<String>,
    /// The CI.
    pub id: ID,
    pub position: u64,
    pub baseline_version: u32,
    pub compliant: bool,
    pub findings: Vec<BaselineFinding>,
}

#[derive(Default)]
pub struct VmMutation;

async fn on_vm(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    ci_id: &ID,
    operation: VmOperation,
) -> Result<VmPayload> {
    let domain = domain_context(ctx)?;
    let ci_id = ids::parse("ciId", CiAggregate::KIND, ci_id)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let backup = (operation == VmOperation::Backup).then(|| crate::backup_id(key));
    let w = ledger(ctx)
        .vm(ci_id, operation, &domain, key)
        .await
        .map_err(async_graphql::Error::from)?;
    Ok(VmPayload {
        client_mutation_id,
        id: ids::global(CiAggregate::KIND, ci_id),
        position: w.position,
        backup: backup.map(|b| ids::global(BACKUP, b)),
    })
}

fn reason(given: Option<String>, what: &str, actor: &str) -> String {
    given
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("{what} by {actor}"))
}

/// The ids of `list`, each of `kind`, naming the input field and place of a bad one.
fn parse_all(field: &str, kind: &str, list: Option<Vec<ID>>) -> Result<Vec<Uuid>> {
    list.into_iter()
        .flatten()
        .enumerate()
        .map(|(i, id)| ids::parse(&format!("{field}[{i}]"), kind, &id))
        .collect()
}

#[Object]
impl VmMutation {
    /// Starts a stopped VM (its owner or an operator).
    async fn start_vm(&self, ctx: &Context<'_>, input: VmInput) -> Result<VmPayload> {
        on_vm(
            ctx,
            input.client_mutation_id,
            &input.ci_id,
            VmOperation::Start,
        )
        .await
    }

    /// Stops a running VM; refused while a freeze holds it.
    async fn stop_vm(&self, ctx: &Context<'_>, input: VmInput) -> Result<VmPayload> {
        let reason = reason(input.reason, "stopped", &actor(ctx)?.id);
        on_vm(
            ctx,
            input.client_mutation_id,
            &input.ci_id,
            VmOperation::Stop { reason },
        )
        .await
    }

    /// Restarts a running VM; refused while a freeze holds it.
    async fn restart_vm(&self, ctx: &Context<'_>, input: VmInput) -> Result<VmPayload> {
        on_vm(
            ctx,
            input.client_mutation_id,
            &input.ci_id,
            VmOperation::Restart,
        )
        .await
    }

    /// Backs a VM up; the backup is listed in `backups` with its time and size.
    async fn backup_vm(&self, ctx: &Context<'_>, input: VmInput) -> Result<VmPayload> {
        on_vm(
            ctx,
            input.client_mutation_id,
            &input.ci_id,
            VmOperation::Backup,
        )
        .await
    }

    /// Restores one of a VM's backups; refused while a freeze holds it.
    async fn restore_vm(&self, ctx: &Context<'_>, input: RestoreVmInput) -> Result<VmPayload> {
        let backup_id = ids::parse("backupId", BACKUP, &input.backup_id)?;
        on_vm(
            ctx,
            input.client_mutation_id,
            &input.ci_id,
            VmOperation::Restore { backup_id },
        )
        .await
    }

    /// Deletes a VM, gives back its capacity, address and quota, and retires it; refused
    /// while a freeze holds it.
    async fn delete_vm(&self, ctx: &Context<'_>, input: VmInput) -> Result<VmPayload> {
        let reason = reason(input.reason, "deleted", &actor(ctx)?.id);
        on_vm(
            ctx,
            input.client_mutation_id,
            &input.ci_id,
            VmOperation::Delete { reason },
        )
        .await
    }

    /// Creates a configuration baseline (operators).
    async fn create_baseline(
        &self,
        ctx: &Context<'_>,
        input: CreateBaselineInput,
    ) -> Result<Payload> {
        let user = actor(ctx)?.id.clone();
        let id = new_id(ctx, &user, input.client_mutation_id.as_deref());
        let command = BaselineCommand::Create {
            baseline_id: id,
            definition: definition(input.baseline)?,
        };
        let operation = Operation::Baseline(id, command);
        operate(
            ctx,
            input.client_mutation_id,
            BaselineAggregate::KIND,
            id,
            operation,
        )
        .await
    }

    /// A new version of a baseline.
    async fn edit_baseline(&self, ctx: &Context<'_>, input: EditBaselineInput) -> Result<Payload> {
        let id = ids::parse("baselineId", BaselineAggregate::KIND, &input.baseline_id)?;
        let command = BaselineCommand::Edit {
            definition: definition(input.baseline)?,
            note: input.note.unwrap_or_default(),
        };
        let operation = Operation::Baseline(id, command);
        operate(
            ctx,
            input.client_mutation_id,
            BaselineAggregate::KIND,
            id,
            operation,
        )
        .await
    }

    /// Attaches a baseline to configuration items and provisioning workflows.
    async fn attach_baseline(
        &self,
        ctx: &Context<'_>,
        input: AttachBaselineInput,
    ) -> Result<Payload> {
        actor(ctx)?;
        let id = ids::parse("baselineId", BaselineAggregate::KIND, &input.baseline_id)?;
        let ci_ids = parse_all("ciIds", CiAggregate::KIND, input.ci_ids)?;
        let workflow_ids = parse_all("workflowIds", WORKFLOW, input.workflow_ids)?;
        // The log, not the models, says whether a CI exists: it may have just been
        // registered.
        for (i, ci) in ci_ids.iter().enumerate() {
            let stream = format!("{}-{ci}", CiAggregate::KIND);
            let events = ledger(ctx).stream(&stream).await.map_err(internal)?;
            if events.is_empty() {
                return Err(bad_input(
                    &format!("ciIds[{i}]"),
                    format!("there is no configuration item {ci}"),
                ));
            }
        }
        let command = BaselineCommand::Attach {
            workflow_ids,
            ci_ids,
        };
        let operation = Operation::Baseline(id, command);
        operate(
            ctx,
            input.client_mutation_id,
            BaselineAggregate::KIND,
            id,
            operation,
        )
        .await
    }

    /// Detaches a baseline from configuration items and workflows.
    async fn detach_baseline(
        &self,
        ctx: &Context<'_>,
        input: AttachBaselineInput,
    ) -> Result<Payload> {
        let id = ids::parse("baselineId", BaselineAggregate::KIND, &input.baseline_id)?;
        let command = BaselineCommand::Detach {
            ci_ids: parse_all("ciIds", CiAggregate::KIND, input.ci_ids)?,
            workflow_ids: parse_all("workflowIds", WORKFLOW, input.workflow_ids)?,
        };
        let operation = Operation::Baseline(id, command);
        operate(
            ctx,
            input.client_mutation_id,
            BaselineAggregate::KIND,
            id,
            operation,
        )
        .await
    }

    /// Collects a CI's configuration through the driver and compares it with a baseline;
    /// the findings are recorded on the CI (its owner or an operator).
    async fn audit_baseline(
        &self,
        ctx: &Context<'_>,
        input: AuditBaselineInput,
    ) -> Result<AuditBaselinePayload> {
        let domain = domain_context(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        let baseline_id = ids::parse("baselineId", BaselineAggregate::KIND, &input.baseline_id)?;
        let key = command_id(ctx, &domain.actor.id, input.client_mutation_id.as_deref());
        let audited = ledger(ctx)
            .audit_baseline(ci_id, baseline_id, &domain, key)
            .await
            .map_err(async_graphql::Error::from)?;
        Ok(AuditBaselinePayload {
            client_mutation_id: input.client_mutation_id,
            id: ids::global(CiAggregate::KIND, ci_id),
            position: audited.position,
            baseline_version: audited.baseline_version,
            compliant: audited.findings.is_empty(),
            findings: audited.findings.iter().map(finding_node).collect(),
        })
    }
}

/// Baseline `id` at its current version.
pub(crate) fn baseline_of(m: &ReadModels, id: Uuid) -> Option<Baseline> {
    m.baselines.get(id).map(baseline_node)
}
