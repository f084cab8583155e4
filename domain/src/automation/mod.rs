//! Automation (the plan's 自動化): provisioning workflows and their runs with rollback,
//! configuration baselines, and the media and script libraries (介質庫).

pub mod baseline;
pub mod library;
pub mod provisioning;
pub mod workflow;
