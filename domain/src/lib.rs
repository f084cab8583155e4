//! OpsLedger's domain: the events that make up the log, and (as the service plan is built
//! out) the commands, aggregates and policies that decide them.
//!
//! This crate is pure. It does no I/O: no tokio, no database, no clock reads, and no
//! randomness that is not passed in. An auditor's replay therefore produces exactly the
//! state the live system had, and every rule is testable as a plain function.
//!
//! # Layout
//!
//! One folder per business area of the service plan, with the same names in the
//! projections and the schema, over a [`kernel`] that imports no area:
//!
//! - [`kernel`]: the recorded event and its hash chain, upcasting, the decide/evolve
//!   pattern, the ranges fields are checked against;
//! - [`requests`]: the service catalogue, self-service requests and their approval chains,
//!   delegations;
//! - [`resources`]: pools, the CMDB, subnets, quotas;
//! - [`operations`]: the service desk, incidents, SLA clocks and business calendars, the
//!   knowledge base, inspections, emergency plans;
//! - [`changes`]: change requests and freeze windows;
//! - [`automation`]: provisioning workflows and runs, baselines, the media and script
//!   libraries;
//! - [`notify`]: contacts and the email outbox.

pub mod automation;
pub mod changes;
pub mod kernel;
pub mod notify;
pub mod operations;
pub mod requests;
pub mod resources;
pub use kernel::event::{
    chain_hash, Actor, ActorKind, ChainBreak, ChainVerifier, DecodeError, Hash, Metadata, NewEvent,
    RecordedEvent, StoredEvent,
};
pub use kernel::upcast::{UpcastError, Upcasters};
