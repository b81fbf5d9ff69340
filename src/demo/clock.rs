//! The demo server's `time` tool: the current time in UTC (RFC 3339 and Unix seconds) and,
//! when asked, at a fixed UTC offset. No time zone database: offsets only (`+02:00`), which
//! is what can be answered exactly without one. Argument handling lives in `tools.rs`.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Why an offset was refused (shown to the client as a tool error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("offset `{0}` is not `Z` or `+HH:MM`/`-HH:MM` between -12:00 and +14:00")]
    Offset(String),
}

/// The text answer for `now`, at `offset` when given.
pub(crate) fn describe(now: OffsetDateTime, offset: Option<UtcOffset>) -> String {
    let utc = now.to_offset(UtcOffset::UTC).replace_nanosecond(0);
    let utc = utc.unwrap_or(now);
    let mut text = format!("UTC: {}\nUnix: {}", rfc3339(utc), utc.unix_timestamp());
    if let Some(off) = offset {
        text.push_str(&format!(
            "\nAt {}: {}",
            offset_text(off),
            rfc3339(utc.to_offset(off))
        ));
    }
    text
}

/// Parses `Z`, `UTC`, `+HH`, `+HH:MM`, `-HH:MM` (real-world range: -12:00 to +14:00).
pub(crate) fn parse_offset(s: &str) -> Result<UtcOffset, Error> {
    let bad = || Error::Offset(s.chars().take(32).collect());
    if s == "Z" || s.eq_ignore_ascii_case("utc") {
        return Ok(UtcOffset::UTC);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
    let two_digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let minutes = i16::from(h) * 60 + i16::from(m);
    let in_range = if sign > 0 {
        minutes <= 14 * 60
    } else {
        minutes <= 12 * 60
    };
    if m >= 60 || !in_range {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

fn offset_text(off: UtcOffset) -> String {
    let (h, m, _) = off.as_hms();
    let sign = if off.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a whole-second date between years 0 and 9999 cannot fail.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_offset_accepts_real_offsets_and_refuses_the_rest() {
        let ok = [
            ("Z", 0),
            ("utc", 0),
            ("+02:00", 7200),
            ("+05:30", 19800),
            ("-03", -10800),
            ("+14:00", 50400),
            ("-12:00", -43200),
        ];
        for (s, secs) in ok {
            assert_eq!(parse_offset(s).unwrap().whole_seconds(), secs, "{s}");
        }
        for s in [
            "",
            "2",
            "+2",
            "+02:60",
            "+14:30",
            "-12:30",
            "+0a:00",
            "+02:00:00",
            "Europe/Paris",
        ] {
            assert!(parse_offset(s).is_err(), "{s}");
        }
    }

    #[test]
    fn describe_gives_utc_unix_and_the_offset_time() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let text = describe(t, Some(parse_offset("-05:30").unwrap()));
        assert_eq!(
            text,
            "UTC: 2023-11-14T22:13:20Z\nUnix: 1700000000\nAt -05:30: 2023-11-14T16:43:20-05:30"
        );
    }
}
