//! UTC calendar arithmetic on seconds since the epoch, enough to place
//! signals in calendar months (the civil-date conversions are the domain's).

/// Seconds in a day.
pub const DAY: i64 = 86_400;

pub use retain_domain::time::{civil_from_days, days_from_civil};

/// The start (00:00 UTC on the 1st) of the month holding instant `t`.
pub fn month_start(t: i64) -> i64 {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
    days_from_civil(y, m, 1) * DAY
}

/// The start of the month after the one holding `t`.
pub fn next_month_start(t: i64) -> i64 {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * DAY
}

/// `YYYY-MM` of the month holding `t`.
pub fn month_label(t: i64) -> String {
    let (y, m, _) = civil_from_days(t.div_euclid(DAY));
    format!("{y:04}-{m:02}")
}

/// Day of the week of instant `t`: 0 Monday … 6 Sunday.
pub fn weekday(t: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (t.div_euclid(DAY) + 3).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        // 2025-06-15T12:00:00Z
        let t = 1_749_988_800;
        assert_eq!(month_start(t), 1_748_736_000); // 2025-06-01
        assert_eq!(next_month_start(t), 1_751_328_000); // 2025-07-01
        assert_eq!(month_label(t), "2025-06");
        assert_eq!(weekday(t), 6); // a Sunday
        assert_eq!(
            next_month_start(days_from_civil(2024, 12, 31) * DAY),
            days_from_civil(2025, 1, 1) * DAY
        );
    }
}
