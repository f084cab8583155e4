//! Freeze windows: periods (a major event, the year-end close) during which changes and
//! automated operations on some services or configuration items, or on everything, are
//! refused. A change manager declares a freeze, may move its end, and may lift it early.
//! Other aggregates never read a freeze's stream: the facts of the freezes that matter
//! travel in their commands as [`FreezeFact`]s, and [`freeze_in_force`] finds the one that
//! refuses an operation. Only an emergency change may go ahead during a freeze, and only
//! with a change manager's recorded override (see [`crate::changes::change`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// A half-open period `[start, end)`: `[9:00, 10:00)` and `[10:00, 11:00)` do not overlap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Window { start, end }
    }

    /// Whether `at` falls in the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// The period both windows share, if any.
    pub fn overlap(&self, other: &Window) -> Option<Window> {
        let shared = Window {
            start: self.start.max(other.start),
            end: self.end.min(other.end),
        };
        (shared.start < shared.end).then_some(shared)
    }

    /// Checks a window given as the input `field` is one that still lies ahead.
    ///
    /// # Errors
    /// `{field}.end` when it is not after the start or is already past at `now`.
    pub fn check(&self, field: &str, now: DateTime<Utc>) -> Result<(), InvalidField> {
        if self.end <= self.start {
            return Err(invalid(
                format!("{field}.end"),
                format!("is not after {field}.start"),
            ));
        }
        if self.end <= now {
            return Err(invalid(format!("{field}.end"), "is already past"));
        }
        Ok(())
    }
}

/// What a freeze holds: the named CIs and services; both empty means everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeScope {
    pub ci_ids: Vec<Uuid>,
    pub services: Vec<String>,
}

impl FreezeScope {
    /// Whether the scope holds everything.
    pub fn is_everything(&self) -> bool {
        self.ci_ids.is_empty() && self.services.is_empty()
    }

    /// Whether an operation on `ci_ids` and `services` touches the scope.
    pub fn touches(&self, ci_ids: &[Uuid], services: &[String]) -> bool {
        self.is_everything()
            || ci_ids.iter().any(|ci| self.ci_ids.contains(ci))
            || services.iter().any(|s| self.services.contains(s))
    }
}

/// A freeze as other aggregates' commands carry it: the period it is in force (ending
/// early if it was lifted) and its scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeFact {
    pub freeze_id: Uuid,
    pub name: String,
    pub window: Window,
    pub scope: FreezeScope,
}

impl FreezeFact {
    /// Whether the freeze holds any instant of `window` for an operation on `ci_ids` and
    /// `services`.
    pub fn covers(&self, window: &Window, ci_ids: &[Uuid], services: &[String]) -> bool {
        self.window.overlap(window).is_some() && self.scope.touches(ci_ids, services)
    }

    /// Whether the freeze holds the instant `at` for an operation on `ci_ids` and
    /// `services`.
    pub fn covers_at(&self, at: DateTime<Utc>, ci_ids: &[Uuid], services: &[String]) -> bool {
        self.window.contains(at) && self.scope.touches(ci_ids, services)
    }
}

/// The rule an operation broke: a freeze holds what it touches.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the freeze {name} ({freeze_id}) holds these services or CIs until {until}")]
pub struct Frozen {
    pub freeze_id: Uuid,
    pub name: String,
    pub until: DateTime<Utc>,
}

impl From<&FreezeFact> for Frozen {
    fn from(fact: &FreezeFact) -> Self {
        Frozen {
            freeze_id: fact.freeze_id,
            name: fact.name.clone(),
            until: fact.window.end,
        }
    }
}

/// The freezes among `freezes` that hold any instant of `window` for an operation on
/// `ci_ids` and `services`. An automated operation is refused when this is not empty.
pub fn freeze_in_force<'a>(
    freezes: &'a [FreezeFact],
    window: &Window,
    ci_ids: &[Uuid],
    services: &[String],
) -> Vec<&'a FreezeFact> {
    freezes
        .iter()
        .filter(|f| f.covers(window, ci_ids, services))
        .collect()
}

