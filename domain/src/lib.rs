//! OpsLedger's domain: the events that make up the log, and (as the service plan is built
//! out) the commands, aggregates and policies that decide them.
//!
//! This crate is pure. It does no I/O: no tokio, no database, no clock reads, and no
//! randomness that is not passed in. An auditor's replay therefore produces exactly the
//! state the live system had, and every rule is testable as a plain function.
//!
//! [`event`] defines the recorded event, its metadata and the SHA-256 hash chain that makes
//! the log tamper-evident; [`upcast`] reads old event schema versions as new ones.
//! [`aggregate`] is the decide/evolve pattern; [`catalog`] and [`request`] are the first
//! aggregates: the service catalogue, self-service requests with their approval chains,
//! and the [`delegation`]s approvers grant while they are away. Resources are [`pool`]s of
//! capacity, configuration items of the [`cmdb`] with their leases, subnets of [`ipam`],
//! and department [`quota`]s. Service operations are the [`desk`]'s tickets and work
//! orders, [`incident`]s with their severity and warning levels, and the [`sla`] clocks
//! that run on business [`calendar`]s. The [`library`] keeps versioned media, packages and
//! scripts by checksum.

pub mod aggregate;
pub mod baseline;
pub mod calendar;
pub mod catalog;
pub mod change;
pub mod cmdb;
pub mod contact;
pub mod delegation;
pub mod demo;
pub mod desk;
pub mod emergency;
pub mod event;
pub mod freeze;
pub mod incident;
pub mod inspection;
pub mod ipam;
pub mod knowledge;
pub mod library;
pub mod limits;
pub mod mail;
pub mod pool;
pub mod provisioning;
pub mod quota;
pub mod request;
pub mod sla;
pub mod upcast;
pub mod workflow;

#[cfg(test)]
mod given;

pub use event::{
    chain_hash, Actor, ActorKind, ChainBreak, ChainVerifier, DecodeError, Hash, Metadata, NewEvent,
    RecordedEvent, StoredEvent,
};
pub use upcast::{UpcastError, Upcasters};
