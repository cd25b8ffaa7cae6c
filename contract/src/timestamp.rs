//! Parsing timestamps as the sources write them: PostgreSQL's text output and
//! Supabase's CSV export (`2025-12-20 17:49:11.43305+00`), PostgREST's JSON
//! (`2025-12-20T17:49:11.43305+00:00`), RFC 3339, and plain dates.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses a timestamptz as text into UTC. A time without an offset is taken as
/// UTC (PostgreSQL prints `timestamp without time zone` that way); a bare date
/// is its midnight UTC. `None` when the text is no timestamp.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.len() < 10 {
        return None;
    }
    if text.len() == 10 {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc());
    }
    let mut s = text.replacen(' ', "T", 1);
    // PostgreSQL abbreviates whole-hour offsets: "+00", "-05".
    let bytes = s.as_bytes();
    let n = bytes.len();
    if n > 3
        && (bytes[n - 3] == b'+' || bytes[n - 3] == b'-')
        && bytes[n - 2].is_ascii_digit()
        && bytes[n - 1].is_ascii_digit()
        && s[..n - 3].contains('T')
    {
        s.push_str(":00");
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(&s) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// The longest window in days a command takes (`--days`): a century.
pub const MAX_DAYS: i64 = 36_600;

/// `parse_utc` as a command-line value parser (`--now`, `--since`, `--until`).
pub fn parse_arg(text: &str) -> Result<DateTime<Utc>, String> {
    parse_utc(text).ok_or_else(|| format!("`{text}` is not a date or RFC 3339 time"))
}

/// Microseconds since the epoch, the physical form of the pipeline's timestamps.
pub fn to_micros(dt: DateTime<Utc>) -> i64 {
    dt.timestamp_micros()
}

pub fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        to_micros(parse_utc(s).unwrap_or_else(|| panic!("{s} should parse")))
    }

    #[test]
    fn supabase_export_format() {
        assert_eq!(
            parse_utc("2025-12-20 17:49:11.43305+00").map(|d| d.to_rfc3339()),
            Some("2025-12-20T17:49:11.433050+00:00".into())
        );
    }

    #[test]
    fn formats_agree() {
        let want = us("2025-12-20T17:49:11Z");
        for s in [
            "2025-12-20 17:49:11+00",
            "2025-12-20 18:49:11+01",
            "2025-12-20T17:49:11+00:00",
            "2025-12-20 19:49:11+0200",
            "2025-12-20 17:49:11",
            "2025-12-20T12:49:11-05",
        ] {
            assert_eq!(us(s), want, "{s}");
        }
        assert_eq!(us("2025-12-20"), us("2025-12-20T00:00:00Z"));
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "",
            "yesterday",
            "2025-13-40 00:00:00+00",
            "2025-12-20 25:00:00",
        ] {
            assert_eq!(parse_utc(s), None, "{s}");
        }
    }
}
