//! Cron schedules of retention policies, in Harbor's six-field form
//! (`second minute hour day-of-month month day-of-week`, UTC; a five-field
//! expression runs at second 0). Each field takes `*`, `?`, numbers,
//! ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`. Pure: a
//! schedule only answers whether it fires at a given second.

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    fields: [u64; 6],
    /// Day-of-month and day-of-week both restricted: either may match, as
    /// in classic cron.
    either_day: bool,
}

const RANGES: [(u32, u32, &str); 6] = [
    (0, 59, "second"),
    (0, 59, "minute"),
    (0, 23, "hour"),
    (1, 31, "day of month"),
    (1, 12, "month"),
    (0, 7, "day of week"),
];

impl std::str::FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Cron, String> {
        let mut parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() == 5 {
            parts.insert(0, "0");
        }
        if parts.len() != 6 {
            return Err(format!(
                "cron `{text}` must have six fields (second minute hour day-of-month month \
                 day-of-week), such as `0 0 * * * *` for every hour"
            ));
        }
        let mut fields = [0u64; 6];
        for (i, part) in parts.iter().enumerate() {
            fields[i] = field(part, RANGES[i]).map_err(|e| format!("cron `{text}`: {e}"))?;
        }
        // Sunday is 0 or 7.
        if fields[5] & (1 << 7) != 0 {
            fields[5] |= 1;
        }
        let restricted = |p: &str| p != "*" && p != "?";
        Ok(Cron {
            fields,
            either_day: restricted(parts[3]) && restricted(parts[5]),
        })
    }
}

fn field(text: &str, (min, max, name): (u32, u32, &str)) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step `{s}` in the {name} field"))?,
            ),
            None => (item, 1),
        };
        let number = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("`{s}` is not a {name} ({min}-{max})"))
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if item.contains('/') => (number(r)?, max),
                None => {
                    let n = number(r)?;
                    (n, n)
                }
            },
        };
        if lo > hi {
            return Err(format!("range `{range}` of the {name} field is backwards"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Whether the schedule fires in one second of a minute only, so at
    /// most once a minute: a run every second would fill the history.
    pub fn at_most_once_a_minute(&self) -> bool {
        self.fields[0].count_ones() == 1
    }

    /// Whether the schedule fires at this Unix second (UTC).
    pub fn fires_at(&self, unix: i64) -> bool {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        let (_, month, day) = civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7) as u32;
        let has = |field: usize, v: u32| self.fields[field] & (1 << v) != 0;
        let time = has(0, (secs % 60) as u32)
            && has(1, (secs / 60 % 60) as u32)
            && has(2, (secs / 3600) as u32)
            && has(4, month);
        let dom = has(3, day);
        let dow = has(5, weekday);
        time && if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }
}

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2026-11-30
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn schedules_fire_when_they_should() {
        let hourly: Cron = "0 0 * * * *".parse().unwrap();
        // 2026-11-30T22:00:00Z is a Monday.
        let t = 20_787 * 86_400 + 22 * 3600;
        assert!(hourly.fires_at(t));
        assert!(!hourly.fires_at(t + 1));
        assert!(!hourly.fires_at(t + 60));
        let every2: Cron = "*/2 * * * * *".parse().unwrap();
        assert!(every2.fires_at(t));
        assert!(!every2.fires_at(t + 1));
        assert!(every2.fires_at(t + 2));
        let monday: Cron = "0 30 1 * * 1".parse().unwrap();
        assert!(monday.fires_at(20_787 * 86_400 + 5400));
        assert!(!monday.fires_at(20_788 * 86_400 + 5400));
        let sunday: Cron = "0 0 0 * * 7".parse().unwrap();
        assert!(sunday.fires_at(20_786 * 86_400));
        let five: Cron = "15 10 * * *".parse().unwrap();
        assert!(five.fires_at(20_787 * 86_400 + 10 * 3600 + 15 * 60));
        let either: Cron = "0 0 0 1 * 1".parse().unwrap();
        assert!(either.fires_at(20_787 * 86_400), "a Monday");
        assert!(either.fires_at(20_788 * 86_400), "the 1st");
        assert!(!either.fires_at(20_789 * 86_400));
        let list: Cron = "0 0 8-10/2,23 * * *".parse().unwrap();
        assert!(list.fires_at(8 * 3600) && list.fires_at(10 * 3600) && list.fires_at(23 * 3600));
        assert!(!list.fires_at(9 * 3600));
    }

    #[test]
    fn refuses_bad_expressions() {
        for bad in [
            "",
            "* * *",
            "61 * * * * *",
            "*/0 * * * * *",
            "5-1 * * * * *",
            "a * * * * *",
        ] {
            assert!(bad.parse::<Cron>().is_err(), "{bad}");
        }
    }
}
