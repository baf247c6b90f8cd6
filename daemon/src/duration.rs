//! Durations as every flag of both binaries and every duration value of the chart spell them:
//! `500ms`, `15s`, `2m`, `1m30s`, `1h`, or `0`.
//!
//! One syntax, so that a value copied from `values.yaml` into a flag, an environment variable or
//! another binary's flag means the same thing everywhere. It is the subset of Go's
//! `time.ParseDuration` (what Kubernetes users already write) without fractions or signs: whole
//! numbers, each followed by a unit (`ms`, `s`, `m` or `h`), summed; `0` alone needs no unit. The
//! chart's `values.schema.json` (`definitions.duration`) and its `ironlb.durationMs` helper accept
//! exactly this, so the chart refuses what the binaries would refuse.
//!
//! [`parse_duration`] is a clap value parser (`value_parser = parse_duration`): clap's error then
//! names the flag, ours the value and the accepted forms.
//!
//! The operator's leader-election flags took bare integers of seconds before they took durations;
//! [`parse_duration_or_seconds`] still reads those, for one release, and says so
//! ([`DurationOrSeconds::deprecation`]) so that `main` can warn.

use std::time::Duration;

/// What a malformed value is told to look like.
const FORMS: &str = "write whole numbers each with a unit ms, s, m or h (e.g. 500ms, 15s, 2m, 1m30s), or 0";

/// Why a value is not a duration. The message quotes the value as given, whitespace included.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not in the syntax at all: no unit, an unknown unit, a sign, a fraction, spaces, nothing.
    #[error("{0:?} is not a duration: {FORMS}")]
    Malformed(String),
    /// Well-formed, but more than a `Duration` holds (about 584 billion years).
    #[error("{0:?} is too long a duration")]
    TooLong(String),
}

/// Parses a duration in the one syntax of the module docs.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_owned());
    let too_long = || DurationError::TooLong(text.to_owned());
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        let unit_len = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        let scale: fn(u64) -> Option<Duration> = match &rest[digits..digits + unit_len] {
            "ms" => |n| Some(Duration::from_millis(n)),
            "s" => |n| Some(Duration::from_secs(n)),
            "m" => |n| n.checked_mul(60).map(Duration::from_secs),
            "h" => |n| n.checked_mul(3600).map(Duration::from_secs),
            _ => return Err(malformed()),
        };
        // Only digits, so the one way the number fails to parse is being above u64::MAX.
        let part = rest[..digits].parse().ok().and_then(scale);
        total = part.and_then(|part| total.checked_add(part)).ok_or_else(too_long)?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// A duration flag's value that may still be a bare number of seconds (deprecated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationOrSeconds {
    /// What the value means.
    pub duration: Duration,
    /// `Some(n)` when it was written as the bare number `n`, read as `n` seconds.
    pub bare_seconds: Option<u64>,
}

impl DurationOrSeconds {
    /// The warning to log when the value was a bare number, naming `flag`, the value and what
    /// to write instead; `None` when it was a duration.
    pub fn deprecation(&self, flag: &str) -> Option<String> {
        self.bare_seconds.map(|n| format!("{flag}={n} is read as {n}s; bare numbers are deprecated, write {n}s"))
    }
}

