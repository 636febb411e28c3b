//! Times on the command line: what an operator types for a report window.
//!
//! RFC 3339 (`2026-11-24T08:00:00Z`), a date (`2026-11-24`, midnight UTC), `now`, or a time
//! relative to now (`-1h`, `-30m`, `-7d`, `-1h30m`; the units are humantime's).

use chrono::{DateTime, NaiveDate, Utc};
use protocols::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a time: write RFC 3339 (2026-11-24T08:00:00Z), a date (2026-11-24), `now`, or a relative time like -1h or -30m{detail}"
)]
pub struct TimeSpecError {
    pub input: String,
    detail: String,
}

/// Parses `s` relative to `now`.
pub fn parse(s: &str, now: Timestamp) -> Result<Timestamp, TimeSpecError> {
    let s = s.trim();
    let err = |detail: String| TimeSpecError { input: s.to_string(), detail };
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel).map_err(|e| err(format!(" ({e})")))?;
        let d = chrono::Duration::from_std(d).map_err(|e| err(format!(" ({e})")))?;
        return now.checked_sub_signed(d).ok_or_else(|| err(" (too far back)".into()));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(|| err(String::new()));
    }
    Err(err(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn absolute_relative_and_now() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 12, 0, 0).unwrap();
        assert_eq!(parse("now", now).unwrap(), now);
        assert_eq!(parse("-1h", now).unwrap(), Utc.with_ymd_and_hms(2026, 1, 2, 11, 0, 0).unwrap());
        assert_eq!(parse("-1h30m", now).unwrap(), Utc.with_ymd_and_hms(2026, 1, 2, 10, 30, 0).unwrap());
        assert_eq!(parse("-2d", now).unwrap(), Utc.with_ymd_and_hms(2025, 12, 31, 12, 0, 0).unwrap());
        assert_eq!(
            parse("2026-01-01T08:00:00+08:00", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(parse("2026-01-01", now).unwrap(), Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        let e = parse("yesterday-ish", Utc::now()).unwrap_err();
        assert!(e.to_string().contains("RFC 3339"));
        assert!(parse("-1 fortnight", Utc::now()).is_err());
    }
}
