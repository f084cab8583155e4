//! Service-level agreements: per service, how soon an incident of each severity must be
//! responded to and resolved, on which business calendar, and when to warn. A policy is
//! versioned like a calendar: an edit applies from the moment it was recorded.
//!
//! [`SlaClock`] is the clock itself, a pure fold: open time is counted on the calendar in
//! force at each instant, not while paused, against the target in force at each instant.
//! The read models fold it from the log and the scheduler records the warnings and
//! breaches it makes due, so a replay shows exactly the clock the live system showed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::operations::calendar::BusinessHours;
use crate::operations::incident::Severity;
use crate::requests::catalog::{invalid, InvalidField};

/// The service whose policy applies to incidents of a service without its own.
pub const DEFAULT_SERVICE: &str = "default";

/// The id of a service's SLA policy stream.
pub fn sla_policy_id(service: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:sla:{service}").as_bytes(),
    )
}

/// How soon, in open minutes of the calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub response_minutes: u32,
    pub resolution_minutes: u32,
}

/// A policy version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTerms {
    pub service: String,
    pub calendar_id: Uuid,
    /// Severities without targets have no clock.
    pub targets: BTreeMap<Severity, Targets>,
    /// The share of a target after which a warning is recorded (e.g. 75).
    pub warn_percent: u8,
}

impl SlaTerms {
    /// Checks the terms are usable.
    ///
    /// # Errors
    /// The first field that is wrong, by its path.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.service.trim().is_empty() {
            return Err(invalid("service", "is required"));
        }
        if !(1..=99).contains(&self.warn_percent) {
            return Err(invalid("warnPercent", "must be between 1 and 99"));
        }
        if self.targets.is_empty() {
            return Err(invalid("targets", "name no severity"));
        }
        for (severity, t) in &self.targets {
            let path = format!("targets.{}", severity.as_str());
            if t.response_minutes == 0 || t.resolution_minutes == 0 {
                return Err(invalid(path, "must be at least one minute"));
            }
            if t.response_minutes > t.resolution_minutes {
                return Err(invalid(path, "responds later than it resolves"));
            }
        }
        Ok(())
    }
}

/// Orders to a policy.
#[derive(Clone, Debug)]
pub enum SlaCommand {
    /// Defines the service's policy (version 1) or revises it (from now on).
    SetSla { terms: SlaTerms },
}

/// What happened to a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SlaEvent {
    SlaSet { version: u32, terms: SlaTerms },
}

impl DomainEvent for SlaEvent {}

/// Why a policy refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    /// A field of the policy breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators and administrators set SLA policies (forbidden)
    #[error("only operators and administrators set SLA policies")]
    NotPermitted,
    /// The edit changes nothing (conflict)
    #[error("the policy is unchanged")]
    Unchanged,
    /// The stream holds another service's policy (conflict)
    #[error("this stream holds the policy of service {0}")]
    OtherService(String),
}

impl Refuse for SlaError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::Unchanged | Self::OtherService(..) => Refusal::Conflict,
        }
    }
}

/// A service's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicy {
    pub version: u32,
    pub terms: Option<SlaTerms>,
}

impl Aggregate for SlaPolicy {
    const KIND: &'static str = "sla";
    type Command = SlaCommand;
    type Event = SlaEvent;
    type Error = SlaError;

    fn decide(&self, command: SlaCommand, ctx: &Context) -> Result<Vec<SlaEvent>, SlaError> {
        let SlaCommand::SetSla { mut terms } = command;
        if !ctx.actor.operates() {
            return Err(SlaError::NotPermitted);
        }
        terms.service = terms.service.trim().to_owned();
        terms.validate()?;
        match &self.terms {
            Some(t) if t.service != terms.service => {
                return Err(SlaError::OtherService(t.service.clone()))
            }
            Some(t) if *t == terms => return Err(SlaError::Unchanged),
            _ => {}
        }
        Ok(vec![SlaEvent::SlaSet {
            version: self.version + 1,
            terms,
        }])
    }

