//! Changes. Each mutation takes one `input` and returns a payload with the log position it
//! wrote; `clientMutationId` is the idempotency key: the same id from the same user
//! returns the first outcome and changes nothing.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, InputObject, Json, Object, Result, ID};
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem, ItemDefinition};
use opsledger_domain::requests::delegation::{DelegationCommand, DelegationError, DelegationState};
use opsledger_domain::requests::request::{
    Delegation, Period, Request, RequestCommand, RequestDetails,
};
use uuid::Uuid;

use crate::kit::errors::{bad_input, error, internal, Code};
use crate::kit::ids;
use crate::kit::{actor, current_models, ledger};
use crate::kit::{command_id, domain_context, Payload};

#[derive(Default)]
pub struct Mutation;

#[derive(InputObject)]
pub struct CreateCatalogItemInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The item: name, category, description, kind, fields, audience and approval policy.
    pub definition: Json<ItemDefinition>,
}

#[derive(InputObject)]
pub struct ReviseCatalogItemInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub item_id: ID,
    /// The new version of the item.
    pub definition: Json<ItemDefinition>,
}

#[derive(InputObject)]
pub struct RetireCatalogItemInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub item_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

/// The four kinds of request.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    NewResource,
    ChangeConfiguration,
    ExtendLease,
    InstallSoftware,
}

#[derive(InputObject)]
pub struct SubmitRequestInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The catalogue item, requested at its current version.
    pub item_id: ID,
    pub kind: RequestKind,
    /// The chosen values, by field name (new resource, change, installation).
    pub configuration: Option<Json<BTreeMap<String, serde_json::Value>>>,
    /// How many (new resource; default 1).
    ///
    /// Range: 1–1000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"quantity\", opsledger_domain::kernel::limits::QUANTITY)"
    ))]
    pub quantity: Option<u32>,
    /// The project it is for (new resource, change, installation).
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"project\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub project: Option<String>,
    /// The service period (new resource).
    ///
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"periodStart\")"))]
    pub period_start: Option<NaiveDate>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"periodEnd\")"))]
    pub period_end: Option<NaiveDate>,
    /// The resource concerned (change, extension, installation).
    pub resource_id: Option<ID>,
    /// The lease's new end (extension).
    ///
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"newEnd\")"))]
    pub new_end: Option<NaiveDate>,
    /// Why (extension).
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct DecideInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub request_id: ID,
    /// The step decided (the request's `openStep`).
    ///
    /// Range: 0–1000000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"step\", opsledger_domain::kernel::limits::ORDINAL)"
    ))]
    pub step: u32,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"comment\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub comment: Option<String>,
    /// Decide as the substitute named in this delegation: the decision counts as the
    /// delegator's, and the record says both.
    pub on_behalf_of: Option<ID>,
}

#[derive(InputObject)]
pub struct GrantDelegationInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// The user id of the substitute who decides for you.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"substitute\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub substitute: String,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"from\")"))]
    pub from: DateTime<Utc>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"until\")"))]
    pub until: DateTime<Utc>,
    /// Why (e.g. annual leave).
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct RevokeDelegationInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub delegation_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct CancelRequestInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub request_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct FulfilmentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub request_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: String,
}

fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| bad_input(field, "is required for this kind of request"))
}

impl SubmitRequestInput {
    fn details(self) -> Result<RequestDetails> {
        let configuration = || self.configuration.clone().map(|c| c.0).unwrap_or_default();
        let resource = |id: Option<ID>| -> Result<Uuid> {
            ids::parse(
                "resourceId",
                opsledger_domain::resources::cmdb::ConfigurationItem::KIND,
                &required(id, "resourceId")?,
            )
        };
        Ok(match self.kind {
            RequestKind::NewResource => RequestDetails::NewResource {
                configuration: configuration(),
                quantity: self.quantity.unwrap_or(1),
                project: required(self.project, "project")?,
                period: Period {
                    start: required(self.period_start, "periodStart")?,
                    end: required(self.period_end, "periodEnd")?,
                },
            },
            RequestKind::ChangeConfiguration => RequestDetails::ChangeConfiguration {
                configuration: configuration(),
                resource_id: resource(self.resource_id)?,
                project: required(self.project, "project")?,
            },
            RequestKind::ExtendLease => RequestDetails::ExtendLease {
                resource_id: resource(self.resource_id)?,
                new_end: required(self.new_end, "newEnd")?,
                reason: required(self.reason, "reason")?,
            },
            RequestKind::InstallSoftware => RequestDetails::InstallSoftware {
                configuration: configuration(),
                resource_id: resource(self.resource_id)?,
                project: required(self.project, "project")?,
            },
        })
    }
}