/// Orders to a freeze window.
#[derive(Clone, Debug)]
pub enum FreezeCommand {
    Declare {
        freeze_id: Uuid,
        name: String,
        reason: String,
        window: Window,
        /// Empty: everything.
        scope: FreezeScope,
    },
    /// Moves the end, earlier or later.
    Amend { end: DateTime<Utc> },
    /// Ends the freeze now.
    Lift { reason: String },
}

/// What happened to a freeze window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum FreezeEvent {
    FreezeDeclared {
        freeze_id: Uuid,
        name: String,
        reason: String,
        window: Window,
        scope: FreezeScope,
        by: String,
    },
    FreezeAmended {
        previous_end: DateTime<Utc>,
        end: DateTime<Utc>,
        by: String,
    },
    FreezeLifted {
        reason: String,
        by: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for FreezeEvent {}

/// Why a freeze window refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FreezeError {
    /// A field of the freeze breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only change managers and administrators declare, amend or lift freezes (forbidden)
    #[error("only change managers and administrators declare, amend or lift freezes")]
    NotPermitted,
    /// The freeze was declared already (conflict)
    #[error("this freeze was already declared")]
    AlreadyDeclared,
    /// There is no such freeze (not found)
    #[error("there is no such freeze")]
    NotFound,
    /// The freeze was lifted (conflict)
    #[error("the freeze was lifted at {0}")]
    Lifted(DateTime<Utc>),
    /// The freeze has ended (conflict)
    #[error("the freeze ended at {0}")]
    Ended(DateTime<Utc>),
}

impl Refuse for FreezeError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::AlreadyDeclared | Self::Lifted(..) | Self::Ended(..) => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
        }
    }
}

/// A freeze window's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeWindow {
    pub freeze_id: Option<Uuid>,
    pub name: String,
    pub reason: String,
    pub window: Window,
    pub scope: FreezeScope,
    pub declared_by: String,
    pub lifted_at: Option<DateTime<Utc>>,
}

impl FreezeWindow {
    /// The freeze as commands carry it, its window ending when it was lifted; `None` before
    /// it is declared or when it was lifted before it began.
    pub fn fact(&self) -> Option<FreezeFact> {
        let freeze_id = self.freeze_id?;
        let end = self
            .lifted_at
            .map_or(self.window.end, |lifted| lifted.min(self.window.end));
        (self.window.start < end).then(|| FreezeFact {
            freeze_id,
            name: self.name.clone(),
            window: Window::new(self.window.start, end),
            scope: self.scope.clone(),
        })
    }

    /// Whether the freeze holds any instant of `window` for an operation on `ci_ids` and
    /// `services`.
    pub fn covers(&self, window: &Window, ci_ids: &[Uuid], services: &[String]) -> bool {
        self.fact()
            .is_some_and(|f| f.covers(window, ci_ids, services))
    }

    /// The freeze, while it can still be amended or lifted at `now`.
    fn open(&self, now: DateTime<Utc>) -> Result<(), FreezeError> {
        if self.freeze_id.is_none() {
            return Err(FreezeError::NotFound);
        }
        if let Some(at) = self.lifted_at {
            return Err(FreezeError::Lifted(at));
        }
        if self.window.end <= now {
            return Err(FreezeError::Ended(self.window.end));
        }
        Ok(())
    }
}

impl Aggregate for FreezeWindow {
    const KIND: &'static str = "freeze";
    type Command = FreezeCommand;
    type Event = FreezeEvent;
    type Error = FreezeError;

