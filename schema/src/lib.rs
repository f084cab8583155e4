//! OpsLedger's GraphQL schema: types and resolvers over the domain and the projections.
//!
//! It knows no database and no HTTP: it depends on `opsledger-domain`,
//! `opsledger-projections` and on the [`Ledger`] trait, which the binary implements with
//! its command bus, projection runner and event store. The authenticated [`Actor`] arrives
//! as request data; without one every field answers `UNAUTHENTICATED`.
mod audit;
mod automation;
mod changes;
mod kit;
mod node;
mod notify;
mod operations;
mod requests;
mod resources;
mod subscription;

use std::ops::Deref;

use async_graphql::Schema;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use opsledger_domain::automation::baseline::{BaselineCommand, BaselineError, Finding};
use opsledger_domain::automation::library::{LibraryCommand, LibraryError};
use opsledger_domain::changes::change::{ChangeCommand, ChangeError};
use opsledger_domain::changes::freeze::{FreezeCommand, FreezeError};
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::kernel::refusal::{Refusal, Refuse};
use opsledger_domain::notify::contact::{ContactCommand, ContactError};
use opsledger_domain::operations::calendar::{CalendarCommand, CalendarError};
use opsledger_domain::operations::desk::{TicketCommand, TicketError};
use opsledger_domain::operations::emergency::{
    EmergencyPlanCommand, EmergencyPlanError, PlanRunCommand, PlanRunError,
};
use opsledger_domain::operations::incident::{IncidentCommand, IncidentError};
use opsledger_domain::operations::inspection::{
    InspectionCommand, InspectionError, InspectionTemplateCommand, InspectionTemplateError,
};
use opsledger_domain::operations::knowledge::{ArticleCommand, ArticleError};
use opsledger_domain::operations::sla::{SlaCommand, SlaError};
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogError};
use opsledger_domain::requests::delegation::{DelegationCommand, DelegationError, DelegationState};
use opsledger_domain::requests::request::{CatalogSnapshot, RequestCommand, RequestError};
use opsledger_domain::resources::cmdb::{CiCommand, CiError, CiRecord};
use opsledger_domain::resources::ipam::{SubnetCommand, SubnetError};
use opsledger_domain::resources::pool::{Amount, PoolCommand, PoolError};
use opsledger_domain::resources::quota::{QuotaCommand, QuotaError};
use opsledger_domain::RecordedEvent;
use opsledger_projections::ReadModels;
use uuid::Uuid;

pub use kit::errors::{internal, internal_message, log_internal, Code};
pub use opsledger_domain::Actor;

/// Where a command's events landed.
#[derive(Clone, Copy, Debug)]
pub struct Written {
    /// The log position of the command's last event.
    pub position: u64,
}

/// What went wrong inside, below the rules: the store failed, a stored event did not
/// decode. The client never sees it; it is logged under an id the client is given.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a command was not carried out; nothing was appended. The one application error:
/// the command bus answers it, the [`Ledger`] passes it on, and the edge maps it to
/// `extensions.code` once (`From<CommandError<E>> for async_graphql::Error`, which is why
/// it lives in this crate).
///
/// It is deliberately not `Display`: async-graphql turns anything `Display` into an error
/// with no code, and that conversion would then be the one `?` picks. Text for a log is
/// [`CommandError::report`].
#[derive(Debug)]
pub enum CommandError<E> {
    /// The domain's rules refuse it; the refusal's class gives the code.
    Domain(E),
    /// Someone else changed the aggregate first, or the command id was used for another
    /// aggregate (`CONFLICT`, with this text).
    Conflict(String),
    /// Something failed inside (`INTERNAL`: the client gets an id, the log the cause).
    Internal(Cause),
}

/// A [`CommandError`] as text for a log or a recorded failure.
pub struct Report<'a, E>(&'a CommandError<E>);

impl<E: std::fmt::Display> std::fmt::Display for Report<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            CommandError::Domain(e) => e.fmt(f),
            CommandError::Conflict(m) => write!(f, "conflict: {m}"),
            CommandError::Internal(cause) => cause.fmt(f),
        }
    }
}

