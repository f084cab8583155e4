//! The background tasks `serve` runs beside the HTTP server, each under the supervisor
//! (`runtime::supervise`; and, where replicas share a store, under a leader role): the provisioning
//! [`engine`], the [`scheduler`] of due work, the [`mailer`], and the signed
//! [`checkpoint`]s of the log's head (with the check `verify` makes of them).

pub mod checkpoint;
pub mod engine;
pub mod mailer;
pub mod scheduler;
