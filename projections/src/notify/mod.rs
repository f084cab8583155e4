//! Notifying people: the [`notifications`] the events give rise to, the [`contacts`] their
//! audiences resolve to, the email [`templates`] and the [`mail`] outbox.

pub mod contacts;
pub mod mail;
pub mod notifications;
pub mod templates;
