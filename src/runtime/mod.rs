//! What keeps a running process honest, beneath the wiring and above the store: the
//! projection runner that folds the log into the read models (and restores and writes
//! their snapshots), and the supervisor that runs each background task, restarts it when
//! it fails and tells `/healthz` and `/metrics` how each one stands.

pub mod runner;
pub mod supervise;
