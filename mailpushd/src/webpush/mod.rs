//! The Web Push sender: RFC 8030 requests to push services over HTTP/1.1 or HTTP/2 (by
//! ALPN), TLS with the platform's roots, connections reused per origin (`pool`), a
//! bound on requests in flight per origin (`queue`; lower while the cores are
//! saturated, `pace`), timeouts, no redirects. The endpoint policy is applied again
//! to the addresses DNS returns, when connecting (`resolve`). VAPID tokens are
//! cached per origin. Every `Outcome` has its effect (`deliver`): 404/410 are
//! reported to the core (which deletes the subscription), 413 resends the generic
//! push, 429 and 5xx are retried by the [`RetryPolicy`], 401/403 are reported as a
//! VAPID configuration fault. No wait is longer than `webpush.max_hold`. A 429, or a
//! 5xx with `Retry-After`, holds that subscription's push; once several
//! subscriptions of an origin were told to wait, the whole origin: the limit is then
//! the sender's, not one subscription's. Each origin's queue is bounded, and a push
//! waiting there is replaced by a newer one for the same subscription and topic.

mod deliver;
mod keys;
mod pace;
mod pool;
mod queue;
mod resolve;
mod salt;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use imap_webpush_proto::state::Push;
use webpush_crypto::{Encryptor, Origin, TokenCache, Topic, Ttl, Urgency};
use xaps_proto::UserName;

use crate::metrics::{Metrics, PushOutcome};
use crate::report::ReportSender;
use crate::retry::RetryPolicy;
use deliver::Step;
use pace::{Pace, cap, worker_counts};
use pool::{Conn, Http2, IDLE_TIMEOUT, Pool};
pub use pool::{ExchangeError, SetupError};
use queue::{Added, Limits, Next, OriginQueue};
pub use resolve::Resolver;

/// One push to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Whose subscription (shared by the pushes of one event).
    pub user: Arc<UserName>,
    /// The push.
    pub push: Push,
    /// How urgently.
    pub urgency: Urgency,
    /// Replaces an undelivered push with the same topic (one per mailbox).
    pub topic: Option<Topic>,
    /// The generic push to send instead if the service finds this one too large.
    pub generic: Option<Vec<u8>>,
    /// When the event arrived.
    pub since: Instant,
    /// The fan-out of an owed push it is part of, told how it ends.
    pub fan_out: Option<Arc<crate::report::FanOut>>,
}

/// A delivery waiting for its origin's worker.
struct Queued {
    delivery: Delivery,
    /// Which attempt it is at, from 1.
    attempt: u32,
    /// Its coalescing key, hashed once: the queue asks for it on the way in and out.
    /// Set by [`Queued::new`] only; `delivery` does not change while it waits.
    key: Option<u64>,
}

impl Queued {
    /// `delivery` at its `attempt`th attempt.
    fn new(delivery: Delivery, attempt: u32) -> Self {
        let key = delivery.coalescing_key();
        Self {
            delivery,
            attempt,
            key,
        }
    }
}

impl Delivery {
    /// A hasher holding whose push this is: the user, for the origin's count of "wait"
    /// answers, and from it the queue's coalescing key.
    fn user_hasher(&self) -> std::collections::hash_map::DefaultHasher {
        use std::hash::Hash;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.user.hash(&mut hasher);
        hasher
    }

    /// Whose push this is, hashed: the origin counts "wait" answers by user, so one
    /// user's subscriptions (their own devices, or ones they made to be refused)
    /// never hold everyone's pushes to a shared service.
    fn user_key(&self) -> u64 {
        use std::hash::Hasher;
        self.user_hasher().finish()
    }

    /// A push with a topic coalesces with one waiting for the same subscription and
    /// topic: the push service would replace the older with the newer anyway.
    fn coalescing_key(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let topic = self.topic.as_ref()?;
        let mut hasher = self.user_hasher();
        self.push.sub_id.as_str().hash(&mut hasher);
        topic.as_str().hash(&mut hasher);
        Some(hasher.finish())
    }
}

