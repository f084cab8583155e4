//! What every mutation answers: the entity it acted on and the log position it wrote.

use async_graphql::{SimpleObject, ID};

/// What a mutation wrote.
#[derive(SimpleObject)]
pub struct Payload {
    pub client_mutation_id: Option<String>,
    /// The entity the mutation acted on.
    pub id: ID,
    /// The log position of its last event: pass it as `atLeast` to read your write.
    pub position: u64,
}
