//! Notifying people over GraphQL: where each user is mailed and in which language, and the
//! outbox with each mail's delivery.

pub(crate) mod mail;
