//! UTC timestamps, calendar periods and granularities.
//!
//! Time is microseconds since the Unix epoch, UTC (the storage precision:
//! two signals a fraction of a second apart keep their order). Periods are half-open
//! `[start, end)`. Calendar arithmetic uses the proleptic Gregorian
//! calendar (days-from-civil), with no time-zone database: Retain's periods
//! are UTC by definition.

use std::fmt;

use crate::exact::Ratio;
use crate::validation::Violations;

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// Microseconds in a second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;
/// Microseconds in a day.
pub const DAY_MICROS: i64 = DAY * MICROS_PER_SECOND;

/// An instant, microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From whole seconds since the epoch (saturating).
    pub const fn from_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(MICROS_PER_SECOND))
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub const fn seconds(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SECOND)
    }

    /// The microseconds past the whole second (0–999,999).
    pub const fn subsec_micros(self) -> i64 {
        self.0.rem_euclid(MICROS_PER_SECOND)
    }

    /// From a UTC calendar date and time of day.
    pub fn from_ymd_hms(year: i32, month: u32, day: u32, h: u32, m: u32, s: u32) -> Self {
        Self::from_seconds(
            days_from_civil(year, month, day) * DAY
                + i64::from(h) * 3600
                + i64::from(m) * 60
                + i64::from(s),
        )
    }

    /// Midnight UTC of a calendar date.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Self {
        Self::from_ymd_hms(year, month, day, 0, 0, 0)
    }

    /// Whole days since the epoch (floor).
    pub fn day_number(self) -> i64 {
        self.0.div_euclid(DAY_MICROS)
    }

    /// The calendar date (year, month 1–12, day 1–31).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.day_number())
    }

    /// This instant plus `seconds` (saturating).
    pub fn plus(self, seconds: i64) -> Self {
        self.plus_micros(seconds.saturating_mul(MICROS_PER_SECOND))
    }

    /// This instant plus `micros` microseconds (saturating).
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        let secs = self.seconds().rem_euclid(DAY);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        match self.subsec_micros() {
            0 => f.write_str("Z"),
            us => write!(f, ".{us:06}Z"),
        }
    }
}

/// Days since the epoch of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (i32::try_from(y).unwrap_or(i32::MAX), m, d)
}

