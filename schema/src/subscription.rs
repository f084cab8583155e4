//! Live views over `graphql-transport-ws`: the token is checked in `connection_init`.

use async_graphql::{Context, Result, Subscription as SubscriptionObject, ID};
use futures::{Stream, StreamExt};
use opsledger_domain::kernel::aggregate::{Aggregate, Role};
use opsledger_domain::requests::request::Request as RequestAggregate;

use crate::audit::{event_node, Event};
use crate::kit::{actor, ledger, reach, require};
use crate::requests::types::Request;

pub struct Subscription;

#[SubscriptionObject]
impl Subscription {
    /// Every event after position `after` (default: from the start), then each new one as
    /// it is committed, in log order (auditors, operators and admins).
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
    ) -> Result<impl Stream<Item = Event>> {
        require(actor(ctx)?, &[Role::Auditor, Role::Operator])?;
        Ok(ledger(ctx)
            .live(after.unwrap_or(0))
            .take_while(|e| futures::future::ready(goes_on(e)))
            .filter_map(|e| async move { e.ok().map(event_node) }))
    }

    /// The request as it is now, then again after every change to it.
    async fn request_changed(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Start once the views reflect this position (e.g. the submission's). Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<impl Stream<Item = Request>> {
        let actor = actor(ctx)?.clone();
        let request_id = crate::kit::ids::parse("id", RequestAggregate::KIND, &id)?;
        let ledger = ledger(ctx).clone();
        reach(&ledger, at_least).await?;
        let position = {
            let models = ledger.models().await;
            crate::kit::access::request(&models, &actor, request_id)?.position
        };
        let stream = format!("request-{request_id}");
        let changes = ledger
            .live(position)
            .take_while(|e| futures::future::ready(goes_on(e)))
            .filter_map(move |e| {
                let ours = e.ok().filter(|e| e.stream == stream).map(|e| e.position);
                futures::future::ready(ours)
            });
        let first = futures::stream::once(futures::future::ready(position));
        Ok(first
            .chain(changes)
            .then(move |position| {
                let ledger = ledger.clone();
                async move {
                    let _ = ledger.wait_for(position).await;
                    let models = ledger.models().await;
                    models.requests.get(request_id).map(Request::from)
                }
            })
            .filter_map(futures::future::ready))
    }
}

/// Whether a subscription goes on after this item of the feed: not after a failure, which
/// is logged under an id (the stream just ends; there is no error to answer).
fn goes_on<T>(item: &Result<T, crate::Cause>) -> bool {
    match item {
        Ok(_) => true,
        Err(cause) => {
            crate::kit::errors::log_internal(cause);
            false
        }
    }
}
