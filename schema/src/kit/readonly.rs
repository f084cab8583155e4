//! Auditors change nothing: every mutation, whatever it is, is refused before any of its
//! resolvers runs when the signed-in actor may only read ([`Actor::reads_only`]).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerResult, Variables};
use opsledger_domain::Actor;

use crate::kit::errors::{error, Code};

/// Installs [`ReadOnlyGuard`] on every request.
pub(crate) struct ReadOnly;

impl ExtensionFactory for ReadOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ReadOnlyGuard)
    }
}

/// Refuses a document with a mutation in it (`FORBIDDEN`) from an actor who only reads.
struct ReadOnlyGuard;

#[async_trait::async_trait]
impl Extension for ReadOnlyGuard {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let reads_only = ctx.data_opt::<Actor>().is_some_and(Actor::reads_only);
        if reads_only {
            if let Some((_, op)) = document
                .operations
                .iter()
                .find(|(_, op)| op.node.ty == OperationType::Mutation)
            {
                return Err(error(
                    Code::Forbidden,
                    "an auditor reads everything and changes nothing: no mutation is carried out",
                )
                .into_server_error(op.pos));
            }
        }
        Ok(document)
    }
}