    fn evolve(mut self, event: &SlaEvent) -> Self {
        let SlaEvent::SlaSet { version, terms } = event;
        self.version = *version;
        self.terms = Some(terms.clone());
        self
    }
}

/// The two clocks of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClockKind {
    /// Until the incident is first acknowledged.
    Response,
    /// Until it is resolved; paused while waiting on the customer or a vendor.
    Resolution,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::Response => "response",
            ClockKind::Resolution => "resolution",
        }
    }
}

/// An SLA clock: open time counted so far, and the target it runs against. Every change
/// (a pause, a new target, a new calendar) first brings the count up to the moment it was
/// recorded, so what came before is counted under the rules then in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaClock {
    /// Open seconds counted up to `since`.
    pub elapsed_secs: i64,
    pub since: DateTime<Utc>,
    pub running: bool,
    /// Paused (waiting on the customer or a vendor) rather than stopped.
    pub paused: bool,
    /// The target in open seconds; `None` when the policy has none.
    pub target_secs: Option<i64>,
    pub warn_percent: u8,
    /// When it stopped for good (responded, resolved); a reopen starts it again.
    pub stopped_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    /// A warning or breach that fell due before a change (a pause, a new target, the
    /// stop) moved the due times: still owed, at the instant it fell due.
    #[serde(default)]
    pub owed_warning: Option<DateTime<Utc>>,
    #[serde(default)]
    pub owed_breach: Option<DateTime<Utc>>,
}

impl SlaClock {
    /// A clock started at `at`.
    pub fn start(at: DateTime<Utc>, target: Option<Duration>, warn_percent: u8) -> Self {
        SlaClock {
            since: at,
            running: true,
            target_secs: target.map(|t| t.num_seconds()),
            warn_percent,
            ..SlaClock::default()
        }
    }

    /// Counts the open time up to `to` under `hours` (the calendar in force until then).
    /// A warning or breach that falls due on the way stays owed whatever changes next.
    pub fn advance(&mut self, to: DateTime<Utc>, hours: &BusinessHours) {
        if to <= self.since {
            return;
        }
        if self.running {
            // Reaching the target at the very moment of the change is meeting it.
            if self.owed_warning.is_none() {
                self.owed_warning = self.warning_due(hours).filter(|w| *w < to);
            }
            if self.owed_breach.is_none() {
                self.owed_breach = self.breach_due(hours).filter(|b| *b < to);
            }
            self.elapsed_secs += hours.open_between(self.since, to).num_seconds();
        }
        self.since = to;
    }

    /// The open seconds counted at `at` (not before `since`).
    pub fn elapsed_at(&self, at: DateTime<Utc>, hours: &BusinessHours) -> i64 {
        if self.running && at > self.since {
            self.elapsed_secs + hours.open_between(self.since, at).num_seconds()
        } else {
            self.elapsed_secs
        }
    }

    pub fn pause(&mut self, at: DateTime<Utc>, hours: &BusinessHours) {
        self.advance(at, hours);
        self.running = false;
        self.paused = true;
    }

    pub fn resume(&mut self, at: DateTime<Utc>, hours: &BusinessHours) {
        self.advance(at, hours);
        self.running = self.stopped_at.is_none();
        self.paused = false;
    }

    pub fn stop(&mut self, at: DateTime<Utc>, hours: &BusinessHours) {
        self.advance(at, hours);
        self.running = false;
        self.paused = false;
        self.stopped_at = Some(at);
    }

    /// Starts a stopped clock again (a reopened incident), counting on from where it was.
    pub fn restart(&mut self, at: DateTime<Utc>, hours: &BusinessHours) {
        self.advance(at, hours);
        self.stopped_at = None;
        self.running = !self.paused;
    }

