//! Reads. Every list is a Relay connection that says which log position it reflects; any
//! read can ask to wait (bounded) until the models reach a position it has just written.

use async_graphql::{Context, Enum, InputObject, Object, Result, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::automation::baseline::Baseline as BaselineAggregate;
use opsledger_domain::automation::library::LibraryItem as LibraryAggregate;
use opsledger_domain::automation::provisioning::Provisioning as ProvisioningAggregate;
use opsledger_domain::automation::workflow::Workflow as WorkflowAggregate;
use opsledger_domain::kernel::aggregate::{Aggregate, Role};
use opsledger_domain::requests::catalog::CatalogItem as CatalogItemAggregate;
use opsledger_domain::requests::delegation::DelegationState;
use opsledger_domain::requests::request::Request as RequestAggregate;
use opsledger_domain::resources::cmdb::ConfigurationItem as CiAggregate;
use opsledger_projections::audit::AuditFilter;
use opsledger_projections::requests::{Order, RequestFilter};

use crate::kit::access;
use crate::kit::errors::{error, internal, Code};
use crate::kit::ids;
use crate::kit::{actor, cursor, ledger, models, page, page_in_order, page_size, require, Page};
use crate::requests::types::{
    AuditEntryNode, CatalogItem, ComplianceFinding, Delegation, Event, Node, Notification, Request,
    RequestStatus,
};

#[derive(Default)]
pub struct Query;

/// Narrows a list of requests.
#[derive(InputObject, Default)]
pub struct RequestsFilter {
    pub status: Option<RequestStatus>,
    /// `new_resource`, `change_configuration`, `extend_lease` or `install_software`.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"kind\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub kind: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub department: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"project\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub project: Option<String>,
    /// The requester's user id.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"requester\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub requester: Option<String>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"submittedFrom\")"))]
    pub submitted_from: Option<DateTime<Utc>>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"submittedUntil\")"))]
    pub submitted_until: Option<DateTime<Utc>>,
}

/// The order of a list of requests.
#[derive(Enum, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequestOrder {
    /// By submission, oldest first.
    #[default]
    OldestFirst,
    /// By submission, newest first.
    NewestFirst,
}

/// Narrows the audit trail.
#[derive(InputObject, Default)]
pub struct AuditTrailFilter {
    /// An entity, `<kind>-<uuid>`, e.g. `request-0190…`.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"entity\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub entity: Option<String>,
    /// A user id: what they did, and what was done on their behalf.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"actor\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub actor: Option<String>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"from\")"))]
    pub from: Option<DateTime<Utc>>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"until\")"))]
    pub until: Option<DateTime<Utc>>,
}

#[Object(name = "FlowQuery")]
impl Query {
    /// The log position the read models reflect now.
    async fn position(&self, ctx: &Context<'_>) -> Result<u64> {
        actor(ctx)?;
        Ok(models(ctx, None).await?.position)
    }

