//! The one retry policy both senders follow: exponential back-off with jitter, a bound
//! on attempts, and what a service's own `Retry-After` asks.

use std::time::{Duration, Instant};

/// The longest single wait between attempts, whatever the attempt count: doubling
/// stops here.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The time an owed push's send keeps, after its last attempt, for its end to be
/// reported and stored before its lease ends.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// When a send must have ended: an owed push's lease ends then, less
/// [`LEASE_MARGIN`], and another send may take the push up after it. A round of
/// attempts that would run past it ends early, and what is left of it goes to the
/// push's next round; a push that is not owed has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: a push that is not owed.
    pub const NONE: Self = Self(None);

    /// The deadline of `sent`, asked as it starts.
    pub fn of_send(sent: &crate::store::Sent) -> Self {
        Self::of_lease(sent.lease_left(std::time::SystemTime::now()))
    }

    /// The deadline of a send with `lease_left` of its lease left now.
    pub fn of_lease(lease_left: Duration) -> Self {
        let now = Instant::now();
        // A lease that ends beyond what the clock holds bounds nothing.
        Self(now.checked_add(lease_left.saturating_sub(LEASE_MARGIN)))
    }

    /// Whether a wait of `wait`, then an attempt that takes at most `attempt`, end by
    /// the deadline.
    pub fn allows(self, wait: Duration, attempt: Duration) -> bool {
        let Some(deadline) = self.0 else {
            return true;
        };
        Instant::now()
            .checked_add(wait.saturating_add(attempt))
            .is_some_and(|end| end <= deadline)
    }

    /// The last moment an attempt that takes at most `attempt` may start; `None`
    /// without a deadline.
    pub fn last_start(self, attempt: Duration) -> Option<Instant> {
        self.0
            .map(|deadline| deadline.checked_sub(attempt).unwrap_or_else(Instant::now))
    }
}

/// How a sender retries a push that failed in a way worth retrying (a transport
/// error, 429, 5xx).
///
/// The wait before attempt `n + 1` is `base × 2^(n-1)`, at most [`MAX_BACKOFF`], plus
/// up to half of it again at random so that many pushes failing at once do not come
/// back at once; a `Retry-After` longer than that is waited instead, and no wait is
/// longer than `max_wait`. After `max_attempts` attempts the push is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub base: Duration,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The longest wait, whether the back-off's or asked for (Web Push's
    /// `webpush.max_hold`; `Duration::MAX` for none).
    pub max_wait: Duration,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Another attempt after this wait.
    After(Duration),
    /// That was the last attempt: give the push up.
    GiveUp,
}

impl RetryPolicy {
    /// After attempt `attempt` (from 1) failed, and the service asked to wait
    /// `retry_after` if it said: wait, or give up. `jitter` is a fraction in `[0, 1]`
    /// (drawn by the caller, so this stays deterministic).
    pub fn after(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Retry {
        if attempt >= self.max_attempts {
            return Retry::GiveUp;
        }
        let backoff = self.backoff(attempt, jitter);
        let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
        Retry::After(wait.min(self.max_wait))
    }

    /// The back-off after attempt `attempt` (from 1) with `jitter` in `[0, 1]`: `base`
    /// doubled per attempt, at most [`MAX_BACKOFF`], and up to half again.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let exp = self
            .base
            .saturating_mul(1_u32 << doublings)
            .min(MAX_BACKOFF);
        exp.mul_f64(1.0 + jitter.clamp(0.0, 1.0) * 0.5)
    }
}

/// How often one attempt goes again at once after the server did not process it
/// ([`unprocessed`]); after that, such an answer counts as a failed attempt, and the
/// retry policy's back-off applies.
pub const MAX_RESENDS: u32 = 2;

/// Whether an HTTP/2 request's failure says the server did not process it, so that
/// sending it again at once cannot deliver it twice and asks nothing of a server in
/// trouble (RFC 9113 §8.7): it reset the stream with REFUSED_STREAM, or went away
/// gracefully (GOAWAY with NO_ERROR) before the stream, or before it was opened. h2
/// ends only the streams above the GOAWAY's last one with its error, and fails new
/// ones with it; the others go on, or end with the connection as I/O errors. A GOAWAY
/// with an error code, or a failed transport, says the server or the way to it is in
/// trouble: those take the retry policy's back-off.
pub fn unprocessed(e: &h2::Error) -> bool {
    e.is_remote()
        && (e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM)
            || e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR))
}

