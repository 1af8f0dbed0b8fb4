//! Harbor's cron expressions: six fields, seconds first
//! (`sec min hour day-of-month month day-of-week`), evaluated in UTC. A
//! five-field expression is read as if it had `0` seconds in front.
//!
//! Each field takes `*` (or `?`), numbers, ranges `a-b`, steps `*/n`,
//! `a/n`, `a-b/n` and comma lists; months and weekdays also take their
//! three-letter English names. As in classic cron, when both day fields are
//! restricted a day matches either.
//!
//! The one cron dialect of every schedule: garbage collection, tag
//! retention and replication. Pure: no clock, no I/O.

/// A parsed expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(text: &str, min: u32, max: u32, names: &[&str], offset: u32) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + offset);
    }
    text.parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("`{text}` is not a value from {min} to {max}"))
}

/// Parses one field into a bit set; also whether it restricts anything.
fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    offset: u32,
) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut restricted = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| format!("`{s}` is not a step (a whole number from 1)"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, min, max, names, offset)?,
                value(b, min, max, names, offset)?,
            )
        } else {
            let v = value(range, min, max, names, offset)?;
            // `a/n` runs from a to the end of the field.
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("`{range}` is an empty range"));
        }
        restricted |= !(range == "*" || range == "?") || step > 1;
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            // A step past the field's end (up to u32::MAX) ends the run.
            let Some(next) = v.checked_add(step) else {
                break;
            };
            v = next;
        }
    }
    Ok((bits, restricted))
}

impl std::str::FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Cron, String> {
        let mut fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() == 5 {
            fields.insert(0, "0");
        }
        let [sec, min, hour, dom, month, dow] = fields[..] else {
            return Err(format!(
                "`{text}` has {} fields; a cron expression has six (seconds, minutes, hours, day of month, month, day of week), e.g. `0 0 * * * *`",
                fields.len()
            ));
        };
        let named = |name: &str, r: Result<(u64, bool), String>| {
            r.map_err(|e| format!("cron `{text}`, {name} field: {e}"))
        };
        let (seconds, _) = named("seconds", field(sec, 0, 59, &[], 0))?;
        let (minutes, _) = named("minutes", field(min, 0, 59, &[], 0))?;
        let (hours, _) = named("hours", field(hour, 0, 23, &[], 0))?;
        let (days, days_restricted) = named("day-of-month", field(dom, 1, 31, &[], 0))?;
        let (months, _) = named("month", field(month, 1, 12, &MONTHS, 1))?;
        let (mut weekdays, weekdays_restricted) =
            named("day-of-week", field(dow, 0, 7, &WEEKDAYS, 0))?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }
}

