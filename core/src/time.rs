//! UTC time as milliseconds since the Unix epoch (`i64`). The core never reads a clock.

use chrono::{DateTime, Datelike, Months, SecondsFormat, Utc};

pub const DAY_MS: i64 = 86_400_000;

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-25T02:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::new(),
    }
}

/// `ms` plus `months` calendar months (clamped to the month's last day, as Stripe bills).
pub fn add_months(ms: i64, months: u32) -> i64 {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .and_then(|t| t.checked_add_months(Months::new(months)))
        .map(|t| t.timestamp_millis())
        .unwrap_or(i64::MAX)
}

/// The UTC calendar parts of an instant: (ISO weekday 1 = Monday .. 7, day of month 1..31).
pub fn weekday_and_day(ms: i64) -> (u32, u32) {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => (t.weekday().number_from_monday(), t.day()),
        None => (1, 1),
    }
}

/// Start of the UTC day containing `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_036_000_123), "2025-11-25T02:00:00.123Z");
    }

    #[test]
    fn months_clamp_to_month_end() {
        // 2026-01-31 + 1 month = 2026-02-28
        let jan31 = 1_769_817_600_000; // 2026-01-31T00:00:00Z
        assert_eq!(rfc3339(add_months(jan31, 1)), "2026-02-28T00:00:00.000Z");
        assert_eq!(rfc3339(add_months(jan31, 12)), "2027-01-31T00:00:00.000Z");
    }

    #[test]
    fn weekday() {
        // 2026-11-23 is a Monday
        let mon = 1_795_392_000_000;
        assert_eq!(rfc3339(mon), "2026-11-23T00:00:00.000Z");
        assert_eq!(weekday_and_day(mon), (1, 23));
        assert_eq!(day_start(mon + 5), mon);
    }
}
