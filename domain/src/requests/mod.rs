//! Requests (the plan's 服務目錄 and 自助服務): the service catalogue requesters choose from,
//! self-service requests with their approval chains, and the delegations approvers grant
//! while they are away; [`demo`] holds the plan's sample items and chains.

pub mod catalog;
pub mod delegation;
pub mod demo;
pub mod request;
