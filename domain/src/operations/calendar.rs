//! Business calendars: when an SLA clock runs. A team that works 7×24 has a calendar that is
//! always open; an office-hours team has weekly opening hours in its time zone and a list
//! of holidays. Calendars are versioned: an edit applies from the moment it was recorded,
//! so a clock replayed from the log counts exactly the time the live one counted.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The opening hours of one calendar version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    pub zone: Tz,
    /// Open at every instant (7×24): the weekly hours and holidays do not apply.
    pub always_open: bool,
    /// Monday first: each day's opening intervals in local time, sorted, not overlapping.
    pub week: [Vec<(NaiveTime, NaiveTime)>; 7],
    /// Days closed all day.
    pub holidays: BTreeSet<NaiveDate>,
}

/// How far ahead a due time is looked for before a calendar is called never open.
const HORIZON_DAYS: i64 = 3 * 366;

impl BusinessHours {
    /// Open around the clock.
    pub fn always(zone: Tz) -> Self {
        BusinessHours {
            zone,
            always_open: true,
            week: Default::default(),
            holidays: BTreeSet::new(),
        }
    }

    /// Checks the hours are usable.
    ///
    /// # Errors
    /// The first interval or day that is wrong, by its path.
    pub fn validate(&self) -> Result<(), InvalidField> {
        const DAYS: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        if self.always_open {
            return Ok(());
        }
        for (day, intervals) in DAYS.iter().zip(&self.week) {
            let mut end_before = NaiveTime::MIN;
            for (i, (start, end)) in intervals.iter().enumerate() {
                if start >= end {
                    return Err(invalid(
                        format!("hours.{day}[{i}]"),
                        "must end after it starts",
                    ));
                }
                if i > 0 && *start < end_before {
                    return Err(invalid(
                        format!("hours.{day}[{i}]"),
                        "overlaps or precedes the interval before it",
                    ));
                }
                end_before = *end;
            }
        }
        if self.week.iter().all(Vec::is_empty) {
            return Err(invalid("hours", "are never open; use alwaysOpen for 7×24"));
        }
        Ok(())
    }

    /// The open stretches of the local day `date`, as instants.
    fn open_on(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let closed = self.holidays.contains(&date);
        let day = &self.week[date.weekday().num_days_from_monday() as usize];
        day.iter()
            .filter(move |_| !closed)
            .filter_map(move |(start, end)| {
                let at = |t: &NaiveTime| {
                    self.zone
                        .from_local_datetime(&date.and_time(*t))
                        .earliest()
                        .map(|d| d.with_timezone(&Utc))
                };
                Some((at(start)?, at(end)?))
            })
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.zone).date_naive()
    }

    /// The open time between `from` and `to` (zero when `to` is not after `from`).
    pub fn open_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        if self.always_open {
            return to - from;
        }
        let mut total = Duration::zero();
        let mut date = self.local_date(from).pred_opt().unwrap_or(NaiveDate::MIN);
        let last = self.local_date(to);
        while date <= last {
            for (start, end) in self.open_on(date) {
                let (start, end) = (start.max(from), end.min(to));
                if end > start {
                    total += end - start;
                }
            }
            date = match date.succ_opt() {
                Some(d) => d,
                None => break,
            };
        }
        total
    }

    /// The instant at which `open` more open time has passed after `from`; `None` when the
    /// calendar is not open that long within the next three years.
    pub fn after_open(&self, from: DateTime<Utc>, open: Duration) -> Option<DateTime<Utc>> {
        if open <= Duration::zero() {
            return Some(from);
        }
        if self.always_open {
            return Some(from + open);
        }
        let mut left = open;
        let mut date = self.local_date(from).pred_opt()?;
        let stop = date + Duration::days(HORIZON_DAYS);
        while date <= stop {
            for (start, end) in self.open_on(date) {
                let start = start.max(from);
                if end <= start {
                    continue;
                }
                if end - start >= left {
                    return Some(start + left);
                }
                left -= end - start;
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// Orders to a calendar.
#[derive(Clone, Debug)]
pub enum CalendarCommand {
    /// Defines the calendar (version 1) or revises it (a new version, from now on).
    SetCalendar {
        calendar_id: Uuid,
        name: String,
        hours: BusinessHours,
    },
}

/// What happened to a calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CalendarEvent {
    /// Version `version` applies from the moment this event was recorded.
    CalendarSet {
        calendar_id: Uuid,
        version: u32,
        name: String,
        hours: BusinessHours,
    },
}

impl DomainEvent for CalendarEvent {}

/// Why a calendar refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A field of the calendar breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators and administrators edit calendars (forbidden)
    #[error("only operators and administrators edit calendars")]
    NotPermitted,
    /// The edit changes nothing (conflict)
    #[error("the calendar is unchanged")]
    Unchanged,
}

impl Refuse for CalendarError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::Unchanged => Refusal::Conflict,
        }
    }
}

/// A calendar and its current version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub version: u32,
    pub name: String,
    pub hours: Option<BusinessHours>,
}

