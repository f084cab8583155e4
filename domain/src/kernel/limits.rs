//! The ranges the rules accept: how long a name or a text may be, and the bounds of the
//! numbers commands carry (a VLAN id, an amount of capacity, a number of minutes). The
//! aggregates check them in `decide`; the API documents them and refuses a value outside
//! them before it reaches a command, naming the field.

use std::ops::RangeInclusive;

use chrono::NaiveDate;

use crate::kernel::field::{invalid, InvalidField};

/// Names, titles, keys, user ids, departments, projects: one line.
pub const NAME_CHARS: usize = 200;
/// Free text: reasons, notes, descriptions, plans.
pub const TEXT_CHARS: usize = 10_000;
/// How many items a list of names may hold (tags, watchers, services).
pub const LIST_ITEMS: usize = 200;

/// A VLAN id (IEEE 802.1Q; 0 and 4095 are reserved).
pub const VLAN: RangeInclusive<i64> = 1..=4094;
/// CPU cores in one amount of capacity.
pub const CPU_CORES: RangeInclusive<i64> = 0..=1_000_000;
/// GiB of memory or storage in one amount of capacity (up to 1 EiB).
pub const GIB: RangeInclusive<i64> = 0..=1_073_741_824;
/// Counted things (licences, VLANs) a pool holds, or a request asks for at once.
pub const COUNT: RangeInclusive<i64> = 0..=1_000_000;
/// How many resources one request asks for.
pub const QUANTITY: RangeInclusive<i64> = 1..=1_000;
/// Overcommit, per mille (1000 is none, 10000 ten times).
pub const PERMILLE: RangeInclusive<i64> = 1_000..=10_000;
/// A percentage.
pub const PERCENT: RangeInclusive<i64> = 1..=100;
/// A number of minutes a target, a window or an interval lasts: up to a year.
pub const MINUTES: RangeInclusive<i64> = 1..=525_600;
/// ITIL impact and urgency: 1 high – 3 low.
pub const PRIORITY: RangeInclusive<i64> = 1..=3;
/// An incident's warning level.
pub const WARNING_LEVEL: RangeInclusive<i64> = 1..=3;
/// A day of the month.
pub const DAY_OF_MONTH: RangeInclusive<i64> = 1..=31;
/// A version or step number.
pub const ORDINAL: RangeInclusive<i64> = 0..=1_000_000;
/// A reading or bound of an inspection checklist item.
pub const READING: RangeInclusive<f64> = -1.0e12..=1.0e12;
/// The dates and times the service accepts: anything else is a typo or an attack on the
/// date arithmetic.
pub const YEARS: RangeInclusive<i32> = 1970..=9999;

/// `value` when it lies in `range`.
///
/// # Errors
/// `field: <value> is out of range <min>–<max>`.
pub fn within(field: &str, value: i64, range: &RangeInclusive<i64>) -> Result<(), InvalidField> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value} is out of range {}–{}", range.start(), range.end()),
        ))
    }
}

/// As [`within`], for a fractional value.
///
/// # Errors
/// `field: <value> is out of range <min>–<max>`.
pub fn within_f64(
    field: &str,
    value: f64,
    range: &RangeInclusive<f64>,
) -> Result<(), InvalidField> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value} is out of range {}–{}", range.start(), range.end()),
        ))
    }
}

/// `text` when it is at most `max` characters long.
///
/// # Errors
/// `field: is <n> characters long, at most <max> are allowed`.
pub fn at_most(field: &str, text: &str, max: usize) -> Result<(), InvalidField> {
    let chars = text.chars().count();
    if chars <= max {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("is {chars} characters long, at most {max} are allowed"),
        ))
    }
}

/// A date in [`YEARS`].
///
/// # Errors
/// `field: <date> is out of range 1970-01-01–9999-12-31`.
pub fn date(field: &str, date: NaiveDate) -> Result<(), InvalidField> {
    use chrono::Datelike;
    if YEARS.contains(&date.year()) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{date} is out of range {}-01-01–{}-12-31",
                YEARS.start(),
                YEARS.end()
            ),
        ))
    }
}

/// A service period `start`–`end` a request may ask for on `today`: it ends after it
/// starts and not before today.
///
/// # Errors
/// Names `periodEnd`.
pub fn service_period(
    start: NaiveDate,
    end: NaiveDate,
    today: NaiveDate,
) -> Result<(), InvalidField> {
    date("periodStart", start)?;
    date("periodEnd", end)?;
    if end <= start {
        return Err(invalid(
            "periodEnd",
            format!("{end} is not after the period's start, {start}"),
        ));
    }
    if end < today {
        return Err(invalid(
            "periodEnd",
            format!("{end} is in the past: the service period is over before it starts"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_its_range_is_refused_by_name() {
        let e = within("vlan", 5000, &VLAN).unwrap_err();
        assert_eq!(e.field, "vlan");
        assert_eq!(e.problem, "5000 is out of range 1–4094");
        assert!(within("vlan", 4094, &VLAN).is_ok());
    }

    #[test]
    fn a_period_wholly_in_the_past_is_refused() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let e = service_period(d("2020-01-01"), d("2020-06-01"), d("2026-12-04")).unwrap_err();
        assert_eq!(e.field, "periodEnd");
        assert!(service_period(d("2026-12-01"), d("2027-06-01"), d("2026-12-04")).is_ok());
    }
}
