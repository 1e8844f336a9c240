//! The service core: what mailpushd does, with no HTTP or IMAP in it. Each front door
//! (the HTTP API for mail servers, later an IMAP listener) is a thin adapter from its
//! protocol to these operations; the timer calls [`Core::run_due`] when the schedule
//! says; the senders' reports come back through [`Core::apply`].
//!
//! Every decision is a call into a crate: `xaps_proto`'s registry and debouncer for
//! iOS, `imap_webpush_proto`'s state machine and content for Web Push. The core loads
//! what a decision needs from the store, and stores the changes the crate returns
//! before it answers.

mod fronts;
mod owed;
mod webpush;
mod xaps;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use xaps_proto::Timestamp;
use xaps_proto::registry::Registry;

use crate::apns::{Apns, Job};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::report::{Report, ReportSender};
use crate::schedule::Schedule;
use crate::store::{Store, StoreError};
pub use fronts::{FRONT_DEAD_AFTER, FRONT_HEARTBEAT};
use webpush::WebPushCore;
pub use webpush::{ConnectionEnds, NotACommand, WebPushSetupError, current_vapid_key};
pub use xaps::{NotifyError, RegisterError};

/// The service core. Shared by the front doors and the timer (behind an `Arc`).
pub struct Core {
    config: Config,
    store: Store,
    apns: Apns,
    metrics: Arc<Metrics>,
    schedule: Schedule,
    /// IMAP WEBPUSH, when a VAPID contact is configured.
    webpush: Option<WebPushCore>,
    /// Where the senders' reports go (fan-outs report through it too).
    reports: ReportSender,
    /// This process, as it leases the owed pushes it sends.
    instance: String,
    /// Owed pushes being sent, whose end is not reported yet.
    sending: owed::Sending,
    /// When the store's gauges were last read for `/metrics`.
    gauges_read: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// How long the store's gauges read for `/metrics` serve: the route needs no
/// credential, and each read counts two tables, so a process asking in a loop gets
/// one read of the store a second, not one per request.
const GAUGES_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("apns", &self.apns)
            .field("webpush", &self.webpush.is_some())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core over `store`, pushing through `apns`, with IMAP WEBPUSH when
    /// `webpush.subject` is configured (its sender hands its reports to `reports`).
    pub async fn new(
        config: Config,
        store: Store,
        apns: Apns,
        metrics: Arc<Metrics>,
        reports: ReportSender,
    ) -> Result<Self, WebPushSetupError> {
        let webpush = WebPushCore::new(&config, &store, &metrics, reports.clone()).await?;
        Ok(Self {
            schedule: Schedule::new(),
            config,
            store,
            apns,
            metrics,
            webpush,
            reports,
            instance: owed::instance(),
            sending: owed::Sending::default(),
            gauges_read: tokio::sync::Mutex::new(None),
        })
    }

    /// A core for the operator's commands (`send-test`): iOS only, no Web Push set up
    /// (nothing made into the store).
    pub fn apns_only(
        config: Config,
        store: Store,
        apns: Apns,
        metrics: Arc<Metrics>,
        reports: ReportSender,
    ) -> Self {
        Self {
            schedule: Schedule::new(),
            config,
            store,
            apns,
            metrics,
            webpush: None,
            reports,
            instance: owed::instance(),
            sending: owed::Sending::default(),
            gauges_read: tokio::sync::Mutex::new(None),
        }
    }

