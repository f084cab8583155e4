//! Delegations: an approver who is away names a substitute for a period. While it runs,
//! the substitute may decide a step in their place; the approval records both ("approved
//! by X on behalf of Y") and counts as the delegator's for the chain's rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};
use crate::requests::request::Delegation as Grant;

/// Orders to a delegation.
#[derive(Clone, Debug)]
pub enum DelegationCommand {
    /// The signed-in approver delegates their decisions to `substitute`.
    GrantDelegation {
        delegation_id: Uuid,
        substitute: String,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        reason: String,
    },
    /// Ends it early; by the delegator or an admin.
    RevokeDelegation { reason: Option<String> },
}

/// What happened to a delegation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DelegationEvent {
    /// `grant.delegator` holds the roles they had when they granted it.
    DelegationGranted {
        delegation_id: Uuid,
        grant: Grant,
        reason: String,
    },
    DelegationRevoked {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for DelegationEvent {}

/// Why a delegation refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// A field of the delegation breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The delegation was granted already (conflict)
    #[error("this delegation was already granted")]
    AlreadyGranted,
    /// There is no such delegation (not found)
    #[error("there is no such delegation")]
    NotFound,
    /// The delegation was revoked (conflict)
    #[error("this delegation was revoked")]
    Revoked,
    /// Only the delegator or an administrator revokes a delegation (forbidden)
    #[error("only the delegator or an admin may revoke a delegation")]
    NotDelegator,
    /// The delegator holds no role that decides an approval step (a requester asks, an
    /// auditor reads): there is nothing a substitute could decide in their place (forbidden)
    #[error("a delegation hands over approval decisions, and you hold no role that decides one")]
    NothingToDelegate,
}

impl Refuse for DelegationError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::AlreadyGranted | Self::Revoked => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
            Self::NotDelegator | Self::NothingToDelegate => Refusal::Forbidden,
        }
    }
}

/// Whether a substitute could decide something in the place of a holder of `role`: every
/// role an approval step may name, but the requester (who asks) and the auditor (who
/// reads everything and changes nothing).
pub fn delegable(role: Role) -> bool {
    !matches!(role, Role::Requester | Role::Auditor)
}

/// A delegation's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationState {
    pub delegation_id: Option<Uuid>,
    pub grant: Option<Grant>,
    pub reason: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl DelegationState {
    /// The grant a substitute may act under, unless it was revoked.
    ///
    /// # Errors
    /// `NotFound` or `Revoked`.
    pub fn in_force(&self) -> Result<&Grant, DelegationError> {
        match (&self.grant, self.revoked_at) {
            (None, _) => Err(DelegationError::NotFound),
            (Some(_), Some(_)) => Err(DelegationError::Revoked),
            (Some(grant), None) => Ok(grant),
        }
    }
}

impl Aggregate for DelegationState {
    const KIND: &'static str = "delegation";
    type Command = DelegationCommand;
    type Event = DelegationEvent;
    type Error = DelegationError;

    fn decide(
        &self,
        command: DelegationCommand,
        ctx: &Context,
    ) -> Result<Vec<DelegationEvent>, DelegationError> {
        match command {
            DelegationCommand::GrantDelegation {
                delegation_id,
                substitute,
                from,
                until,
                reason,
            } => {
                let holds_delegable = ctx
                    .actor
                    .roles
                    .iter()
                    .filter_map(|r| r.parse::<Role>().ok())
                    .any(delegable);
                if !holds_delegable {
                    return Err(DelegationError::NothingToDelegate);
                }
                if self.grant.is_some() {
                    return Err(DelegationError::AlreadyGranted);
                }
                let substitute = substitute.trim().to_owned();
                if substitute.is_empty() {
                    return Err(invalid("substitute", "names no one").into());
                }
                if substitute == ctx.actor.id {
                    return Err(invalid("substitute", "cannot be the delegator").into());
                }
                if until <= from {
                    return Err(invalid("until", "must be after from").into());
                }
                if until <= ctx.now {
                    return Err(invalid("until", "is already past").into());
                }
                if reason.trim().is_empty() {
                    return Err(invalid("reason", "is required").into());
                }
                Ok(vec![DelegationEvent::DelegationGranted {
                    delegation_id,
                    grant: Grant {
                        delegator: ctx.actor.clone(),
                        substitute,
                        from,
                        until,
                    },
                    reason,
                }])
            }
            DelegationCommand::RevokeDelegation { reason } => {
                let grant = self.in_force()?;
                if grant.delegator.id != ctx.actor.id && !ctx.actor.has_role(Role::Admin) {
                    return Err(DelegationError::NotDelegator);
                }
                Ok(vec![DelegationEvent::DelegationRevoked {
                    reason,
                    at: ctx.now,
                }])
            }
        }
    }

