//! Reads. Every list is a Relay connection that says which log position it reflects; any
//! read can ask to wait (bounded) until the models reach a position it has just written.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, InputObject, Object, OutputType, Result, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::aggregate::Role;
use opsledger_domain::Actor;
use opsledger_projections::audit::AuditFilter;
use opsledger_projections::requests::RequestFilter;
use uuid::Uuid;

use crate::errors::{bad_input, error, Code};
use crate::types::{
    AuditEntryNode, CatalogItem, ComplianceFinding, Event, ReadAt, Request, RequestStatus,
};
use crate::{Ledger, Models};

pub struct Query;

/// A page of a list, with the position it reflects.
pub type Page<T> = Connection<OpaqueCursor<usize>, T, ReadAt>;

/// The longest page a client may ask for.
const MAX_PAGE: usize = 500;

/// The signed-in actor, or `UNAUTHENTICATED`.
pub(crate) fn actor<'a>(ctx: &Context<'a>) -> Result<&'a Actor> {
    ctx.data_opt::<Actor>()
        .ok_or_else(|| error(Code::Unauthenticated, "a bearer token is required"))
}

pub(crate) fn ledger<'a>(ctx: &Context<'a>) -> &'a Arc<dyn Ledger> {
    ctx.data_unchecked::<Arc<dyn Ledger>>()
}

pub(crate) fn require(actor: &Actor, roles: &[Role]) -> Result<()> {
    if roles.iter().any(|r| actor.has_role(*r)) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(error(
            Code::Forbidden,
            format!("this needs one of the roles {}", names.join(", ")),
        ))
    }
}

/// Waits until the models reflect `at_least` (when asked).
pub(crate) async fn reach(ledger: &Arc<dyn Ledger>, at_least: Option<u64>) -> Result<()> {
    if let Some(position) = at_least {
        ledger.wait_for(position).await.map_err(|reached| {
            error(
                Code::Conflict,
                format!(
                    "the read models reached position {reached}, not {position}, in time; retry"
                ),
            )
        })?;
    }
    Ok(())
}

/// The models, once they reflect `at_least` (when asked).
async fn models<'a>(ctx: &Context<'a>, at_least: Option<u64>) -> Result<Models<'a>> {
    let ledger = ledger(ctx);
    reach(ledger, at_least).await?;
    Ok(ledger.models().await)
}

/// `first` as a page size, `default` when absent.
fn page_size(first: Option<i32>, default: usize) -> Result<usize> {
    match first {
        None => Ok(default),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_PAGE)
            .ok_or_else(|| bad_input("first", format!("must be between 0 and {MAX_PAGE}"))),
    }
}

/// One page of `items` from the cursor `after`.
fn page<T: OutputType>(
    items: Vec<T>,
    after: Option<String>,
    first: Option<i32>,
    position: u64,
) -> Result<Page<T>> {
    let start = match after {
        Some(cursor) => {
            let c = <OpaqueCursor<usize> as async_graphql::connection::CursorType>::decode_cursor(
                &cursor,
            )
            .map_err(|_| bad_input("after", "is not a cursor of this list"))?;
            c.0 + 1
        }
        None => 0,
    };
    let first = page_size(first, 50)?;
    let total = items.len();
    let end = (start + first).min(total);
    let mut connection =
        Connection::with_additional_fields(start > 0, end < total, ReadAt { position });
    connection.edges.extend(
        items
            .into_iter()
            .enumerate()
            .skip(start)
            .take(end.saturating_sub(start))
            .map(|(i, item)| Edge::new(OpaqueCursor(i), item)),
    );
    Ok(connection)
}

fn parse_id(field: &str, id: &ID) -> Result<Uuid> {
    id.parse()
        .map_err(|_| bad_input(field, format!("{:?} is not an id", id.as_str())))
}

/// Narrows a list of requests.
#[derive(InputObject, Default)]
pub struct RequestsFilter {
    pub status: Option<RequestStatus>,
    /// `new_resource`, `change_configuration`, `extend_lease` or `install_software`.
    pub kind: Option<String>,
    pub department: Option<String>,
    pub project: Option<String>,
    /// The requester's user id.
    pub requester: Option<String>,
    pub submitted_from: Option<DateTime<Utc>>,
    pub submitted_until: Option<DateTime<Utc>>,
}

