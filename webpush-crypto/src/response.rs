//! What a push service's answer means for the sender (RFC 8030 §5, §6, §8).

use std::time::{Duration, SystemTime};

use http::header::{LOCATION, RETRY_AFTER};
use http::{HeaderMap, StatusCode};

/// When to try again, from a `Retry-After` header (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <delay-seconds>`.
    Delay(Duration),
    /// `Retry-After: <HTTP-date>`.
    At(SystemTime),
}

/// The longest wait a `Retry-After` is taken for: a day. Longer hints are held to it,
/// so a hostile or broken service cannot park a sender (or overflow `Instant + delay`).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl RetryAfter {
    /// Parses either form; `None` for anything else, since a bad hint is no hint.
    /// Delays are held to [`MAX_RETRY_AFTER`].
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use webpush_crypto::RetryAfter;
    /// assert_eq!(RetryAfter::parse("120"), Some(RetryAfter::Delay(Duration::from_secs(120))));
    /// let at = RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    /// assert_eq!(at, RetryAfter::At(SystemTime::UNIX_EPOCH + Duration::from_secs(784111777)));
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // Absurd delays are capped rather than refused: they still mean "not now".
            let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
            return Some(Self::Delay(
                Duration::from_secs(seconds).min(MAX_RETRY_AFTER),
            ));
        }
        httpdate::parse_http_date(value).ok().map(Self::At)
    }

    /// How long to wait, counted from `now`: zero for a date already past, at most
    /// [`MAX_RETRY_AFTER`], so `Instant::now() + delay` cannot overflow.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use webpush_crypto::{MAX_RETRY_AFTER, RetryAfter};
    /// let hint = RetryAfter::parse("18446744073709551615").unwrap();
    /// assert_eq!(hint.delay(SystemTime::now()), MAX_RETRY_AFTER);
    /// let _ = Instant::now() + hint.delay(SystemTime::now());
    /// // A date centuries away, as well.
    /// let far = RetryAfter::parse("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
    /// assert_eq!(far.delay(SystemTime::UNIX_EPOCH), MAX_RETRY_AFTER);
    /// ```
    pub fn delay(&self, now: SystemTime) -> Duration {
        match *self {
            Self::Delay(delay) => delay,
            Self::At(at) => at.duration_since(now).unwrap_or_default(),
        }
        .min(MAX_RETRY_AFTER)
    }
}

/// What to do after a push request, decided from the status and headers alone.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use webpush_crypto::Outcome;
/// let outcome = Outcome::classify(StatusCode::GONE, &HeaderMap::new());
/// assert_eq!(outcome, Outcome::RemoveSubscription { status: StatusCode::GONE });
/// assert!(outcome.removes_subscription());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// 2xx: the push service accepted the message (RFC 8030 answers 201 Created).
    Delivered {
        /// The push message resource (`Location`), to cancel or acknowledge it.
        location: Option<String>,
    },
    /// 404 or 410: the subscription is gone; delete it and stop sending.
    RemoveSubscription {
        /// The status received.
        status: StatusCode,
    },
    /// 413: the body is larger than this push service takes; send less or pad less.
    PayloadTooLarge,
    /// 429: too many messages; wait, then retry.
    RateLimited {
        /// The service's hint, when it gave a valid one.
        retry_after: Option<RetryAfter>,
    },
    /// 401 or 403: the VAPID token or key was refused; fix the configuration (the key,
    /// `sub`, or a subscription made with another key) before retrying.
    VapidRejected {
        /// The status received.
        status: StatusCode,
    },
    /// 400: the request is malformed (headers, encoding, or key reuse); do not retry it.
    BadRequest,
    /// 5xx: the push service failed; retry later with backoff.
    RetryLater {
        /// The status received.
        status: StatusCode,
        /// The service's hint, when it gave a valid one.
        retry_after: Option<RetryAfter>,
    },
    /// Anything else: log it, and do not retry blindly.
    Unexpected {
        /// The status received.
        status: StatusCode,
    },
}

