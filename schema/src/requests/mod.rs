//! Requests over GraphQL (the plan's 服務目錄 and 自助服務): the service catalogue, self-service
//! requests with their approval chains, delegations.

pub(crate) mod mutation;
pub(crate) mod query;
pub(crate) mod types;