async fn on_request(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    request_id: &ID,
    command: RequestCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let id = ids::parse("requestId", Request::KIND, request_id)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let written = ledger(ctx).request(id, command, &domain, key).await?;
    Ok(Payload {
        client_mutation_id,
        id: ids::global(Request::KIND, id),
        position: written.position,
    })
}

/// The delegation an approval names, while it is in force.
async fn delegation(ctx: &Context<'_>, id: Option<&ID>) -> Result<Option<Delegation>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let uuid = ids::parse("onBehalfOf", DelegationState::KIND, id)?;
    let state = ledger(ctx).delegation_state(uuid).await.map_err(internal)?;
    match state.in_force() {
        Ok(grant) => Ok(Some(grant.clone())),
        Err(DelegationError::NotFound) => Err(bad_input(
            "onBehalfOf",
            format!("there is no delegation {}", id.as_str()),
        )),
        Err(e) => Err(error(Code::Forbidden, e)),
    }
}

async fn on_delegation(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    delegation_id: Uuid,
    command: DelegationCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let written = ledger(ctx)
        .delegation(delegation_id, command, &domain, key)
        .await?;
    Ok(Payload {
        client_mutation_id,
        id: ids::global(DelegationState::KIND, delegation_id),
        position: written.position,
    })
}

async fn on_item(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    item_id: Uuid,
    command: CatalogCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let written = ledger(ctx).catalog(item_id, command, &domain, key).await?;
    Ok(Payload {
        client_mutation_id,
        id: ids::global(CatalogItem::KIND, item_id),
        position: written.position,
    })
}

#[Object(name = "FlowMutation")]
impl Mutation {
    /// Adds an item to the service catalogue, at version 1 (catalog_admin).
    async fn create_catalog_item(
        &self,
        ctx: &Context<'_>,
        input: CreateCatalogItemInput,
    ) -> Result<Payload> {
        let actor = actor(ctx)?;
        // The item's id is derived from the idempotency key, so a retry names the same item.
        let item_id = match &input.client_mutation_id {
            Some(_) => command_id(ctx, &actor.id, input.client_mutation_id.as_deref()),
            None => Uuid::now_v7(),
        };
        let command = CatalogCommand::CreateCatalogItem {
            item_id,
            definition: input.definition.0,
        };
        on_item(ctx, input.client_mutation_id, item_id, command).await
    }

    /// Publishes a new version of an item (catalog_admin).
    async fn revise_catalog_item(
        &self,
        ctx: &Context<'_>,
        input: ReviseCatalogItemInput,
    ) -> Result<Payload> {
        let item_id = ids::parse("itemId", CatalogItem::KIND, &input.item_id)?;
        let command = CatalogCommand::ReviseCatalogItem {
            definition: input.definition.0,
        };
        on_item(ctx, input.client_mutation_id, item_id, command).await
    }

    /// Takes an item out of the catalogue; requests in flight go on (catalog_admin).
    async fn retire_catalog_item(
        &self,
        ctx: &Context<'_>,
        input: RetireCatalogItemInput,
    ) -> Result<Payload> {
        let item_id = ids::parse("itemId", CatalogItem::KIND, &input.item_id)?;
        let command = CatalogCommand::RetireCatalogItem {
            reason: input.reason,
        };
        on_item(ctx, input.client_mutation_id, item_id, command).await
    }