    /// A new target from `at` on (a new severity or policy).
    pub fn retarget(
        &mut self,
        at: DateTime<Utc>,
        hours: &BusinessHours,
        target: Option<Duration>,
        warn_percent: u8,
    ) {
        self.advance(at, hours);
        self.target_secs = target.map(|t| t.num_seconds());
        self.warn_percent = warn_percent;
    }

    /// When the warning falls due: the instant it fell due if that is owed, else the
    /// instant the count reaches `warn_percent` of the target, or `since` when it already
    /// has; `None` when it cannot (stopped, paused, warned already, no target, a calendar
    /// that never opens) or when a new target left the whole target spent (the breach
    /// is due at once, a warning at the same instant says nothing).
    pub fn warning_due(&self, hours: &BusinessHours) -> Option<DateTime<Utc>> {
        if self.warned_at.is_some() || self.breached_at.is_some() {
            return None;
        }
        if self.owed_warning.is_some() {
            return self.owed_warning;
        }
        let target = self.target_secs?;
        if self.elapsed_secs >= target {
            return None;
        }
        self.reaches(target * i64::from(self.warn_percent) / 100, hours)
    }

    /// When the breach falls due, as [`SlaClock::warning_due`] for the whole target.
    pub fn breach_due(&self, hours: &BusinessHours) -> Option<DateTime<Utc>> {
        if self.breached_at.is_some() {
            return None;
        }
        if self.owed_breach.is_some() {
            return self.owed_breach;
        }
        self.reaches(self.target_secs?, hours)
    }

