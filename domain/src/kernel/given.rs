//! Domain tests as sentences: `given(events).when(command, by).then(events)`.

use std::fmt::Debug;

use chrono::{DateTime, TimeZone, Utc};

use crate::kernel::aggregate::{Aggregate, Context};
use crate::kernel::event::{Actor, ActorKind};

pub fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, hour, 0, 0).unwrap()
}

pub fn person(id: &str, department: &str, roles: &[&str]) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: id.into(),
        name: None,
        department: Some(department.into()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

pub struct Given<A: Aggregate> {
    state: A,
    now: DateTime<Utc>,
}

pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        state: events.into_iter().fold(A::default(), |s, e| s.evolve(&e)),
        now: at(9),
    }
}

pub struct Then<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Given<A> {
    /// The clock reads `now` when the command is decided.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    pub fn when(self, command: A::Command, by: &Actor) -> Then<A> {
        let ctx = Context {
            actor: by.clone(),
            now: self.now,
        };
        Then {
            result: self.state.decide(command, &ctx),
        }
    }
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq + Debug,
{
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        assert_eq!(
            self.result.unwrap(),
            expected.into_iter().collect::<Vec<_>>()
        );
    }

    pub fn then_err(self, expected: A::Error) {
        assert_eq!(self.result.unwrap_err(), expected);
    }

    /// The events, for checks that name only part of them.
    pub fn events(self) -> Vec<A::Event> {
        self.result.unwrap()
    }
}
