//! Reads. Every list is a Relay connection that says which log position it reflects; any
//! read can ask to wait (bounded) until the models reach a position it has just written.

use async_graphql::{Context, Enum, InputObject, Object, Result, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, Role};
use opsledger_domain::requests::request::Request as RequestAggregate;
use opsledger_projections::requests::{Order, RequestFilter};

use crate::kit::access;
use crate::kit::ids;
use crate::kit::{actor, cursor, ledger, models, page, page_in_order, require, Page};
use crate::requests::types::{CatalogItem, ComplianceFinding, Delegation, Request, RequestStatus};

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
}