    fn reaches(&self, secs: i64, hours: &BusinessHours) -> Option<DateTime<Utc>> {
        if !self.running {
            return None;
        }
        if self.elapsed_secs >= secs {
            return Some(self.since);
        }
        hours.after_open(self.since, Duration::seconds(secs - self.elapsed_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};
    use chrono::NaiveTime;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn office() -> BusinessHours {
        let day = vec![(
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        )];
        BusinessHours {
            zone: chrono_tz::UTC,
            always_open: false,
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                vec![],
                vec![],
            ],
            holidays: Default::default(),
        }
    }

    fn terms(warn_percent: u8) -> SlaTerms {
        SlaTerms {
            service: "cloud-hosting".into(),
            calendar_id: Uuid::nil(),
            targets: [(
                Severity::Urgent,
                Targets {
                    response_minutes: 15,
                    resolution_minutes: 240,
                },
            )]
            .into(),
            warn_percent,
        }
    }

    #[test]
    fn a_pause_stops_the_count_and_moves_the_due_time() {
        let h = office();
        // Thursday 10:00, 4 open hours.
        let mut c = SlaClock::start(t("2026-11-26T10:00:00Z"), Some(Duration::hours(4)), 75);
        assert_eq!(c.breach_due(&h), Some(t("2026-11-26T14:00:00Z")));
        c.pause(t("2026-11-26T11:00:00Z"), &h);
        assert_eq!(c.breach_due(&h), None);
        c.resume(t("2026-11-26T13:00:00Z"), &h);
        // 1 h counted, 3 h left from 13:00.
        assert_eq!(c.breach_due(&h), Some(t("2026-11-26T16:00:00Z")));
        assert_eq!(c.warning_due(&h), Some(t("2026-11-26T15:00:00Z")));
    }

    #[test]
    fn a_clock_runs_over_the_weekend_only_in_open_hours() {
        let h = office();
        // Friday 15:00 + 4 open hours = Monday 11:00.
        let c = SlaClock::start(t("2026-11-27T15:00:00Z"), Some(Duration::hours(4)), 75);
        assert_eq!(c.breach_due(&h), Some(t("2026-11-30T11:00:00Z")));
        assert_eq!(c.elapsed_at(t("2026-11-29T12:00:00Z"), &h), 2 * 3600);
    }

    #[test]
    fn a_shorter_target_already_passed_is_due_the_moment_it_was_recorded() {
        let h = office();
        let mut c = SlaClock::start(t("2026-11-26T09:00:00Z"), Some(Duration::hours(8)), 75);
        c.retarget(t("2026-11-26T13:00:00Z"), &h, Some(Duration::hours(2)), 75);
        assert_eq!(c.breach_due(&h), Some(t("2026-11-26T13:00:00Z")));
    }

    #[test]
    fn a_breach_due_before_a_longer_target_is_still_owed() {
        let h = office();
        let mut c = SlaClock::start(t("2026-11-26T09:00:00Z"), Some(Duration::hours(2)), 75);
        // Due at 11:00; at 12:00 (the scheduler had not run) it is downgraded to 8 h.
        c.retarget(t("2026-11-26T12:00:00Z"), &h, Some(Duration::hours(8)), 75);
        assert_eq!(c.warning_due(&h), Some(t("2026-11-26T10:30:00Z")));
        assert_eq!(c.breach_due(&h), Some(t("2026-11-26T11:00:00Z")));
        // Resolved later still leaves it owed.
        c.stop(t("2026-11-26T13:00:00Z"), &h);
        assert_eq!(c.breach_due(&h), Some(t("2026-11-26T11:00:00Z")));
    }

    #[test]
    fn responding_at_the_deadline_meets_it() {
        let h = office();
        let mut c = SlaClock::start(t("2026-11-26T09:00:00Z"), Some(Duration::minutes(30)), 75);
        c.stop(t("2026-11-26T09:30:00Z"), &h);
        assert_eq!(
            (c.warning_due(&h), c.breach_due(&h)),
            (Some(t("2026-11-26T09:22:30Z")), None)
        );
    }

    #[test]
    fn a_calendar_change_counts_the_time_before_it_under_the_old_hours() {
        let office = office();
        let always = BusinessHours::always(chrono_tz::UTC);
        // Thursday 16:00 with 4 h: on office hours it is due Friday 11:00.
        let mut c = SlaClock::start(t("2026-11-26T16:00:00Z"), Some(Duration::hours(4)), 75);
        // At 20:00 the service moves to 7×24: 1 h was counted (16–17), 3 h left from 20:00.
        c.advance(t("2026-11-26T20:00:00Z"), &office);
        assert_eq!(c.elapsed_secs, 3600);
        assert_eq!(c.breach_due(&always), Some(t("2026-11-26T23:00:00Z")));
    }

    #[test]
    fn a_policy_for_another_service_is_refused_on_this_stream() {
        let op = person("u-op", "ops", &["operator"]);
        let first = given::<SlaPolicy>([])
            .when(SlaCommand::SetSla { terms: terms(75) }, &op)
            .events();
        let mut other = terms(75);
        other.service = "network".into();
        given::<SlaPolicy>(first.clone())
            .when(SlaCommand::SetSla { terms: other }, &op)
            .then_err(SlaError::OtherService("cloud-hosting".into()));
        given::<SlaPolicy>(first.clone())
            .when(SlaCommand::SetSla { terms: terms(75) }, &op)
            .then_err(SlaError::Unchanged);
        given::<SlaPolicy>(first)
            .when(SlaCommand::SetSla { terms: terms(80) }, &op)
            .then([SlaEvent::SlaSet {
                version: 2,
                terms: terms(80),
            }]);
    }

    #[test]
    fn bad_terms_are_named() {
        let op = person("u-op", "ops", &["operator"]);
        let mut bad = terms(75);
        bad.targets.insert(
            Severity::General,
            Targets {
                response_minutes: 500,
                resolution_minutes: 100,
            },
        );
        given::<SlaPolicy>([])
            .when(SlaCommand::SetSla { terms: bad }, &op)
            .then_err(SlaError::Invalid(invalid(
                "targets.general",
                "responds later than it resolves",
            )));
        given::<SlaPolicy>([])
            .when(SlaCommand::SetSla { terms: terms(100) }, &op)
            .then_err(SlaError::Invalid(invalid(
                "warnPercent",
                "must be between 1 and 99",
            )));
    }
}
