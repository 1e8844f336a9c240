//! Rates in fixed one-minute windows, per key: the pushes each user's subscriptions
//! get (so that a flood of mail to one address neither floods their push service nor
//! fills the sender's queues), the connections each client address opens to the IMAP
//! front. Time is an argument: nothing here reads the clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::time::{Duration, Instant};

/// The window the rate counts in.
const WINDOW: Duration = Duration::from_secs(60);

/// What [`Rate::check`] says of one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: counted.
    Allowed,
    /// Over it; `first` for the key's first refusal in this window.
    Refused {
        /// The first this window.
        first: bool,
    },
}

/// What a key not yet counted gets once a window has counted as many keys as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// It waits for the next window, like one over the rate: for a limit whose
    /// purpose is to hold the work back (pushes).
    Refuse,
    /// It goes, uncounted: for a limit whose purpose is to hold back the keys that
    /// go over it, which a crowd of other keys must not turn into a lock-out of every
    /// newcomer (connections by client address).
    Allow,
}

/// Events per key in fixed one-minute windows, for at most so many keys a window:
/// beyond, a key not yet counted gets what [`WhenFull`] says. A key is counted by a
/// keyed hash, so its length costs nothing (an entry is 16
/// octets) and no two keys chosen by an attacker can be made to share a count on
/// purpose.
pub(crate) struct Rate {
    per_window: u32,
    max_keys: usize,
    when_full: WhenFull,
    hasher: RandomState,
    window_start: Option<Instant>,
    counts: HashMap<u64, u32>,
}

impl Rate {
    /// At most `per_window` events per key a minute, for at most `max_keys` keys.
    pub(crate) fn new(per_window: u32, max_keys: usize, when_full: WhenFull) -> Self {
        Self {
            per_window,
            max_keys,
            when_full,
            hasher: RandomState::new(),
            window_start: None,
            counts: HashMap::new(),
        }
    }

    /// Whether `key` may have one more event at `now`; if so, it is counted.
    pub(crate) fn allow<K: Hash + ?Sized>(&mut self, key: &K, now: Instant) -> bool {
        self.check(key, now) == Verdict::Allowed
    }

    /// [`Rate::allow`], telling a key's first refusal in a window from the ones after
    /// it, so that a flood is said once a window, not once an event.
    pub(crate) fn check<K: Hash + ?Sized>(&mut self, key: &K, now: Instant) -> Verdict {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            self.window_start = Some(now);
            self.counts.clear();
            // A burst of many users must not keep its memory for the quiet after it.
            self.counts.shrink_to(self.max_keys.min(1024));
        }
        let key = self.hasher.hash_one(key);
        let full = self.counts.len() >= self.max_keys;
        match self.counts.get_mut(&key) {
            Some(count) if *count < self.per_window => {
                *count += 1;
                Verdict::Allowed
            }
            // One past the rate marks the first refusal; the count stops there.
            Some(count) if *count == self.per_window => {
                *count += 1;
                Verdict::Refused { first: true }
            }
            Some(_) => Verdict::Refused { first: false },
            None if full => match self.when_full {
                WhenFull::Refuse => Verdict::Refused { first: false },
                WhenFull::Allow => Verdict::Allowed,
            },
            None => {
                self.counts.insert(key, 1);
                Verdict::Allowed
            }
        }
    }

    /// Keys counted in the current window.
    #[cfg(test)]
    fn users(&self) -> usize {
        self.counts.len()
    }
}

/// How many of something each key holds at once, at most `limit`: the sessions a
/// client address has open and not logged in on. A key is in the map only while it
/// holds one, so the map holds no more keys than there are holds.
#[derive(Debug)]
pub(crate) struct AtOnce<K> {
    limit: u32,
    counts: std::sync::Mutex<HashMap<K, u32>>,
}

/// One of a key's holds, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held<K: Eq + Hash> {
    of: std::sync::Arc<AtOnce<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone> AtOnce<K> {
    /// At most `limit` holds per key at once.
    pub(crate) fn new(limit: u32) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            limit,
            counts: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// One more hold for `key`, unless it has `limit` already.
    pub(crate) fn hold(self: &std::sync::Arc<Self>, key: K) -> Option<Held<K>> {
        let mut counts = crate::lock(&self.counts);
        let count = counts.get(&key).copied().unwrap_or(0);
        if count >= self.limit {
            return None;
        }
        counts.insert(key.clone(), count.saturating_add(1));
        Some(Held {
            of: self.clone(),
            key,
        })
    }
}

impl<K: Eq + Hash> Drop for Held<K> {
    fn drop(&mut self) {
        let mut counts = crate::lock(&self.of.counts);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_rate_a_minute_and_others_are_not_touched() {
        let start = Instant::now();
        let mut rate = Rate::new(3, 100, WhenFull::Refuse);
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
        let mut rate = Rate::new(10, 4, WhenFull::Refuse);
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
    fn a_full_table_can_let_newcomers_through_and_still_hold_the_counted() {
        let start = Instant::now();
        let mut rate = Rate::new(2, 2, WhenFull::Allow);
        for key in ["a", "a", "b"] {
            assert!(rate.allow(key, start));
        }
        assert!(!rate.allow("a", start), "a counted key over the rate waits");
        for _ in 0..5 {
            assert!(rate.allow("c", start), "a newcomer goes, uncounted");
        }
        assert_eq!(rate.users(), 2);
    }

    #[test]
    fn a_keys_first_refusal_in_a_window_is_told_apart() {
        let start = Instant::now();
        let mut rate = Rate::new(2, 1, WhenFull::Refuse);
        assert_eq!(rate.check("a", start), Verdict::Allowed);
        assert_eq!(rate.check("a", start), Verdict::Allowed);
        assert_eq!(rate.check("a", start), Verdict::Refused { first: true });
        assert_eq!(rate.check("a", start), Verdict::Refused { first: false });
        assert!(!rate.allow("a", start));
        // A key the full table cannot count is not said each time either.
        assert_eq!(rate.check("b", start), Verdict::Refused { first: false });
        assert_eq!(rate.check("a", start + WINDOW), Verdict::Allowed);
    }

    #[test]
    fn a_clock_going_back_does_not_reopen_the_window() {
        let start = Instant::now() + Duration::from_secs(120);
        let mut rate = Rate::new(1, 4, WhenFull::Refuse);
        assert!(rate.allow("a", start));
        assert!(!rate.allow("a", start - Duration::from_secs(30)));
    }

    #[test]
    fn holds_per_key_at_once_are_bounded_and_given_back() {
        let at_once = AtOnce::new(2);
        let a1 = at_once.hold("a");
        let a2 = at_once.hold("a");
        assert!(a1.is_some() && a2.is_some());
        assert!(at_once.hold("a").is_none(), "a third at once");
        assert!(at_once.hold("b").is_some(), "another key's own");
        drop(a1);
        let a3 = at_once.hold("a");
        assert!(a3.is_some(), "given back");
        drop((a2, a3));
        assert!(
            crate::lock(&at_once.counts).is_empty(),
            "no key left behind"
        );
    }
}