    /// The service catalogue: for requesters, the open items their role and department
    /// may request; catalogue administrators, auditors and admins see every item.
    async fn service_catalog(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Include retired items (administrators and auditors only).")]
        include_retired: Option<bool>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Wait until the catalogue reflects this position. Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<CatalogItem>> {
        let actor = actor(ctx)?;
        let m = models(ctx, at_least).await?;
        let items = access::catalogue(&m, actor, include_retired.unwrap_or(false));
        page_in_order(items, CatalogItem::from, after, first, m.position)
    }

    /// Requests in submission order, oldest first unless asked otherwise. Requesters see
    /// their own department's requests and their own.
    async fn requests(
        &self,
        ctx: &Context<'_>,
        filter: Option<RequestsFilter>,
        order_by: Option<RequestOrder>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Wait until the list reflects this position. Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Request>> {
        let actor = actor(ctx)?;
        let f = filter.unwrap_or_default();
        let mut filter = RequestFilter {
            status: f.status.map(Into::into),
            kind: f.kind,
            department: f.department,
            project: f.project,
            requester: f.requester,
            submitted_from: f.submitted_from,
            submitted_until: f.submitted_until,
            reader: None,
        };
        access::narrow_requests(actor, &mut filter)?;
        let after = cursor(after)?;
        let order = match order_by.unwrap_or_default() {
            RequestOrder::OldestFirst => Order::OldestFirst,
            RequestOrder::NewestFirst => Order::NewestFirst,
        };
        let m = models(ctx, at_least).await?;
        let items = m.requests.list(&filter, after, order);
        page(items, Request::from, after.is_some(), first, m.position)
    }

    /// One request.
    async fn request(
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
    ) -> Result<Request> {
        let actor = actor(ctx)?;
        let id = ids::parse("id", RequestAggregate::KIND, &id)?;
        let m = models(ctx, at_least).await?;
        access::request(&m, actor, id).map(Request::from)
    }

    /// Anything by its global id (`<kind>-<uuid>`), if you may see it: a catalogue item, a
    /// request, a delegation, a configuration item, a workflow, a provisioning run, a
    /// library item or a baseline.
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
        let actor = actor(ctx)?;
        let not_found = || {
            error(
                Code::NotFound,
                format!("there is nothing with id {:?}", id.as_str()),
            )
        };
        let (kind, uuid) = ids::split(&id).ok_or_else(not_found)?;
        let m = models(ctx, at_least).await?;
        match kind {
            RequestAggregate::KIND => {
                access::request(&m, actor, uuid).map(|r| Node::Request(r.into()))
            }
            CatalogItemAggregate::KIND => {
                access::catalog_item(&m, actor, uuid).map(|e| Node::CatalogItem(e.into()))
            }
            DelegationState::KIND => {
                access::delegation(&m, actor, uuid).map(|d| Node::Delegation(d.into()))
            }
            WorkflowAggregate::KIND => {
                access::require_automation(ctx)?;
                crate::automation::workflow_of(&m, uuid, None)
                    .map(Node::Workflow)
                    .ok_or_else(not_found)
            }
            ProvisioningAggregate::KIND => {
                access::require_automation(ctx)?;
                crate::automation::run_of(&m, uuid)
                    .map(Node::ProvisioningRun)
                    .ok_or_else(not_found)
            }
            LibraryAggregate::KIND => crate::automation::library::item_of(&m, uuid)
                .map(Node::LibraryItem)
                .ok_or_else(not_found),
            BaselineAggregate::KIND => crate::automation::vm::baseline_of(&m, uuid)
                .map(Node::Baseline)
                .ok_or_else(not_found),
            CiAggregate::KIND => access::ci(&m, actor, uuid).and_then(|v| {
                crate::resources::view_node(v, m.position)
                    .map(Node::ConfigurationItem)
                    .ok_or_else(not_found)
            }),
            _ => Err(not_found()),
        }
    }

    /// Delegations you granted or were named substitute in, in the order granted
    /// (auditors and admins see every one).
    async fn delegations(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Delegation>> {
        let actor = actor(ctx)?;
        let m = models(ctx, at_least).await?;
        let items = access::delegations(&m, actor);
        page_in_order(
            items,
            |d| -> Delegation { d.into() },
            after,
            first,
            m.position,
        )
    }

    /// What you are told, oldest first: decisions waiting for you, escalations to your
    /// role, the outcome of your requests, delegations to you.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Notification>> {
        let actor = actor(ctx)?;
        let after = cursor(after)?;
        let m = models(ctx, at_least).await?;
        let items = m.notifications.for_actor(actor, after);
        let with_email = |n: &opsledger_projections::notify::notifications::Notice| {
            let mut shown = Notification::from(n);
            let id = opsledger_domain::notify::mail::mail_id(n.position, &actor.id);
            if let Some(mail) = m.mail.get(id) {
                shown.email_status = Some(mail.status.into());
                shown.emailed_at = mail.sent_at;
            }
            shown
        };
        page(items, with_email, after.is_some(), first, m.position)
    }

    /// The requests whose open step you may decide now.
    async fn pending_approvals(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Request>> {
        let actor = actor(ctx)?;
        let now = ledger(ctx).now();
        let after = cursor(after)?;
        let m = models(ctx, at_least).await?;
        let items = m.requests.pending_for(actor, now, after);
        page(items, Request::from, after.is_some(), first, m.position)
    }

    /// Who did what, when, with which comment, in log order (auditors and admins).
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditTrailFilter>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<AuditEntryNode>> {
        require(actor(ctx)?, &[Role::Auditor])?;
        let f = filter.unwrap_or_default();
        let filter = AuditFilter {
            stream: f.entity,
            actor: f.actor,
            from: f.from,
            until: f.until,
        };
        let m = models(ctx, at_least).await?;
        let items = m.audit.entries(&filter);
        page_in_order(items, AuditEntryNode::from, after, first, m.position)
    }

    /// Breaches of the approval rules anywhere in the history (auditors and admins).
    async fn compliance_findings(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<ComplianceFinding>> {
        require(actor(ctx)?, &[Role::Auditor])?;
        let m = models(ctx, at_least).await?;
        let items = m.compliance.findings().iter();
        page_in_order(items, ComplianceFinding::from, after, first, m.position)
    }

    /// The raw ordered feed of the log: up to `first` events after position `after`
    /// (auditors, operators and admins).
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"after\", crate::kit::bounds::POSITION)"
            )
        )]
        after: Option<u64>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
    ) -> Result<Vec<Event>> {
        require(actor(ctx)?, &[Role::Auditor, Role::Operator])?;
        let first = page_size(first, 100)?;
        let events = ledger(ctx)
            .events(after.unwrap_or(0), first)
            .await
            .map_err(internal)?;
        Ok(events
            .into_iter()
            .map(crate::requests::types::event_node)
            .collect())
    }
}
