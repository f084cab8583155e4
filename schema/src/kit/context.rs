//! What every resolver starts from: the signed-in actor, the ledger, the read models at a
//! position, and the idempotency key and domain context of a mutation.

use std::sync::Arc;

use async_graphql::{Context, Result};
use opsledger_domain::kernel::aggregate::{Context as DomainContext, Role};
use opsledger_domain::Actor;
use uuid::Uuid;

use crate::kit::errors::{error, Code};
use crate::kit::ids;
use crate::kit::payload::Payload;
use crate::{Ledger, Models, Operation};

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
pub(crate) async fn models<'a>(ctx: &Context<'a>, at_least: Option<u64>) -> Result<Models<'a>> {
    let ledger = ledger(ctx);
    reach(ledger, at_least).await?;
    Ok(ledger.models().await)
}

/// The models once they reflect the log as it is now (a few rounds at most under a
/// steady stream of writes), so the facts gathered for a command (conflicts, freezes,
/// the CIs known) include what was written just before it. Every mutation that checks
/// its input against the models reads them through this.
pub(crate) async fn current_models<'a>(ctx: &Context<'a>) -> Result<Models<'a>> {
    let ledger = ledger(ctx);
    for _ in 0..8 {
        let position = ledger.models().await.position;
        let behind = ledger
            .events(position, 256)
            .await
            .map_err(crate::kit::errors::internal)?;
        match behind.last() {
            None => break,
            Some(last) => reach(ledger, Some(last.position)).await?,
        }
    }
    Ok(ledger.models().await)
}

/// The idempotency key of a mutation: derived from the user, the mutation and their
/// `clientMutationId` (one id reused for another mutation is another command), or fresh
/// when none was given.
pub(crate) fn command_id(ctx: &Context<'_>, user: &str, client_mutation_id: Option<&str>) -> Uuid {
    let operation = ctx.field().name();
    match client_mutation_id {
        Some(id) => Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("opsledger:{user}:{operation}:{id}").as_bytes(),
        ),
        None => Uuid::now_v7(),
    }
}

/// The id of a new entity: derived from the idempotency key when there is one, so a
/// retry names the same entity.
pub(crate) fn new_id(ctx: &Context<'_>, user: &str, client_mutation_id: Option<&str>) -> Uuid {
    match client_mutation_id {
        Some(_) => command_id(ctx, user, client_mutation_id),
        None => Uuid::now_v7(),
    }
}

pub(crate) fn domain_context(ctx: &Context<'_>) -> Result<DomainContext> {
    Ok(DomainContext {
        actor: actor(ctx)?.clone(),
        now: ledger(ctx).now(),
    })
}

/// Carries out a service-operations command as the signed-in user, keyed by their
/// `clientMutationId`; the payload names the entity `<kind>-<id>`.
pub(crate) async fn operate(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    kind: &str,
    id: Uuid,
    operation: Operation,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let w = ledger(ctx)
        .operate(operation, &domain, key)
        .await
        .map_err(async_graphql::Error::from)?;
    Ok(Payload {
        client_mutation_id,
        id: ids::global(kind, id),
        position: w.position,
    })
}
