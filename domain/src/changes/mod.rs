//! Changes (the plan's 變更管理): change requests with their plans, approvals and outcome,
//! and the freeze windows during which changes are refused.

pub mod change;
pub mod freeze;