    /// Pushes each of `user`'s devices now, waiting for each answer; what came of each,
    /// logged as any push is (`mailpushd status`). What APNs says of a token (410) is
    /// reported as for any push: apply the reports.
    pub async fn send_test(
        &self,
        user: &xaps_proto::UserName,
    ) -> Result<Vec<(Job, crate::apns::Attempted)>, StoreError> {
        let registry = self.store.user(user, self.registry()).await?;
        let mut outcomes = Vec::new();
        let mut log = Vec::new();
        for (_, account_id, registration) in registry.iter() {
            let job = Job {
                device_token: registration.device_token.clone(),
                account_id: account_id.clone(),
                since: Instant::now(),
                // A test push, not one owed to the mail server.
                owed: None,
                event: crate::apns::PushEvent::Test,
            };
            let attempted = self.apns.send(&job).await;
            log.push(attempted.record(user, &job));
            outcomes.push((job, attempted));
        }
        self.store.log_pushes(&log).await?;
        Ok(outcomes)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The APNs sender.
    pub fn apns(&self) -> &Apns {
        &self.apns
    }

    /// Whether IMAP WEBPUSH is on (a VAPID contact is configured).
    pub fn webpush_enabled(&self) -> bool {
        self.webpush.is_some()
    }

    /// The metrics, with the gauges read from the store (every daemon sharing it
    /// counts the same) at most a second ago; requests at once wait for one
    /// read.
    pub async fn metrics(&self) -> Result<&Metrics, StoreError> {
        let mut read = self.gauges_read.lock().await;
        if read.is_none_or(|at| at.elapsed() >= GAUGES_MAX_AGE) {
            self.metrics.set_registrations(self.store.count().await?);
            self.metrics.set_owed(self.store.owed_count().await?);
            *read = Some(std::time::Instant::now());
        }
        drop(read);
        self.metrics.set_sending(self.sending_now());
        Ok(&self.metrics)
    }

    /// The metrics, to count what the front doors see.
    pub fn counters(&self) -> &Metrics {
        &self.metrics
    }

    /// An empty registry with the daemon's limits and mailbox policy.
    fn registry(&self) -> Registry {
        Registry::new()
            .with_max_age(self.config.push.max_age)
            .with_max_accounts_per_user(self.config.push.max_accounts_per_user)
            .with_push_mailboxes(self.config.push.mailboxes.clone())
    }

    /// Applies what the senders reported, the pushes delivered (and the fan-outs that
    /// reached every subscription) settled in one write.
    pub async fn apply_all(&self, reports: Vec<Report>) {
        let mut delivered = Vec::new();
        let mut log = Vec::new();
        for report in reports {
            match report {
                Report::OwedDone {
                    sent,
                    settled: true,
                    record,
                } => {
                    delivered.push(sent);
                    log.extend(record.map(|r| *r));
                }
                Report::OwedDone {
                    sent,
                    settled: false,
                    record,
                } => {
                    log.extend(record.map(|r| *r));
                    self.apply(Report::OwedDone {
                        sent,
                        settled: false,
                        record: None,
                    })
                    .await;
                }
                // A fan-out that reached every subscription settles its mark as a
                // delivered owed push does: in the batch's one write.
                Report::FanOutDone { sent, failed, .. } if failed.is_empty() => {
                    delivered.push(sent);
                }
                report => self.apply(report).await,
            }
        }
        self.sends_ended(delivered.len());
        self.settle_all(&delivered, &log).await;
    }

    /// Applies what a sender reported.
    pub async fn apply(&self, report: Report) {
        match report {
            Report::ApnsTokenGone { token, since } => self.token_gone(&token, since).await,
            Report::WebPushGone {
                user,
                push,
                outcome,
            } => self.subscription_gone(&user, &push, &outcome).await,
            Report::OwedDone {
                sent,
                settled,
                record,
            } => {
                self.sends_ended(1);
                if let Some(record) = record {
                    self.settle_all(&[], std::slice::from_ref(&*record)).await;
                }
                self.owed_done(&sent, settled, Duration::ZERO).await;
            }
            Report::FanOutDone {
                sent,
                since_ms,
                failed,
            } => {
                self.sends_ended(1);
                self.fan_out_done(&sent, since_ms, &failed).await;
            }
        }
    }

    /// When the timer must next run [`Core::run_due`], if anything waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.schedule.next_deadline()
    }

    /// Waits until an event may have moved [`Core::next_deadline`] earlier.
    pub async fn schedule_changed(&self) {
        self.schedule.changed().await;
    }

    /// Sends the owed pushes due at `now`, and does the subscription housekeeping due.
    pub async fn run_due(self: &Arc<Self>, now: Instant) {
        let due = self.schedule.due(now);
        if due.sweep {
            self.sweep_subscriptions(SystemTime::now()).await;
        }
        if due.owed {
            self.send_owed().await;
        }
    }

    /// Removes the registrations not refreshed within the maximum age, by the crate's
    /// rule, a batch of users per transaction (so registrations go on meanwhile, and
    /// PostgreSQL's lock table holds); how many went.
    pub async fn expire(&self, now: SystemTime) -> Result<usize, StoreError> {
        let Some(cutoff) = now.checked_sub(self.config.push.max_age) else {
            return Ok(0);
        };
        // Before year 1, which no stored time is: nothing is that old.
        let Some(cutoff) = Timestamp::from_system_time(cutoff) else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let users = self.store.users_older_than(cutoff).await?;
            if users.is_empty() {
                return Ok(total);
            }
            let removed = self
                .store
                .update_users(&users, self.registry(), |r| {
                    let removed = r.expire(now);
                    let changes = removed.iter().cloned().map(Into::into).collect();
                    (removed, changes)
                })
                .await?;
            for r in &removed {
                tracing::info!(user = ?r.user, account = ?r.account_id.as_str(), "registration expired");
            }
            if removed.is_empty() {
                // Refreshed meanwhile, each of them: nothing older is left.
                return Ok(total);
            }
            total += removed.len();
            // The writer is free between batches: requests waiting for it go first.
            tokio::task::yield_now().await;
        }
    }

    /// Waits until the senders have sent what they hold, or `deadline` passes (one
    /// deadline for both senders); how many pushes were still unsent.
    pub async fn drain(&self, deadline: std::time::Duration) -> usize {
        // One deadline for both: the service manager's stop timeout is one too.
        let end = Instant::now() + deadline;
        let mut left = self.apns.drain(deadline).await;
        if let Some(webpush) = &self.webpush {
            left += webpush
                .sender
                .drain(end.saturating_duration_since(Instant::now()))
                .await;
        }
        left
    }
}
