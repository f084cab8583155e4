//! The kit every area of the API builds on, and which imports no area: errors and their
//! codes ([`errors`]), global ids ([`ids`]), the bounds every argument is checked against
//! ([`bounds`]), the depth and complexity limits ([`limits`]), and the refusal of every
//! mutation to an actor who only reads ([`readonly`]).

pub(crate) mod access;
pub(crate) mod bounds;
pub(crate) mod context;
pub(crate) mod errors;
pub(crate) mod ids;
pub(crate) mod limits;
pub(crate) mod paging;
pub(crate) mod payload;
pub(crate) mod readonly;

pub(crate) use context::{
    actor, command_id, current_models, domain_context, ledger, models, new_id, operate, reach,
    require,
};
pub(crate) use paging::{cursor, page, page_in_order, page_size, Page};
pub(crate) use payload::Payload;
