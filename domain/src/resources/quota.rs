//! Department quotas: how much CPU, memory and storage a department (and, optionally, each
//! of its projects) may hold. The quota is an aggregate per department that every
//! deployment consumes from and every reclamation releases to, so two deployments racing
//! for the last of a quota cannot both succeed. A request is checked against the same rule
//! when it is submitted, so the requester hears it at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};
use crate::resources::pool::Amount;

/// The id of a department's quota stream.
pub fn quota_id(department: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:quota:{department}").as_bytes(),
    )
}

/// Orders to a quota.
#[derive(Clone, Debug)]
pub enum QuotaCommand {
    /// Sets the limit of the department (`project: None`) or of one of its projects;
    /// `limit: None` lifts it.
    SetQuota {
        department: String,
        project: Option<String>,
        limit: Option<Amount>,
    },
    Consume {
        resource_id: Uuid,
        department: String,
        project: Option<String>,
        amount: Amount,
        /// The request went through the extra approval for exceeding its quota.
        over_quota_approved: bool,
    },
    Release {
        resource_id: Uuid,
    },
}

/// What happened to a quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QuotaEvent {
    QuotaSet {
        department: String,
        project: Option<String>,
        limit: Option<Amount>,
    },
    QuotaConsumed {
        resource_id: Uuid,
        department: String,
        project: Option<String>,
        amount: Amount,
        over_quota: bool,
    },
    QuotaReleased {
        resource_id: Uuid,
        project: Option<String>,
        amount: Amount,
    },
}

impl DomainEvent for QuotaEvent {}

/// Why a quota refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A field of the quota breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators and administrators set quotas (forbidden)
    #[error("only operators and administrators set quotas")]
    NotPermitted,
    /// The consumption would exceed the quota (conflict)
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    /// The resource consumes from the quota already (conflict)
    #[error("resource {0} already consumes from this quota")]
    AlreadyConsumed(Uuid),
    /// The resource consumes nothing from the quota (conflict)
    #[error("resource {0} consumes nothing from this quota")]
    NotConsumed(Uuid),
}

impl Refuse for QuotaError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::Exceeded(..) | Self::AlreadyConsumed(..) | Self::NotConsumed(..) => {
                Refusal::Conflict
            }
        }
    }
}

/// The rule a request or deployment broke: which quota, which dimension, by how much.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the quota of {scope} would be exceeded: {dimension} {wanted} needed, {left} left of {limit}"
)]
pub struct QuotaExceeded {
    pub scope: String,
    pub dimension: &'static str,
    pub wanted: u64,
    pub left: u64,
    pub limit: u64,
}

/// A department's quota and what it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub department: String,
    pub limit: Option<Amount>,
    pub project_limits: BTreeMap<String, Amount>,
    pub used: Amount,
    pub project_used: BTreeMap<String, Amount>,
    pub consumers: BTreeMap<Uuid, (Option<String>, Amount)>,
}

impl Quota {
    /// The limits and what is used, without the list of who uses it: all a check needs.
    pub fn figures(&self) -> Quota {
        Quota {
            department: self.department.clone(),
            limit: self.limit,
            project_limits: self.project_limits.clone(),
            used: self.used,
            project_used: self.project_used.clone(),
            consumers: BTreeMap::new(),
        }
    }

    /// Whether `amount` more for `project` stays within the department's and the
    /// project's limits.
    ///
    /// # Errors
    /// The first limit it would exceed.
    pub fn check(&self, project: Option<&str>, amount: Amount) -> Result<(), QuotaExceeded> {
        let project_scope = project.and_then(|p| {
            let limit = self.project_limits.get(p)?;
            let used = self.project_used.get(p).copied().unwrap_or_default();
            Some((format!("project {p} of {}", self.department), *limit, used))
        });
        let department_scope = self
            .limit
            .map(|limit| (format!("department {}", self.department), limit, self.used));
        for (scope, limit, used) in department_scope.into_iter().chain(project_scope) {
            let left = limit.minus(used);
            if let Some((dimension, wanted, left)) = amount.exceeds(left) {
                let limit = match dimension {
                    "cpu_cores" => limit.cpu_cores,
                    "memory_gib" => limit.memory_gib,
                    _ => limit.storage_gib,
                };
                return Err(QuotaExceeded {
                    scope,
                    dimension,
                    wanted,
                    left,
                    limit,
                });
            }
        }
        Ok(())
    }
}

impl Aggregate for Quota {
    const KIND: &'static str = "quota";
    type Command = QuotaCommand;
    type Event = QuotaEvent;
    type Error = QuotaError;

