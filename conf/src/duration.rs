//! Durations as people write them in config files: `"30m"`, `"500ms"`,
//! `"1h30m"`. A bare number is rejected because nobody can tell whether
//! `timeout = "5"` meant seconds or milliseconds.

use std::time::Duration;

/// Units in the order [`format`] prefers them. Days are accepted when parsing
/// but not printed, so `"24h"` reads back as it was probably written.
const UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// What every duration error ends with, so the user sees the accepted shape.
pub(crate) const EXPECTED: &str =
    "expected numbers with units ms, s, m, h or d, such as \"30m\" or \"1h30m\"";

/// Parses one or more `<digits><unit>` parts and adds them up.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("empty duration; {EXPECTED}"));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("invalid duration `{text}`: {EXPECTED}"));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let Some(&(_, millis)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("invalid duration `{text}`: `{digits}` has no unit; {EXPECTED}")
            } else {
                format!("invalid duration `{text}`: unknown unit `{unit}`; {EXPECTED}")
            });
        };
        let part = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(millis))
            .map(Duration::from_millis);
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
        rest = next;
    }
    Ok(total)
}

/// The shortest text [`parse`] reads back as `duration` (to the millisecond).
pub(crate) fn format(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    // Skip days: see UNITS.
    for &(unit, size) in &UNITS[1..] {
        let size = u128::from(size);
        let count = millis / size;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(30 * 60)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(24 * 3600)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn adds_up_compound_durations() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m1s500ms"), Ok(Duration::from_millis(61_500)));
        assert_eq!(parse(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_garbage_with_the_reason() {
        let err = |text: &str| parse(text).expect_err(text);
        assert!(err("").contains("empty duration"));
        assert!(err("5").contains("`5` has no unit"));
        assert!(err("10 s").contains("unknown unit ` s`"));
        assert!(err("1.5h").contains("unknown unit `.`"));
        assert!(err("5min").contains("unknown unit `min`"));
        assert!(err("h").contains("invalid duration `h`"));
        assert!(err("-5s").contains("invalid duration `-5s`"));
        assert!(err("99999999999999999999s").contains("too large"));
        assert!(err("abc").contains("such as \"30m\""));
    }

    #[test]
    fn formats_the_way_people_write() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(86_400)), "24h");
        assert_eq!(format(Duration::from_millis(61_500)), "1m1s500ms");
    }

    #[test]
    fn format_round_trips() {
        for millis in [1, 999, 1000, 60_000, 3_600_001, 90_061_001] {
            let duration = Duration::from_millis(millis);
            assert_eq!(parse(&format(duration)), Ok(duration));
        }
    }
}