/// Parses a duration, or (for one release, deprecated) a bare number of seconds: `15` is `15s`.
/// `0` is a duration already, so it is not deprecated. Anything else is refused as
/// [`parse_duration`] refuses it, so the error still asks for a duration.
pub fn parse_duration_or_seconds(text: &str) -> Result<DurationOrSeconds, DurationError> {
    let bare = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !bare || text == "0" {
        return parse_duration(text).map(|duration| DurationOrSeconds { duration, bare_seconds: None });
    }
    let seconds = text.parse().map_err(|_| DurationError::TooLong(text.to_owned()))?;
    Ok(DurationOrSeconds { duration: Duration::from_secs(seconds), bare_seconds: Some(seconds) })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn each_unit_scales_its_number() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("15s"), Ok(ms(15_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
    }

    #[test]
    fn parts_add_up() {
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        // As in Go: the parts are summed whatever their order.
        assert_eq!(parse_duration("30s1m"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1500ms"), Ok(ms(1_500)));
    }

    #[test]
    fn zero_is_written_with_or_without_a_unit() {
        for zero in ["0", "0s", "0ms", "0m", "00s", "0h0m"] {
            assert_eq!(parse_duration(zero), Ok(Duration::ZERO), "{zero:?}");
        }
    }

    #[test]
    fn a_number_needs_a_unit_and_a_unit_a_number() {
        for bad in ["15", "2m30", "s", "ms", "m5s", "99999999999999999999999"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn unknown_units_signs_and_fractions_are_refused() {
        for bad in ["15x", "2d", "1w", "15S", "15sec", "1us", "-1s", "+1s", "1.5s", ".5s", "1e3ms", "1_000ms"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn whitespace_and_emptiness_are_refused() {
        for bad in ["", " ", "15s ", " 15s", "15 s", "1m 30s", "15s\n", "\t2s"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn what_overflows_a_duration_is_too_long() {
        let max_secs = u64::MAX.to_string();
        assert_eq!(parse_duration(&format!("{max_secs}s")), Ok(Duration::from_secs(u64::MAX)));
        for bad in [
            format!("{max_secs}0s"),
            format!("{max_secs}s1s"),
            format!("{max_secs}m"),
            format!("{max_secs}h"),
            "99999999999999999999999ms".to_owned(),
        ] {
            assert_eq!(parse_duration(&bad), Err(DurationError::TooLong(bad.clone())), "{bad:?}");
        }
        assert_eq!(
            parse_duration_or_seconds(&format!("{max_secs}0")),
            Err(DurationError::TooLong(format!("{max_secs}0")))
        );
    }

    #[test]
    fn the_error_quotes_the_value_and_shows_the_accepted_forms() {
        let message = parse_duration("15x").expect_err("15x").to_string();
        assert_eq!(
            message,
            "\"15x\" is not a duration: write whole numbers each with a unit ms, s, m or h \
             (e.g. 500ms, 15s, 2m, 1m30s), or 0"
        );
        // Quoted, so a stray space or newline shows.
        assert!(parse_duration("15s ").expect_err("trailing space").to_string().starts_with("\"15s \" is not"));
        assert!(parse_duration("").expect_err("empty").to_string().starts_with("\"\" is not"));
        let too_long = format!("{}h", u64::MAX);
        assert_eq!(
            parse_duration(&too_long).expect_err("overflow").to_string(),
            format!("{too_long:?} is too long a duration")
        );
    }

    #[test]
    fn a_duration_is_not_deprecated() {
        for (text, duration) in [("15s", ms(15_000)), ("1m", ms(60_000)), ("500ms", ms(500)), ("0", Duration::ZERO)] {
            let parsed = parse_duration_or_seconds(text).expect(text);
            assert_eq!(parsed, DurationOrSeconds { duration, bare_seconds: None }, "{text:?}");
            assert_eq!(parsed.deprecation("--lease-duration"), None, "{text:?}");
        }
    }

    #[test]
    fn a_bare_number_is_read_as_seconds_with_a_deprecation_naming_flag_value_and_fix() {
        let parsed = parse_duration_or_seconds("15").expect("15");
        assert_eq!(parsed, DurationOrSeconds { duration: ms(15_000), bare_seconds: Some(15) });
        assert_eq!(
            parsed.deprecation("--lease-duration").as_deref(),
            Some("--lease-duration=15 is read as 15s; bare numbers are deprecated, write 15s")
        );
        assert_eq!(parse_duration_or_seconds("007").map(|parsed| parsed.bare_seconds), Ok(Some(7)));
    }

    #[test]
    fn only_bare_whole_numbers_are_tolerated() {
        for bad in ["", "-1", "+2", "1.5", " 15", "15 ", "15x", "-1s"] {
            assert_eq!(parse_duration_or_seconds(bad), Err(DurationError::Malformed(bad.to_owned())), "{bad:?}");
        }
    }

    /// A binary's flags as the binaries declare theirs.
    #[derive(Debug, Parser)]
    struct Flags {
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        grace: Duration,
        #[arg(long, default_value = "15s", value_parser = parse_duration_or_seconds)]
        lease_duration: DurationOrSeconds,
    }

    #[test]
    fn clap_reads_flags_through_the_parsers_and_names_flag_and_value_when_it_refuses() {
        let flags = Flags::try_parse_from(["binary"]).expect("defaults");
        assert_eq!((flags.grace, flags.lease_duration.duration), (ms(2_000), ms(15_000)));
        let flags = Flags::try_parse_from(["binary", "--grace=1m30s", "--lease-duration=20"]).expect("flags");
        assert_eq!(flags.grace, ms(90_000));
        assert_eq!(flags.lease_duration.bare_seconds, Some(20));
        let refused = Flags::try_parse_from(["binary", "--grace=15x"]).expect_err("15x").to_string();
        assert!(refused.contains("--grace") && refused.contains("\"15x\" is not a duration"), "{refused}");
        let refused = Flags::try_parse_from(["binary", "--lease-duration=-1s"]).expect_err("-1s").to_string();
        assert!(refused.contains("--lease-duration") && refused.contains("\"-1s\" is not a duration"), "{refused}");
    }
}
