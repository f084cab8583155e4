//! The OpsLedger binary's library: configuration, the event-store backends, the HTTP
//! server and the command-line verbs. This is the I/O edge; the rules live in
//! `opsledger-domain` and the read models in `opsledger-projections`.

pub mod app;
pub mod auth;
pub mod baseline;
pub mod bench;
pub mod bench_provisioning;
pub mod bench_snapshot;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod content;
pub mod demo;
pub mod demo_library;
pub mod demo_operations;
pub mod demo_resources;
pub mod drivers;
pub mod engine;
pub mod graphiql;
pub mod mailer;
pub mod metrics;
pub mod observe;
pub mod resources;
pub mod runner;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod supervise;
pub mod vm;

pub use store::{Append, Appended, EventStore, ExpectedVersion, StoreConfig, StoreError};
