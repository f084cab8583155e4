//! The bounds every number, date and string of the API is checked against when it is read,
//! before a resolver sees it: one validator per kind, named in the field's
//! `#[graphql(validator(custom = …))]` with the field's name and its range. The ranges of
//! business values come from `opsledger_domain::kernel::limits`; those that only protect the
//! transport (page sizes, positions, windows of a query) are here. A value outside is
//! `BAD_USER_INPUT` naming the field, e.g. `windowDays: 2147483647 is out of range 1–3650`.
//! Each field's SDL description states its range; a test keeps it so.

use std::ops::RangeInclusive;

use async_graphql::{CustomValidator, InputType, InputValueError};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use opsledger_domain::kernel::limits;
use opsledger_domain::requests::catalog::InvalidField;

use crate::kit::errors::Code;

/// A page: `first`.
pub(crate) const PAGE: RangeInclusive<i64> = 0..=500;
/// A log position: `atLeast`, `after`, `asOf.position` (up to 2^53 − 1, the integers
/// every JSON client reads exactly).
pub(crate) const POSITION: RangeInclusive<i64> = 0..=9_007_199_254_740_991;
/// The days a pool's forecast looks back.
pub(crate) const WINDOW_DAYS: RangeInclusive<i64> = 1..=3650;
/// How far ahead `slaAtRisk` looks, in minutes: up to a year.
pub(crate) const AHEAD_MINUTES: RangeInclusive<i64> = 0..=525_600;
/// A share, 0 to 1.
pub(crate) const SHARE: RangeInclusive<f64> = 0.0..=1.0;
/// A cursor, a search text, a `clientMutationId`.
pub(crate) const KEY_CHARS: usize = limits::NAME_CHARS;

fn refused<T: InputType>(e: InvalidField) -> InputValueError<T> {
    InputValueError::custom(format!("{}: {}", e.field, e.problem))
        .with_extension("code", Code::BadUserInput.as_str())
        .with_extension("field", e.field)
}

/// An integer in `range`.
pub(crate) struct Within {
    field: &'static str,
    range: RangeInclusive<i64>,
}

pub(crate) fn within(field: &'static str, range: RangeInclusive<i64>) -> Within {
    Within { field, range }
}

macro_rules! within_for {
    ($($t:ty),*) => {$(
        impl CustomValidator<$t> for Within {
            fn check(&self, value: &$t) -> Result<(), InputValueError<$t>> {
                let value = i64::try_from(*value).unwrap_or(i64::MAX);
                limits::within(self.field, value, &self.range).map_err(refused)
            }
        }
    )*};
}

within_for!(i32, i64, u8, u16, u32, u64, usize);

/// A fractional number in `range`.
pub(crate) struct WithinF {
    field: &'static str,
    range: RangeInclusive<f64>,
}

pub(crate) fn within_f(field: &'static str, range: RangeInclusive<f64>) -> WithinF {
    WithinF { field, range }
}

impl CustomValidator<f64> for WithinF {
    fn check(&self, value: &f64) -> Result<(), InputValueError<f64>> {
        limits::within_f64(self.field, *value, &self.range).map_err(refused)
    }
}

/// A string of at most `max` characters.
pub(crate) struct Chars {
    field: &'static str,
    max: usize,
}

pub(crate) fn chars(field: &'static str, max: usize) -> Chars {
    Chars { field, max }
}

impl CustomValidator<String> for Chars {
    fn check(&self, value: &String) -> Result<(), InputValueError<String>> {
        limits::at_most(self.field, value, self.max).map_err(refused)
    }
}

/// A list of at most [`limits::LIST_ITEMS`] strings of at most `max` characters each.
impl CustomValidator<Vec<String>> for Chars {
    fn check(&self, value: &Vec<String>) -> Result<(), InputValueError<Vec<String>>> {
        if value.len() > limits::LIST_ITEMS {
            return Err(refused(InvalidField {
                field: self.field.to_owned(),
                problem: format!(
                    "has {} items, at most {} are allowed",
                    value.len(),
                    limits::LIST_ITEMS
                ),
            }));
        }
        value
            .iter()
            .try_for_each(|v| limits::at_most(self.field, v, self.max))
            .map_err(refused)
    }
}

/// A date or time in [`limits::YEARS`].
pub(crate) struct Dated {
    field: &'static str,
}

pub(crate) fn dated(field: &'static str) -> Dated {
    Dated { field }
}

impl CustomValidator<NaiveDate> for Dated {
    fn check(&self, value: &NaiveDate) -> Result<(), InputValueError<NaiveDate>> {
        limits::date(self.field, *value).map_err(refused)
    }
}

impl CustomValidator<DateTime<Utc>> for Dated {
    fn check(&self, value: &DateTime<Utc>) -> Result<(), InputValueError<DateTime<Utc>>> {
        if limits::YEARS.contains(&value.year()) {
            return Ok(());
        }
        limits::date(self.field, value.date_naive()).map_err(refused)
    }
}
