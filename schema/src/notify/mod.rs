//! Notifying people over GraphQL: what each person is told, where each user is mailed and
//! in which language, and the outbox with each mail's delivery.

pub(crate) mod mail;
pub(crate) mod notifications;
