//! The date range of a stats request: UTC calendar days, inclusive, as days since the epoch
//! (the `day` of the daily rollups).

use crate::error::Invalid;
use crate::time::DAY_MS;
use chrono::NaiveDate;

/// The widest range one stats request may cover.
pub const MAX_DAYS: i64 = 366;
/// The range when none is given: the last 30 days, today included.
pub const DEFAULT_DAYS: i64 = 30;

/// A `YYYY-MM-DD` date as days since 1970-01-01.
///
/// Accepts exactly what chrono's `NaiveDate::parse_from_str(s, "%Y-%m-%d")` accepts on 10 bytes
/// (the test `same_as_chrono` holds it to that), without linking chrono's format parser (~20 KB
/// of wasm): each number may follow whitespace; the year is 1 to 4 digits, or a sign and any
/// number of digits; month and day are 1 or 2 digits.
pub fn parse_day(s: &str) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    let s = s.trim_start();
    let (year, s) = match s.as_bytes().first() {
        Some(b'-') => digits(&s[1..], usize::MAX).map(|(y, rest)| (-y, rest))?,
        Some(b'+') => digits(&s[1..], usize::MAX)?,
        _ => digits(s, 4)?,
    };
    let (month, s) = digits(s.strip_prefix('-')?.trim_start(), 2)?;
    let (day, s) = digits(s.strip_prefix('-')?.trim_start(), 2)?;
    if !s.is_empty() {
        return None;
    }
    let d = NaiveDate::from_ymd_opt(year.try_into().ok()?, month.try_into().ok()?, day.try_into().ok()?)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((d - epoch).num_days())
}

/// The number in the leading ASCII digits of `s` (1 to `max` of them) and the rest of `s`.
fn digits(s: &str, max: usize) -> Option<(i64, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// Days since the epoch as `YYYY-MM-DD`.
pub fn format_day(day: i64) -> String {
    crate::time::rfc3339(day * DAY_MS).get(..10).unwrap_or_default().to_string()
}

/// `from` and `to` (either may be absent) as an inclusive range of days: `to` defaults to
/// today, `from` to [`DEFAULT_DAYS`] days ending at `to`. At most [`MAX_DAYS`] days, not
/// reversed; the field named in the error is the query parameter.
pub fn parse_range(from: Option<&str>, to: Option<&str>, now: i64) -> Result<(i64, i64), Invalid> {
    let day = |field: &'static str, v: Option<&str>| -> Result<Option<i64>, Invalid> {
        v.map(|s| {
            parse_day(s)
                .ok_or_else(|| Invalid::new(field, "invalid_query", format!("{field} must be a date YYYY-MM-DD")))
        })
        .transpose()
    };
    let to_day = day("to", to)?.unwrap_or(now.div_euclid(DAY_MS));
    let from_day = day("from", from)?.unwrap_or(to_day - DEFAULT_DAYS + 1);
    if from_day > to_day {
        return Err(Invalid::new("from", "invalid_query", "from must not be after to"));
    }
    if to_day - from_day + 1 > MAX_DAYS {
        return Err(Invalid::new("from", "invalid_query", format!("a range covers at most {MAX_DAYS} days")));
    }
    Ok((from_day, to_day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_764_036_000_000; // 2025-11-25T02:00:00Z

    #[test]
    fn days() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2025-11-25"), Some(NOW / DAY_MS));
        assert_eq!(format_day(NOW / DAY_MS), "2025-11-25");
        for bad in ["2025-13-01", "2025-02-30", "25-11-25", "2025-11-25T00:00:00Z", "", "2025-1-5"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let today = NOW / DAY_MS;
        assert_eq!(parse_range(None, None, NOW), Ok((today - 29, today)));
        assert_eq!(parse_range(Some("2025-11-01"), Some("2025-11-03"), NOW), Ok((today - 24, today - 22)));
        assert_eq!(parse_range(Some("2025-11-25"), None, NOW), Ok((today, today)));
        assert_eq!(parse_range(Some("2025-11-26"), Some("2025-11-25"), NOW).unwrap_err().field, "from");
        assert_eq!(parse_range(Some("2024-01-01"), Some("2025-11-25"), NOW).unwrap_err().field, "from");
        assert_eq!(parse_range(None, Some("nope"), NOW).unwrap_err().field, "to");
        assert!(parse_range(Some("2025-01-01"), Some("2026-01-01"), NOW).is_ok());
        // 366 days
    }

    /// What `parse_day` replaces.
    fn chrono_parse_day(s: &str) -> Option<i64> {
        if s.len() != 10 {
            return None;
        }
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        Some((d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days())
    }

    #[test]
    fn same_as_chrono_on_odd_input() {
        for s in [
            "+2025-1-05",
            "-001-01-01",
            "+99999-1-1",
            "-99999-1-1",
            "25-11-25  ",
            " 025-11-25",
            "2025- 1- 5",
            "025-\u{3000}1-5",
            "2025-11-2 ",
            "0000-01-01",
            "+0-01-0001",
            "2025-02-29",
            "2024-02-29",
            "2025-1-123",
            "12345-1-01",
            "2025--1-01",
            "2025-+1-01",
            "\t025-01-01",
            "2025-01-1\n",
        ] {
            assert_eq!(parse_day(s), chrono_parse_day(s), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn same_as_chrono(s in "[ \t0-9+-]{10}|[ 0-9+\u{3000}-]{4,10}|[0-9]{4}-[0-9]{2}-[0-9]{2}") {
            prop_assert_eq!(parse_day(&s), chrono_parse_day(&s));
        }

        #[test]
        fn format_and_parse_agree(day in 0i64..100_000) {
            prop_assert_eq!(parse_day(&format_day(day)), Some(day));
        }
    }
}
