//! When the timer next has work: owed pushes falling due (new mail at once, other
//! events after their quiet period, failed rounds after their wait: all kept in the
//! store, by `xaps_proto::owed`'s rule), and subscription housekeeping (the state
//! machine's `next_deadline`, as the store keeps it). The daemon's timer sleeps until
//! the earliest, and is woken when an event may have made an earlier one: nothing here
//! ticks.

use std::time::Instant;

use tokio::sync::Notify;

/// The deadlines the timer sleeps until.
pub(crate) struct Schedule {
    /// When owed pushes are next due.
    owed: std::sync::Mutex<Option<Instant>>,
    /// When subscription housekeeping (`state::sweep`) is next due.
    sweep: std::sync::Mutex<Option<Instant>>,
    /// Wakes the timer: a deadline may now be earlier than the one it sleeps until.
    changed: Notify,
}

/// What is due at a moment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Due {
    /// Owed pushes, to take from the store.
    pub(crate) owed: bool,
    /// Subscription housekeeping.
    pub(crate) sweep: bool,
}

/// Sets `slot` to `at` if that is earlier; whether it was.
fn earlier(slot: &std::sync::Mutex<Option<Instant>>, at: Instant) -> bool {
    let mut slot = crate::lock(slot);
    let sooner = slot.is_none_or(|current| at < current);
    if sooner {
        *slot = Some(at);
    }
    sooner
}

/// Sets `slot`, emptied when its deadline was taken, to `at`, unless an event set an
/// earlier one meanwhile.
fn set(slot: &std::sync::Mutex<Option<Instant>>, at: Option<Instant>) {
    if let Some(at) = at {
        earlier(slot, at);
    }
}

/// Takes `slot` if it is due at `now`.
fn take(slot: &std::sync::Mutex<Option<Instant>>, now: Instant) -> bool {
    let mut slot = crate::lock(slot);
    let due = slot.is_some_and(|at| at <= now);
    if due {
        *slot = None;
    }
    due
}

impl Schedule {
    /// Nothing due yet.
    pub(crate) fn new() -> Self {
        Self {
            owed: std::sync::Mutex::new(None),
            sweep: std::sync::Mutex::new(None),
            changed: Notify::new(),
        }
    }

    /// Owed pushes are due at `at` at the latest (one was stored so).
    pub(crate) fn owed_by(&self, at: Instant) {
        if earlier(&self.owed, at) {
            self.changed.notify_one();
        }
    }

    /// Owed pushes are next due at `at`, as the store said after [`Self::due`] took
    /// the deadline. One an event set meanwhile ([`Self::owed_by`]) stays if earlier:
    /// the store may have been read before that event was stored.
    pub(crate) fn set_owed(&self, at: Option<Instant>) {
        set(&self.owed, at);
        self.changed.notify_one();
    }

    /// Subscription housekeeping is due at `at` at the latest.
    pub(crate) fn sweep_by(&self, at: Instant) {
        if earlier(&self.sweep, at) {
            self.changed.notify_one();
        }
    }

    /// Subscription housekeeping is next due at `at`, as the store said after
    /// [`Self::due`] took the deadline; one set meanwhile stays if earlier.
    pub(crate) fn set_sweep(&self, at: Option<Instant>) {
        set(&self.sweep, at);
        self.changed.notify_one();
    }

    /// When the timer must next run, if anything waits.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [*crate::lock(&self.owed), *crate::lock(&self.sweep)]
            .into_iter()
            .flatten()
            .min()
    }

    /// What is due at `now`, taken out of the schedule: whoever does it sets the next
    /// deadline from the store.
    pub(crate) fn due(&self, now: Instant) -> Due {
        Due {
            owed: take(&self.owed, now),
            sweep: take(&self.sweep, now),
        }
    }

    /// Waits until an event may have moved the next deadline earlier.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earliest_deadline_and_each_taken_once() {
        let t0 = Instant::now();
        let s = Schedule::new();
        assert_eq!(s.next_deadline(), None);
        s.owed_by(t0 + Duration::from_secs(30));
        s.owed_by(t0 + Duration::from_secs(60));
        s.sweep_by(t0 + Duration::from_secs(10));
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(s.due(t0), Due::default());
        assert_eq!(
            s.due(t0 + Duration::from_secs(10)),
            Due {
                owed: false,
                sweep: true
            }
        );
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(30)));
        assert!(s.due(t0 + Duration::from_secs(30)).owed);
        assert_eq!(s.next_deadline(), None, "taken until it is set again");
        s.set_owed(Some(t0 + Duration::from_secs(90)));
        s.set_sweep(None);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(90)));
    }

    /// The timer took the deadline and read the store; an event stored after that read
    /// set an earlier deadline before the timer set what it read: the earlier stays.
    #[test]
    fn an_event_between_the_stores_answer_and_the_timer_is_not_lost() {
        let t0 = Instant::now();
        let s = Schedule::new();
        s.owed_by(t0);
        assert!(s.due(t0).owed);
        s.owed_by(t0 + Duration::from_secs(1));
        s.set_owed(Some(t0 + Duration::from_secs(60)));
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(1)));
        s.set_owed(None);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(1)));
        s.sweep_by(t0 + Duration::from_secs(2));
        s.set_sweep(Some(t0 + Duration::from_secs(60)));
        assert!(s.due(t0 + Duration::from_secs(2)).sweep);
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_the_timer_and_a_later_one_does_not() {
        let s = Schedule::new();
        let t0 = Instant::now();
        s.owed_by(t0 + Duration::from_secs(5));
        let woken = tokio::time::timeout(Duration::from_millis(50), s.changed()).await;
        assert!(woken.is_ok());
        s.owed_by(t0 + Duration::from_secs(10));
        let woken = tokio::time::timeout(Duration::from_millis(50), s.changed()).await;
        assert!(woken.is_err(), "nothing earlier to wake for");
    }
}