impl queue::Keyed for Queued {
    fn key(&self) -> Option<u64> {
        self.key
    }

    fn same(&self, other: &Self) -> bool {
        let (a, b) = (&self.delivery, &other.delivery);
        a.topic.is_some()
            && a.topic == b.topic
            && a.user == b.user
            && a.push.sub_id == b.push.sub_id
    }

    /// By when each was handed to the sender (its event's arrival for new mail, its
    /// send for an owed push): a retry came before whatever waits meanwhile.
    fn newer(&self, other: &Self) -> bool {
        self.delivery.since >= other.delivery.since
    }
}

/// An origin's queue of deliveries, and the HTTP/2 connection its workers share.
type Queue = OriginQueue<Queued, Http2>;

/// The sender. Cheap to clone.
#[derive(Clone)]
pub struct WebPushSender {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebPushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushSender").finish_non_exhaustive()
    }
}

struct Inner {
    pool: Pool,
    tokens: std::sync::Mutex<TokenCache>,
    encryptor: Encryptor,
    /// Each origin's waiting deliveries and running workers.
    origins: std::sync::Mutex<HashMap<Origin, Queue>>,
    ttl: Ttl,
    request_timeout: Duration,
    limits: Limits,
    pace: Pace,
    /// The requests in flight shared among the origins with pushes to send while the
    /// cores are saturated: two per core, so that the cores stay busy through the
    /// round trips. Each origin gets at least one, and one that answers in HTTP/2 at
    /// least [`queue::SATURATED_HTTP2_IN_FLIGHT`], so the total may be more.
    saturated_in_flight: usize,
    retry: RetryPolicy,
    /// Deliveries waiting per origin at most.
    max_queued: usize,
    /// The longest a service's "wait" holds a push or its origin.
    max_hold: Duration,
    reports: ReportSender,
    metrics: Arc<Metrics>,
    in_flight: crate::inflight::InFlight,
    /// Of the pushes in flight, those waiting out a retry's back-off: they leave the
    /// sender idle for the key pools' filler.
    resting: Arc<AtomicUsize>,
    /// Ephemeral keys made ahead (`webpush.key_pool_size`), when configured.
    keys: Option<Arc<keys::KeyPool>>,
    /// Keys agreed ahead with subscriptions pushed to before
    /// (`webpush.agreement_pool_size`), when configured.
    agreements: Option<Arc<keys::AgreementPool>>,
}

impl WebPushSender {
    /// A sender for `config`, signing with `tokens`, handing in what push services
    /// say of subscriptions (404, 410) to `reports`.
    pub fn new(
        config: &crate::config::WebPush,
        tokens: TokenCache,
        reports: ReportSender,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SetupError> {
        let encryptor = Encryptor::new();
        let keys = (config.key_pool_size > 0)
            .then(|| keys::KeyPool::new(config.key_pool_size, metrics.clone()));
        let agreements = (config.agreement_pool_size > 0)
            .then(|| keys::AgreementPool::new(config.agreement_pool_size, metrics.clone()));
        let in_flight = crate::inflight::InFlight::default();
        let resting = Arc::new(AtomicUsize::new(0));
        if agreements.is_some() || keys.is_some() {
            tokio::spawn(keys::fill(
                agreements.as_ref().map(Arc::downgrade),
                keys.as_ref().map(Arc::downgrade),
                encryptor.provider(),
                config.key_pool_fill_per_second,
                keys::Busy {
                    taken: in_flight.count(),
                    resting: resting.clone(),
                },
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                pool: Pool::new(config)?,
                tokens: std::sync::Mutex::new(tokens),
                encryptor,
                origins: std::sync::Mutex::new(HashMap::new()),
                ttl: config.ttl,
                request_timeout: config.request_timeout,
                limits: Limits {
                    http2: config.max_per_origin,
                    http1: config.max_per_origin_http1,
                },
                pace: Pace::new(),
                saturated_in_flight: 2 * worker_counts().map_or(1, |workers| workers.len()),
                retry: RetryPolicy {
                    base: config.retry_base,
                    max_attempts: config.max_attempts,
                    max_wait: config.max_hold,
                },
                max_queued: config.max_queued_per_origin,
                max_hold: config.max_hold,
                reports,
                metrics,
                in_flight,
                resting,
                keys,
                agreements,
            }),
        })
    }

