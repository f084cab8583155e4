//! `node(id:)`: anything by its global id, `<kind>-<uuid>`, if the reader may see it.
//!
//! The one module that names every area. Each kind is read by its area's own read-by-id
//! function, the same one its own field calls, so `node(id:)` and the field agree on who
//! sees what (`tests/it/access.rs`).

use async_graphql::{Context, Interface, Object, Result, ID};
use opsledger_domain::automation::baseline::Baseline as BaselineAggregate;
use opsledger_domain::automation::library::LibraryItem as LibraryAggregate;
use opsledger_domain::automation::provisioning::Provisioning as ProvisioningAggregate;
use opsledger_domain::automation::workflow::Workflow as WorkflowAggregate;
use opsledger_domain::changes::change::Change as ChangeAggregate;
use opsledger_domain::changes::freeze::FreezeWindow;
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::notify::mail::Mail as MailAggregate;
use opsledger_domain::operations::calendar::Calendar as CalendarAggregate;
use opsledger_domain::operations::desk::Ticket as TicketAggregate;
use opsledger_domain::operations::emergency::{EmergencyPlan, PlanRun as PlanRunAggregate};
use opsledger_domain::operations::incident::Incident as IncidentAggregate;
use opsledger_domain::operations::inspection::{
    Inspection as InspectionAggregate, InspectionTemplate,
};
use opsledger_domain::operations::knowledge::Article as ArticleAggregate;
use opsledger_domain::requests::catalog::CatalogItem as CatalogItemAggregate;
use opsledger_domain::requests::delegation::DelegationState;
use opsledger_domain::requests::request::Request as RequestAggregate;
use opsledger_domain::resources::cmdb::ConfigurationItem as CiAggregate;
use opsledger_domain::resources::ipam::Subnet as SubnetAggregate;
use opsledger_domain::resources::pool::Pool as PoolAggregate;

use crate::kit::errors::{error, Code};
use crate::kit::{access, actor, ids, models};
use crate::{automation, changes, notify, operations, requests, resources};

/// Anything with a global id, `<kind>-<uuid>`, found again by `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "&ID", desc = "The global id, `<kind>-<uuid>`."))]
pub enum Node {
    CatalogItem(requests::types::CatalogItem),
    Request(requests::types::Request),
    Delegation(requests::types::Delegation),
    Pool(resources::Pool),
    Subnet(resources::Subnet),
    ConfigurationItem(resources::Ci),
    Incident(operations::Incident),
    Ticket(operations::TicketNode),
    WorkOrder(operations::WorkOrder),
    Calendar(operations::CalendarNode),
    Article(operations::knowledge::Article),
    InspectionTemplate(operations::inspections::InspectionTemplate),
    Inspection(operations::inspections::Inspection),
    EmergencyPlan(operations::emergency::EmergencyPlan),
    PlanRun(operations::emergency::PlanRun),
    Change(changes::Change),
    Freeze(changes::Freeze),
    Workflow(automation::Workflow),
    ProvisioningRun(automation::ProvisioningRun),
    LibraryItem(automation::library::LibraryItem),
    Baseline(automation::vm::Baseline),
    Mail(notify::mail::Mail),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Anything by its global id (`<kind>-<uuid>`), if you may see it: every kind that
    /// implements `Node`. A backup's id names a backup inside its VM: read it with
    /// `backups(ciId:)`.
    async fn node(
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
    ) -> Result<Node> {
        let reader = actor(ctx)?;
        let not_found = || {
            error(
                Code::NotFound,
                format!("there is nothing with id {:?}", id.as_str()),
            )
        };
        let (kind, uuid) = ids::split(&id).ok_or_else(not_found)?;
        let m = models(ctx, at_least).await?;
        let found: Option<Node> = match kind {
            RequestAggregate::KIND => {
                Some(Node::Request(access::request(&m, reader, uuid)?.into()))
            }
            CatalogItemAggregate::KIND => Some(Node::CatalogItem(
                access::catalog_item(&m, reader, uuid)?.into(),
            )),
            DelegationState::KIND => Some(Node::Delegation(
                access::delegation(&m, reader, uuid)?.into(),
            )),
            CiAggregate::KIND => resources::view_node(access::ci(&m, reader, uuid)?, m.position)
                .map(Node::ConfigurationItem),
            PoolAggregate::KIND => resources::pool_by_id(ctx, &m, uuid, None)?.map(Node::Pool),
            SubnetAggregate::KIND => resources::subnet_by_id(ctx, &m, uuid)?.map(Node::Subnet),
            IncidentAggregate::KIND => {
                operations::incident_by_id(ctx, &m, uuid)?.map(Node::Incident)
            }
            TicketAggregate::KIND => operations::ticket_by_id(ctx, &m, uuid)?.map(Node::Ticket),
            ids::WORK_ORDER => operations::work_order_by_id(ctx, &m, uuid)?.map(Node::WorkOrder),
            CalendarAggregate::KIND => {
                operations::calendar_by_id(ctx, &m, uuid)?.map(Node::Calendar)
            }
            ArticleAggregate::KIND => {
                operations::knowledge::article_by_id(ctx, &m, uuid, None)?.map(Node::Article)
            }
            InspectionTemplate::KIND => operations::inspections::template_by_id(ctx, &m, uuid)?
                .map(Node::InspectionTemplate),
            InspectionAggregate::KIND => {
                operations::inspections::inspection_by_id(ctx, &m, uuid)?.map(Node::Inspection)
            }
            EmergencyPlan::KIND => {
                operations::emergency::plan_by_id(ctx, &m, uuid, None)?.map(Node::EmergencyPlan)
            }
            PlanRunAggregate::KIND => {
                operations::emergency::run_by_id(ctx, &m, uuid)?.map(Node::PlanRun)
            }
            ChangeAggregate::KIND => changes::change_by_id(ctx, &m, uuid)?.map(Node::Change),
            FreezeWindow::KIND => changes::freeze_by_id(ctx, &m, uuid)?.map(Node::Freeze),
            WorkflowAggregate::KIND => {
                access::require_automation(ctx)?;
                automation::workflow_of(&m, uuid, None).map(Node::Workflow)
            }
            ProvisioningAggregate::KIND => {
                access::require_automation(ctx)?;
                automation::run_of(&m, uuid).map(Node::ProvisioningRun)
            }
            LibraryAggregate::KIND => automation::library::item_of(&m, uuid).map(Node::LibraryItem),
            BaselineAggregate::KIND => automation::vm::baseline_of(&m, uuid).map(Node::Baseline),
            MailAggregate::KIND => notify::mail::mail_by_id(ctx, &m, uuid)?.map(Node::Mail),
            _ => None,
        };
        found.ok_or_else(not_found)
    }
}