impl Outcome {
    /// Classifies a push service's response.
    pub fn classify(status: StatusCode, headers: &HeaderMap) -> Self {
        let retry_after = || {
            headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(RetryAfter::parse)
        };
        match status.as_u16() {
            200..=299 => Outcome::Delivered {
                location: headers
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            404 | 410 => Outcome::RemoveSubscription { status },
            413 => Outcome::PayloadTooLarge,
            429 => Outcome::RateLimited {
                retry_after: retry_after(),
            },
            401 | 403 => Outcome::VapidRejected { status },
            400 => Outcome::BadRequest,
            500..=599 => Outcome::RetryLater {
                status,
                retry_after: retry_after(),
            },
            _ => Outcome::Unexpected { status },
        }
    }

    /// Classifies a whole response; the body is not needed.
    pub fn from_response<B>(response: &http::Response<B>) -> Self {
        Self::classify(response.status(), response.headers())
    }

    /// Whether the subscription should be deleted.
    pub fn removes_subscription(&self) -> bool {
        matches!(self, Outcome::RemoveSubscription { .. })
    }

    /// Whether sending the same message again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Outcome::RateLimited { .. } | Outcome::RetryLater { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: http::header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn every_class() {
        let none = HeaderMap::new();
        let s = |code| StatusCode::from_u16(code).unwrap();
        assert_eq!(
            Outcome::classify(s(201), &with(LOCATION, "https://push.example.net/m/1")),
            Outcome::Delivered {
                location: Some("https://push.example.net/m/1".into())
            }
        );
        assert_eq!(
            Outcome::classify(s(202), &none),
            Outcome::Delivered { location: None }
        );
        assert!(Outcome::classify(s(404), &none).removes_subscription());
        assert!(Outcome::classify(s(410), &none).removes_subscription());
        assert_eq!(Outcome::classify(s(413), &none), Outcome::PayloadTooLarge);
        assert_eq!(
            Outcome::classify(s(429), &with(RETRY_AFTER, "30")),
            Outcome::RateLimited {
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(30)))
            }
        );
        assert_eq!(
            Outcome::classify(s(429), &with(RETRY_AFTER, "soon")),
            Outcome::RateLimited { retry_after: None }
        );
        assert_eq!(
            Outcome::classify(s(401), &none),
            Outcome::VapidRejected { status: s(401) }
        );
        assert_eq!(
            Outcome::classify(s(403), &none),
            Outcome::VapidRejected { status: s(403) }
        );
        assert_eq!(Outcome::classify(s(400), &none), Outcome::BadRequest);
        let busy = Outcome::classify(s(503), &with(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT"));
        assert!(busy.is_retryable());
        let Outcome::RetryLater {
            retry_after: Some(at),
            ..
        } = busy
        else {
            panic!("{busy:?}")
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_420);
        assert_eq!(at.delay(now), Duration::from_secs(60));
        assert_eq!(at.delay(now + Duration::from_secs(3600)), Duration::ZERO);
        assert_eq!(
            Outcome::classify(s(302), &none),
            Outcome::Unexpected { status: s(302) }
        );
        assert!(!Outcome::classify(s(302), &none).is_retryable());
    }

    #[test]
    fn retry_after_forms() {
        // RFC 9110 requires recipients to accept all three date formats.
        let expected = Some(RetryAfter::At(
            SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777),
        ));
        assert_eq!(RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(
            RetryAfter::parse("Sunday, 06-Nov-94 08:49:37 GMT"),
            expected
        );
        assert_eq!(RetryAfter::parse("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(
            RetryAfter::parse(" 0 "),
            Some(RetryAfter::Delay(Duration::ZERO))
        );
        assert_eq!(
            RetryAfter::parse("99999999999999999999999"),
            Some(RetryAfter::Delay(MAX_RETRY_AFTER))
        );
        // The largest hint no longer overflows an Instant (it panicked before).
        let hint = RetryAfter::parse(&u64::MAX.to_string()).unwrap();
        let _ = std::time::Instant::now() + hint.delay(SystemTime::now());
        assert_eq!(
            RetryAfter::parse("86401")
                .unwrap()
                .delay(SystemTime::UNIX_EPOCH),
            MAX_RETRY_AFTER
        );
        for bad in ["", "-1", "1.5", "tomorrow", "Sun, 06 Nov 1994"] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad:?}");
        }
    }
}
