//! Resources (the plan's 資源池 and 配置管理): pools of capacity, the configuration items of
//! the CMDB with their relationships and leases, subnets and their addresses, and the
//! departments' quotas.

pub mod cmdb;
pub mod ipam;
pub mod pool;
pub mod quota;
pub mod sizing;
