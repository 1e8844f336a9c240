//! RFC 3339 timestamps as xapsd's database stores them (Go's `time.Time` in JSON),
//! kept with their offset and nanoseconds so an imported database exports unchanged.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timestamp that is not RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with a
/// valid date, years 0001 to 9999.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct TimestampError(pub String);

/// A point in time with the UTC offset it was written in.
///
/// ```
/// use xaps_proto::Timestamp;
/// let t: Timestamp = "2022-03-02T09:47:54.855456616+01:00".parse()?;
/// assert_eq!(t.to_string(), "2022-03-02T09:47:54.855456616+01:00");
/// assert_eq!(t.unix_seconds(), 1_646_210_874);
/// # Ok::<(), xaps_proto::TimestampError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    secs: i64,
    nanos: u32,
    /// Minutes east of UTC.
    offset_minutes: i16,
}

const SECS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// `now` (or any system time), in UTC. Times before 1970 are clamped to 1970.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            secs: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: since.subsec_nanos(),
            offset_minutes: 0,
        }
    }

    /// The time as a `SystemTime`; `None` when the platform cannot represent it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        match u64::try_from(self.secs) {
            Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs) + nanos),
            Err(_) => UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos),
        }
    }

    /// Seconds since the Unix epoch (negative before 1970).
    pub const fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds since the Unix epoch, for ordering instants whatever their offsets.
    pub const fn unix_nanos(self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// Whether this is Go's zero time, `0001-01-01T00:00:00Z`, which xapsd writes for
    /// registrations made before it kept times.
    pub const fn is_go_zero(self) -> bool {
        self.secs == GO_ZERO && self.nanos == 0
    }
}

/// `0001-01-01T00:00:00Z` in Unix seconds.
const GO_ZERO: i64 = -62_135_596_800;

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    /// ```text
    /// date-time = full-date "T" full-time        ; RFC 3339 §5.6, "t" accepted too
    /// full-date = 4DIGIT "-" 2DIGIT "-" 2DIGIT
    /// full-time = 2DIGIT ":" 2DIGIT ":" 2DIGIT ["." 1*9DIGIT] ("Z" / ("+" / "-") 2DIGIT ":" 2DIGIT)
    /// ```
    fn from_str(text: &str) -> Result<Self, TimestampError> {
        let error = || TimestampError(text.chars().take(64).collect());
        let b = text.as_bytes();
        let num = |from: usize, len: usize| -> Option<i64> {
            let digits = b.get(from..from + len)?;
            digits.iter().try_fold(0i64, |acc, &d| {
                d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
            })
        };
        let at = |i: usize, c: u8| b.get(i).is_some_and(|x| x.eq_ignore_ascii_case(&c));
        if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
            return Err(error());
        }
        let (year, month, day) = (num(0, 4), num(5, 2), num(8, 2));
        let (hour, minute, second) = (num(11, 2), num(14, 2), num(17, 2));
        let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
            (year, month, day, hour, minute, second)
        else {
            return Err(error());
        };
        if year < 1
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(error());
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if at(i, b'.') {
            let digits = b
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .take_while(|d| d.is_ascii_digit())
                .count();
            if digits == 0 || digits > 9 {
                return Err(error());
            }
            let value = num(i + 1, digits).ok_or_else(error)?;
            nanos = u32::try_from(value * 10i64.pow(9 - digits as u32)).map_err(|_| error())?;
            i += 1 + digits;
        }
        let offset_minutes = if at(i, b'Z') && b.len() == i + 1 {
            0
        } else if (at(i, b'+') || at(i, b'-')) && at(i + 3, b':') && b.len() == i + 6 {
            let (Some(h), Some(m)) = (num(i + 1, 2), num(i + 4, 2)) else {
                return Err(error());
            };
            if h > 23 || m > 59 {
                return Err(error());
            }
            let minutes = i16::try_from(h * 60 + m).map_err(|_| error())?;
            if at(i, b'-') { -minutes } else { minutes }
        } else {
            return Err(error());
        };
        let local =
            days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
        Ok(Self {
            secs: local - i64::from(offset_minutes) * 60,
            nanos,
            offset_minutes,
        })
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 as Go writes it: the fraction without trailing zeros, `Z` for UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.secs + i64::from(self.offset_minutes) * 60;
        let (days, secs) = (
            local.div_euclid(SECS_PER_DAY),
            local.rem_euclid(SECS_PER_DAY),
        );
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if self.nanos > 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        match self.offset_minutes {
            0 => f.write_str("Z"),
            m => write!(
                f,
                "{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                m.unsigned_abs() / 60,
                m.unsigned_abs() % 60
            ),
        }
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the era-based algorithm: 400
/// years are exactly 146,097 days).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_instants() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(t("1970-01-01T00:00:00Z").unix_seconds(), 0);
        assert_eq!(t("2018-09-22T12:42:31Z").unix_seconds(), 1_537_620_151);
        assert!(t("0001-01-01T00:00:00Z").is_go_zero());
        assert_eq!(
            t("2000-02-29T23:59:59-05:30").unix_seconds(),
            951_868_799 + 5 * 3600 + 1800
        );
        assert_eq!(
            t("9999-12-31T23:59:59.999999999Z").to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            t("2018-09-22t12:42:31.500z").to_string(),
            "2018-09-22T12:42:31.5Z"
        );
        for bad in [
            "",
            "2018-09-22",
            "2018-09-22T12:42:31",
            "2018-13-01T00:00:00Z",
            "2019-02-29T00:00:00Z",
            "2018-09-22T24:00:00Z",
            "2018-09-22T12:42:60Z",
            "2018-09-22T12:42:31.Z",
            "2018-09-22T12:42:31.1234567891Z",
            "2018-09-22T12:42:31+0100",
            "2018-09-22T12:42:31Zx",
            "0000-01-01T00:00:00Z",
            "+018-09-22T12:42:31Z",
            "２018-09-22T12:42:31Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_day_round_trips() {
        // Every day from 0001 to 9999, through both conversions.
        let first = days_from_civil(1, 1, 1);
        let last = days_from_civil(9999, 12, 31);
        let mut expected = (1, 1, 1);
        for days in first..=last {
            let civil = civil_from_days(days);
            assert_eq!(civil, expected);
            assert_eq!(days_from_civil(civil.0, civil.1, civil.2), days);
            expected = if civil.2 < days_in_month(civil.0, civil.1) {
                (civil.0, civil.1, civil.2 + 1)
            } else if civil.1 < 12 {
                (civil.0, civil.1 + 1, 1)
            } else {
                (civil.0 + 1, 1, 1)
            };
        }
    }

    #[test]
    fn system_time_round_trips() {
        let now = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(Timestamp::from_system_time(now).to_system_time(), Some(now));
    }
}