/// Narrows the audit trail.
#[derive(InputObject, Default)]
pub struct AuditTrailFilter {
    /// An entity, `<kind>-<uuid>`, e.g. `request-0190…`.
    pub entity: Option<String>,
    /// A user id: what they did, and what was done on their behalf.
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[Object]
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
        after: Option<String>,
        first: Option<i32>,
        #[graphql(desc = "Wait until the catalogue reflects this position.")] at_least: Option<u64>,
    ) -> Result<Page<CatalogItem>> {
        let actor = actor(ctx)?;
        let m = models(ctx, at_least).await?;
        let sees_all = [Role::CatalogAdmin, Role::Auditor]
            .iter()
            .any(|r| actor.has_role(*r));
        let items: Vec<CatalogItem> = if sees_all {
            m.catalog
                .all(include_retired.unwrap_or(false))
                .map(Into::into)
                .collect()
        } else {
            let roles: Vec<Role> = actor.roles.iter().filter_map(|r| r.parse().ok()).collect();
            m.catalog
                .visible_to(&roles, actor.department.as_deref())
                .map(Into::into)
                .collect()
        };
        page(items, after, first, m.position)
    }

    /// Requests, oldest first. Requesters see their own department's requests only.
    async fn requests(
        &self,
        ctx: &Context<'_>,
        filter: Option<RequestsFilter>,
        after: Option<String>,
        first: Option<i32>,
        #[graphql(desc = "Wait until the list reflects this position.")] at_least: Option<u64>,
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
        };
        let sees_all = [
            Role::Approver,
            Role::Operator,
            Role::Auditor,
            Role::CatalogAdmin,
        ]
        .iter()
        .any(|r| actor.has_role(*r));
        if !sees_all {
            let own = actor.department.clone().unwrap_or_default();
            if filter.department.as_ref().is_some_and(|d| *d != own) {
                return Err(error(
                    Code::Forbidden,
                    "requesters see their own department's requests only",
                ));
            }
            filter.department = Some(own);
        }
        let m = models(ctx, at_least).await?;
        let items: Vec<Request> = m.requests.list(&filter).map(Into::into).collect();
        page(items, after, first, m.position)
    }

    /// One request.
    async fn request(&self, ctx: &Context<'_>, id: ID, at_least: Option<u64>) -> Result<Request> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id)?;
        let m = models(ctx, at_least).await?;
        let r = m
            .requests
            .get(id)
            .ok_or_else(|| error(Code::NotFound, format!("there is no request {id}")))?;
        let own_department = actor.department.as_deref() == Some(r.state.department.as_str());
        let sees_all = [Role::Approver, Role::Operator, Role::Auditor]
            .iter()
            .any(|x| actor.has_role(*x));
        if !own_department && !sees_all {
            return Err(error(Code::NotFound, format!("there is no request {id}")));
        }
        Ok(r.into())
    }

    /// The requests whose open step you may decide now.
    async fn pending_approvals(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
        at_least: Option<u64>,
    ) -> Result<Page<Request>> {
        let actor = actor(ctx)?;
        let now = ledger(ctx).now();
        let m = models(ctx, at_least).await?;
        let items: Vec<Request> = m.requests.pending_for(actor, now).map(Into::into).collect();
        page(items, after, first, m.position)
    }

    /// Who did what, when, with which comment, in log order (auditors and admins).
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditTrailFilter>,
        after: Option<String>,
        first: Option<i32>,
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
        let items: Vec<AuditEntryNode> = m.audit.entries(&filter).map(Into::into).collect();
        page(items, after, first, m.position)
    }

    /// Breaches of the approval rules anywhere in the history (auditors and admins).
    async fn compliance_findings(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
        at_least: Option<u64>,
    ) -> Result<Page<ComplianceFinding>> {
        require(actor(ctx)?, &[Role::Auditor])?;
        let m = models(ctx, at_least).await?;
        let items: Vec<ComplianceFinding> =
            m.compliance.findings().iter().map(Into::into).collect();
        page(items, after, first, m.position)
    }

    /// The raw ordered feed of the log: up to `first` events after position `after`
    /// (auditors, operators and admins).
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<u64>,
        first: Option<i32>,
    ) -> Result<Vec<Event>> {
        require(actor(ctx)?, &[Role::Auditor, Role::Operator])?;
        let first = page_size(first, 100)?;
        let events = ledger(ctx)
            .events(after.unwrap_or(0), first)
            .await
            .map_err(|e| error(Code::Internal, e))?;
        Ok(events.into_iter().map(crate::types::event_node).collect())
    }
}
