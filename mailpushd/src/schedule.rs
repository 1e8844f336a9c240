//! When each push goes: new mail at once, other events after the quiet period, by the
//! crates' debouncers (one per push protocol); and when the Web Push subscriptions next
//! need housekeeping (the state machine's `next_deadline`, as the store keeps it). The
//! daemon's timer sleeps until the earliest of these deadlines, and is woken when an
//! event may have made an earlier one: nothing here polls on a fixed tick.

use std::time::{Duration, Instant};

use tokio::sync::Notify;
use xaps_proto::{AccountId, Debouncer, DeviceToken, UserName};

/// A device's pushes for one account (APNs).
pub(crate) type DeviceKey = (DeviceToken, AccountId);
/// A mailbox of a user (Web Push: one generic push per mailbox).
pub(crate) type MailboxKey = (UserName, String);

/// The pushes waiting for their quiet period to end.
pub(crate) struct Schedule {
    devices: std::sync::Mutex<Debouncer<DeviceKey>>,
    mailboxes: std::sync::Mutex<Debouncer<MailboxKey>>,
    /// When subscription housekeeping (`state::sweep`) is next due.
    sweep: std::sync::Mutex<Option<Instant>>,
    /// Wakes the timer: a deadline may now be earlier than the one it sleeps until.
    changed: Notify,
}

/// The pushes due at a moment.
#[derive(Debug, Default)]
pub(crate) struct Due {
    /// APNs pushes.
    pub(crate) devices: Vec<DeviceKey>,
    /// Web Push generic pushes.
    pub(crate) mailboxes: Vec<MailboxKey>,
    /// Subscription housekeeping.
    pub(crate) sweep: bool,
}

impl Schedule {
    /// A schedule that waits `delay` after the last event other than new mail.
    pub(crate) fn new(delay: Duration) -> Self {
        Self {
            devices: std::sync::Mutex::new(Debouncer::new(delay)),
            mailboxes: std::sync::Mutex::new(Debouncer::new(delay)),
            sweep: std::sync::Mutex::new(None),
            changed: Notify::new(),
        }
    }

    /// An event for a device at `now`: the key back when its push goes now (new mail,
    /// which also ends a pending delayed push), `None` when it waits.
    pub(crate) fn device_event(
        &self,
        key: DeviceKey,
        new_mail: bool,
        now: Instant,
    ) -> Option<DeviceKey> {
        let due = crate::lock(&self.devices).on_event(key, new_mail, now);
        if due.is_none() {
            self.changed.notify_one();
        }
        due
    }

    /// An event other than new mail in a user's mailbox: one generic push after the
    /// quiet period.
    pub(crate) fn mailbox_event(&self, key: MailboxKey, now: Instant) {
        let _ = crate::lock(&self.mailboxes).on_event(key, false, now);
        self.changed.notify_one();
    }

    /// Forgets a device's pending push (its registration went).
    pub(crate) fn cancel_device(&self, key: &DeviceKey) {
        crate::lock(&self.devices).cancel(key);
    }

    /// Subscription housekeeping is next due at `at` (what the store says now).
    pub(crate) fn set_sweep(&self, at: Option<Instant>) {
        *crate::lock(&self.sweep) = at;
        self.changed.notify_one();
    }

    /// Subscription housekeeping is due at `at` at the latest (a subscription was
    /// stored with that deadline).
    pub(crate) fn sweep_by(&self, at: Instant) {
        let mut sweep = crate::lock(&self.sweep);
        if sweep.is_none_or(|current| at < current) {
            *sweep = Some(at);
            self.changed.notify_one();
        }
    }

    /// When the next push or housekeeping is due, if any is waiting.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            crate::lock(&self.devices).next_deadline(),
            crate::lock(&self.mailboxes).next_deadline(),
            *crate::lock(&self.sweep),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is due at `now`, taken out of the schedule (the housekeeping's next
    /// deadline is set again once it is done: [`Schedule::set_sweep`]).
    pub(crate) fn due(&self, now: Instant) -> Due {
        let sweep = {
            let mut sweep = crate::lock(&self.sweep);
            let due = sweep.is_some_and(|at| at <= now);
            if due {
                *sweep = None;
            }
            due
        };
        Due {
            devices: crate::lock(&self.devices).poll(now),
            mailboxes: crate::lock(&self.mailboxes).poll(now),
            sweep,
        }
    }

    /// Waits until an event may have moved the next deadline earlier.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceKey {
        (
            DeviceToken::new(&format!("{n:02x}").repeat(32)).unwrap(),
            AccountId::new("ACC").unwrap(),
        )
    }

    #[test]
    fn the_next_deadline_is_the_earliest_of_both_protocols() {
        let t0 = Instant::now();
        let s = Schedule::new(Duration::from_secs(30));
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.device_event(device(1), true, t0), Some(device(1)));
        assert_eq!(s.next_deadline(), None, "new mail goes at once");
        s.mailbox_event((UserName::new("a").unwrap(), "INBOX".into()), t0);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(
            s.device_event(device(2), false, t0 - Duration::from_secs(5)),
            None
        );
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(25)));
        let due = s.due(t0 + Duration::from_secs(25));
        assert_eq!((due.devices.len(), due.mailboxes.len()), (1, 0));
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(30)));
        let due = s.due(t0 + Duration::from_secs(30));
        assert_eq!((due.devices.len(), due.mailboxes.len()), (0, 1));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn housekeeping_is_due_at_its_earliest_deadline_and_once() {
        let t0 = Instant::now();
        let s = Schedule::new(Duration::from_secs(30));
        s.sweep_by(t0 + Duration::from_secs(60));
        s.sweep_by(t0 + Duration::from_secs(90));
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert!(!s.due(t0).sweep);
        assert!(s.due(t0 + Duration::from_secs(60)).sweep);
        assert_eq!(s.next_deadline(), None, "taken until it is set again");
        s.set_sweep(Some(t0 + Duration::from_secs(90)));
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(90)));
        s.set_sweep(None);
        assert_eq!(s.next_deadline(), None);
    }

    #[tokio::test]
    async fn a_delayed_event_wakes_the_timer_and_new_mail_does_not() {
        let s = Schedule::new(Duration::from_secs(30));
        let _ = s.device_event(device(1), true, Instant::now());
        let woken = tokio::time::timeout(Duration::from_millis(50), s.changed()).await;
        assert!(woken.is_err(), "new mail has no deadline to wake for");
        let _ = s.device_event(device(1), false, Instant::now());
        let woken = tokio::time::timeout(Duration::from_millis(50), s.changed()).await;
        assert!(woken.is_ok());
        s.cancel_device(&device(1));
        assert_eq!(s.next_deadline(), None);
    }
}