    fn decide(&self, command: QuotaCommand, ctx: &Context) -> Result<Vec<QuotaEvent>, QuotaError> {
        // Operators (and admins, who hold every role) and the system's components.
        let operator = ctx.actor.operates();
        match command {
            QuotaCommand::SetQuota {
                department,
                project,
                limit,
            } => {
                if !operator {
                    return Err(QuotaError::NotPermitted);
                }
                if department.trim().is_empty() {
                    return Err(invalid("department", "is required").into());
                }
                if project.as_deref().is_some_and(|p| p.trim().is_empty()) {
                    return Err(invalid("project", "is empty").into());
                }
                Ok(vec![QuotaEvent::QuotaSet {
                    department,
                    project,
                    limit,
                }])
            }
            QuotaCommand::Consume {
                resource_id,
                department,
                project,
                amount,
                over_quota_approved,
            } => {
                if !operator {
                    return Err(QuotaError::NotPermitted);
                }
                if self.consumers.contains_key(&resource_id) {
                    return Err(QuotaError::AlreadyConsumed(resource_id));
                }
                let over = self.check(project.as_deref(), amount);
                if let (Err(e), false) = (&over, over_quota_approved) {
                    return Err(e.clone().into());
                }
                Ok(vec![QuotaEvent::QuotaConsumed {
                    resource_id,
                    department,
                    project,
                    amount,
                    over_quota: over.is_err(),
                }])
            }
            QuotaCommand::Release { resource_id } => {
                if !operator {
                    return Err(QuotaError::NotPermitted);
                }
                let (project, amount) = self
                    .consumers
                    .get(&resource_id)
                    .cloned()
                    .ok_or(QuotaError::NotConsumed(resource_id))?;
                Ok(vec![QuotaEvent::QuotaReleased {
                    resource_id,
                    project,
                    amount,
                }])
            }
        }
    }

    fn evolve(mut self, event: &QuotaEvent) -> Self {
        match event {
            QuotaEvent::QuotaSet {
                department,
                project,
                limit,
            } => {
                self.department.clone_from(department);
                match (project, limit) {
                    (None, limit) => self.limit = *limit,
                    (Some(p), Some(limit)) => {
                        self.project_limits.insert(p.clone(), *limit);
                    }
                    (Some(p), None) => {
                        self.project_limits.remove(p);
                    }
                }
            }
            QuotaEvent::QuotaConsumed {
                resource_id,
                department,
                project,
                amount,
                ..
            } => {
                self.department.clone_from(department);
                self.used = self.used.plus(*amount);
                if let Some(p) = project {
                    let used = self.project_used.entry(p.clone()).or_default();
                    *used = used.plus(*amount);
                }
                self.consumers
                    .insert(*resource_id, (project.clone(), *amount));
            }
            QuotaEvent::QuotaReleased {
                resource_id,
                project,
                amount,
            } => {
                self.used = self.used.minus(*amount);
                if let Some(used) = project.as_ref().and_then(|p| self.project_used.get_mut(p)) {
                    *used = used.minus(*amount);
                }
                self.consumers.remove(resource_id);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};

    fn amount(cpu_cores: u64) -> Amount {
        Amount {
            cpu_cores,
            memory_gib: cpu_cores * 4,
            storage_gib: 0,
        }
    }

    fn set(project: Option<&str>, cpu: u64) -> QuotaEvent {
        QuotaEvent::QuotaSet {
            department: "財政局".into(),
            project: project.map(Into::into),
            limit: Some(amount(cpu)),
        }
    }

    fn consumed(n: u128, project: &str, cpu: u64) -> QuotaEvent {
        QuotaEvent::QuotaConsumed {
            resource_id: Uuid::from_u128(n),
            department: "財政局".into(),
            project: Some(project.into()),
            amount: amount(cpu),
            over_quota: false,
        }
    }

    fn consume(n: u128, project: &str, cpu: u64, approved: bool) -> QuotaCommand {
        QuotaCommand::Consume {
            resource_id: Uuid::from_u128(n),
            department: "財政局".into(),
            project: Some(project.into()),
            amount: amount(cpu),
            over_quota_approved: approved,
        }
    }

    fn system() -> crate::Actor {
        crate::Actor::system("provisioner")
    }

    #[test]
    fn the_department_and_the_project_limit_both_hold() {
        let history = [
            set(None, 32),
            set(Some("稅務系統"), 8),
            consumed(1, "稅務系統", 6),
        ];
        given::<Quota>(history.clone())
            .when(consume(2, "稅務系統", 4, false), &system())
            .then_err(
                QuotaExceeded {
                    scope: "project 稅務系統 of 財政局".into(),
                    dimension: "cpu_cores",
                    wanted: 4,
                    left: 2,
                    limit: 8,
                }
                .into(),
            );
        given::<Quota>(history.clone())
            .when(consume(2, "社保系統", 28, false), &system())
            .then_err(
                QuotaExceeded {
                    scope: "department 財政局".into(),
                    dimension: "cpu_cores",
                    wanted: 28,
                    left: 26,
                    limit: 32,
                }
                .into(),
            );
        given::<Quota>(history)
            .when(consume(2, "社保系統", 26, false), &system())
            .then([consumed(2, "社保系統", 26)]);
    }

    #[test]
    fn an_approved_excess_is_consumed_and_marked() {
        given::<Quota>([set(None, 4)])
            .when(consume(2, "稅務系統", 8, true), &system())
            .then([QuotaEvent::QuotaConsumed {
                resource_id: Uuid::from_u128(2),
                department: "財政局".into(),
                project: Some("稅務系統".into()),
                amount: amount(8),
                over_quota: true,
            }]);
    }

    #[test]
    fn only_operators_and_administrators_set_quotas() {
        given::<Quota>([])
            .when(
                QuotaCommand::SetQuota {
                    department: "財政局".into(),
                    project: None,
                    limit: Some(amount(4)),
                },
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(QuotaError::NotPermitted);
    }
}
