//! The schema's [`Ledger`] trait, answered by the [`App`]: each command goes through the
//! command bus to its aggregate, the operations that span aggregates to [`crate::sagas`],
//! and reads to the projection runner and the store.

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsledger_domain::automation::baseline::Baseline;
use opsledger_domain::automation::library::LibraryItem;
use opsledger_domain::changes::change::Change;
use opsledger_domain::changes::freeze::FreezeWindow;
use opsledger_domain::kernel::aggregate::{Aggregate, Context, DomainEvent};
use opsledger_domain::notify::contact::Contact;
use opsledger_domain::operations::calendar::Calendar;
use opsledger_domain::operations::desk::Ticket;
use opsledger_domain::operations::emergency::{EmergencyPlan, PlanRun};
use opsledger_domain::operations::incident::Incident;
use opsledger_domain::operations::inspection::{Inspection, InspectionTemplate};
use opsledger_domain::operations::knowledge::Article;
use opsledger_domain::operations::sla::SlaPolicy;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogError, CatalogItem};
use opsledger_domain::requests::delegation::{DelegationCommand, DelegationError, DelegationState};
use opsledger_domain::requests::request::{CatalogSnapshot, Request, RequestCommand, RequestError};
use opsledger_domain::resources::cmdb::{CiCommand, CiError, ConfigurationItem};
use opsledger_domain::resources::ipam::{Subnet, SubnetCommand, SubnetError};
use opsledger_domain::resources::pool::{Pool, PoolCommand, PoolError};
use opsledger_domain::resources::quota::{quota_id, Quota, QuotaCommand, QuotaError};
use opsledger_domain::RecordedEvent;
use opsledger_schema::{
    Audited, Deploy, Ledger, Models, Operation, OperationError, ResourceError, VmError,
    VmOperation, Written,
};
use uuid::Uuid;

use crate::app::App;
use crate::store::commands::CommandError;

/// How long a read waits for the models to reach a position it asked for.
const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

