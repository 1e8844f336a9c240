//! When to push: new mail at once, everything else once the burst is over.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The default quiet period after the last non-new event: xapsd's 30 seconds.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(30);

/// The longest quiet period a [`Debouncer`] takes: a day.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// A quiet period longer than [`MAX_DELAY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a quiet period of {0:?}, longer than a day")]
pub struct DelayTooLong(pub Duration);

/// Whether a batch of Dovecot push-notification event names (`"MessageNew"`,
/// `"FlagsSet"`, ...) contains new mail, which is pushed at once.
pub fn is_message_new<S: AsRef<str>>(events: &[S]) -> bool {
    events.iter().any(|e| e.as_ref() == "MessageNew")
}

/// A trailing-edge debouncer per registration, without timers of its own.
///
/// * [`on_event`](Self::on_event) with new mail answers "push now" and cancels any
///   delayed push for the same key: one push covers both.
/// * Any other event (flags, moves, expunges, which come in bursts) schedules a push
///   `delay` after the **last** such event for that key.
/// * [`poll`](Self::poll) returns the keys whose delay has passed;
///   [`next_deadline`](Self::next_deadline) says when to poll next.
///
/// The key is whatever identifies a registration to the caller, best something cheap
/// to copy (an index into its registry); xapsd uses (device token, account id).
///
/// ```
/// use std::time::{Duration, Instant};
/// use xaps_proto::Debouncer;
///
/// let t0 = Instant::now();
/// let mut d = Debouncer::new(Duration::from_secs(30))?;
/// assert_eq!(d.on_event(7u32, false, t0), None);              // flags changed: wait
/// assert_eq!(d.on_event(7, false, t0 + Duration::from_secs(10)), None);
/// assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(40)));
/// assert!(d.poll(t0 + Duration::from_secs(39)).is_empty());
/// assert_eq!(d.poll(t0 + Duration::from_secs(40)), [7]);     // 30 s after the last
/// assert_eq!(d.on_event(7, true, t0 + Duration::from_secs(50)), Some(7)); // new mail: now
/// assert!(Debouncer::<u32>::new(Duration::MAX).is_err());
/// # Ok::<(), xaps_proto::DelayTooLong>(())
/// ```
#[derive(Debug, Clone)]
pub struct Debouncer<K> {
    delay: Duration,
    /// The current deadline of each pending key.
    pending: HashMap<K, Instant>,
    /// Deadlines in order; an entry whose deadline no longer matches `pending` is stale
    /// and skipped, so resetting a deadline costs one push, not a search.
    queue: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// Breaks ties in the heap without requiring `K: Ord` to mean anything.
    sequence: u64,
}

impl<K: Hash + Eq + Clone + Ord> Debouncer<K> {
    /// A debouncer that waits `delay` after the last non-new event; at most
    /// [`MAX_DELAY`].
    pub fn new(delay: Duration) -> Result<Self, DelayTooLong> {
        if delay > MAX_DELAY {
            return Err(DelayTooLong(delay));
        }
        Ok(Self {
            delay,
            ..Self::default()
        })
    }

    /// Records an event for `key` at `now`. Returns `Some(key)` when a push must go out
    /// now (new mail, or an event so late that the clock cannot hold its deadline),
    /// `None` when it was scheduled (or rescheduled).
    pub fn on_event(&mut self, key: K, new_message: bool, now: Instant) -> Option<K> {
        let deadline = now.checked_add(self.delay).filter(|_| !new_message);
        let Some(deadline) = deadline else {
            self.pending.remove(&key);
            return Some(key);
        };
        self.pending.insert(key.clone(), deadline);
        self.sequence += 1;
        self.queue.push(Reverse((deadline, self.sequence, key)));
        self.compact();
        None
    }

    /// The keys whose push is due at `now`, each once, earliest first.
    pub fn poll(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((deadline, _, _))) = self.queue.peek() {
            if *deadline > now {
                break;
            }
            let Some(Reverse((deadline, _, key))) = self.queue.pop() else {
                break;
            };
            if self.pending.get(&key) == Some(&deadline) {
                self.pending.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// When the next delayed push is due, if any. (It drops stale queue entries on the
    /// way, hence `&mut`.)
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, _, key))) = self.queue.peek() {
            if self.pending.get(key) == Some(deadline) {
                return Some(*deadline);
            }
            self.queue.pop();
        }
        None
    }

    /// Forgets a key's pending push, for instance when its registration is removed.
    pub fn cancel(&mut self, key: &K) {
        self.pending.remove(key);
    }

    /// The number of keys with a delayed push pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no push is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Drops stale queue entries once they outnumber the live ones, so a key that is
    /// rescheduled forever does not grow memory.
    fn compact(&mut self) {
        if self.queue.len() > 2 * self.pending.len() + 1024 {
            let pending = &self.pending;
            self.queue
                .retain(|Reverse((deadline, _, key))| pending.get(key) == Some(deadline));
        }
    }
}

impl<K: Hash + Eq + Clone + Ord> Default for Debouncer<K> {
    /// xapsd's 30 seconds ([`DEFAULT_DELAY`], within [`MAX_DELAY`]).
    fn default() -> Self {
        Self {
            delay: DEFAULT_DELAY,
            pending: HashMap::new(),
            queue: BinaryHeap::new(),
            sequence: 0,
        }
    }
}
