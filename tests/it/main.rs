//! End-to-end tests through OpsLedger's public API, the `opsledger` binary and real
//! databases. One binary: `cargo test` builds it once.

#[macro_use]
mod support;

mod access;
mod automation;
mod changes;
mod checkpoints;
mod cli;
mod contract;
mod crash;
mod delegation;
mod edge;
mod emergency;
mod faults;
mod flow;
mod graphiql;
mod graphql;
mod honesty;
mod input;
mod inspections;
mod introspection;
mod layout;
mod library;
mod mail;
mod nodes;
mod operations;
mod replicas;
mod resources;
mod scheduler;
mod server;
mod snapshots;
mod turns;
mod vm;
mod walls;