    fn decide(
        &self,
        command: FreezeCommand,
        ctx: &Context,
    ) -> Result<Vec<FreezeEvent>, FreezeError> {
        if !ctx.actor.has_role(Role::ChangeManager) {
            return Err(FreezeError::NotPermitted);
        }
        let by = ctx.actor.id.clone();
        match command {
            FreezeCommand::Declare {
                freeze_id,
                name,
                reason,
                window,
                scope,
            } => {
                if self.freeze_id.is_some() {
                    return Err(FreezeError::AlreadyDeclared);
                }
                if name.trim().is_empty() {
                    return Err(invalid("name", "is required").into());
                }
                if reason.trim().is_empty() {
                    return Err(invalid("reason", "is required").into());
                }
                window.check("window", ctx.now)?;
                if scope.services.iter().any(|s| s.trim().is_empty()) {
                    return Err(invalid("scope.services", "holds an empty name").into());
                }
                Ok(vec![FreezeEvent::FreezeDeclared {
                    freeze_id,
                    name,
                    reason,
                    window,
                    scope,
                    by,
                }])
            }
            FreezeCommand::Amend { end } => {
                self.open(ctx.now)?;
                if end <= self.window.start {
                    return Err(invalid("end", "is not after the freeze's start").into());
                }
                if end <= ctx.now {
                    return Err(invalid("end", "is already past; lift the freeze instead").into());
                }
                Ok(vec![FreezeEvent::FreezeAmended {
                    previous_end: self.window.end,
                    end,
                    by,
                }])
            }
            FreezeCommand::Lift { reason } => {
                self.open(ctx.now)?;
                if reason.trim().is_empty() {
                    return Err(invalid("reason", "is required").into());
                }
                Ok(vec![FreezeEvent::FreezeLifted {
                    reason,
                    by,
                    at: ctx.now,
                }])
            }
        }
    }

