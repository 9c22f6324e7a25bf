//! Office hours: a weekly schedule in a time zone, with holidays.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::ConfigError;

const DAY_MINUTES: u16 = 24 * 60;

/// Opening interval within a day, `"09:00-18:00"`: open from the start
/// minute up to, not including, the end minute. `"24:00"` ends at midnight;
/// an end before the start runs past midnight into the next day
/// (`"22:00-06:00"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Minutes after local midnight, 0..1440.
    pub start: u16,
    /// Minutes after local midnight, 0..=1440.
    pub end: u16,
}

impl Interval {
    fn wraps(&self) -> bool {
        self.end < self.start
    }
}

impl FromStr for Interval {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadValue {
            item: "office hours interval".into(),
            value: s.into(),
            expected: "HH:MM-HH:MM".into(),
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let start = parse_hhmm(a).ok_or_else(bad)?;
        let end = parse_hhmm(b).ok_or_else(bad)?;
        if start == DAY_MINUTES || start == end {
            return Err(bad());
        }
        Ok(Interval { start, end })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    let total = h.checked_mul(60)?.checked_add(m)?;
    (m < 60 && total <= DAY_MINUTES).then_some(total)
}

/// A named office hours profile (3CX: "office hours").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfficeHours {
    pub name: String,
    pub time_zone: Tz,
    /// Opening intervals per weekday, Monday first.
    pub week: [Vec<Interval>; 7],
    /// Local dates closed all day.
    pub holidays: Vec<NaiveDate>,
}

impl OfficeHours {
    /// A profile closed all week, in the IANA time zone `time_zone`.
    pub fn new(name: impl Into<String>, time_zone: &str) -> Result<Self, ConfigError> {
        let tz = time_zone
            .trim()
            .parse::<Tz>()
            .map_err(|_| ConfigError::BadValue {
                item: "office hours time zone".into(),
                value: time_zone.into(),
                expected: "an IANA time zone name like Europe/Zurich".into(),
            })?;
        Ok(Self {
            name: name.into(),
            time_zone: tz,
            week: Default::default(),
            holidays: Vec::new(),
        })
    }

    /// Sets one weekday's intervals from text like `"08:00-12:00, 13:00-17:00"`.
    pub fn set_day(&mut self, day: Weekday, intervals: &str) -> Result<(), ConfigError> {
        let parsed = intervals
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Interval>, _>>()?;
        self.week[day.num_days_from_monday() as usize] = parsed;
        Ok(())
    }

    /// Whether the office is open at the instant `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.time_zone);
        let date = local.date_naive();
        if self.holidays.contains(&date) {
            return false;
        }
        // Minutes since local midnight as the wall clock shows them, so a DST
        // change shifts the UTC instants at which the office opens.
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let today = local.weekday().num_days_from_monday() as usize;
        let yesterday = (today + 6) % 7;
        let open_today = self.week[today].iter().any(|iv| {
            if iv.wraps() {
                minute >= iv.start
            } else {
                iv.start <= minute && minute < iv.end
            }
        });
        let open_from_yesterday = self.week[yesterday]
            .iter()
            .any(|iv| iv.wraps() && minute < iv.end);
        open_today || open_from_yesterday
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_refuse() {
        let iv: Interval = "09:00-18:00".parse().unwrap();
        assert_eq!((iv.start, iv.end), (540, 1080));
        let iv: Interval = " 22:30 - 24:00 ".parse().unwrap();
        assert_eq!((iv.start, iv.end), (1350, 1440));
        assert_eq!(iv.to_string(), "22:30-24:00");
        for bad in [
            "",
            "9-18",
            "09:00",
            "09:60-10:00",
            "25:00-26:00",
            "24:00-01:00",
            "10:00-10:00",
            "aa:bb-cc:dd",
            "09:00-18:00-19:00",
            "-1:00-02:00",
            "999:00-10:00",
        ] {
            assert!(
                bad.parse::<Interval>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn unknown_time_zone_refused() {
        assert!(OfficeHours::new("x", "Europe/Nowhere").is_err());
        assert!(OfficeHours::new("x", "Europe/Zurich").is_ok());
    }
}
