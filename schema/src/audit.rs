//! The log as a whole, read across every area: the audit trail (who did what, when, on
//! whose behalf) and the raw ordered feed of events, for auditors and for clients that
//! build their own views.

use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::Role;
use opsledger_projections::audit::{AuditEntry, AuditFilter};

use crate::kit::errors::internal;
use crate::kit::{actor, ledger, models, page_in_order, page_size, require, Page};

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

/// Who did what, when, with which comment.
#[derive(SimpleObject)]
pub struct AuditEntryNode {
    pub position: u64,
    /// The event's hash in the chain (hex).
    pub hash: String,
    /// The entity, `<kind>-<uuid>`.
    pub entity: String,
    pub event_type: String,
    pub actor: String,
    pub actor_name: Option<String>,
    /// The approver the actor stood in for.
    pub on_behalf_of: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub comment: Option<String>,
}

impl From<AuditEntry<'_>> for AuditEntryNode {
    fn from(e: AuditEntry<'_>) -> Self {
        AuditEntryNode {
            position: e.position,
            hash: e.hash.to_string(),
            entity: e.stream.to_owned(),
            event_type: e.event_type.to_owned(),
            actor: e.actor.to_owned(),
            actor_name: e.actor_name.map(str::to_owned),
            on_behalf_of: e.on_behalf_of.map(str::to_owned),
            recorded_at: e.recorded_at,
            comment: e.comment.map(str::to_owned),
        }
    }
}

/// An event of the log, as stored.
#[derive(SimpleObject)]
pub struct Event {
    pub position: u64,
    pub entity: String,
    pub version: u64,
    pub id: ID,
    #[graphql(name = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: Json<serde_json::Value>,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub hash: String,
}

/// An event of the log as the API shows it.
pub fn event_node(e: opsledger_domain::RecordedEvent) -> Event {
    Event {
        position: e.position,
        entity: e.stream,
        version: e.version,
        id: ID(e.id.to_string()),
        event_type: e.event_type,
        schema_version: e.schema_version,
        data: Json(serde_json::from_str(&e.data).unwrap_or_default()),
        actor: e.metadata.actor.id,
        recorded_at: e.metadata.recorded_at,
        hash: e.hash.to_string(),
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
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
        Ok(events.into_iter().map(event_node).collect())
    }
}