    fn evolve(mut self, event: &FreezeEvent) -> Self {
        match event {
            FreezeEvent::FreezeDeclared {
                freeze_id,
                name,
                reason,
                window,
                scope,
                by,
            } => {
                self.freeze_id = Some(*freeze_id);
                self.name.clone_from(name);
                self.reason.clone_from(reason);
                self.window = *window;
                self.scope = scope.clone();
                self.declared_by.clone_from(by);
            }
            FreezeEvent::FreezeAmended { end, .. } => self.window.end = *end,
            FreezeEvent::FreezeLifted { at, .. } => self.lifted_at = Some(*at),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};

    fn change_manager() -> crate::Actor {
        person("u-lam", "運維中心", &["change_manager"])
    }

    fn core_switch() -> Uuid {
        Uuid::from_u128(0xc1)
    }

    fn year_end_scope() -> FreezeScope {
        FreezeScope {
            ci_ids: vec![core_switch()],
            services: vec!["財政預算系統".into()],
        }
    }

    fn declared(scope: FreezeScope) -> FreezeEvent {
        FreezeEvent::FreezeDeclared {
            freeze_id: Uuid::from_u128(0xf1),
            name: "年終結算".into(),
            reason: "年終結算期間系統須穩定運行".into(),
            window: Window::new(at(12), at(18)),
            scope,
            by: "u-lam".into(),
        }
    }

    fn freeze(events: impl IntoIterator<Item = FreezeEvent>) -> FreezeWindow {
        events
            .into_iter()
            .fold(FreezeWindow::default(), |s, e| s.evolve(&e))
    }

    #[test]
    fn a_change_manager_declares_a_freeze_and_an_engineer_cannot() {
        let declare = || FreezeCommand::Declare {
            freeze_id: Uuid::from_u128(0xf1),
            name: "年終結算".into(),
            reason: "年終結算期間系統須穩定運行".into(),
            window: Window::new(at(12), at(18)),
            scope: year_end_scope(),
        };
        given::<FreezeWindow>([])
            .when(declare(), &change_manager())
            .then([declared(year_end_scope())]);
        given::<FreezeWindow>([])
            .when(declare(), &person("u-wong", "運維中心", &["engineer"]))
            .then_err(FreezeError::NotPermitted);
    }

    #[test]
    fn a_freeze_ends_after_it_starts_and_not_in_the_past() {
        let declare = |start, end| FreezeCommand::Declare {
            freeze_id: Uuid::from_u128(0xf1),
            name: "重大活動保障".into(),
            reason: "活動期間".into(),
            window: Window::new(at(start), at(end)),
            scope: FreezeScope::default(),
        };
        given::<FreezeWindow>([])
            .when(declare(12, 12), &change_manager())
            .then_err(invalid("window.end", "is not after window.start").into());
        given::<FreezeWindow>([])
            .at(at(9))
            .when(declare(6, 8), &change_manager())
            .then_err(invalid("window.end", "is already past").into());
    }

    #[test]
    fn a_freeze_covers_its_scope_within_its_half_open_window() {
        let fact = freeze([declared(year_end_scope())]).fact().unwrap();
        let switch = [core_switch()];
        assert!(fact.covers(&Window::new(at(11), at(13)), &switch, &[]));
        assert!(fact.covers(&Window::new(at(17), at(20)), &[], &["財政預算系統".into()]));
        assert!(!fact.covers(&Window::new(at(18), at(20)), &switch, &[]));
        assert!(!fact.covers(&Window::new(at(10), at(12)), &switch, &[]));
        assert!(!fact.covers(&Window::new(at(13), at(14)), &[Uuid::from_u128(9)], &[]));
        assert!(fact.covers_at(at(12), &switch, &[]));
        assert!(!fact.covers_at(at(18), &switch, &[]));
    }

    #[test]
    fn a_freeze_with_an_empty_scope_holds_everything() {
        let fact = freeze([declared(FreezeScope::default())]).fact().unwrap();
        assert!(fact.covers(&Window::new(at(13), at(14)), &[Uuid::from_u128(9)], &[]));
        assert_eq!(
            freeze_in_force(&[fact], &Window::new(at(13), at(14)), &[], &[]).len(),
            1
        );
    }

    #[test]
    fn a_lifted_freeze_covers_nothing_after_it_was_lifted() {
        let lifted = FreezeEvent::FreezeLifted {
            reason: "結算提前完成".into(),
            by: "u-lam".into(),
            at: at(14),
        };
        let state = freeze([declared(year_end_scope()), lifted]);
        let switch = [core_switch()];
        assert!(state.covers(&Window::new(at(13), at(14)), &switch, &[]));
        assert!(!state.covers(&Window::new(at(14), at(16)), &switch, &[]));
        let lifted_early = FreezeEvent::FreezeLifted {
            reason: "活動取消".into(),
            by: "u-lam".into(),
            at: at(10),
        };
        assert_eq!(
            freeze([declared(year_end_scope()), lifted_early]).fact(),
            None
        );
    }

    #[test]
    fn an_amended_end_moves_the_freeze() {
        given::<FreezeWindow>([declared(year_end_scope())])
            .at(at(13))
            .when(FreezeCommand::Amend { end: at(20) }, &change_manager())
            .then([FreezeEvent::FreezeAmended {
                previous_end: at(18),
                end: at(20),
                by: "u-lam".into(),
            }]);
        let amended = FreezeEvent::FreezeAmended {
            previous_end: at(18),
            end: at(20),
            by: "u-lam".into(),
        };
        let state = freeze([declared(year_end_scope()), amended]);
        assert!(state.covers(&Window::new(at(19), at(20)), &[core_switch()], &[]));
        given::<FreezeWindow>([declared(year_end_scope())])
            .at(at(13))
            .when(FreezeCommand::Amend { end: at(11) }, &change_manager())
            .then_err(invalid("end", "is not after the freeze's start").into());
    }

    #[test]
    fn an_ended_or_lifted_freeze_is_neither_amended_nor_lifted() {
        let lift = || FreezeCommand::Lift {
            reason: "結算完成".into(),
        };
        given::<FreezeWindow>([declared(year_end_scope())])
            .at(at(18))
            .when(lift(), &change_manager())
            .then_err(FreezeError::Ended(at(18)));
        let lifted = FreezeEvent::FreezeLifted {
            reason: "結算提前完成".into(),
            by: "u-lam".into(),
            at: at(14),
        };
        given::<FreezeWindow>([declared(year_end_scope()), lifted])
            .at(at(15))
            .when(FreezeCommand::Amend { end: at(20) }, &change_manager())
            .then_err(FreezeError::Lifted(at(14)));
        given::<FreezeWindow>([])
            .when(lift(), &change_manager())
            .then_err(FreezeError::NotFound);
    }
}