impl Aggregate for Calendar {
    const KIND: &'static str = "calendar";
    type Command = CalendarCommand;
    type Event = CalendarEvent;
    type Error = CalendarError;

    fn decide(
        &self,
        command: CalendarCommand,
        ctx: &Context,
    ) -> Result<Vec<CalendarEvent>, CalendarError> {
        let CalendarCommand::SetCalendar {
            calendar_id,
            name,
            hours,
        } = command;
        if !ctx.actor.operates() {
            return Err(CalendarError::NotPermitted);
        }
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(invalid("name", "is required").into());
        }
        hours.validate()?;
        if self.hours.as_ref() == Some(&hours) && self.name == name {
            return Err(CalendarError::Unchanged);
        }
        Ok(vec![CalendarEvent::CalendarSet {
            calendar_id,
            version: self.version + 1,
            name,
            hours,
        }])
    }

    fn evolve(mut self, event: &CalendarEvent) -> Self {
        let CalendarEvent::CalendarSet {
            version,
            name,
            hours,
            ..
        } = event;
        self.version = *version;
        self.name.clone_from(name);
        self.hours = Some(hours.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    /// Monday to Friday 09:00–12:00 and 13:00–18:00 in Shanghai, with 2026-12-25 off.
    fn office() -> BusinessHours {
        let day = vec![(hm(9, 0), hm(12, 0)), (hm(13, 0), hm(18, 0))];
        BusinessHours {
            zone: chrono_tz::Asia::Shanghai,
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
            holidays: [NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()].into(),
        }
    }

    #[test]
    fn office_hours_count_only_open_time() {
        let h = office();
        // Thursday 2026-11-26 10:00 to 14:00 Shanghai (02:00–06:00 UTC): 2 h + 1 h.
        assert_eq!(
            h.open_between(t("2026-11-26T02:00:00Z"), t("2026-11-26T06:00:00Z")),
            Duration::hours(3)
        );
    }

    #[test]
    fn a_due_time_skips_the_weekend() {
        let h = office();
        // Friday 2026-11-27 17:00 Shanghai + 2 open hours → Monday 10:00 Shanghai.
        assert_eq!(
            h.after_open(t("2026-11-27T09:00:00Z"), Duration::hours(2)),
            Some(t("2026-11-30T02:00:00Z"))
        );
    }

    #[test]
    fn a_due_time_skips_a_holiday() {
        let h = office();
        // Thursday 2026-12-24 17:30 + 1 h → Friday is a holiday → Monday 2026-12-28 09:30.
        assert_eq!(
            h.after_open(t("2026-12-24T09:30:00Z"), Duration::hours(1)),
            Some(t("2026-12-28T01:30:00Z"))
        );
    }

    #[test]
    fn open_time_and_due_time_agree() {
        let h = office();
        let from = t("2026-11-26T20:13:00Z");
        for minutes in [1, 59, 300, 541, 2000, 9000] {
            let due = h.after_open(from, Duration::minutes(minutes)).unwrap();
            assert_eq!(h.open_between(from, due), Duration::minutes(minutes));
        }
    }

    #[test]
    fn always_open_counts_wall_time() {
        let h = BusinessHours::always(chrono_tz::Asia::Shanghai);
        let from = t("2026-11-28T00:00:00Z");
        assert_eq!(
            h.after_open(from, Duration::hours(30)),
            Some(from + Duration::hours(30))
        );
    }

    #[test]
    fn overlapping_intervals_are_refused_by_path() {
        let mut h = office();
        h.week[2] = vec![(hm(9, 0), hm(12, 0)), (hm(11, 0), hm(13, 0))];
        given::<Calendar>([])
            .when(
                CalendarCommand::SetCalendar {
                    calendar_id: Uuid::nil(),
                    name: "office".into(),
                    hours: h,
                },
                &person("u-op", "ops", &["operator"]),
            )
            .then_err(CalendarError::Invalid(invalid(
                "hours.wednesday[1]",
                "overlaps or precedes the interval before it",
            )));
    }

    #[test]
    fn an_edit_is_a_new_version_and_a_repeat_is_refused() {
        let op = person("u-op", "ops", &["operator"]);
        let set = |hours| CalendarCommand::SetCalendar {
            calendar_id: Uuid::nil(),
            name: "office".into(),
            hours,
        };
        let first = given::<Calendar>([]).when(set(office()), &op).events();
        assert!(matches!(
            first[0],
            CalendarEvent::CalendarSet { version: 1, .. }
        ));
        given::<Calendar>(first.clone())
            .when(set(office()), &op)
            .then_err(CalendarError::Unchanged);
        let mut longer = office();
        longer.week[5] = vec![(hm(9, 0), hm(12, 0))];
        let second = given::<Calendar>(first).when(set(longer), &op).events();
        assert!(matches!(
            second[0],
            CalendarEvent::CalendarSet { version: 2, .. }
        ));
        given::<Calendar>([])
            .when(set(office()), &person("u-eng", "ops", &["engineer"]))
            .then_err(CalendarError::NotPermitted);
    }
}
