//! Service operations as the operations centre follows them: the service [`desk`], the
//! [`incidents`] with their SLA clocks, the [`knowledge`] base, the [`inspections`] and the
//! [`emergency`] plans with their runs.

pub mod desk;
pub mod emergency;
pub mod incidents;
pub mod inspections;
pub mod knowledge;