/// Calendar unit of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One UTC day.
    Day,
    /// ISO week starting Monday 00:00 UTC.
    Week,
    /// Calendar month.
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl Period {
    /// A custom period; `end` must be after `start`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, Violations> {
        if end <= start {
            let mut v = Violations::new();
            v.push(
                "period.end",
                format!("{end} is not after the start {start}"),
            );
            return Err(v);
        }
        Ok(Self { start, end })
    }

    /// The calendar month of a date.
    pub fn month(year: i32, month: u32) -> Self {
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        Self {
            start: Timestamp::from_ymd(year, month, 1),
            end: Timestamp::from_ymd(ny, nm, 1),
        }
    }

    /// The period of `granularity` that contains `t`.
    pub fn containing(t: Timestamp, granularity: Granularity) -> Self {
        let (y, m, _) = t.ymd();
        match granularity {
            Granularity::Day => {
                let start = Timestamp::from_seconds(t.day_number() * DAY);
                Self {
                    start,
                    end: start.plus(DAY),
                }
            }
            Granularity::Week => {
                // 1970-01-01 was a Thursday: Monday-based weekday index.
                let days = t.day_number();
                let monday = days - (days + 3).rem_euclid(7);
                let start = Timestamp::from_seconds(monday * DAY);
                Self {
                    start,
                    end: start.plus(7 * DAY),
                }
            }
            Granularity::Month => Self::month(y, m),
            Granularity::Quarter => {
                let q0 = (m - 1) / 3 * 3 + 1;
                let (ey, em) = if q0 == 10 { (y + 1, 1) } else { (y, q0 + 3) };
                Self {
                    start: Timestamp::from_ymd(y, q0, 1),
                    end: Timestamp::from_ymd(ey, em, 1),
                }
            }
            Granularity::Year => Self {
                start: Timestamp::from_ymd(y, 1, 1),
                end: Timestamp::from_ymd(y + 1, 1, 1),
            },
        }
    }

    /// The following period of the same granularity.
    pub fn next(self, granularity: Granularity) -> Self {
        Self::containing(self.end, granularity)
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// Length in whole seconds (floor).
    pub fn seconds(self) -> i64 {
        self.micros().div_euclid(MICROS_PER_SECOND)
    }

    /// Length in microseconds.
    pub fn micros(self) -> i64 {
        self.end.0.saturating_sub(self.start.0)
    }

    /// Whether the period is exactly one calendar month (UTC).
    pub fn is_calendar_month(self) -> bool {
        Self::containing(self.start, Granularity::Month) == self
    }

    /// Length in calendar months, exact: each calendar month the period
    /// overlaps counts as overlap / that month's length, so a calendar
    /// month is 1 whatever its days, a quarter 3, a year 12, and a week
    /// in May 7/31.
    pub fn calendar_months(self) -> Ratio {
        let mut total = Ratio::ZERO;
        let mut month = Self::containing(self.start, Granularity::Month);
        while month.start < self.end {
            let overlap = self.end.min(month.end).0 - self.start.max(month.start).0;
            let part =
                Ratio::new(i128::from(overlap), i128::from(month.micros())).unwrap_or(Ratio::ZERO);
            // Denominators are month lengths: the sum stays small.
            total = total.checked_add(part).unwrap_or(total);
            month = month.next(Granularity::Month);
        }
        total
    }

    /// Length in days (fractional for custom periods).
    pub fn days(self) -> f64 {
        self.micros() as f64 / DAY_MICROS as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).chain([2_000_000]) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(Timestamp::from_ymd(2000, 3, 1).ymd(), (2000, 3, 1));
        assert_eq!(
            Timestamp::from_ymd(2024, 2, 29).to_string(),
            "2024-02-29T00:00:00Z"
        );
        let t = Timestamp::from_ymd_hms(2024, 5, 15, 12, 0, 0).plus_micros(100_000);
        assert_eq!(t.to_string(), "2024-05-15T12:00:00.100000Z");
        assert_eq!((t.seconds(), t.subsec_micros()), (1_715_774_400, 100_000));
        assert_eq!(
            Timestamp::from_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(Timestamp::from_micros(-1).day_number(), -1);
    }

    #[test]
    fn periods_follow_the_calendar() {
        let t = Timestamp::from_ymd_hms(2024, 2, 29, 13, 5, 0);
        let month = Period::containing(t, Granularity::Month);
        assert_eq!(month, Period::month(2024, 2));
        assert_eq!(month.days(), 29.0);
        assert_eq!(Period::month(2024, 12).end, Timestamp::from_ymd(2025, 1, 1));
        let week = Period::containing(t, Granularity::Week);
        assert_eq!(week.start, Timestamp::from_ymd(2024, 2, 26), "a Monday");
        let q = Period::containing(t, Granularity::Quarter);
        assert_eq!(
            (q.start, q.end),
            (
                Timestamp::from_ymd(2024, 1, 1),
                Timestamp::from_ymd(2024, 4, 1)
            )
        );
        assert_eq!(
            Period::containing(Timestamp::from_ymd(2024, 11, 5), Granularity::Quarter).end,
            Timestamp::from_ymd(2025, 1, 1)
        );
        assert_eq!(month.next(Granularity::Month), Period::month(2024, 3));
        assert!(month.contains(month.start) && !month.contains(month.end));
        assert!(Period::new(month.end, month.start).is_err());
        assert_eq!(Period::month(2024, 5).calendar_months(), Ratio::ONE);
        assert_eq!(Period::month(2024, 2).calendar_months(), Ratio::ONE);
        assert_eq!(q.calendar_months(), Ratio::integer(3));
        let may_week = Period::new(
            Timestamp::from_ymd(2024, 5, 6),
            Timestamp::from_ymd(2024, 5, 13),
        )
        .unwrap();
        assert_eq!(may_week.calendar_months(), Ratio::new(7, 31).unwrap());
        let across = Period::new(
            Timestamp::from_ymd(2024, 2, 15),
            Timestamp::from_ymd(2024, 3, 15),
        )
        .unwrap();
        assert_eq!(
            across.calendar_months(),
            Ratio::new(15, 29)
                .unwrap()
                .checked_add(Ratio::new(14, 31).unwrap())
                .unwrap()
        );
    }
}
