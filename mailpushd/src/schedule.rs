//! When each push goes: new mail at once, other events after the quiet period, by the
//! crates' debouncers (one per push protocol). The daemon's timer sleeps until the
//! earliest deadline they report, and is woken when an event may have made an earlier
//! one: nothing here polls on a fixed tick.

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
}

impl Schedule {
    /// A schedule that waits `delay` after the last event other than new mail.
    pub(crate) fn new(delay: Duration) -> Self {
        Self {
            devices: std::sync::Mutex::new(Debouncer::new(delay)),
            mailboxes: std::sync::Mutex::new(Debouncer::new(delay)),
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

    /// When the next push is due, if any is waiting.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let devices = crate::lock(&self.devices).next_deadline();
        let mailboxes = crate::lock(&self.mailboxes).next_deadline();
        match (devices, mailboxes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The pushes due at `now`, taken out of the schedule.
    pub(crate) fn due(&self, now: Instant) -> Due {
        Due {
            devices: crate::lock(&self.devices).poll(now),
            mailboxes: crate::lock(&self.mailboxes).poll(now),
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
