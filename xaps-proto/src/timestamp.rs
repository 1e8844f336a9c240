//! RFC 3339 timestamps as xapsd's database stores them (Go's `time.Time` in JSON),
//! kept with their offset and nanoseconds so an imported database exports unchanged.
//! The `time` crate reads and writes them; this type adds Go's conventions.

use std::fmt;
use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A timestamp that is not RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with a
/// valid date, years 0001 to 9999.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct TimestampError(pub String);

/// A point in time with the UTC offset it was written in, printed as Go's
/// `RFC3339Nano` prints it: the fraction without trailing zeros, `Z` for UTC.
///
/// ```
/// use xaps_proto::Timestamp;
/// let t: Timestamp = "2022-03-02T09:47:54.855456616+01:00".parse()?;
/// assert_eq!(t.to_string(), "2022-03-02T09:47:54.855456616+01:00");
/// assert_eq!(t.unix_seconds(), 1_646_210_874);
/// # Ok::<(), xaps_proto::TimestampError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// `now` (or any system time), in UTC; `None` outside years 0001 to 9999, which
    /// RFC 3339 cannot write.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use xaps_proto::Timestamp;
    /// let t = Timestamp::from_system_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    /// assert_eq!(t.map(|t| t.to_string()).as_deref(), Some("1970-01-01T00:00:01Z"));
    /// let far = SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000);
    /// assert_eq!(Timestamp::from_system_time(far), None);
    /// ```
    pub fn from_system_time(time: SystemTime) -> Option<Self> {
        let time = OffsetDateTime::from_unix_timestamp_nanos(system_time_nanos(time)).ok()?;
        (time.year() >= 1).then_some(Self(time))
    }

    /// The time as a `SystemTime`; `None` when the platform cannot represent it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let nanos = self.unix_nanos();
        let magnitude = std::time::Duration::new(
            u64::try_from((nanos / 1_000_000_000).unsigned_abs()).ok()?,
            u32::try_from((nanos % 1_000_000_000).unsigned_abs()).ok()?,
        );
        if nanos >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(magnitude)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(magnitude)
        }
    }

    /// Seconds since the Unix epoch (negative before 1970).
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Nanoseconds since the Unix epoch, for ordering instants whatever their offsets.
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Whether this is Go's zero time, `0001-01-01T00:00:00Z`, which xapsd writes for
    /// registrations made before it kept times.
    pub fn is_go_zero(self) -> bool {
        self.unix_nanos() == i128::from(GO_ZERO) * 1_000_000_000
    }
}

/// Nanoseconds since the Unix epoch (negative before 1970) of any `SystemTime`: its
/// seconds fit an `i64` and their nanoseconds an `i128`.
pub(crate) fn system_time_nanos(time: SystemTime) -> i128 {
    let nanos = |d: std::time::Duration| {
        i128::from(d.as_secs()) * 1_000_000_000 + i128::from(d.subsec_nanos())
    };
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => nanos(after),
        Err(before) => -nanos(before.duration()),
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
    ///
    /// Years 0001 to 9999, as Go writes them; a leap second (`:60`) is refused, since
    /// Go never writes one.
    fn from_str(text: &str) -> Result<Self, TimestampError> {
        let error = || TimestampError(text.chars().take(64).collect());
        // RFC 3339 allows more fraction digits than Go's nanoseconds can hold.
        let fraction_digits = text
            .split_once('.')
            .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
        if fraction_digits > 9 || text.get(17..19) == Some("60") {
            return Err(error());
        }
        let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| error())?;
        if time.year() < 1 {
            return Err(error());
        }
        Ok(Self(time))
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;
    fn try_from(text: String) -> Result<Self, TimestampError> {
        text.parse()
    }
}

impl From<Timestamp> for String {
    fn from(time: Timestamp) -> String {
        time.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every parsed or converted time is within RFC 3339's years and whole-minute
        // offsets, which is all that formatting can refuse.
        let text = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn known_instants() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(t("1970-01-01T00:00:00Z").unix_seconds(), 0);
        assert_eq!(t("2018-09-22T12:42:31Z").unix_seconds(), 1_537_620_151);
        assert!(t("0001-01-01T00:00:00Z").is_go_zero());
        assert!(!t("0001-01-01T00:00:00.000000001Z").is_go_zero());
        assert_eq!(
            t("2000-02-29T23:59:59-05:30").unix_seconds(),
            951_868_799 + 5 * 3600 + 1800
        );
        for same in [
            "9999-12-31T23:59:59.999999999Z",
            "2022-03-02T09:47:54.855456616+01:00",
            "2022-03-02T09:47:54.8+01:00",
            "2000-02-29T23:59:59-05:30",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(t(same).to_string(), same);
        }
        // Go's RFC3339Nano: no trailing zeros, upper-case letters.
        assert_eq!(
            t("2018-09-22t12:42:31.500z").to_string(),
            "2018-09-22T12:42:31.5Z"
        );
        assert_eq!(
            t("2018-09-22T12:42:31.000Z").to_string(),
            "2018-09-22T12:42:31Z"
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
    fn system_time_round_trips() {
        for t in [
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123),
            SystemTime::UNIX_EPOCH - Duration::new(86_400, 5),
        ] {
            let stamp = Timestamp::from_system_time(t).unwrap();
            assert_eq!(stamp.to_system_time(), Some(t));
        }
    }

    #[test]
    fn system_times_rfc_3339_cannot_write_are_refused() {
        let last = "9999-12-31T23:59:59.999999999Z"
            .parse::<Timestamp>()
            .unwrap();
        let first = "0001-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let (last_t, first_t) = (
            last.to_system_time().unwrap(),
            first.to_system_time().unwrap(),
        );
        assert_eq!(Timestamp::from_system_time(last_t), Some(last));
        assert_eq!(Timestamp::from_system_time(first_t), Some(first));
        let ns = Duration::from_nanos(1);
        assert_eq!(Timestamp::from_system_time(last_t + ns), None);
        assert_eq!(Timestamp::from_system_time(first_t - ns), None);
        // A 410's timestamp from APNs, milliseconds as large as JSON's u64 holds.
        let far = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::MAX);
        assert_eq!(Timestamp::from_system_time(far), None);
        assert!(system_time_nanos(far) > last.unix_nanos());
    }
}