impl<E> CommandError<E> {
    /// An internal failure with its cause (an error, or a text saying what broke).
    pub fn internal(cause: impl Into<Cause>) -> Self {
        CommandError::Internal(cause.into())
    }

    /// The same failure, with the domain's refusal made another type's (an aggregate's
    /// refusal as one of the refusals a [`Ledger`] call may meet).
    pub fn map_domain<F>(self, f: impl FnOnce(E) -> F) -> CommandError<F> {
        match self {
            CommandError::Domain(e) => CommandError::Domain(f(e)),
            CommandError::Conflict(m) => CommandError::Conflict(m),
            CommandError::Internal(cause) => CommandError::Internal(cause),
        }
    }

    /// The error as text for a log: the refusal, the conflict, or the internal cause.
    pub fn report(&self) -> Report<'_, E> {
        Report(self)
    }

    /// Whether someone else changed the aggregate first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, CommandError::Conflict(_))
    }
}

/// A configuration item to bring into service: its quota, pool capacity and address are
/// taken in that order, and what was taken is given back if a later one fails.
#[derive(Clone, Debug)]
pub struct Deploy {
    pub ci_id: Uuid,
    /// The item; its placement and addresses are filled in by the deployment.
    pub record: CiRecord,
    pub pool_id: Option<Uuid>,
    pub amount: Amount,
    /// Counted things (licences, VLANs) it takes from the pool.
    pub units: opsledger_domain::resources::pool::Units,
    pub subnet_id: Option<Uuid>,
    /// A chosen address; the lowest free one when absent.
    pub address: Option<std::net::Ipv4Addr>,
    /// The CI (a host) it runs on.
    pub runs_on: Option<Uuid>,
    /// The request went through its over-quota step.
    pub over_quota_approved: bool,
}

/// Why a deployment, move or reclamation stopped: the refusal of the aggregate concerned.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    #[error(transparent)]
    Quota(#[from] QuotaError),
    #[error(transparent)]
    Ci(#[from] CiError),
}

impl Refuse for ResourceError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            ResourceError::Pool(e) => e.refusal(),
            ResourceError::Subnet(e) => e.refusal(),
            ResourceError::Quota(e) => e.refusal(),
            ResourceError::Ci(e) => e.refusal(),
        }
    }
}

/// An operation on a virtual server, carried out by the driver and recorded on its CI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmOperation {
    Start,
    Stop {
        reason: String,
    },
    Restart,
    /// Takes a backup, named [`backup_id`] of the command.
    Backup,
    Restore {
        backup_id: Uuid,
    },
    /// Deletes the VM, then gives back its capacity, address and quota and retires it.
    Delete {
        reason: String,
    },
}

impl VmOperation {
    /// The driver operation it calls.
    pub fn driver_operation(&self) -> &'static str {
        match self {
            VmOperation::Start => "start_vm",
            VmOperation::Stop { .. } => "stop_vm",
            VmOperation::Restart => "restart_vm",
            VmOperation::Backup => "backup_vm",
            VmOperation::Restore { .. } => "restore_vm",
            VmOperation::Delete { .. } => "delete_vm",
        }
    }

    /// Whether a freeze in force on the VM refuses it (what takes it out of service or
    /// changes what runs on it; starting it and backing it up do not).
    pub fn held_by_freezes(&self) -> bool {
        !matches!(self, VmOperation::Start | VmOperation::Backup)
    }
}

/// The id of the backup a backup command takes: the same for a retry of the command.
pub fn backup_id(command_id: Uuid) -> Uuid {
    Uuid::new_v5(&command_id, b"backup")
}