    fn evolve(mut self, event: &DelegationEvent) -> Self {
        match event {
            DelegationEvent::DelegationGranted {
                delegation_id,
                grant,
                reason,
            } => {
                self.delegation_id = Some(*delegation_id);
                self.grant = Some(grant.clone());
                self.reason.clone_from(reason);
            }
            DelegationEvent::DelegationRevoked { at, .. } => self.revoked_at = Some(*at),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};

    fn ho() -> crate::Actor {
        person("u-ho", "財政局", &["approver"])
    }

    fn grant(substitute: &str, from: u32, until: u32) -> DelegationCommand {
        DelegationCommand::GrantDelegation {
            delegation_id: Uuid::from_u128(7),
            substitute: substitute.into(),
            from: at(from),
            until: at(until),
            reason: "年假".into(),
        }
    }

    fn granted() -> DelegationEvent {
        DelegationEvent::DelegationGranted {
            delegation_id: Uuid::from_u128(7),
            grant: Grant {
                delegator: ho(),
                substitute: "u-ip".into(),
                from: at(9),
                until: at(18),
            },
            reason: "年假".into(),
        }
    }

    #[test]
    fn an_approver_delegates_with_the_roles_they_hold() {
        given::<DelegationState>([])
            .at(at(8))
            .when(grant("u-ip", 9, 18), &ho())
            .then([granted()]);
    }

    #[test]
    fn a_delegation_names_someone_else_for_a_period_still_to_come() {
        let bad = |cmd, field: &str, problem: &str| {
            given::<DelegationState>([])
                .at(at(12))
                .when(cmd, &ho())
                .then_err(invalid(field, problem).into());
        };
        bad(
            grant("u-ho", 9, 18),
            "substitute",
            "cannot be the delegator",
        );
        bad(grant(" ", 9, 18), "substitute", "names no one");
        bad(grant("u-ip", 18, 9), "until", "must be after from");
        bad(grant("u-ip", 9, 11), "until", "is already past");
    }

    #[test]
    fn only_someone_who_decides_approvals_delegates() {
        for roles in [
            &[][..],
            &["requester"],
            &["auditor"],
            &["requester", "auditor"],
        ] {
            given::<DelegationState>([])
                .at(at(8))
                .when(grant("u-ip", 9, 18), &person("u-ho", "財政局", roles))
                .then_err(DelegationError::NothingToDelegate);
        }
        let events = given::<DelegationState>([])
            .at(at(8))
            .when(
                grant("u-ip", 9, 18),
                &person("u-ho", "財政局", &["requester", "change_manager"]),
            )
            .events();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn only_the_delegator_or_an_admin_revokes_and_only_once() {
        let revoke = DelegationCommand::RevokeDelegation { reason: None };
        given::<DelegationState>([granted()])
            .when(revoke.clone(), &person("u-ip", "財政局", &["approver"]))
            .then_err(DelegationError::NotDelegator);
        given::<DelegationState>([granted()])
            .at(at(10))
            .when(revoke.clone(), &person("u-root", "運維中心", &["admin"]))
            .then([DelegationEvent::DelegationRevoked {
                reason: None,
                at: at(10),
            }]);
        let revoked = DelegationEvent::DelegationRevoked {
            reason: None,
            at: at(10),
        };
        given::<DelegationState>([granted(), revoked])
            .when(revoke, &ho())
            .then_err(DelegationError::Revoked);
    }
}