/// A fraction in `[0, 1]` for [`RetryPolicy::after`]: jitter needs no cryptographic
/// strength, and without randomness the plain back-off serves.
pub fn jitter() -> f64 {
    let mut random = [0u8; 2];
    if rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut random).is_err() {
        return 0.0;
    }
    f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(500),
        max_attempts: 5,
        max_wait: Duration::MAX,
    };

    #[test]
    fn a_deadline_keeps_the_margin_and_allows_what_ends_by_it() {
        let s = Duration::from_secs;
        // Ten seconds of lease: five for attempts once the margin is kept.
        let deadline = Deadline::of_lease(s(10));
        assert!(deadline.allows(Duration::ZERO, s(4)));
        assert!(deadline.allows(s(2), s(2)));
        assert!(!deadline.allows(Duration::ZERO, s(6)));
        assert!(!deadline.allows(s(3), s(3)));
        assert!(!deadline.allows(Duration::MAX, Duration::MAX));
        let last = deadline.last_start(s(1)).unwrap();
        let from_now = last.saturating_duration_since(Instant::now());
        assert!(from_now > s(3) && from_now <= s(4), "{from_now:?}");
        // A lease that has ended, or is shorter than the margin, allows nothing.
        assert!(!Deadline::of_lease(s(3)).allows(Duration::ZERO, Duration::from_millis(1)));
        // A push that is not owed has no deadline.
        assert!(Deadline::NONE.allows(Duration::MAX, Duration::MAX));
        assert_eq!(Deadline::NONE.last_start(s(1)), None);
    }

    #[test]
    fn the_wait_doubles_with_up_to_half_again_as_jitter() {
        let ms = Duration::from_millis;
        assert_eq!(POLICY.backoff(1, 0.0), ms(500));
        assert_eq!(POLICY.backoff(2, 0.0), ms(1000));
        assert_eq!(POLICY.backoff(3, 0.0), ms(2000));
        assert_eq!(POLICY.backoff(3, 1.0), ms(3000));
        // Out-of-range jitter is held to the range.
        assert_eq!(POLICY.backoff(1, 7.0), ms(750));
        // Doubling stops at the bound, however many attempts.
        assert_eq!(POLICY.backoff(40, 0.0), MAX_BACKOFF);
        assert_eq!(POLICY.backoff(u32::MAX, 1.0), MAX_BACKOFF.mul_f64(1.5));
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_is_waited() {
        let s = Duration::from_secs;
        assert_eq!(POLICY.after(1, Some(s(30)), 0.0), Retry::After(s(30)));
        assert_eq!(
            POLICY.after(1, Some(Duration::ZERO), 0.0),
            Retry::After(Duration::from_millis(500))
        );
    }

    /// No wait is longer than `max_wait`, the back-off's included.
    #[test]
    fn no_wait_is_longer_than_max_wait() {
        let hold = Duration::from_secs(300);
        let policy = RetryPolicy {
            base: Duration::from_secs(600),
            max_attempts: 3,
            max_wait: hold,
        };
        let unbounded = RetryPolicy {
            max_wait: Duration::MAX,
            ..policy
        };
        assert_eq!(
            unbounded.after(1, None, 0.0),
            Retry::After(Duration::from_secs(600))
        );
        assert_eq!(policy.after(1, None, 0.0), Retry::After(hold));
        assert_eq!(policy.after(1, Some(hold), 1.0), Retry::After(hold));
        let short = Duration::from_secs(1000);
        assert_eq!(
            RetryPolicy {
                max_wait: short,
                ..policy
            }
            .after(2, None, 0.0),
            Retry::After(short),
            "1,200 s of back-off"
        );
        assert_eq!(policy.after(3, None, 0.0), Retry::GiveUp);
        let quick = RetryPolicy {
            base: Duration::from_millis(500),
            max_attempts: 5,
            max_wait: hold,
        };
        assert_eq!(
            quick.after(2, None, 0.0),
            Retry::After(Duration::from_secs(1)),
            "a back-off within the bound is left as it is"
        );
    }

    #[test]
    fn the_last_attempt_gives_up() {
        assert!(matches!(POLICY.after(4, None, 0.5), Retry::After(_)));
        assert_eq!(POLICY.after(5, None, 0.5), Retry::GiveUp);
        let once = RetryPolicy {
            max_attempts: 1,
            ..POLICY
        };
        assert_eq!(once.after(1, None, 0.0), Retry::GiveUp);
    }
}
