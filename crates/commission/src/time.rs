//! Time for the commission engine: instants ([`Timestamp`], Unix
//! milliseconds, UTC) and calendar months ([`Month`], UTC).
//!
//! Owns the calendar arithmetic (days ↔ year/month/day) so the engine needs
//! no date library. Must not read the clock: every instant is handed in by
//! the caller (event times from the brand, `now` from the job that runs the
//! engine).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use clickstitch_domain::units::DAY_MS as MS_PER_DAY;

/// Why a time value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not `YYYY-MM`, or out of range.
    #[error("month must be YYYY-MM with 1970 <= YYYY <= 9999 and 01 <= MM <= 12, got {0:?}")]
    BadMonth(String),
    /// A calendar date that does not exist (e.g. 31 April) or is before 1970.
    #[error("no such UTC date/time: {0}")]
    BadDate(String),
}

/// An instant: milliseconds since 1970-01-01T00:00:00Z (the format the rest
/// of the aggregator uses, e.g. `occurred_at_ms`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The instant `ms` milliseconds after the Unix epoch.
    pub const fn from_unix_ms(ms: u64) -> Self {
        Self(ms)
    }

    /// A UTC calendar date and time (seconds are zero).
    pub fn utc(year: u16, month: u8, day: u8, hour: u8, minute: u8) -> Result<Self, TimeError> {
        let m = Month::new(year, month)
            .map_err(|_| TimeError::BadDate(format!("{year:04}-{month:02}-{day:02}")))?;
        if day == 0 || u32::from(day) > m.days() || hour > 23 || minute > 59 {
            return Err(TimeError::BadDate(format!(
                "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}"
            )));
        }
        let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
        let ms =
            days * MS_PER_DAY as i64 + i64::from(hour) * 3_600_000 + i64::from(minute) * 60_000;
        // days >= 0 because year >= 1970.
        Ok(Self(ms.unsigned_abs()))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> u64 {
        self.0
    }

    /// This instant plus whole days (saturating).
    pub fn plus_days(self, days: u32) -> Self {
        Self(self.0.saturating_add(u64::from(days) * MS_PER_DAY))
    }

    /// The UTC month this instant falls in.
    pub fn month(self) -> Month {
        let (y, m, _) = civil_from_days((self.0 / MS_PER_DAY) as i64);
        Month {
            year: u16::try_from(y).unwrap_or(u16::MAX),
            month: m as u8,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days((self.0 / MS_PER_DAY) as i64);
        let in_day = self.0 % MS_PER_DAY;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// A UTC calendar month: the commission period. Ordered chronologically;
/// written `YYYY-MM` in JSON.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: u16,
    month: u8,
}

impl Month {
    /// `year`-`month`, 1970..=9999 and 1..=12.
    pub fn new(year: u16, month: u8) -> Result<Self, TimeError> {
        if (1970..=9999).contains(&year) && (1..=12).contains(&month) {
            Ok(Self { year, month })
        } else {
            Err(TimeError::BadMonth(format!("{year:04}-{month:02}")))
        }
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::BadMonth(text.chars().take(16).collect());
        let t = text.trim();
        let (y, m) = t.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let year = y.parse::<u16>().map_err(|_| bad())?;
        let month = m.parse::<u8>().map_err(|_| bad())?;
        Self::new(year, month).map_err(|_| bad())
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month number, 1..=12.
    pub fn number(self) -> u8 {
        self.month
    }

    /// Number of days in the month.
    pub fn days(self) -> u32 {
        let next = self.next();
        let a = days_from_civil(i64::from(self.year), u32::from(self.month), 1);
        let b = days_from_civil(i64::from(next.year), u32::from(next.month), 1);
        (b - a) as u32
    }

    /// The first instant of the month (00:00 UTC on the 1st).
    pub fn start(self) -> Timestamp {
        let days = days_from_civil(i64::from(self.year), u32::from(self.month), 1);
        Timestamp((days as u64) * MS_PER_DAY)
    }

    /// The first instant after the month (the next month's start).
    pub fn end(self) -> Timestamp {
        self.next().start()
    }

    /// The following month.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year.saturating_add(1),
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Whether `t` falls inside this month.
    pub fn contains(self, t: Timestamp) -> bool {
        self.start() <= t && t < self.end()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&t).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn months_parse_print_and_order() {
        let m = Month::parse("2026-02").expect("month");
        assert_eq!(m.to_string(), "2026-02");
        assert_eq!(m.days(), 28);
        assert_eq!(Month::parse("2024-02").map(|m| m.days()), Ok(29));
        assert!(Month::parse("2026-13").is_err());
        assert!(Month::parse("26-01").is_err());
        assert!(Month::parse("2026-1").is_err());
        assert!(Month::parse("2026-12").expect("dec") < Month::parse("2027-01").expect("jan"));
        assert_eq!(
            Month::parse("2026-12").expect("dec").next(),
            Month::parse("2027-01").expect("jan")
        );
    }

    #[test]
    fn timestamps_know_their_month_and_print_as_utc() {
        let t = Timestamp::utc(2026, 3, 31, 23, 59).expect("date");
        assert_eq!(t.to_string(), "2026-03-31T23:59:00.000Z");
        assert_eq!(t.month(), Month::parse("2026-03").expect("m"));
        assert_eq!(t.plus_days(1).month(), Month::parse("2026-04").expect("m"));
        assert_eq!(Timestamp::utc(1970, 1, 1, 0, 0).map(|t| t.unix_ms()), Ok(0));
        assert!(Timestamp::utc(2026, 4, 31, 0, 0).is_err());
    }

    proptest! {
        #[test]
        fn every_instant_lies_inside_its_month(ms in 0u64..253_402_300_799_000) {
            let t = Timestamp::from_unix_ms(ms);
            let m = t.month();
            prop_assert!(m.contains(t));
            prop_assert_eq!(m.next().start(), m.end());
        }
    }
}
