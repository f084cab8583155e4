//! Notifying people: where each user is reached and in which language, and the email
//! outbox, one aggregate per mail.

pub mod contact;
pub mod mail;