const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Cron {
    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// Whether the schedule fires in one second of a minute only, so at
    /// most once a minute: a run every second would fill a history.
    pub fn at_most_once_a_minute(&self) -> bool {
        self.seconds.count_ones() == 1
    }

    /// Whether the schedule fires at this Unix second (UTC).
    pub fn fires_at(&self, unix: i64) -> bool {
        self.next_after(unix - 1) == Some(unix)
    }

    /// The first time strictly after `after` (Unix seconds) that matches,
    /// within five years (`None` for dates that never come, like Feb 30).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = after + 1;
        let limit = t + 5 * 366 * DAY;
        while t < limit {
            let days = t.div_euclid(DAY);
            let secs = t.rem_euclid(DAY);
            let (y, month, day) = civil_from_days(days);
            let weekday = (days + 4).rem_euclid(7) as u32;
            let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
            if self.months & (1 << month) == 0 {
                let (ny, nm) = if month == 12 {
                    (y + 1, 1)
                } else {
                    (y, month + 1)
                };
                t = days_from_civil(ny, nm, 1) * DAY;
            } else if !self.day_matches(day, weekday) {
                t = (days + 1) * DAY;
            } else if self.hours & (1 << hour) == 0 {
                t = days * DAY + (hour + 1) * 3600;
            } else if self.minutes & (1 << minute) == 0 {
                t = days * DAY + hour * 3600 + (minute + 1) * 60;
            } else if self.seconds & (1 << second) == 0 {
                t += 1;
            } else {
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, after: i64) -> i64 {
        expr.parse::<Cron>()
            .expect("valid cron")
            .next_after(after)
            .expect("fires")
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000, 0, 59, 60, 365, 11_016, 19_000, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn next_firings() {
        // 2024-01-01T00:00:00Z is a Monday.
        let t0 = 1_704_067_200;
        assert_eq!(next("*/2 * * * * *", t0), t0 + 2);
        assert_eq!(next("*/2 * * * * *", t0 + 1), t0 + 2);
        assert_eq!(next("0 0 * * * *", t0), t0 + 3600);
        assert_eq!(next("0 0 0 * * *", t0), t0 + DAY);
        // Weekly on Sunday: 2024-01-07.
        assert_eq!(next("0 0 0 * * 0", t0), t0 + 6 * DAY);
        assert_eq!(next("0 0 0 * * SUN", t0), t0 + 6 * DAY);
        assert_eq!(next("0 0 0 * * 7", t0), t0 + 6 * DAY);
        // Five fields: minutes first.
        assert_eq!(next("30 2 * * *", t0), t0 + 2 * 3600 + 30 * 60);
        // Leap day: 2024-02-29.
        assert_eq!(next("0 0 12 29 2 *", t0), t0 + 59 * DAY + 12 * 3600);
        assert_eq!(next("0 0 0 1 mar-apr *", t0), t0 + 60 * DAY);
        // Both day fields restricted: either matches (the 15th, or Fridays).
        assert_eq!(next("0 0 0 15 * 5", t0), t0 + 4 * DAY);
        assert_eq!(next("10,20 * * * * *", t0 + 15), t0 + 20);
        assert_eq!(next("5-7/2 * * * * *", t0 + 5), t0 + 7);
        assert_eq!(
            "0 0 0 30 2 *".parse::<Cron>().map(|c| c.next_after(t0)),
            Ok(None)
        );
    }

    #[test]
    fn schedules_fire_when_they_should() {
        let hourly: Cron = "0 0 * * * *".parse().expect("valid");
        // 2026-11-30T22:00:00Z is a Monday.
        let t = 20_787 * DAY + 22 * 3600;
        assert!(hourly.fires_at(t));
        assert!(!hourly.fires_at(t + 1));
        assert!(!hourly.fires_at(t + 60));
        assert!(hourly.at_most_once_a_minute());
        let every2: Cron = "*/2 * * * * *".parse().expect("valid");
        assert!(every2.fires_at(t) && !every2.fires_at(t + 1) && every2.fires_at(t + 2));
        assert!(!every2.at_most_once_a_minute());
        let monday: Cron = "0 30 1 * * 1".parse().expect("valid");
        assert!(monday.fires_at(20_787 * DAY + 5400));
        assert!(!monday.fires_at(20_788 * DAY + 5400));
        let either: Cron = "0 0 0 1 * 1".parse().expect("valid");
        assert!(either.fires_at(20_787 * DAY), "a Monday");
        assert!(either.fires_at(20_788 * DAY), "the 1st");
        assert!(!either.fires_at(20_789 * DAY));
        let list: Cron = "0 0 8-10/2,23 * * *".parse().expect("valid");
        assert!(list.fires_at(8 * 3600) && list.fires_at(10 * 3600) && list.fires_at(23 * 3600));
        assert!(!list.fires_at(9 * 3600));
    }

    #[test]
    fn steps_up_to_u32_max() {
        // Found by fuzzing: the step overflowed the running value.
        let c: Cron = "0 0 0 */4294967295 * *".parse().expect("valid");
        assert_eq!(c, "0 0 0 1 * *".parse().expect("valid"));
        let c: Cron = "59/4294967295 * * * * *".parse().expect("valid");
        assert_eq!(c, "59 * * * * *".parse().expect("valid"));
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "* * *",
            "60 * * * * *",
            "* * 24 * * *",
            "*/0 * * * * *",
            "5-1 * * * * *",
            "x * * * * *",
            "* * * * * * *",
        ] {
            assert!(bad.parse::<Cron>().is_err(), "{bad:?} accepted");
        }
    }
}
