//! Pushes owed: what a daemon acknowledged to the mail server and has not delivered
//! yet, kept durably so that an outage or a crash delays a push and never loses it.
//!
//! A push says "look at this mailbox", so one owed push per target (a device's account,
//! a subscription's mailbox) is enough: each event is merged into the target's mark by
//! [`Owed::on_event`], with the [`Debouncer`](crate::Debouncer)'s rule (new mail at
//! once, other events a quiet period after the last). A daemon sends a mark when it is
//! due; a delivery (or a definitive refusal) settles it unless a newer event came
//! meanwhile ([`Owed::settled_by`]); a failed round reschedules it
//! ([`Owed::after_failure`]) with a doubling wait, until [`Rounds::give_up_after`] has
//! passed since the oldest event it owes.
//!
//! Times are milliseconds since the Unix epoch, as a store keeps them. A mark's
//! [`touched_ms`](Owed::touched_ms) is a time too, but it grows with every event even
//! when two come in one millisecond or the clock steps back, so that no send settles
//! an event it does not carry.
//!
//! ```
//! use std::time::Duration;
//! use xaps_proto::owed::{Owed, Rounds};
//!
//! let delay = Duration::from_secs(30);
//! let flags = Owed::on_event(None, false, 1_000, delay);
//! assert_eq!(flags.due_ms, 31_000); // a quiet period after the flag change
//! let mail = Owed::on_event(Some(flags), true, 2_000, delay);
//! assert_eq!(mail.due_ms, 2_000); // new mail: at once
//! assert_eq!(mail.since_ms, 1_000); // still owed since the first event
//!
//! let rounds = Rounds {
//!     first: Duration::from_secs(30),
//!     max: Duration::from_secs(600),
//!     give_up_after: Duration::from_secs(86_400),
//! };
//! let again = mail.after_failure(2_500, &rounds).expect("not given up yet");
//! assert_eq!((again.due_ms, again.failures), (32_500, 1));
//! assert!(again.after_failure(87_000_000, &rounds).is_none()); // a day later: given up
//! ```

use std::time::Duration;

/// An owed push: when it may go, and what it owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Owed {
    /// When it may go next.
    pub due_ms: u64,
    /// When the oldest event it owes was acknowledged: giving up counts from here.
    pub since_ms: u64,
    /// The newest event it owes: when it was acknowledged, or one more than the event
    /// before it if that is later (two events in one millisecond, a clock stepped
    /// back), so that each event's is greater than any before it. A send that began
    /// before it does not settle it.
    pub touched_ms: u64,
    /// Rounds of attempts that failed so far.
    pub failures: u32,
}

/// How failed rounds are retried: the wait after the first failed round is `first`,
/// doubled per round up to `max`, and the push is given up once `give_up_after` has
/// passed since the oldest event it owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rounds {
    /// The wait after the first failed round.
    pub first: Duration,
    /// The longest wait between rounds.
    pub max: Duration,
    /// How long an owed push is kept at most.
    pub give_up_after: Duration,
}