    /// Requests a resource, a change, a longer lease or a software installation against
    /// the item's current version; validated against the item's allowed values.
    async fn submit_request(
        &self,
        ctx: &Context<'_>,
        input: SubmitRequestInput,
    ) -> Result<Payload> {
        let actor = actor(ctx)?;
        let item_id = ids::parse("itemId", CatalogItem::KIND, &input.item_id)?;
        let item = ledger(ctx)
            .catalog_item(item_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| bad_input("itemId", format!("there is no catalogue item {item_id}")))?;
        let request_id = match &input.client_mutation_id {
            Some(_) => command_id(ctx, &actor.id, input.client_mutation_id.as_deref()),
            None => Uuid::now_v7(),
        };
        let client_mutation_id = input.client_mutation_id.clone();
        let department = actor.department.clone().unwrap_or_default();
        let details = input.details()?;
        if let RequestDetails::ExtendLease { resource_id, .. } = &details {
            let m = current_models(ctx).await?;
            let mine = m
                .inventory
                .ci(*resource_id)
                .and_then(|v| v.state.record.as_ref());
            if mine.is_none_or(|r| r.department != department) {
                return Err(bad_input(
                    "resourceId",
                    format!("there is no resource {resource_id} of {department}"),
                ));
            }
        }
        let over_quota = crate::resources::quota_excess(ctx, &department, &details).await?;
        let command = RequestCommand::SubmitRequest {
            request_id,
            item,
            details,
            over_quota,
        };
        on_request(
            ctx,
            client_mutation_id,
            &ID(request_id.to_string()),
            command,
        )
        .await
    }

    /// Approves the open step of a request (an eligible approver of that step, or their
    /// substitute under a delegation in force).
    async fn approve_request(&self, ctx: &Context<'_>, input: DecideInput) -> Result<Payload> {
        let command = RequestCommand::ApproveRequest {
            step: input.step as usize,
            comment: input.comment,
            on_behalf_of: delegation(ctx, input.on_behalf_of.as_ref()).await?,
        };
        on_request(ctx, input.client_mutation_id, &input.request_id, command).await
    }

    /// Rejects the open step of a request, which ends it (an eligible approver).
    async fn reject_request(&self, ctx: &Context<'_>, input: DecideInput) -> Result<Payload> {
        let comment = input
            .comment
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| bad_input("comment", "a rejection needs a reason"))?;
        let command = RequestCommand::RejectRequest {
            step: input.step as usize,
            comment,
            on_behalf_of: delegation(ctx, input.on_behalf_of.as_ref()).await?,
        };
        on_request(ctx, input.client_mutation_id, &input.request_id, command).await
    }

    /// Names a substitute who decides your approval steps while you are away, from `from`
    /// until `until`. Their decisions count as yours and record both of you.
    async fn grant_delegation(
        &self,
        ctx: &Context<'_>,
        input: GrantDelegationInput,
    ) -> Result<Payload> {
        let actor = actor(ctx)?;
        let delegation_id = match &input.client_mutation_id {
            Some(_) => command_id(ctx, &actor.id, input.client_mutation_id.as_deref()),
            None => Uuid::now_v7(),
        };
        let command = DelegationCommand::GrantDelegation {
            delegation_id,
            substitute: input.substitute,
            from: input.from,
            until: input.until,
            reason: input.reason,
        };
        on_delegation(ctx, input.client_mutation_id, delegation_id, command).await
    }

    /// Ends a delegation early (its delegator, or an admin).
    async fn revoke_delegation(
        &self,
        ctx: &Context<'_>,
        input: RevokeDelegationInput,
    ) -> Result<Payload> {
        let id = ids::parse("delegationId", DelegationState::KIND, &input.delegation_id)?;
        let command = DelegationCommand::RevokeDelegation {
            reason: input.reason,
        };
        on_delegation(ctx, input.client_mutation_id, id, command).await
    }

    /// Withdraws a request before fulfilment (its requester).
    async fn cancel_request(
        &self,
        ctx: &Context<'_>,
        input: CancelRequestInput,
    ) -> Result<Payload> {
        let command = RequestCommand::CancelRequest {
            reason: input.reason,
        };
        on_request(ctx, input.client_mutation_id, &input.request_id, command).await
    }

    /// Records that an approved request was fulfilled (operator).
    async fn mark_request_fulfilled(
        &self,
        ctx: &Context<'_>,
        input: FulfilmentInput,
    ) -> Result<Payload> {
        let command = RequestCommand::MarkFulfilled { note: input.note };
        on_request(ctx, input.client_mutation_id, &input.request_id, command).await
    }

    /// Records that fulfilling an approved request failed (operator).
    async fn mark_request_failed(
        &self,
        ctx: &Context<'_>,
        input: FulfilmentInput,
    ) -> Result<Payload> {
        let command = RequestCommand::MarkFailed { note: input.note };
        on_request(ctx, input.client_mutation_id, &input.request_id, command).await
    }
}
