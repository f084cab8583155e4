//! Inspections (巡檢): the service plan's machine-room walks, platform checks, log and backup
//! checks and monthly tuning. This first part is the [`Schedule`]: when inspections fall
//! due, as a pure function of the schedule.

mod schedule;

pub use schedule::{Cadence, Schedule, Slot, SITE_TIME_ZONE};