    /// Replaces the signer (a rotated VAPID key): cached tokens go with the old one.
    pub fn set_tokens(&self, tokens: TokenCache) {
        *crate::lock(&self.inner.tokens) = tokens;
    }

    /// Delivers in the background. Deliveries wait in their origin's queue, which at
    /// most `max_per_origin` workers empty (`max_per_origin_http1` until the origin
    /// has answered in HTTP/2), or, while the cores are saturated, its share of two
    /// per core (more over HTTP/2): a fan-out to many subscriptions costs a queue
    /// entry each, not a task each, until its turn.
    pub fn spawn(&self, delivery: Delivery) {
        self.inner.in_flight.start();
        self.enqueue(Queued::new(delivery, 1));
    }

    fn enqueue(&self, job: Queued) {
        let displaced = self.add(job);
        match displaced {
            None => {}
            Some((job, Added::Replaced(_))) => {
                // The older of two pushes for the same subscription and mailbox (a
                // retry may meet a newer one waiting): only the newer goes.
                self.finish(&job.delivery, PushOutcome::Coalesced);
            }
            Some((job, _)) => {
                let d = &job.delivery;
                let origin = d.push.endpoint.origin();
                if d.fan_out.is_some() {
                    tracing::warn!(%origin, user = ?d.user, "the push service's queue is full: the push stays owed for a later round");
                    self.finish(d, PushOutcome::Deferred);
                } else {
                    tracing::warn!(%origin, user = ?d.user, "the push service's queue is full: push given up");
                    self.finish(d, PushOutcome::GaveUp);
                }
            }
        }
    }

    /// Queues `job` with its origin, starting a worker if the origin may have one more;
    /// a job it did not queue, or the older of two with the same push, to be finished.
    fn add(&self, job: Queued) -> Option<(Queued, Added<()>)> {
        let load = self.inner.pace.load();
        let mut origins = crate::lock(&self.inner.origins);
        let origin = job.delivery.push.endpoint.origin();
        let known = origins.len();
        // The origin is copied only for a new queue or a new worker, not for each push;
        // one lookup finds the queue and tells whether it is one more origin.
        let (queue, active) = match origins.get_mut(origin) {
            Some(queue) => (queue, known),
            None => (origins.entry(origin.clone()).or_default(), known + 1),
        };
        let cap = cap(load, self.inner.saturated_in_flight, active);
        let origin = origin.clone();
        let displaced = match queue.add(job, self.inner.max_queued) {
            Added::Queued => None,
            Added::Replaced(old) => return Some((old, Added::Replaced(()))),
            Added::Full(job) => return Some((job, Added::Full(()))),
        };
        let start = queue.add_worker(self.inner.limits, cap);
        drop(origins);
        if start {
            self.start_workers(&origin, 1);
        }
        displaced
    }

    /// Starts `n` workers for `origin` (counted in its queue already).
    fn start_workers(&self, origin: &Origin, n: usize) {
        for _ in 0..n {
            let (sender, origin) = (self.clone(), origin.clone());
            tokio::spawn(async move { sender.work(origin).await });
        }
    }

