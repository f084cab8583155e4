//! Operations that span aggregates, each a sequence of commands safe to repeat, with what
//! was taken given back when a later step fails: [`deploy`] (deployments, moves and
//! reclamations over quota, pool, subnet and CMDB), [`vm`] (virtual-server operations
//! through the driver) and [`baseline`] (baseline audits of a CI).

pub mod baseline;
pub mod deploy;
pub mod vm;
