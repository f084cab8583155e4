//! OpsLedger's read models. Each projection is a named fold over the event log with a
//! checkpoint: the runtime feeds it every event in position order and snapshots it; the
//! projection itself only folds.
//!
//! This crate is pure: it depends on `opsledger-domain` alone and does no I/O, so replaying
//! the log from position 1 gives exactly the state the live system had.

use opsledger_domain::RecordedEvent;

/// A read model built by folding events in position order.
pub trait Projection {
    /// A stable name, used for its checkpoint and snapshot.
    fn name(&self) -> &'static str;

    /// Folds one event in. Called once per event, in position order, never twice.
    fn apply(&mut self, event: &RecordedEvent);
}