/// Why a virtual-server operation or a baseline audit was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The CI refuses it: not its owner or an operator, retired, already in that state…
    /// (the refusal's class)
    #[error(transparent)]
    Ci(#[from] CiError),
    /// A freeze in force holds the VM, named (conflict)
    #[error(transparent)]
    Frozen(#[from] opsledger_domain::changes::freeze::Frozen),
    /// The driver failed; the failure is recorded on the CI, which is otherwise as it was.
    /// `INTERNAL`, but not opaque: the driver's message is about the caller's VM, the
    /// same text is listed with the CI's operations, and it tells them what to fix
    /// (internal, with the driver's message)
    #[error("the driver failed to {operation}: {message}")]
    Driver { operation: String, message: String },
    /// A deletion's reclamation stopped (the refusal's class)
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The baseline audited against refuses (the refusal's class)
    #[error(transparent)]
    Baseline(#[from] BaselineError),
}

/// What an audit found, and where it was recorded.
#[derive(Clone, Debug)]
pub struct Audited {
    pub findings: Vec<Finding>,
    pub baseline_version: u32,
    pub position: u64,
}

/// A command to one of the service-operations aggregates, with the id of its stream.
#[derive(Clone, Debug)]
pub enum Operation {
    Incident(Uuid, IncidentCommand),
    Ticket(Uuid, TicketCommand),
    Calendar(Uuid, CalendarCommand),
    Sla(Uuid, SlaCommand),
    Article(Uuid, ArticleCommand),
    Change(Uuid, ChangeCommand),
    Freeze(Uuid, FreezeCommand),
    InspectionTemplate(Uuid, InspectionTemplateCommand),
    Inspection(Uuid, InspectionCommand),
    EmergencyPlan(Uuid, EmergencyPlanCommand),
    PlanRun(Uuid, PlanRunCommand),
    Workflow(
        Uuid,
        opsledger_domain::automation::workflow::WorkflowCommand,
    ),
    Provisioning(
        Uuid,
        opsledger_domain::automation::provisioning::ProvisioningCommand,
    ),
    LibraryItem(Uuid, LibraryCommand),
    Contact(Uuid, ContactCommand),
    Baseline(Uuid, BaselineCommand),
}

/// Why a service-operations command was refused: the aggregate's own error.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Incident(#[from] IncidentError),
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Sla(#[from] SlaError),
    #[error(transparent)]
    Article(#[from] ArticleError),
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    #[error(transparent)]
    InspectionTemplate(#[from] InspectionTemplateError),
    #[error(transparent)]
    Inspection(#[from] InspectionError),
    #[error(transparent)]
    EmergencyPlan(#[from] EmergencyPlanError),
    #[error(transparent)]
    PlanRun(#[from] PlanRunError),
    #[error(transparent)]
    Workflow(#[from] opsledger_domain::automation::workflow::WorkflowError),
    #[error(transparent)]
    Provisioning(#[from] opsledger_domain::automation::provisioning::ProvisioningError),
    #[error(transparent)]
    LibraryItem(#[from] LibraryError),
    #[error(transparent)]
    Contact(#[from] ContactError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
}

impl Refuse for OperationError {
    fn refusal(&self) -> Refusal<'_> {
        use OperationError as O;
        match self {
            O::Incident(e) => e.refusal(),
            O::Ticket(e) => e.refusal(),
            O::Calendar(e) => e.refusal(),
            O::Sla(e) => e.refusal(),
            O::Article(e) => e.refusal(),
            O::Change(e) => e.refusal(),
            O::Freeze(e) => e.refusal(),
            O::InspectionTemplate(e) => e.refusal(),
            O::Inspection(e) => e.refusal(),
            O::EmergencyPlan(e) => e.refusal(),
            O::PlanRun(e) => e.refusal(),
            O::Workflow(e) => e.refusal(),
            O::Provisioning(e) => e.refusal(),
            O::LibraryItem(e) => e.refusal(),
            O::Contact(e) => e.refusal(),
            O::Baseline(e) => e.refusal(),
        }
    }
}

/// Read access to the models, held for the length of a resolver.
pub type Models<'a> = Box<dyn Deref<Target = ReadModels> + Send + Sync + 'a>;

/// What the schema needs from the running system.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Carries out a catalogue command; `command_id` is the idempotency key.
    async fn catalog(
        &self,
        item_id: Uuid,
        command: CatalogCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<CatalogError>>;

    /// Carries out a request command; `command_id` is the idempotency key.
    async fn request(
        &self,
        request_id: Uuid,
        command: RequestCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<RequestError>>;

    /// Carries out a delegation command; `command_id` is the idempotency key.
    async fn delegation(
        &self,
        delegation_id: Uuid,
        command: DelegationCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<DelegationError>>;

    /// Carries out a pool command; `command_id` is the idempotency key.
    async fn pool(
        &self,
        pool_id: Uuid,
        command: PoolCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<PoolError>>;

    /// Carries out a subnet command; `command_id` is the idempotency key.
    async fn subnet(
        &self,
        subnet_id: Uuid,
        command: SubnetCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<SubnetError>>;

    /// Carries out a quota command on a department's quota.
    async fn quota(
        &self,
        department: &str,
        command: QuotaCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<QuotaError>>;

    /// Carries out a command on a configuration item.
    async fn ci(
        &self,
        ci_id: Uuid,
        command: CiCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<CiError>>;

    /// Carries out a service-operations command (incidents, tickets, calendars, SLA
    /// policies, knowledge articles, changes and freezes, inspections, emergency plans,
    /// library items);
    /// `command_id` is the idempotency key.
    async fn operate(
        &self,
        operation: Operation,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<OperationError>>;

    /// Brings a configuration item into service (see [`Deploy`]); done already is done.
    async fn deploy(
        &self,
        deploy: Deploy,
        ctx: &Context,
    ) -> Result<Written, CommandError<ResourceError>>;

    /// Moves a configuration item's capacity to another pool.
    async fn move_ci(
        &self,
        ci_id: Uuid,
        to_pool: Uuid,
        ctx: &Context,
    ) -> Result<Written, CommandError<ResourceError>>;

    /// Takes a configuration item out of service: stopped, its capacity, address and quota
    /// given back, retired.
    async fn reclaim(
        &self,
        ci_id: Uuid,
        reason: &str,
        ctx: &Context,
    ) -> Result<Written, CommandError<ResourceError>>;

    /// Carries out an operation on a virtual server through the driver, recorded on its
    /// CI; `command_id` is the idempotency key (and the driver call's run id).
    async fn vm(
        &self,
        ci_id: Uuid,
        operation: VmOperation,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<VmError>>;

    /// Collects a CI's configuration through the driver, compares it with a baseline and
    /// records the findings on the CI; a retry returns the findings recorded.
    async fn audit_baseline(
        &self,
        ci_id: Uuid,
        baseline_id: Uuid,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Audited, CommandError<VmError>>;

    /// A department's quota figures as the read models last folded them, without waiting
    /// for their lock (advisory: deployments check the quota as the log has it).
    async fn quota_state(
        &self,
        department: &str,
    ) -> Result<opsledger_domain::resources::quota::Quota, Cause>;

    /// Every event of one stream, in order.
    async fn stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, Cause>;

    /// A delegation as the log has it now: what an approval on someone's behalf is
    /// decided against.
    async fn delegation_state(&self, delegation_id: Uuid) -> Result<DelegationState, Cause>;

    /// A catalogue item as the log has it now (not as a projection may lag behind it):
    /// what a request is decided against.
    async fn catalog_item(&self, item_id: Uuid) -> Result<Option<CatalogSnapshot>, Cause>;

    /// The read models as they are now.
    async fn models(&self) -> Models<'_>;

    /// Waits (bounded) until the read models reflect `position`; the position reached
    /// when it gives up.
    async fn wait_for(&self, position: u64) -> Result<(), u64>;

    /// Every event after position `after`, then each new one as it is committed.
    fn live(&self, after: u64) -> BoxStream<'static, Result<RecordedEvent, Cause>>;

    /// Up to `first` events after position `after`, in order.
    async fn events(&self, after: u64, first: usize) -> Result<Vec<RecordedEvent>, Cause>;

    /// The injected clock.
    fn now(&self) -> DateTime<Utc>;

    /// The size in bytes of the file the content store holds under `sha256`, `None` when
    /// it holds none (or `sha256` is not a well-formed hash).
    async fn content_size(&self, sha256: &str) -> Result<Option<u64>, Cause>;
}

/// The schema type.
pub type OpsSchema = Schema<Query, Mutation, subscription::Subscription>;

/// Every read.
#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    node::NodeQuery,
    requests::query::Query,
    audit::AuditQuery,
    notify::notifications::NotificationsQuery,
    resources::ResourceQuery,
    operations::OperationsQuery,
    operations::knowledge::KnowledgeQuery,
    operations::emergency::EmergencyQuery,
    operations::inspections::InspectionsQuery,
    changes::ChangeQuery,
    automation::AutomationQuery,
    automation::library::LibraryQuery,
    notify::mail::MailQuery,
    automation::vm::VmQuery,
);

/// Every change.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    requests::mutation::Mutation,
    resources::ResourceMutation,
    operations::OperationsMutation,
    operations::knowledge::KnowledgeMutation,
    operations::emergency::EmergencyMutation,
    operations::inspections::InspectionsMutation,
    changes::ChangeMutation,
    automation::AutomationMutation,
    automation::library::LibraryMutation,
    notify::mail::MailMutation,
    automation::vm::VmMutation,
);

pub use changes::cmdb_updates;
pub use kit::access::reads_operations;
pub use operations::incident_report;
pub use resources::{usage_csv, UsageGroup, UsageParams, UsagePeriod};

/// Builds the schema over `ledger`, with depth and complexity limits that leave the
/// introspection fields to limits of their own (see `limits.rs`).
pub fn build(ledger: std::sync::Arc<dyn Ledger>) -> OpsSchema {
    builder(ledger).finish()
}

/// The schema over `ledger`, with depth and complexity limits, to which the server adds
/// its extensions.
pub fn builder(
    ledger: std::sync::Arc<dyn Ledger>,
) -> async_graphql::SchemaBuilder<Query, Mutation, subscription::Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .data(ledger)
    .extension(kit::readonly::ReadOnly)
    .extension(kit::errors::Codes)
    .extension(kit::limits::Limits)
}

/// The schema in SDL, as committed in `schema/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl()
}

#[cfg(test)]
mod tests {
    /// The committed SDL is the schema: a change to the code shows up in review as a change
    /// to `schema/schema.graphql`. Run with `UPDATE_SCHEMA=1` to rewrite the file.
    #[test]
    fn the_committed_schema_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
        let sdl = super::sdl();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &sdl).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == sdl,
            "schema/schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test -p opsledger-schema` and commit it"
        );
    }

    /// Every number, date and string a client sends has a documented range that is
    /// checked (see `bounds`): an argument or input field of one of those types without a
    /// description stating it fails here, so a new one cannot be added without one.
    #[test]
    fn the_committed_schema_documents_the_range_of_every_number_date_and_string() {
        use async_graphql::parser::types::{BaseType, InputValueDefinition, Type, TypeKind};
        use async_graphql::parser::{parse_schema, types::TypeSystemDefinition};

        fn named(ty: &Type) -> &str {
            match &ty.base {
                BaseType::Named(n) => n.as_str(),
                BaseType::List(inner) => named(inner),
            }
        }
        fn documents_its_range(v: &InputValueDefinition) -> bool {
            let description = v.description.as_ref().map_or("", |d| d.node.as_str());
            match named(&v.ty.node) {
                "Int" | "Float" => description.contains("Range: ") && description.contains('–'),
                "DateTime" | "NaiveDate" => description.contains("Range: 1970-01-01–9999-12-31"),
                "String" => description.contains("At most ") && description.contains(" characters"),
                _ => true,
            }
        }

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
        let document = parse_schema(std::fs::read_to_string(path).unwrap()).unwrap();
        let mut undocumented = Vec::new();
        let mut checked = 0;
        for definition in &document.definitions {
            let TypeSystemDefinition::Type(t) = definition else {
                continue;
            };
            let owner = t.node.name.node.as_str();
            let values: Vec<(String, &InputValueDefinition)> = match &t.node.kind {
                TypeKind::InputObject(input) => input
                    .fields
                    .iter()
                    .map(|f| (format!("{owner}.{}", f.node.name.node), &f.node))
                    .collect(),
                TypeKind::Object(object) => object
                    .fields
                    .iter()
                    .flat_map(|field| {
                        field.node.arguments.iter().map(move |a| {
                            (
                                format!("{owner}.{}({})", field.node.name.node, a.node.name.node),
                                &a.node,
                            )
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (name, value) in values {
                checked += 1;
                if !documents_its_range(value) {
                    undocumented.push(name);
                }
            }
        }
        assert!(
            checked > 400,
            "only {checked} arguments and input fields were read"
        );
        assert!(
            undocumented.is_empty(),
            "these arguments and input fields do not document their checked range (see \
             schema/src/bounds.rs): {undocumented:#?}"
        );
    }
}
