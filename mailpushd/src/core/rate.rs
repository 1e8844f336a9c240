//! The per-user push rate: how many pushes each user's subscriptions get a minute, so
//! that a flood of mail to one address neither floods their push service nor fills
//! the sender's queues. Time is an argument: nothing here reads the clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// The window the rate counts in.
const WINDOW: Duration = Duration::from_secs(60);

/// Users counted in one window at most: beyond, a user not yet counted waits for the
/// next window like one over the rate. A map entry is 16 octets, so this is a few
/// tens of megabytes at worst.
pub(super) const MAX_USERS: usize = 1_000_000;

/// Pushes per user in fixed one-minute windows. Users are counted by a keyed hash of
/// their name, so a name's length costs nothing and no two names chosen by a sender
/// of mail can be made to share a count on purpose.
pub(super) struct UserRate {
    per_window: u32,
    max_users: usize,
    hasher: RandomState,
    window_start: Option<Instant>,
    counts: HashMap<u64, u32>,
}

impl UserRate {
    /// At most `per_window` pushes per user a minute, for at most `max_users` users.
    pub(super) fn new(per_window: u32, max_users: usize) -> Self {
        Self {
            per_window,
            max_users,
            hasher: RandomState::new(),
            window_start: None,
            counts: HashMap::new(),
        }
    }

    /// Whether `user` may have one more push at `now`; if so, it is counted.
    pub(super) fn allow(&mut self, user: &str, now: Instant) -> bool {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            self.window_start = Some(now);
            self.counts.clear();
            // A burst of many users must not keep its memory for the quiet after it.
            self.counts.shrink_to(self.max_users.min(1024));
        }
        let key = self.hasher.hash_one(user);
        let full = self.counts.len() >= self.max_users;
        match self.counts.get_mut(&key) {
            Some(count) if *count < self.per_window => {
                *count += 1;
                true
            }
            Some(_) => false,
            None if full => false,
            None => {
                self.counts.insert(key, 1);
                true
            }
        }
    }

    /// Users counted in the current window.
    #[cfg(test)]
    fn users(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_rate_a_minute_and_others_are_not_touched() {
        let start = Instant::now();
        let mut rate = UserRate::new(3, 100);
        for _ in 0..3 {
            assert!(rate.allow("alice", start));
        }
        assert!(!rate.allow("alice", start + Duration::from_secs(59)));
        assert!(rate.allow("bob", start + Duration::from_secs(59)));
        // The next minute starts afresh.
        assert!(rate.allow("alice", start + Duration::from_secs(60)));
        assert_eq!(rate.users(), 1);
    }

    #[test]
    fn the_users_counted_are_bounded() {
        let start = Instant::now();
        let mut rate = UserRate::new(10, 4);
        for user in ["a", "b", "c", "d"] {
            assert!(rate.allow(user, start));
        }
        assert!(
            !rate.allow("e", start),
            "a fifth user waits for the next window"
        );
        assert!(rate.allow("a", start), "one already counted goes on");
        assert_eq!(rate.users(), 4);
        assert!(rate.allow("e", start + WINDOW));
        assert_eq!(rate.users(), 1);
    }

    #[test]
    fn a_clock_going_back_does_not_reopen_the_window() {
        let start = Instant::now() + Duration::from_secs(120);
        let mut rate = UserRate::new(1, 4);
        assert!(rate.allow("a", start));
        assert!(!rate.allow("a", start - Duration::from_secs(30)));
    }
}
