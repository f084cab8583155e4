//! The kernel every area builds on, and which imports no area: the recorded event and its
//! hash chain ([`event`]), reading old event versions as new ones ([`upcast`]), the
//! decide/evolve pattern and the facts a decision may use ([`aggregate`]), the ranges
//! every field is checked against ([`limits`]), the refusal of a field that is wrong
//! ([`field`]) and the classes of refusal every error enum sorts its variants into
//! ([`refusal`]).

pub mod aggregate;
pub mod event;
pub mod field;
#[cfg(test)]
pub(crate) mod given;
pub mod limits;
pub mod refusal;
pub mod upcast;
