//! Owed pushes: every event acknowledged to the mail server is a mark in the store
//! (`store::owed`) before the answer; the core sends the marks that fall due, and each
//! push's end comes back as a report: delivered (or refused for good) settles the mark,
//! a failed round reschedules it, and one owed longer than `push.give_up_after` is given
//! up. A crash or an outage delays a push; it never loses one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use xaps_proto::owed::Rounds;

use super::Core;
use crate::apns::{Job, PushEvent};
use crate::metrics::PushOutcome;
use crate::report::Failed;
use crate::store::{
    Lease, OwedKey, OwedPush, OwedTarget, PushRecord, Rescheduled, Sent, StoreError,
};

/// How many owed pushes one turn of the timer takes from the store; more follow at once.
const TAKE_BATCH: u32 = 1000;

/// On a store other daemons share, how often at most to look for pushes a daemon that
/// died was holding (their lease ends, and nothing here hears of it otherwise); and
/// how long to wait after the store failed to answer.
const LOOK_AGAIN: Duration = Duration::from_secs(60);

/// How many owed pushes may be on their way at once: the timer takes no more from the
/// store until reports bring the count down (a backlog after an outage waits in the
/// store, not in tasks).
const MAX_SENDING: usize = 2 * TAKE_BATCH as usize;

/// Owed pushes on their way: each dispatch counts one, each report of its end takes it
/// off.
#[derive(Debug, Default)]
pub(super) struct Sending {
    count: std::sync::atomic::AtomicUsize,
    /// The timer left due pushes in the store for want of room.
    starved: std::sync::atomic::AtomicBool,
}

/// An id for this process, to lease the pushes it sends.
pub(super) fn instance() -> String {
    let mut random = [0_u8; 12];
    // Without randomness, the time and process id tell processes apart well enough.
    if rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut random).is_err() {
        return format!("{}-{}", std::process::id(), now_ms(SystemTime::now()));
    }
    webpush_crypto::base64url::encode(&random)
}

pub(super) use crate::store::now_ms;

/// The moment `ms` (since 1970) is on the monotonic clock: now for one past; `None` for
/// one too far ahead to be an `Instant`.
pub(super) fn instant_at_ms(ms: u64) -> Option<Instant> {
    let ahead = ms.saturating_sub(now_ms(SystemTime::now()));
    Instant::now().checked_add(Duration::from_millis(ahead))
}

impl Core {
    /// The rounds failed pushes are retried in.
    fn rounds(&self) -> Rounds {
        Rounds {
            first: self.config.push.retry_first,
            max: self.config.push.retry_max,
            give_up_after: self.config.push.give_up_after,
        }
    }

