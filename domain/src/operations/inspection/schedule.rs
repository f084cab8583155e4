//! When a template's inspections fall due: a cadence in the site's time zone, the time it
//! starts from, and how long each inspection may take before it is overdue. The slots are a
//! pure function of the schedule, so every scheduler replica, and every restart, computes
//! the same ones.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::requests::catalog::{invalid, InvalidField};

/// The time zone of the service plan's data centre.
pub const SITE_TIME_ZONE: Tz = chrono_tz::Asia::Shanghai;

/// How far a calendar cadence looks for its next day: more than the longest gap between
/// two of its days (31, for the same day of consecutive months).
const CALENDAR_SEARCH_DAYS: u64 = 400;

/// How often inspections fall due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cadence {
    /// Every so many minutes, counted from the schedule's anchor (the plan's walk "at least
    /// every 45 minutes", the hourly detailed walk, the platform check every 3 hours).
    Every { minutes: u32 },
    /// Every day at a local time.
    Daily { at: NaiveTime },
    /// Every week on a weekday at a local time.
    Weekly { weekday: Weekday, at: NaiveTime },
    /// Every month on a day at a local time; a day past the end of a shorter month falls on
    /// its last day (day 31 is "the last day of the month").
    Monthly { day: u32, at: NaiveTime },
}

/// A template's schedule.
///
/// Slots are never due before `anchor`. An `Every` cadence counts its intervals from the
/// anchor (an anchor at local midnight gives a 45-minute walk at 00:00, 00:45, … every day,
/// since 45 minutes divide a day); a calendar cadence reads its local times in `time_zone`.
/// A local time a daylight-saving change skips falls an hour later; one it repeats is taken
/// the first time (the plan's `Asia/Shanghai` has neither).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub cadence: Cadence,
    pub time_zone: Tz,
    pub anchor: DateTime<Utc>,
    /// How long after its due time an inspection may still be done before it is overdue.
    /// `None`: until the next one is due (the interval of an `Every` cadence, a day, a
    /// week, a month), so exactly one inspection of the template is open at a time.
    #[serde(default)]
    pub window_minutes: Option<u32>,
}

/// One inspection's place in a schedule: done in `[due, deadline)`, overdue from `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub due: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
}

impl Schedule {
    /// Checks the schedule can produce slots; fields are named under `schedule.`.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn validate(&self) -> Result<(), InvalidField> {
        match self.cadence {
            Cadence::Every { minutes: 0 } => {
                return Err(invalid("schedule.cadence.minutes", "must be at least 1"));
            }
            Cadence::Monthly { day, .. } if !(1..=31).contains(&day) => {
                return Err(invalid("schedule.cadence.day", "must be from 1 to 31"));
            }
            _ => {}
        }
        if self.window_minutes == Some(0) {
            return Err(invalid(
                "schedule.window_minutes",
                "must be at least 1 when given",
            ));
        }
        Ok(())
    }

    /// Every slot due in `[from, to)`, in order. The same schedule gives the same slots
    /// whatever `from` a caller starts at.
    pub fn slots(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        let mut slots = Vec::new();
        let mut next = self.first_due_from(from);
        while let Some(due) = next.filter(|due| *due < to) {
            slots.extend(self.slot(due));
            next = self.first_due_from(due + Duration::nanoseconds(1));
        }
        slots
    }

    /// The slot an inspection done at `t` belongs to: the last one due at or before `t`
    /// (its deadline may have passed); `None` before the first.
    pub fn slot_at(&self, t: DateTime<Utc>) -> Option<Slot> {
        self.last_due_until(t).and_then(|due| self.slot(due))
    }

    fn slot(&self, due: DateTime<Utc>) -> Option<Slot> {
        let deadline = match self.window_minutes {
            Some(minutes) => due + Duration::minutes(i64::from(minutes)),
            None => self.first_due_from(due + Duration::nanoseconds(1))?,
        };
        Some(Slot { due, deadline })
    }

    /// The first due time at or after `t` (and not before the anchor).
    fn first_due_from(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t.max(self.anchor);
        if let Cadence::Every { minutes } = self.cadence {
            let step = i64::from(minutes) * 60;
            let steps = (start - self.anchor).num_seconds() / step;
            let due = self.anchor + Duration::seconds(steps * step);
            return Some(if due < start {
                due + Duration::seconds(step)
            } else {
                due
            });
        }
        let first_day = self.local_date(start).pred_opt()?;
        (0..CALENDAR_SEARCH_DAYS)
            .filter_map(|i| first_day.checked_add_days(Days::new(i)))
            .filter_map(|day| self.due_on(day))
            .find(|due| *due >= start)
    }

    /// The last due time at or before `t`, if it is not before the anchor.
    fn last_due_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if t < self.anchor {
            return None;
        }
        if let Cadence::Every { minutes } = self.cadence {
            let step = i64::from(minutes) * 60;
            let steps = (t - self.anchor).num_seconds() / step;
            return Some(self.anchor + Duration::seconds(steps * step));
        }
        let last_day = self.local_date(t).succ_opt()?;
        (0..CALENDAR_SEARCH_DAYS)
            .filter_map(|i| last_day.checked_sub_days(Days::new(i)))
            .filter_map(|day| self.due_on(day))
            .find(|due| *due <= t)
            .filter(|due| *due >= self.anchor)
    }

    /// When a calendar cadence is due on the local `day`, if it is.
    fn due_on(&self, day: NaiveDate) -> Option<DateTime<Utc>> {
        let at = match self.cadence {
            Cadence::Every { .. } => return None,
            Cadence::Daily { at } => at,
            Cadence::Weekly { weekday, at } => (day.weekday() == weekday).then_some(at)?,
            Cadence::Monthly { day: wanted, at } => {
                (day.day() == wanted.min(last_day_of_month(day))).then_some(at)?
            }
        };
        Some(self.instant(day, at))
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.time_zone).date_naive()
    }

    fn instant(&self, day: NaiveDate, at: NaiveTime) -> DateTime<Utc> {
        let wall = day.and_time(at);
        self.time_zone
            .from_local_datetime(&wall)
            .earliest()
            .or_else(|| {
                // Skipped by a change to summer time: the same wall time an hour later.
                self.time_zone
                    .from_local_datetime(&(wall + Duration::hours(1)))
                    .earliest()
            })
            .map_or_else(|| Utc.from_utc_datetime(&wall), |t| t.with_timezone(&Utc))
    }
}