/// `duration` in milliseconds, saturated (a setting's bound keeps it far below).
fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Owed {
    /// The mark after an event acknowledged at `now_ms`, merged into `existing`: new
    /// mail makes it due at once; another event makes it due `delay` after itself,
    /// unless the mark is due already (it is going out, and will carry this one too).
    pub fn on_event(existing: Option<Owed>, new_mail: bool, now_ms: u64, delay: Duration) -> Owed {
        let due = if new_mail {
            now_ms
        } else {
            now_ms.saturating_add(ms(delay))
        };
        match existing {
            None => Owed {
                due_ms: due,
                since_ms: now_ms,
                touched_ms: now_ms,
                failures: 0,
            },
            Some(owed) => Owed {
                due_ms: if new_mail || owed.due_ms <= now_ms {
                    owed.due_ms.min(due)
                } else {
                    owed.due_ms.max(due)
                },
                since_ms: owed.since_ms.min(now_ms),
                touched_ms: owed.next_touch(now_ms),
                failures: owed.failures,
            },
        }
    }

    /// The stamp of an event acknowledged at `now_ms` after this mark's newest:
    /// greater than that one's whatever the clock says.
    fn next_touch(&self, now_ms: u64) -> u64 {
        self.touched_ms.saturating_add(1).max(now_ms)
    }

    /// The mark after an event acknowledged at `now_ms` that leaves its schedule as it
    /// is (a subscription a fan-out could not reach, whose mark keeps its own
    /// schedule): that event is now its newest, so a send under way does not settle it.
    pub fn touched(self, now_ms: u64) -> Owed {
        Owed {
            touched_ms: self.next_touch(now_ms),
            ..self
        }
    }

    /// The mark after an event acknowledged at `now_ms` while its push is being sent:
    /// that send began before the event and does not carry it, so the mark is due as a
    /// new one would be (at once for new mail, a quiet period later otherwise), still
    /// owing since its oldest event. The send under way does not settle it
    /// ([`Owed::settled_by`]).
    pub fn on_event_while_sending(self, new_mail: bool, now_ms: u64, delay: Duration) -> Owed {
        Owed {
            due_ms: Owed::on_event(None, new_mail, now_ms, delay).due_ms,
            since_ms: self.since_ms.min(now_ms),
            touched_ms: self.next_touch(now_ms),
            failures: self.failures,
        }
    }

    /// Whether a send that began when the mark's newest event was `sent_touched_ms`
    /// settles it: no event came after.
    pub fn settled_by(&self, sent_touched_ms: u64) -> bool {
        self.touched_ms <= sent_touched_ms
    }

    /// The mark after a round of attempts failed at `now_ms`: due again after the
    /// round's wait; `None` when it has been owed longer than
    /// [`Rounds::give_up_after`], and is given up.
    pub fn after_failure(self, now_ms: u64, rounds: &Rounds) -> Option<Owed> {
        self.after_failure_asked(now_ms, rounds, Duration::ZERO)
    }

    /// [`Owed::after_failure`] when the peer asked the push to wait `asked` (a push
    /// service's `Retry-After`, bounded by the caller): due after the round's wait or
    /// that one, whichever ends later.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use xaps_proto::owed::{Owed, Rounds};
    /// let rounds = Rounds {
    ///     first: Duration::from_secs(30),
    ///     max: Duration::from_secs(600),
    ///     give_up_after: Duration::from_secs(86_400),
    /// };
    /// let mail = Owed::on_event(None, true, 0, Duration::from_secs(30));
    /// let asked = mail.after_failure_asked(0, &rounds, Duration::from_secs(120));
    /// assert_eq!(asked.map(|o| o.due_ms), Some(120_000));
    /// let shorter = mail.after_failure_asked(0, &rounds, Duration::from_secs(5));
    /// assert_eq!(shorter.map(|o| o.due_ms), Some(30_000));
    /// ```
    pub fn after_failure_asked(
        self,
        now_ms: u64,
        rounds: &Rounds,
        asked: Duration,
    ) -> Option<Owed> {
        if now_ms.saturating_sub(self.since_ms) >= ms(rounds.give_up_after) {
            return None;
        }
        let doublings = self.failures.min(31);
        let wait = rounds
            .first
            .saturating_mul(1_u32 << doublings)
            .min(rounds.max)
            .max(asked);
        Some(Owed {
            due_ms: now_ms.saturating_add(ms(wait)),
            failures: self.failures.saturating_add(1),
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(30);

    #[test]
    fn events_merge_as_the_debouncer_does() {
        let first = Owed::on_event(None, false, 0, DELAY);
        assert_eq!(
            (first.due_ms, first.since_ms, first.touched_ms),
            (30_000, 0, 0)
        );
        // Another flag change: a quiet period after the last.
        let later = Owed::on_event(Some(first), false, 10_000, DELAY);
        assert_eq!(later.due_ms, 40_000);
        assert_eq!((later.since_ms, later.touched_ms), (0, 10_000));
        // Due already (going out): a flag change does not hold it back.
        let due = Owed::on_event(Some(later), false, 50_000, DELAY);
        assert_eq!(due.due_ms, 40_000);
        // New mail: at once, whatever was pending.
        let mail = Owed::on_event(Some(later), true, 20_000, DELAY);
        assert_eq!(mail.due_ms, 20_000);
        assert!(
            !mail.settled_by(10_000),
            "an event came after that send began"
        );
        assert!(mail.settled_by(20_000));
    }

    #[test]
    fn an_event_while_sending_waits_its_own_quiet_period() {
        let mail = Owed::on_event(None, true, 0, DELAY);
        // The send of `mail` is under way when a flag changes: not carried by it.
        let flags = mail.on_event_while_sending(false, 1_000, DELAY);
        assert_eq!(
            (flags.due_ms, flags.since_ms, flags.touched_ms),
            (31_000, 0, 1_000)
        );
        assert!(!flags.settled_by(mail.touched_ms));
        // New mail meanwhile: at once.
        let again = mail.on_event_while_sending(true, 2_000, DELAY);
        assert_eq!(again.due_ms, 2_000);
    }

    #[test]
    fn an_event_in_the_same_millisecond_or_after_the_clock_stepped_back_is_newer() {
        let mail = Owed::on_event(None, true, 5_000, DELAY);
        let sent = mail.touched_ms;
        for now in [5_000, 4_000, 0] {
            let again = Owed::on_event(Some(mail), true, now, DELAY);
            assert!(!again.settled_by(sent), "an event at {now}");
            let while_sending = mail.on_event_while_sending(false, now, DELAY);
            assert!(!while_sending.settled_by(sent), "an event at {now}");
            assert!(!mail.touched(now).settled_by(sent), "an event at {now}");
        }
        // The clock going on, the stamp is the event's time again.
        assert_eq!(
            Owed::on_event(Some(mail), true, 9_000, DELAY).touched_ms,
            9_000
        );
    }

    proptest::proptest! {
        /// Whatever the clock says, each event's stamp is greater than the one before:
        /// a send of the mark as it was never settles it.
        #[test]
        fn every_event_is_newer_than_the_last(
            events in proptest::collection::vec((proptest::bool::ANY, 0_u64..10_000, 0_u8..3), 1..40)
        ) {
            let mut owed: Option<Owed> = None;
            for (new_mail, now, how) in events {
                let next = match (owed, how) {
                    (Some(o), 1) => o.on_event_while_sending(new_mail, now, DELAY),
                    (Some(o), 2) => o.touched(now),
                    (o, _) => Owed::on_event(o, new_mail, now, DELAY),
                };
                if let Some(before) = owed {
                    proptest::prop_assert!(!next.settled_by(before.touched_ms));
                    proptest::prop_assert!(next.touched_ms >= now);
                }
                owed = Some(next);
            }
        }
    }

    #[test]
    fn failed_rounds_wait_longer_each_time_and_end_at_the_limit() {
        let rounds = Rounds {
            first: Duration::from_secs(1),
            max: Duration::from_secs(4),
            give_up_after: Duration::from_secs(10),
        };
        let mut owed = Owed::on_event(None, true, 0, DELAY);
        let mut waits = Vec::new();
        let mut now = 0;
        while let Some(next) = owed.after_failure(now, &rounds) {
            waits.push(next.due_ms - now);
            now = next.due_ms;
            owed = next;
        }
        assert_eq!(waits, [1_000, 2_000, 4_000, 4_000]);
        assert_eq!(now, 11_000);
        assert_eq!(owed.failures, 4);
    }
}
