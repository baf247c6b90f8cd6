//! Durations on the command line as Kubernetes and Go spell them: `500ms`, `2s`, `1m30s`.

use std::time::Duration;

/// Parses one or more `<integer><unit>` parts, unit `ms`, `s`, `m` or `h`; `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 =
            rest[..digits].parse().map_err(|_| format!("{text:?}: expected a number, e.g. 500ms or 2s"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            unit => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(part);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations_and_refuses_the_rest() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "2", "2 s", "s", "1.5s", "2d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
