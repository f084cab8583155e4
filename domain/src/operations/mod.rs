//! Service operations (the plan's 運維服務): the service desk's tickets and work orders,
//! incidents with their severity and warning levels, SLA clocks on business calendars, the
//! knowledge base, inspections on their schedules, and emergency plans with their runs.

pub mod calendar;
pub mod desk;
pub mod emergency;
pub mod incident;
pub mod inspection;
pub mod knowledge;
pub mod sla;
