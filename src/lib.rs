//! The OpsLedger binary's library: configuration, the event-store backends, the HTTP
//! server and the command-line verbs. This is the I/O edge; the rules live in
//! `opsledger-domain` and the read models in `opsledger-projections`.
//!
//! # Layout
//!
//! The binary is grouped by role:
//!
//! ```text
//! store/       the event log: one interface (mod.rs), the SQLite and PostgreSQL backends,
//!              the batch planner both share, NDJSON export and import; beside it the
//!              command bus (commands.rs, the write side), the projection runner
//!              (runner.rs, the read side) and the content-addressed file store (content.rs)
//! http/        the HTTP edge: server and routes, GraphiQL, the GraphQL extension that
//!              names and times operations, bearer tokens
//! processes/   background tasks under the supervisor: the provisioning
//!              engine, the scheduler, the mailer, signed checkpoints of the log's head
//! sagas/       operations that span aggregates: deploy / move / reclaim (deploy.rs),
//!              VM operations, baseline audits
//! drivers/     what workflow steps and VM operations call: a command, or the simulator
//! tools/       verbs for trying and measuring: demo/ (the sample), bench/ (the log's
//!              throughput, the engine, snapshots, the `race` stress test)
//! app.rs       wiring: the running system over one store
//! ledger.rs    the schema's Ledger trait, answered by the running system
//! metrics.rs   the process's Prometheus registry, which every room records into
//! cli.rs       the command line: one clap Command enum, one function per verb
//! ```

pub mod app;
pub mod cli;
pub mod drivers;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod processes;
pub mod runtime;
pub mod sagas;
pub mod store;
pub mod tools;

pub use store::{Append, Appended, EventStore, ExpectedVersion, StoreConfig, StoreError};