fn last_day_of_month(day: NaiveDate) -> u32 {
    let (year, month) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(28, |last| last.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wall-clock time at the plan's site, in UTC.
    fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        SITE_TIME_ZONE
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn schedule(cadence: Cadence, window_minutes: Option<u32>) -> Schedule {
        Schedule {
            cadence,
            time_zone: SITE_TIME_ZONE,
            anchor: shanghai(2026, 11, 1, 0, 0),
            window_minutes,
        }
    }

    fn dues(slots: &[Slot]) -> Vec<DateTime<Utc>> {
        slots.iter().map(|s| s.due).collect()
    }

    #[test]
    fn a_walk_every_45_minutes_is_anchored_so_any_start_gives_the_same_slots() {
        let walk = schedule(Cadence::Every { minutes: 45 }, None);
        let day = walk.slots(shanghai(2026, 11, 26, 0, 0), shanghai(2026, 11, 27, 0, 0));
        assert_eq!(day.len(), 32, "45 minutes divide a day 32 times");
        assert_eq!(day[0].due, shanghai(2026, 11, 26, 0, 0));
        assert_eq!(day[1].due, shanghai(2026, 11, 26, 0, 45));
        assert_eq!(day[31].due, shanghai(2026, 11, 26, 23, 15));
        assert_eq!(
            day[0].deadline, day[1].due,
            "the window runs to the next walk"
        );

        // A scheduler restarting at 10:07 picks up the same slots, from the 10:30 one.
        let restarted = walk.slots(shanghai(2026, 11, 26, 10, 7), shanghai(2026, 11, 27, 0, 0));
        assert_eq!(restarted[0].due, shanghai(2026, 11, 26, 10, 30));
        assert_eq!(restarted[..], day[day.len() - restarted.len()..]);
    }

    #[test]
    fn no_slot_is_due_before_the_anchor() {
        let walk = schedule(Cadence::Every { minutes: 60 }, None);
        let slots = walk.slots(shanghai(2026, 10, 31, 22, 0), shanghai(2026, 11, 1, 2, 0));
        assert_eq!(
            dues(&slots),
            [shanghai(2026, 11, 1, 0, 0), shanghai(2026, 11, 1, 1, 0)]
        );
        assert_eq!(walk.slot_at(shanghai(2026, 10, 31, 23, 59)), None);
        let daily = schedule(Cadence::Daily { at: time(9, 0) }, None);
        assert_eq!(daily.slot_at(shanghai(2026, 11, 1, 8, 59)), None);
    }

    #[test]
    fn a_3_hour_check_crosses_the_local_day_boundary() {
        let check = schedule(Cadence::Every { minutes: 180 }, None);
        let slots = check.slots(shanghai(2026, 11, 26, 20, 0), shanghai(2026, 11, 27, 4, 0));
        assert_eq!(
            dues(&slots),
            [
                utc(2026, 11, 26, 13, 0),
                utc(2026, 11, 26, 16, 0),
                utc(2026, 11, 26, 19, 0)
            ],
            "21:00, 00:00 and 03:00 in Shanghai"
        );
        assert_eq!(slots[1].due, shanghai(2026, 11, 27, 0, 0));
        assert_eq!(slots[2].deadline, shanghai(2026, 11, 27, 6, 0));
    }

    #[test]
    fn a_daily_check_is_read_in_the_site_time_zone() {
        // 07:00 in Shanghai is 23:00 UTC the day before.
        let logs = schedule(Cadence::Daily { at: time(7, 0) }, Some(8 * 60));
        let slots = logs.slots(utc(2026, 11, 26, 0, 0), utc(2026, 11, 28, 0, 0));
        assert_eq!(
            slots,
            [
                Slot {
                    due: utc(2026, 11, 26, 23, 0),
                    deadline: utc(2026, 11, 27, 7, 0),
                },
                Slot {
                    due: utc(2026, 11, 27, 23, 0),
                    deadline: utc(2026, 11, 28, 7, 0),
                },
            ]
        );
        let until_next = schedule(Cadence::Daily { at: time(7, 0) }, None);
        assert_eq!(
            until_next.slot_at(utc(2026, 11, 27, 5, 0)),
            Some(Slot {
                due: utc(2026, 11, 26, 23, 0),
                deadline: utc(2026, 11, 27, 23, 0),
            })
        );
    }

    #[test]
    fn a_weekly_check_falls_on_its_weekday() {
        let backups = schedule(
            Cadence::Weekly {
                weekday: Weekday::Mon,
                at: time(10, 0),
            },
            None,
        );
        let slots = backups.slots(shanghai(2026, 11, 26, 0, 0), shanghai(2026, 12, 15, 0, 0));
        assert_eq!(
            dues(&slots),
            [
                shanghai(2026, 11, 30, 10, 0),
                shanghai(2026, 12, 7, 10, 0),
                shanghai(2026, 12, 14, 10, 0)
            ]
        );
        assert_eq!(slots[0].deadline, slots[1].due);
    }

    #[test]
    fn a_monthly_day_31_falls_on_the_last_day_of_shorter_months() {
        let optimisation = schedule(
            Cadence::Monthly {
                day: 31,
                at: time(10, 0),
            },
            None,
        );
        let slots = optimisation.slots(shanghai(2026, 11, 1, 0, 0), shanghai(2027, 3, 1, 0, 0));
        assert_eq!(
            dues(&slots),
            [
                shanghai(2026, 11, 30, 10, 0),
                shanghai(2026, 12, 31, 10, 0),
                shanghai(2027, 1, 31, 10, 0),
                shanghai(2027, 2, 28, 10, 0),
            ]
        );
        assert_eq!(slots[0].deadline, shanghai(2026, 12, 31, 10, 0));
        assert_eq!(
            optimisation.slot_at(shanghai(2026, 12, 15, 0, 0)),
            Some(slots[0])
        );
    }

    #[test]
    fn the_walk_runs_on_across_the_month_end() {
        let walk = schedule(Cadence::Every { minutes: 45 }, None);
        let slots = walk.slots(shanghai(2026, 11, 30, 23, 0), shanghai(2026, 12, 1, 1, 0));
        assert_eq!(
            dues(&slots),
            [
                shanghai(2026, 11, 30, 23, 15),
                shanghai(2026, 12, 1, 0, 0),
                shanghai(2026, 12, 1, 0, 45),
            ]
        );
    }

    #[test]
    fn slot_at_names_the_slot_an_inspection_belongs_to() {
        let walk = schedule(Cadence::Every { minutes: 45 }, Some(30));
        assert_eq!(
            walk.slot_at(shanghai(2026, 11, 26, 10, 40)),
            Some(Slot {
                due: shanghai(2026, 11, 26, 10, 30),
                deadline: shanghai(2026, 11, 26, 11, 0),
            })
        );
        assert_eq!(
            walk.slot_at(shanghai(2026, 11, 26, 11, 15)).map(|s| s.due),
            Some(shanghai(2026, 11, 26, 11, 15)),
            "a slot starts at its due time"
        );
    }

    #[test]
    fn a_local_time_skipped_by_summer_time_falls_an_hour_later() {
        let london = Schedule {
            cadence: Cadence::Daily { at: time(1, 30) },
            time_zone: chrono_tz::Europe::London,
            anchor: utc(2027, 3, 1, 0, 0),
            window_minutes: None,
        };
        // On 28 March 2027 the clocks go from 01:00 GMT to 02:00 BST.
        let slots = london.slots(utc(2027, 3, 27, 0, 0), utc(2027, 3, 30, 0, 0));
        assert_eq!(
            dues(&slots),
            [
                utc(2027, 3, 27, 1, 30),
                utc(2027, 3, 28, 1, 30),
                utc(2027, 3, 29, 0, 30)
            ]
        );
    }

    #[test]
    fn a_schedule_names_its_wrong_field() {
        let bad = |s: Schedule, field: &str| assert_eq!(s.validate().unwrap_err().field, field);
        bad(
            schedule(Cadence::Every { minutes: 0 }, None),
            "schedule.cadence.minutes",
        );
        bad(
            schedule(
                Cadence::Monthly {
                    day: 32,
                    at: time(10, 0),
                },
                None,
            ),
            "schedule.cadence.day",
        );
        bad(
            schedule(Cadence::Every { minutes: 45 }, Some(0)),
            "schedule.window_minutes",
        );
        assert_eq!(
            schedule(Cadence::Every { minutes: 45 }, Some(45)).validate(),
            Ok(())
        );
    }
}