    /// A lease for pushes this daemon takes now.
    pub(super) fn lease(&self, now_ms: u64) -> Lease<'_> {
        let lease = u64::try_from(self.config.push.lease.as_millis()).unwrap_or(u64::MAX);
        Lease {
            owner: &self.instance,
            until_ms: now_ms.saturating_add(lease),
        }
    }

    /// A lease that has ended at `now_ms`: the mark is free for the timer.
    pub(super) fn lease_ended(&self, now_ms: u64) -> Lease<'_> {
        Lease {
            owner: &self.instance,
            until_ms: now_ms,
        }
    }

    /// Whether fewer than [`MAX_SENDING`] owed pushes are on their way: new mail may
    /// go at once.
    pub(super) fn room_to_send(&self) -> bool {
        self.sending_now() < MAX_SENDING
    }

    /// The timer should look at the owed pushes by `ms` (since 1970).
    pub(super) fn owed_by_ms(&self, ms: u64) {
        if let Some(at) = instant_at_ms(ms) {
            self.schedule.owed_by(at);
        }
    }

    /// How many owed pushes are on their way now.
    pub(super) fn sending_now(&self) -> usize {
        self.sending.count.load(Ordering::Acquire)
    }

    /// One more owed push on its way (its end is reported).
    pub(super) fn send_started(&self) {
        self.sending.count.fetch_add(1, Ordering::AcqRel);
    }

    /// `n` owed pushes' ends were reported: when the timer left pushes due for want of
    /// room and there is room again, it looks now.
    pub(super) fn sends_ended(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.sending.count.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) <= MAX_SENDING / 2
            && self.sending.starved.swap(false, Ordering::AcqRel)
        {
            self.schedule.owed_by(Instant::now());
        }
    }

    /// Sends an owed push, leased until `lease_ms`, as its mark says: to a device, to
    /// all of a user's subscriptions, or to one.
    pub(super) async fn dispatch(
        self: &Arc<Self>,
        push: OwedPush,
        lease_ms: u64,
        since: Instant,
        new_mail: bool,
    ) {
        self.send_started();
        let sent = push.sent(lease_ms);
        let event = match (new_mail, push.owed.failures) {
            (true, _) => PushEvent::NewMail,
            (false, 0) => PushEvent::Later,
            (false, _) => PushEvent::Retry,
        };
        match &push.key.target {
            OwedTarget::Device { token, account } => self.apns.spawn(Job {
                device_token: token.clone(),
                account_id: account.clone(),
                since,
                owed: Some(sent),
                event,
            }),
            OwedTarget::Subscriptions | OwedTarget::Subscription(_) => {
                let core = self.clone();
                let since_ms = push.owed.since_ms;
                tokio::spawn(async move { core.generic_push(sent, since_ms, since).await });
            }
        }
    }

    /// Sends every owed push due now (this daemon's and, on a shared store, any a dead
    /// daemon left), then sets the timer to the next one.
    pub(super) async fn send_owed(self: &Arc<Self>) {
        loop {
            let room = MAX_SENDING.saturating_sub(self.sending.count.load(Ordering::Acquire));
            if room == 0 {
                // The reports of the sends under way call the timer back.
                self.sending.starved.store(true, Ordering::Release);
                return;
            }
            let batch = u32::try_from(room).unwrap_or(TAKE_BATCH).min(TAKE_BATCH);
            let now = now_ms(SystemTime::now());
            let lease = self.lease(now);
            let taken = match self.store.take_due(now, lease, batch).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::error!(error = %e, "owed pushes not read: tried again in a minute");
                    self.schedule
                        .set_owed(Instant::now().checked_add(LOOK_AGAIN));
                    return;
                }
            };
            let full = taken.len() >= batch as usize;
            for push in taken {
                self.dispatch(push, lease.until_ms, Instant::now(), false)
                    .await;
            }
            if !full {
                break;
            }
        }
        self.refresh_owed().await;
    }

    /// Sets the timer to the store's next owed push (and, on a shared store, no later
    /// than half a lease, at most [`LOOK_AGAIN`], from now: a push a dead daemon held
    /// is taken up at most half a lease after its lease ended).
    pub(super) async fn refresh_owed(&self) {
        let next = match self.store.next_owed().await {
            Ok(next) => next.and_then(instant_at_ms),
            Err(e) => {
                tracing::error!(error = %e, "the next owed push not read: tried again in a minute");
                Instant::now().checked_add(LOOK_AGAIN)
            }
        };
        let next = if self.store.is_shared() {
            let look = Instant::now().checked_add(LOOK_AGAIN.min(self.config.push.lease / 2));
            next.into_iter().chain(look).min()
        } else {
            next
        };
        self.schedule.set_owed(next);
    }

    /// At start: what this daemon owed when it last stopped is free to send now (on a
    /// store only it uses; on a shared one, a dead daemon's leases end by themselves),
    /// and the timer is set to the first owed push.
    pub async fn take_up_owed(&self) -> Result<(), StoreError> {
        if !self.store.is_shared() {
            self.store.end_leases(None).await?;
        }
        let owed = self.store.owed_count().await?;
        if owed > 0 {
            tracing::info!(owed, "pushes owed from before: sent as they fall due");
        }
        self.refresh_owed().await;
        Ok(())
    }

    /// At a stop: the pushes this daemon was sending and did not finish are free for
    /// another daemon sharing the store, or for the next start.
    pub async fn release_owed(&self) {
        if let Err(e) = self.store.end_leases(Some(&self.instance)).await {
            tracing::error!(error = %e, "the pushes being sent not released: another daemon takes them up when their lease ends");
        }
    }

    /// An owed push's send ended: settled (delivered, or refused for good), or its
    /// round of attempts failed and it is rescheduled (not before the wait its peer
    /// `asked` for), or given up.
    pub(super) async fn owed_done(&self, sent: &Sent, settled: bool, asked: Duration) {
        if settled {
            return self.settle_all(std::slice::from_ref(sent), &[]).await;
        }
        let user = &sent.key.user;
        let now = now_ms(SystemTime::now());
        match self
            .store
            .reschedule(sent, now, &self.rounds(), asked)
            .await
        {
            Ok(Rescheduled::Later(due)) => {
                tracing::info!(
                    ?user,
                    in_ms = due.saturating_sub(now),
                    "owed push tried again later"
                );
                self.owed_by_ms(due);
            }
            Ok(Rescheduled::Newer(due)) => self.owed_by_ms(due),
            Ok(Rescheduled::Sending | Rescheduled::Gone) => {}
            Ok(Rescheduled::GivenUp) => self.given_up(&sent.key),
            Err(e) => {
                tracing::error!(error = %e, ?user, "an owed push not rescheduled: its lease ends and it is taken up then")
            }
        }
    }

    /// Settles the marks of `sents`, delivered (or refused for good), and logs `log`,
    /// in one write; the marks a newer event keeps go on the timer again.
    pub(super) async fn settle_all(&self, sents: &[Sent], log: &[PushRecord]) {
        let now = now_ms(SystemTime::now());
        match self.store.settle_all(sents, log, now).await {
            Ok(left) => {
                for due in left.into_iter().flatten() {
                    self.owed_by_ms(due);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, pushes = sents.len(), "delivered pushes not marked so: they go again when their lease ends");
            }
        }
    }

    /// A fan-out of an owed push (owed since `since_ms`) to a user's subscriptions
    /// ended: each subscription it could not reach (with the wait its service asked
    /// for) is owed on its own, then its mark is settled (a crash between the two
    /// sends the whole again: never loses one).
    pub(super) async fn fan_out_done(&self, sent: &Sent, since_ms: u64, failed: &[Failed]) {
        let key = &sent.key;
        if let OwedTarget::Subscription(_) = key.target {
            // A push to one subscription: its own mark keeps its rounds.
            let asked = failed.iter().map(|f| f.asked).max().unwrap_or_default();
            return self.owed_done(sent, failed.is_empty(), asked).await;
        }
        if !failed.is_empty() {
            let keys: Vec<(OwedKey, Duration)> = failed
                .iter()
                .map(|failed| {
                    let key = OwedKey {
                        user: key.user.clone(),
                        target: OwedTarget::Subscription(failed.sub_id.clone()),
                        mailbox: key.mailbox.clone(),
                    };
                    (key, failed.asked)
                })
                .collect();
            let now = now_ms(SystemTime::now());
            match self
                .store
                .owe_failed(&keys, since_ms, now, &self.rounds())
                .await
            {
                Ok(Some(due)) => self.owed_by_ms(due),
                Ok(None) => {
                    for (key, _) in &keys {
                        self.given_up(key);
                    }
                }
                Err(e) => {
                    // Left leased: the whole fan-out goes again when the lease ends.
                    tracing::error!(error = %e, user = ?key.user, "pushes a fan-out could not deliver not kept: the fan-out goes again later");
                    return;
                }
            }
        }
        self.owed_done(sent, true, Duration::ZERO).await;
    }

    /// Logs and counts a push given up.
    fn given_up(&self, key: &OwedKey) {
        let service = match key.target {
            OwedTarget::Device { .. } => "apns",
            _ => "webpush",
        };
        tracing::warn!(
            user = ?key.user,
            target = ?key.target,
            after = ?self.config.push.give_up_after,
            "push given up: not delivered for push.give_up_after"
        );
        self.metrics.push(service, PushOutcome::GaveUp);
    }
}