impl App {
    /// Carries out a command through the bus, as the schema sees the outcome.
    async fn execute<A: Aggregate>(
        &self,
        id: Uuid,
        command: A::Command,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<A::Error>>
    where
        A::Event: DomainEvent,
    {
        let done = self.bus.execute::<A>(id, command, ctx, command_id).await?;
        Ok(Written {
            position: done.last_position,
        })
    }
}

/// A failure of one aggregate as a failure of a service-operations command.
fn lift<E: Into<OperationError>>(
    r: Result<Written, CommandError<E>>,
) -> Result<Written, CommandError<OperationError>> {
    r.map_err(|f| f.map_domain(Into::into))
}

#[async_trait::async_trait]
impl Ledger for App {
    async fn operate(
        &self,
        operation: Operation,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<OperationError>> {
        match operation {
            Operation::Incident(id, c) => {
                lift(self.execute::<Incident>(id, c, ctx, command_id).await)
            }
            Operation::Ticket(id, c) => lift(self.execute::<Ticket>(id, c, ctx, command_id).await),
            Operation::Calendar(id, c) => {
                lift(self.execute::<Calendar>(id, c, ctx, command_id).await)
            }
            Operation::Sla(id, c) => lift(self.execute::<SlaPolicy>(id, c, ctx, command_id).await),
            Operation::Article(id, c) => {
                lift(self.execute::<Article>(id, c, ctx, command_id).await)
            }
            Operation::Change(id, c) => lift(self.execute::<Change>(id, c, ctx, command_id).await),
            Operation::Freeze(id, c) => {
                lift(self.execute::<FreezeWindow>(id, c, ctx, command_id).await)
            }
            Operation::InspectionTemplate(id, c) => lift(
                self.execute::<InspectionTemplate>(id, c, ctx, command_id)
                    .await,
            ),
            Operation::Inspection(id, c) => {
                lift(self.execute::<Inspection>(id, c, ctx, command_id).await)
            }
            Operation::EmergencyPlan(id, c) => {
                lift(self.execute::<EmergencyPlan>(id, c, ctx, command_id).await)
            }
            Operation::PlanRun(id, c) => {
                lift(self.execute::<PlanRun>(id, c, ctx, command_id).await)
            }
            Operation::Workflow(id, c) => lift(
                self.execute::<opsledger_domain::automation::workflow::Workflow>(
                    id, c, ctx, command_id,
                )
                .await,
            ),
            Operation::Provisioning(id, c) => lift(
                self.execute::<opsledger_domain::automation::provisioning::Provisioning>(
                    id, c, ctx, command_id,
                )
                .await,
            ),
            Operation::LibraryItem(id, c) => {
                lift(self.execute::<LibraryItem>(id, c, ctx, command_id).await)
            }
            Operation::Contact(id, c) => {
                lift(self.execute::<Contact>(id, c, ctx, command_id).await)
            }
            Operation::Baseline(id, c) => {
                lift(self.execute::<Baseline>(id, c, ctx, command_id).await)
            }
        }
    }

    async fn catalog(
        &self,
        item_id: Uuid,
        command: CatalogCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<CatalogError>> {
        self.execute::<CatalogItem>(item_id, command, ctx, command_id)
            .await
    }

    async fn request(
        &self,
        request_id: Uuid,
        command: RequestCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<RequestError>> {
        self.execute::<Request>(request_id, command, ctx, command_id)
            .await
    }

    async fn delegation(
        &self,
        delegation_id: Uuid,
        command: DelegationCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<DelegationError>> {
        self.execute::<DelegationState>(delegation_id, command, ctx, command_id)
            .await
    }

    async fn pool(
        &self,
        pool_id: Uuid,
        command: PoolCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<PoolError>> {
        self.execute::<Pool>(pool_id, command, ctx, command_id)
            .await
    }

    async fn subnet(
        &self,
        subnet_id: Uuid,
        command: SubnetCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<SubnetError>> {
        self.execute::<Subnet>(subnet_id, command, ctx, command_id)
            .await
    }

    async fn quota(
        &self,
        department: &str,
        command: QuotaCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<QuotaError>> {
        self.execute::<Quota>(quota_id(department), command, ctx, command_id)
            .await
    }

    async fn ci(
        &self,
        ci_id: Uuid,
        command: CiCommand,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<CiError>> {
        self.execute::<ConfigurationItem>(ci_id, command, ctx, command_id)
            .await
    }

    async fn deploy(
        &self,
        deploy: Deploy,
        ctx: &Context,
    ) -> Result<Written, CommandError<ResourceError>> {
        crate::sagas::deploy::deploy(self, deploy, ctx).await
    }

    async fn move_ci(
        &self,
        ci_id: Uuid,
        to_pool: Uuid,
        ctx: &Context,
    ) -> Result<Written, CommandError<ResourceError>> {
        crate::sagas::deploy::move_ci(self, ci_id, to_pool, ctx).await
    }

    async fn reclaim(
        &self,
        ci_id: Uuid,
        reason: &str,
        ctx: &Context,
    ) -> Result<Written, CommandError<ResourceError>> {
        crate::sagas::deploy::reclaim(self, ci_id, reason, ctx).await
    }

    async fn vm(
        &self,
        ci_id: Uuid,
        operation: VmOperation,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Written, CommandError<VmError>> {
        crate::sagas::vm::operate(self, ci_id, operation, ctx, command_id).await
    }

    async fn audit_baseline(
        &self,
        ci_id: Uuid,
        baseline_id: Uuid,
        ctx: &Context,
        command_id: Uuid,
    ) -> Result<Audited, CommandError<VmError>> {
        crate::sagas::baseline::audit(self, ci_id, baseline_id, command_id, ctx).await
    }

    async fn quota_state(&self, department: &str) -> Result<Quota, opsledger_schema::Cause> {
        Ok(self.runner.quota(department))
    }

    async fn stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, opsledger_schema::Cause> {
        self.store
            .read_stream(stream, 0)
            .await
            .map_err(opsledger_schema::Cause::from)
    }

    async fn delegation_state(
        &self,
        delegation_id: Uuid,
    ) -> Result<DelegationState, opsledger_schema::Cause> {
        let (state, _) = self
            .bus
            .load::<DelegationState>(delegation_id)
            .await
            .map_err(opsledger_schema::Cause::from)?;
        Ok(state)
    }

    async fn catalog_item(
        &self,
        item_id: Uuid,
    ) -> Result<Option<CatalogSnapshot>, opsledger_schema::Cause> {
        let (item, _) = self
            .bus
            .load::<CatalogItem>(item_id)
            .await
            .map_err(opsledger_schema::Cause::from)?;
        Ok(item.definition.map(|definition| CatalogSnapshot {
            item_id,
            version: item.version,
            definition,
            retired: item.retired,
        }))
    }

    async fn models(&self) -> Models<'_> {
        Box::new(self.runner.read().await)
    }

    async fn wait_for(&self, position: u64) -> Result<(), u64> {
        self.runner.wait_for(position, READ_YOUR_WRITES).await
    }

    fn live(
        &self,
        after: u64,
    ) -> futures::stream::BoxStream<'static, Result<RecordedEvent, opsledger_schema::Cause>> {
        use futures::StreamExt;
        self.store
            .subscribe(after + 1)
            .map(|e| e.map_err(opsledger_schema::Cause::from))
            .boxed()
    }

    async fn events(
        &self,
        after: u64,
        first: usize,
    ) -> Result<Vec<RecordedEvent>, opsledger_schema::Cause> {
        self.store
            .read_all(after + 1, first)
            .await
            .map_err(opsledger_schema::Cause::from)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn content_size(&self, sha256: &str) -> Result<Option<u64>, opsledger_schema::Cause> {
        let Ok(hash) = crate::store::content::Sha256Hex::parse(sha256) else {
            return Ok(None);
        };
        self.content
            .size(&hash)
            .await
            .map_err(opsledger_schema::Cause::from)
    }
}
