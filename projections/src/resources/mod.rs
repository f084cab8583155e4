//! Resources as operators and analysts read them: the [`inventory`] of pools, configuration
//! items, subnets, quotas and leases as they stand (and as they stood, for `asOf`), and the
//! [`usage`] of capacity by pool, department, project and period.

pub mod inventory;
pub mod usage;