    /// One of an origin's workers: takes deliveries until the queue is empty. The
    /// protocol of its connection (by ALPN) is applied under the lock taken for the
    /// next job, so a push costs no lock of its own for it.
    async fn work(&self, origin: Origin) {
        let mut conn: Option<Conn> = None;
        let mut salts = salt::Salts::default();
        loop {
            let load = self.inner.pace.load();
            let (next, more) = {
                let mut origins = crate::lock(&self.inner.origins);
                let cap = cap(load, self.inner.saturated_in_flight, origins.len());
                let Some(queue) = origins.get_mut(&origin) else {
                    break;
                };
                if queue.is_held() {
                    queue.release(Instant::now());
                }
                // After a switch to HTTP/2, or while the cores have time to spare,
                // the waiting deliveries get more workers; while they are saturated,
                // the workers over the target retire.
                let more =
                    queue.rebalance(conn.as_ref().map(Conn::is_http2), self.inner.limits, cap);
                // An HTTP/2 connection is the origin's workers' to share: one that
                // opened (again) replaces a closed one, and a worker without a
                // connection takes it rather than opening its own.
                if conn.as_ref().is_some_and(Conn::is_closed) {
                    conn = None;
                }
                match &conn {
                    Some(Conn::Http2(c)) => {
                        if queue.shared.as_ref().is_none_or(Http2::is_closed) {
                            queue.shared = Some(c.clone());
                        }
                    }
                    Some(Conn::Http1(_)) => {}
                    None => {
                        conn = queue
                            .shared
                            .clone()
                            .filter(|c| !c.is_closed())
                            .map(Conn::Http2);
                    }
                }
                let next = queue.next(self.inner.limits, cap);
                if let Next::Stop { empty: true } = next {
                    origins.remove(&origin);
                }
                (next, more)
            };
            self.start_workers(&origin, more);
            let job = match next {
                Next::Job(job) => job,
                Next::Wait(until) => {
                    // Kept no longer than an idle connection would be.
                    if until.saturating_duration_since(Instant::now()) > IDLE_TIMEOUT {
                        conn = None;
                    }
                    tokio::time::sleep_until(until.into()).await;
                    continue;
                }
                Next::Stop { .. } => break,
            };
            let Queued {
                mut delivery,
                attempt,
                ..
            } = job;
            match self
                .step(&mut delivery, attempt, &mut conn, &mut salts)
                .await
            {
                Step::Done(outcome) => self.finish(&delivery, outcome),
                Step::Deferred(asked) => self.finish_with(&delivery, PushOutcome::Deferred, asked),
                Step::Later(wait) => {
                    // The wait is spent outside the queue, so it holds no worker.
                    let sender = self.clone();
                    self.inner.resting.fetch_add(1, Ordering::AcqRel);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        sender.inner.resting.fetch_sub(1, Ordering::AcqRel);
                        sender.inner.metrics.retry_queue().dec();
                        sender.enqueue(Queued::new(delivery, attempt + 1));
                    });
                }
            }
        }
        if let Some(conn) = conn {
            self.inner.pool.park(origin, conn);
        }
    }

    /// The push service at `origin` told a push of user `who` to wait `wait` (at most
    /// `webpush.max_hold`): once several users' pushes were told so, no request goes
    /// to the origin until then; the workers in flight finish their requests, and all
    /// but one stop.
    fn told_to_wait(&self, origin: &Origin, who: u64, wait: Duration) {
        let now = Instant::now();
        let held = crate::lock(&self.inner.origins)
            .get_mut(origin)
            .is_some_and(|queue| queue.told_to_wait(who, now, now + wait));
        if held {
            tracing::warn!(%origin, ?wait, "the push service asks several users' pushes to wait: no pushes go to it until then");
        }
    }

    fn finish(&self, delivery: &Delivery, outcome: PushOutcome) {
        self.finish_with(delivery, outcome, Duration::ZERO);
    }

    /// `delivery` ended as `outcome`; one left to its owed push's next round
    /// (deferred) tells its fan-out the wait its service `asked` for.
    fn finish_with(&self, delivery: &Delivery, outcome: PushOutcome, asked: Duration) {
        let metrics = &self.inner.metrics;
        metrics.push("webpush", outcome);
        metrics.latency(delivery.since.elapsed().as_secs_f64());
        if let Some(fan_out) = &delivery.fan_out {
            let settled = !matches!(
                outcome,
                PushOutcome::Deferred | PushOutcome::FixConfiguration
            );
            fan_out.done(delivery.push.sub_id.as_str(), settled, asked);
        }
        self.inner.in_flight.finish();
    }

    /// Waits until every delivery is done or `deadline` passes; returns how many were
    /// still going.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.inner.in_flight.drain(deadline).await
    }
}
