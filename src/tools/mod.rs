//! Verbs for people trying or measuring OpsLedger, not for running it: [`demo`] loads a
//! realistic sample, [`bench`] measures the log, the engine, snapshots and races.

pub mod bench;
pub mod demo;
