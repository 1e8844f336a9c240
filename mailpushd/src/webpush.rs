//! The Web Push sender: RFC 8030 requests to push services over HTTP/1.1 or HTTP/2 (by
//! ALPN), TLS with the platform's roots, connections reused per origin, a bound on
//! requests in flight per origin (lower while the cores are saturated, when more would
//! only wait for them), timeouts, no redirects. The endpoint policy is applied
//! again to the addresses DNS returns, when connecting, so a name that resolves to a
//! private address is refused (DNS rebinding). VAPID tokens are cached per origin.
//! Every `Outcome` has its effect: 404/410 delete the subscription, 413 resends the
//! generic push, 429 and 5xx are retried after `Retry-After` or with back-off, 401/403
//! are reported as a VAPID configuration fault. A 429, or a 5xx with `Retry-After`,
//! holds the whole origin: its limit is the sender's, not one subscription's.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::TokioExecutor;
use imap_webpush_proto::PushAddress;
use imap_webpush_proto::state::Push;
use webpush_crypto::{Encryptor, Origin, Outcome, PushRequest, TokenCache, Topic, Ttl, Urgency};

use crate::metrics::{Metrics, PushOutcome};
use crate::store::Store;

/// Names resolved by the test's own table instead of DNS.
pub type StaticNames = HashMap<String, Vec<IpAddr>>;

/// Resolves push service names, keeping only the addresses pushes may go to.
#[derive(Clone, Debug)]
pub struct Resolver {
    names: Option<Arc<StaticNames>>,
    allow_local: bool,
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = match &resolver.names {
                Some(names) => names
                    .get(&host)
                    .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect())
                    .unwrap_or_default(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| resolver.allow_local || a.ip().not_global().is_none())
                .collect();
            if allowed.is_empty() {
                let reason = found
                    .first()
                    .and_then(|a| a.ip().not_global())
                    .unwrap_or("no address");
                return Err(std::io::Error::other(format!(
                    "{host} resolves to no address pushes may go to ({reason})"
                )));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// One push to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Whose subscription (shared by the pushes of one event).
    pub user: Arc<xaps_proto::UserName>,
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
}

/// A delivery waiting for its origin's worker.
struct Queued {
    delivery: Delivery,
    /// Which attempt it is at, from 1.
    attempt: u32,
}

/// An origin's waiting deliveries and how many workers take from them.
#[derive(Default)]
struct OriginQueue {
    jobs: std::collections::VecDeque<Queued>,
    workers: usize,
    /// The origin's last answer came in HTTP/2. Learnt afresh by each burst (a queue
    /// lives while it has workers), so nothing stale or unbounded is kept.
    http2: bool,
    /// The HTTP/2 connection the origin's workers share, once one is open.
    shared: Option<http2::SendRequest<Full<Bytes>>>,
    /// No request goes to the origin before then: it answered 429, or 5xx with a
    /// `Retry-After`. Its limit is the sender's, not one subscription's, so the rest
    /// of a fan-out waits too instead of meeting the same answer.
    held_until: Option<Instant>,
}

/// What a worker between jobs does next.
// Held only between taking a job and starting it; boxing the job would cost an
// allocation per push.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// Sends this delivery.
    Job(Queued),
    /// Waits until then, for the origin's hold to end: the last worker of a held
    /// origin stays, so that what is queued meanwhile waits too.
    Wait(Instant),
    /// Stops; `empty` when the origin has neither workers nor jobs left.
    Stop {
        /// The queue can go.
        empty: bool,
    },
}

/// A connection to a push service: a worker's own while the origin speaks HTTP/1.1
/// (one request at a time), or one the origin's workers share in HTTP/2 (streams).
/// Held by the worker, it costs no pool checkout per push.
enum Conn {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    fn is_http2(&self) -> bool {
        matches!(self, Conn::Http2(_))
    }

    fn is_closed(&self) -> bool {
        match self {
            Conn::Http1(c) => c.is_closed(),
            Conn::Http2(c) => c.is_closed(),
        }
    }
}

/// A connection left open after a burst, for the next one.
struct Idle {
    since: Instant,
    conn: Conn,
}

impl Idle {
    /// Still open, and not kept too long.
    fn usable(&self, now: Instant) -> bool {
        !self.conn.is_closed() && now - self.since < IDLE_TIMEOUT
    }
}

/// Requests in flight per origin, by protocol.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Streams to an origin that answers in HTTP/2.
    http2: usize,
    /// Connections to one that answers in HTTP/1.1, or has not answered yet.
    http1: usize,
}

/// Whether the cores have time to spare for more requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Requests wait on the network: more in flight use the idle time.
    Spare,
    /// The cores are busy: more in flight would only wait for them, and their state
    /// (connections, buffers, pushes half done) would crowd the caches.
    Saturated,
}

/// The cores' load, judged over short windows from the time the runtime's workers
/// spent busy.
struct Pace {
    window: std::sync::Mutex<Window>,
}

/// The window being measured, and the judgement of the last one.
struct Window {
    started: Instant,
    /// Each worker's count when the window started.
    workers: Vec<WorkerCount>,
    load: Load,
}

/// What tokio has counted of one runtime worker so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WorkerCount {
    /// The time it spent busy, as last added up.
    busy: Duration,
    /// How often it parked (found nothing to do) and unparked: odd while parked.
    park_unparks: u64,
}

/// How long a window of the load lasts.
const PACE_WINDOW: Duration = Duration::from_millis(50);

/// The share of the workers' time busy, in tenths, from which the cores count as
/// saturated, and below which they have time to spare again. In between the last
/// judgement stands, so the measure's jitter does not make the workers come and go.
const SATURATED_TENTHS: u128 = 9;
const SPARE_TENTHS: u128 = 7;

/// What tokio has counted of the current runtime's workers; none outside a runtime.
fn worker_counts() -> Option<Vec<WorkerCount>> {
    let metrics = tokio::runtime::Handle::try_current().ok()?.metrics();
    let counts = (0..metrics.num_workers())
        .map(|w| WorkerCount {
            busy: metrics.worker_total_busy_duration(w),
            park_unparks: metrics.worker_park_unpark_count(w),
        })
        .collect();
    Some(counts)
}

/// How long the workers were busy over a window of `elapsed`, in all, from their
/// counts at its start and end. Tokio adds up a worker's busy time only every 61
/// polls and when it parks, so a worker in long polls shows none for a while: one
/// that neither parked nor unparked in the window was busy all of it, or parked all
/// of it (an odd count).
fn busy_between(before: &[WorkerCount], after: &[WorkerCount], elapsed: Duration) -> Duration {
    before
        .iter()
        .zip(after)
        .map(
            |(before, after)| match after.park_unparks.saturating_sub(before.park_unparks) {
                0 if after.park_unparks % 2 == 0 => elapsed,
                0 => Duration::ZERO,
                _ => after.busy.saturating_sub(before.busy).min(elapsed),
            },
        )
        .sum()
}

impl Pace {
    /// Measures from now, in the runtime the sender runs in.
    fn new() -> Self {
        Self {
            window: std::sync::Mutex::new(Window {
                started: Instant::now(),
                workers: worker_counts().unwrap_or_default(),
                load: Load::Spare,
            }),
        }
    }

    /// The load over the last full window (spare outside a runtime).
    fn load(&self) -> Load {
        let now = Instant::now();
        let mut window = crate::lock(&self.window);
        if now - window.started < PACE_WINDOW {
            return window.load;
        }
        let Some(workers) = worker_counts() else {
            return Load::Spare;
        };
        let elapsed = now - window.started;
        let busy = busy_between(&window.workers, &workers, elapsed);
        window.load = judge(busy, elapsed, workers.len(), window.load);
        window.started = now;
        window.workers = workers;
        window.load
    }
}

/// The load of a window that lasted `elapsed`, in which `workers` workers were busy
/// for `busy` in all, after one judged `last`.
fn judge(busy: Duration, elapsed: Duration, workers: usize, last: Load) -> Load {
    let capacity = elapsed.as_nanos() * workers as u128;
    let busy = busy.as_nanos() * 10;
    if capacity == 0 || busy < SPARE_TENTHS * capacity {
        Load::Spare
    } else if busy >= SATURATED_TENTHS * capacity {
        Load::Saturated
    } else {
        last
    }
}

/// A cap on an origin's workers, under its protocol's limit, when `origins` have
/// pushes to send: none while the cores have time to spare; while they are
/// saturated, its share of `in_flight` (the queue's target keeps at least one).
fn cap(load: Load, in_flight: usize, origins: usize) -> Option<usize> {
    match load {
        Load::Spare => None,
        Load::Saturated => Some(in_flight.div_ceil(origins.max(1))),
    }
}

impl OriginQueue {
    /// How many workers the origin gets now: its protocol's limit, or `cap` if lower
    /// (while the cores are saturated), and always one; one while it is held.
    fn target(&self, limits: Limits, cap: Option<usize>) -> usize {
        if self.held_until.is_some() {
            return 1;
        }
        let limit = if self.http2 {
            limits.http2
        } else {
            limits.http1
        };
        cap.map_or(limit, |cap| limit.min(cap)).max(1)
    }

    /// Takes a worker for a new job if the target allows one more.
    fn add_worker(&mut self, limits: Limits, cap: Option<usize>) -> bool {
        let start = self.workers < self.target(limits, cap);
        if start {
            self.workers += 1;
        }
        start
    }

    /// A worker between jobs, on a connection that speaks HTTP/2 or not (`None`: it
    /// has none): how many more workers to start for the waiting jobs, up to the
    /// target. Workers over the target stop as they finish ([`OriginQueue::next`]).
    fn rebalance(&mut self, http2: Option<bool>, limits: Limits, cap: Option<usize>) -> usize {
        if let Some(http2) = http2 {
            self.http2 = http2;
        }
        let wanted = self.target(limits, cap).min(self.workers + self.jobs.len());
        let more = wanted.saturating_sub(self.workers);
        self.workers += more;
        more
    }

    /// Holds the origin until `until`, or longer if it is held longer already.
    fn hold(&mut self, until: Instant) {
        self.held_until = self.held_until.max(Some(until));
    }

    /// Ends a hold that is over. The clock is read only while the origin is held, so
    /// a job costs no clock read for it.
    fn release(&mut self) {
        if self.held_until.is_some_and(|until| until <= Instant::now()) {
            self.held_until = None;
        }
    }

    /// A worker between jobs: takes the next job, unless the queue is empty or the
    /// origin has more workers than its target, when it stops. While the origin is
    /// held, all but one stop, and that one waits the hold out.
    fn next(&mut self, limits: Limits, cap: Option<usize>) -> Next {
        if let Some(until) = self.held_until
            && self.workers <= 1
        {
            return Next::Wait(until);
        }
        if self.workers <= self.target(limits, cap)
            && let Some(job) = self.jobs.pop_front()
        {
            return Next::Job(job);
        }
        self.workers = self.workers.saturating_sub(1);
        Next::Stop {
            empty: self.workers == 0 && self.jobs.is_empty(),
        }
    }
}

/// What one attempt leads to.
enum Step {
    /// Answered for good, or out of attempts.
    Done(PushOutcome),
    /// Another attempt after this wait.
    Later(Duration),
}

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
    connector: HttpsConnector<HttpConnector<Resolver>>,
    /// Connections kept between bursts, per origin; closed or older than
    /// `IDLE_TIMEOUT` ones are dropped whenever one is parked or taken.
    idle: std::sync::Mutex<HashMap<Origin, Vec<Idle>>>,
    tokens: std::sync::Mutex<TokenCache>,
    encryptor: Encryptor,
    /// Each origin's waiting deliveries and running workers.
    origins: std::sync::Mutex<HashMap<Origin, OriginQueue>>,
    ttl: Ttl,
    request_timeout: Duration,
    limits: Limits,
    pace: Pace,
    /// Requests in flight across all origins while the cores are saturated: two per
    /// core, so that the cores stay busy through the round trips, shared among the
    /// origins with pushes to send (at least one each).
    saturated_in_flight: usize,
    max_attempts: u32,
    store: Store,
    metrics: Arc<Metrics>,
    in_flight: crate::inflight::InFlight,
}

/// The sender cannot start.
#[derive(Debug, thiserror::Error)]
#[error("Web Push sender: {0}")]
pub struct WebPushError(String);

impl WebPushSender {
    /// A sender signing with `tokens`, deleting gone subscriptions from `store`.
    pub fn new(
        config: &crate::config::WebPush,
        tokens: TokenCache,
        names: Option<StaticNames>,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WebPushError> {
        let roots = crate::tls::roots(config.ca_file.as_deref())
            .map_err(|e| WebPushError(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebPushError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(Resolver {
            names: names.map(Arc::new),
            allow_local: config.allow_local_push_service,
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.request_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let https = if config.allow_local_push_service {
            builder.https_or_http()
        } else {
            builder.https_only()
        }
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
        // No redirects are followed: an answer is only ever read for its status.
        Ok(Self {
            inner: Arc::new(Inner {
                connector: https,
                idle: std::sync::Mutex::new(HashMap::new()),
                tokens: std::sync::Mutex::new(tokens),
                encryptor: Encryptor::new(),
                origins: std::sync::Mutex::new(HashMap::new()),
                ttl: Ttl::from_secs(u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX)),
                request_timeout: config.request_timeout,
                limits: Limits {
                    http2: config.max_per_origin.max(1),
                    http1: config
                        .max_per_origin_http1
                        .clamp(1, config.max_per_origin.max(1)),
                },
                pace: Pace::new(),
                saturated_in_flight: 2 * worker_counts().map_or(1, |workers| workers.len()),
                max_attempts: config.max_attempts,
                store,
                metrics,
                in_flight: crate::inflight::InFlight::default(),
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
    /// per core: a fan-out to many subscriptions costs a queue entry each, not a task
    /// each, until its turn.
    pub fn spawn(&self, delivery: Delivery) {
        self.inner.in_flight.start();
        self.enqueue(Queued {
            delivery,
            attempt: 1,
        });
    }

    fn enqueue(&self, job: Queued) {
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
        let start = queue
            .add_worker(self.inner.limits, cap)
            .then(|| origin.clone());
        queue.jobs.push_back(job);
        drop(origins);
        if let Some(origin) = start {
            self.start_workers(&origin, 1);
        }
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
        loop {
            let load = self.inner.pace.load();
            let (next, more) = {
                let mut origins = crate::lock(&self.inner.origins);
                let cap = cap(load, self.inner.saturated_in_flight, origins.len());
                let Some(queue) = origins.get_mut(&origin) else {
                    break;
                };
                queue.release();
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
                        if queue
                            .shared
                            .as_ref()
                            .is_none_or(http2::SendRequest::is_closed)
                        {
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
            } = job;
            match self.step(&mut delivery, attempt, &mut conn).await {
                Step::Done(outcome) => self.finish(&delivery, outcome),
                Step::Later(wait) => {
                    // The wait is spent outside the queue, so it holds no worker.
                    let sender = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        sender.inner.metrics.retry_queue().dec();
                        sender.enqueue(Queued {
                            delivery,
                            attempt: attempt + 1,
                        });
                    });
                }
            }
        }
        if let Some(conn) = conn {
            self.park(origin, conn);
        }
    }

    /// Keeps `conn` for the origin's next burst: each HTTP/1.1 connection (as many as
    /// workers had), one HTTP/2 connection. Drops what has closed or waited too long.
    fn park(&self, origin: Origin, conn: Conn) {
        let now = Instant::now();
        let mut idle = crate::lock(&self.inner.idle);
        idle.retain(|_, conns| {
            conns.retain(|c| c.usable(now));
            !conns.is_empty()
        });
        if conn.is_closed() {
            return;
        }
        let conns = idle.entry(origin).or_default();
        if conn.is_http2() && conns.iter().any(|c| c.conn.is_http2()) {
            return;
        }
        conns.push(Idle { since: now, conn });
    }

    /// A connection to `uri`'s origin: one kept from an earlier burst, or a new one
    /// (HTTP/2 if the service's ALPN says so).
    async fn connect(&self, origin: &Origin, uri: &http::Uri) -> Result<(Conn, bool), String> {
        let kept = {
            let now = Instant::now();
            let mut idle = crate::lock(&self.inner.idle);
            let mut found = None;
            if let Some(conns) = idle.get_mut(origin) {
                while let Some(c) = conns.pop() {
                    if c.usable(now) {
                        // The HTTP/2 one stays for the other workers.
                        if let Conn::Http2(h2) = &c.conn {
                            found = Some(Conn::Http2(h2.clone()));
                            conns.push(c);
                        } else {
                            found = Some(c.conn);
                        }
                        break;
                    }
                }
                if conns.is_empty() {
                    idle.remove(origin);
                }
            }
            found
        };
        if let Some(conn) = kept {
            return Ok((conn, true));
        }
        let mut connector = self.inner.connector.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
            .await
            .map_err(|e| e.to_string())?;
        let io = tower_service::Service::call(&mut connector, uri.clone())
            .await
            .map_err(|e| e.to_string())?;
        let conn = if io.connected().is_negotiated_h2() {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            Conn::Http2(sender)
        } else {
            let (sender, connection) = http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            Conn::Http1(sender)
        };
        Ok((conn, false))
    }

    /// No request goes to `origin` for `wait`, as its answer asked: the workers in
    /// flight finish their requests, and all but one stop.
    fn hold(&self, origin: &Origin, wait: Duration) {
        tracing::warn!(%origin, ?wait, "the push service asks to wait: no pushes go to it until then");
        if let Some(queue) = crate::lock(&self.inner.origins).get_mut(origin) {
            queue.hold(Instant::now() + wait);
        }
    }

    fn finish(&self, delivery: &Delivery, outcome: PushOutcome) {
        let metrics = &self.inner.metrics;
        metrics.push("webpush", outcome);
        metrics.latency(delivery.since.elapsed().as_secs_f64());
        self.inner.in_flight.finish();
    }

    /// Waits until every delivery is done or `deadline` passes; returns how many were
    /// still going.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.inner.in_flight.drain(deadline).await
    }

    /// One attempt at `delivery` (the `attempt`th) and what follows from its answer:
    /// done, or another attempt after a wait.
    /// `conn` is the worker's connection, opened if it has none.
    async fn step(&self, delivery: &mut Delivery, attempt: u32, conn: &mut Option<Conn>) -> Step {
        let metrics = &self.inner.metrics;
        loop {
            metrics.in_flight().inc();
            let answer = self.attempt(delivery, conn).await;
            metrics.in_flight().dec();
            // How long the service asks this push to wait, and whether its origin
            // waits too.
            let (wait, hold) = match answer {
                Err(why) => {
                    tracing::warn!(attempt, origin = %delivery.push.endpoint.origin(), reason = %why, "push not delivered");
                    (None, false)
                }
                Ok(Outcome::Delivered { .. }) => return Step::Done(PushOutcome::Delivered),
                Ok(outcome @ Outcome::RemoveSubscription { .. }) => {
                    let change = delivery.push.on_outcome(&outcome);
                    let user = &delivery.user;
                    match self
                        .inner
                        .store
                        .update_webpush(user, |_| ((), change.into_iter().collect()))
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(%user, sub_id = delivery.push.sub_id.as_str(), origin = %delivery.push.endpoint.origin(), "push service says the subscription is gone: deleted")
                        }
                        Err(e) => tracing::error!(error = %e, "cannot delete a gone subscription"),
                    }
                    return Step::Done(PushOutcome::Dropped);
                }
                Ok(Outcome::PayloadTooLarge) => match delivery.generic.take() {
                    Some(generic) => {
                        tracing::info!(origin = %delivery.push.endpoint.origin(), "push too large for the service: sending the generic one");
                        delivery.push.plaintext = generic;
                        continue;
                    }
                    None => return Step::Done(PushOutcome::FixRequest),
                },
                Ok(Outcome::VapidRejected { status }) => {
                    tracing::error!(%status, origin = %delivery.push.endpoint.origin(), "the push service refused the VAPID token: check webpush.subject and the VAPID key; subscriptions made under another key must subscribe again");
                    return Step::Done(PushOutcome::FixConfiguration);
                }
                Ok(Outcome::RateLimited { retry_after }) => {
                    (retry_after.map(|r| r.delay(SystemTime::now())), true)
                }
                // A failing service that says for how long holds its origin; one that
                // does not may have failed for this push alone.
                Ok(Outcome::RetryLater { retry_after, .. }) => {
                    let wait = retry_after.map(|r| r.delay(SystemTime::now()));
                    (wait, wait.is_some())
                }
                Ok(other) => {
                    tracing::error!(outcome = ?other, origin = %delivery.push.endpoint.origin(), "the push service refused the push");
                    return Step::Done(PushOutcome::FixRequest);
                }
            };
            let backoff = crate::apns::backoff(Duration::from_millis(500), attempt);
            if hold {
                // A 429 without a `Retry-After` holds the origin for the back-off.
                self.hold(delivery.push.endpoint.origin(), wait.unwrap_or(backoff));
            }
            if attempt >= self.inner.max_attempts {
                return Step::Done(PushOutcome::GaveUp);
            }
            metrics.push("webpush", PushOutcome::Retried);
            metrics.retry_queue().inc();
            return Step::Later(wait.map_or(backoff, |w| w.max(backoff)));
        }
    }

    async fn attempt(
        &self,
        delivery: &Delivery,
        conn: &mut Option<Conn>,
    ) -> Result<Outcome, String> {
        let push = &delivery.push;
        let token = crate::lock(&self.inner.tokens)
            .token(push.endpoint.origin(), SystemTime::now())
            .map_err(|e| e.to_string())?;
        let mut request = PushRequest::to(&push.endpoint, &push.keys, self.inner.ttl)
            .urgency(delivery.urgency)
            .vapid(token);
        if let Some(topic) = &delivery.topic {
            request = request.topic(topic.clone());
        }
        let started = Instant::now();
        let request = request.build(
            &self.inner.encryptor,
            &push.plaintext,
            &mut rand_core::OsRng,
        );
        self.inner.metrics.encrypted(started.elapsed());
        let request = request
            .map_err(|e| e.to_string())?
            .map(|body| Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self.send(push.endpoint.origin(), request, conn).await?;
            let outcome = Outcome::from_response(&response);
            // Read (and drop) the body, so the connection can be reused; one that
            // does not end within the limit is not.
            let read = http_body_util::Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await;
            if read.is_err() {
                *conn = None;
            }
            Ok(outcome)
        };
        let answer = tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.inner.request_timeout))
            .and_then(|answer| answer);
        if answer.is_err() {
            // Not reused: it may still be busy with the request that failed.
            *conn = None;
        }
        answer
    }

    /// Sends `request` over the worker's connection, opening or taking one first if it
    /// has none. If a kept connection turns out closed before the request went out, the
    /// request goes once more on a new one: nothing was sent, so nothing is sent twice.
    async fn send(
        &self,
        origin: &Origin,
        request: http::Request<Full<Bytes>>,
        conn: &mut Option<Conn>,
    ) -> Result<http::Response<Incoming>, String> {
        let mut pending = Some(request);
        let mut fresh = false;
        while let Some(request) = pending.take() {
            let mut current = match conn.take().filter(|c| !c.is_closed()) {
                Some(c) => c,
                None => {
                    let (c, kept) = self.connect(origin, request.uri()).await?;
                    fresh = !kept;
                    c
                }
            };
            let ready = match &mut current {
                Conn::Http1(c) => c.ready().await,
                Conn::Http2(c) => c.ready().await,
            };
            if let Err(e) = ready {
                if fresh {
                    return Err(format!("{e:?}"));
                }
                pending = Some(request);
                continue;
            }
            let (sent, absolute) = match &mut current {
                Conn::Http1(c) => {
                    let (request, absolute) = origin_form(request);
                    (c.try_send_request(request).await, Some(absolute))
                }
                Conn::Http2(c) => (c.try_send_request(request).await, None),
            };
            match sent {
                Ok(response) => {
                    *conn = Some(current);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    Some(mut unsent) if !fresh => {
                        // Absolute again: the next connection is found by its URI,
                        // and may be HTTP/2, which carries the authority in it.
                        if let Some(uri) = absolute {
                            *unsent.uri_mut() = uri;
                        }
                        pending = Some(unsent);
                    }
                    _ => return Err(format!("{:?}", e.into_error())),
                },
            }
        }
        Err("no connection to the push service".into())
    }
}

/// How long a connection is kept between bursts.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The request as HTTP/1.1 sends it: the path in the request line, the authority in
/// `Host` (RFC 9112 §3.2); and the absolute URI it had, for a request that has to go
/// on another connection.
fn origin_form(mut request: http::Request<Full<Bytes>>) -> (http::Request<Full<Bytes>>, http::Uri) {
    if let Some(authority) = request.uri().authority()
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert(host);
    }
    let absolute = match request.uri().path_and_query().cloned() {
        Some(path) => std::mem::replace(request.uri_mut(), http::Uri::from(path)),
        None => request.uri().clone(),
    };
    (request, absolute)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        http2: 64,
        http1: 8,
    };

    /// While the cores are saturated: two workers for the origin.
    const SATURATED: Option<usize> = Some(2);

    /// A queue with `jobs` waiting and `workers` running.
    fn queue(jobs: usize, workers: usize, http2: bool) -> OriginQueue {
        let mut queue = OriginQueue {
            workers,
            http2,
            ..OriginQueue::default()
        };
        for _ in 0..jobs {
            queue.jobs.push_back(Queued {
                delivery: delivery(),
                attempt: 1,
            });
        }
        queue
    }

    fn delivery() -> Delivery {
        let ua = webpush_crypto::UaKeys::from_base64url(
            "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        Delivery {
            user: Arc::new(xaps_proto::UserName::new("alice").unwrap()),
            push: Push {
                sub_id: imap_webpush_proto::SubId::new("s1").unwrap(),
                endpoint: webpush_crypto::Endpoint::new("https://push.example.net/p/1").unwrap(),
                keys: ua.subscription_keys(),
                plaintext: b"* SELECT INBOX\r\n".to_vec(),
            },
            urgency: Urgency::High,
            topic: None,
            generic: None,
            since: Instant::now(),
        }
    }

    /// A connection's transport whose peer has gone: its first `idle` reads wait
    /// (woken by nothing, so it is read again when a request arrives for it), every
    /// later one is the end of the stream. What is written is kept.
    struct Gone {
        idle: usize,
        reads: usize,
        written: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl tokio::io::AsyncRead for Gone {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.reads += 1;
            if self.reads <= self.idle {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }
    }

    impl tokio::io::AsyncWrite for Gone {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            octets: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            crate::lock(&self.written).extend_from_slice(octets);
            Poll::Ready(Ok(octets.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A connection kept from an earlier burst whose peer has gone since, and looks
    /// open: with `idle` 0 it finds the end of the stream while the sender waits for
    /// it to be ready; with 1 it has asked for a request, and finds it when the
    /// request wakes it, handing the request back unwritten. Either way the push goes
    /// once, over one new connection, and nothing is written on the gone one.
    async fn a_push_over_a_gone_connection(idle: usize) {
        let dir = tempfile::tempdir().unwrap();
        let service = crate::standin::PushService::start().await.unwrap();
        let mut config = crate::config::Config::with_database(dir.path().join("s.sqlite"));
        config.webpush.allow_local_push_service = true;
        let store = Store::open(&config.database).await.unwrap();
        let key = webpush_crypto::VapidKey::generate(&mut rand_core::OsRng).unwrap();
        let subject = webpush_crypto::Subject::new("mailto:postmaster@mail.example").unwrap();
        let sender = WebPushSender::new(
            &config.webpush,
            TokenCache::new(webpush_crypto::VapidSigner::new(key, subject)),
            None,
            store,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let url = service.endpoint("p/1");
        let origin = webpush_crypto::Endpoint::new_allowing_plain_http(&url)
            .unwrap()
            .origin()
            .clone();

        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let io = Gone {
            idle,
            reads: 0,
            written: written.clone(),
        };
        let (kept, connection) = http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(connection);
        if idle > 0 {
            // Polled once: idle, it asks for a request.
            tokio::task::yield_now().await;
        }
        sender.park(origin.clone(), Conn::Http1(kept));

        let request = http::Request::post(url.as_str())
            .body(Full::new(Bytes::from_static(b"push")))
            .unwrap();
        let mut conn = None;
        let response = sender.send(&origin, request, &mut conn).await.unwrap();
        assert_eq!(response.status(), 201);
        assert!(
            crate::lock(&written).is_empty(),
            "written on the gone connection"
        );
        let arrived = service.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(arrived.len(), 1);
        assert_eq!(arrived[0].body, b"push");
        assert_eq!(service.connections(), 1);
        assert!(
            conn.is_some_and(|c| !c.is_closed()),
            "the new connection is kept"
        );
    }

    #[tokio::test]
    async fn a_kept_connection_found_gone_before_the_request_is_replaced() {
        a_push_over_a_gone_connection(0).await;
    }

    #[tokio::test]
    async fn a_request_a_kept_connection_hands_back_unsent_goes_once_on_a_new_one() {
        a_push_over_a_gone_connection(1).await;
    }

    /// Whether a worker between jobs stops (or else takes a job or waits).
    fn stops(q: &mut OriginQueue, limits: Limits, cap: Option<usize>) -> bool {
        matches!(q.next(limits, cap), Next::Stop { .. })
    }

    /// How many of 100 new jobs start a worker.
    fn starts(q: &mut OriginQueue, limits: Limits, cap: Option<usize>) -> usize {
        (0..100).filter(|_| q.add_worker(limits, cap)).count()
    }

    #[test]
    fn an_origin_starts_at_the_http1_limit() {
        assert_eq!(starts(&mut queue(0, 0, false), LIMITS, None), 8);
    }

    #[test]
    fn an_answer_in_http2_adds_workers_for_the_waiting_jobs() {
        // 8 running, 100 waiting: up to 64 in all.
        let mut q = queue(100, 8, false);
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 56);
        assert_eq!(q.workers, 64);
        // Said again: nothing more.
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 0);
        // Few waiting: only as many as they need.
        let mut q = queue(3, 8, false);
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 3);
        assert_eq!(q.workers, 11);
    }

    #[test]
    fn after_a_switch_back_to_http1_the_workers_over_the_limit_retire() {
        let mut q = queue(100, 64, true);
        assert_eq!(q.rebalance(Some(false), LIMITS, None), 0);
        let retired = (0..64).filter(|_| stops(&mut q, LIMITS, None)).count();
        assert_eq!(retired, 56);
        assert_eq!(q.workers, 8);
        // At the limit, a worker goes on while there are jobs, and stops without.
        assert!(matches!(q.next(LIMITS, None), Next::Job(_)));
        q.jobs.clear();
        assert!(matches!(q.next(LIMITS, None), Next::Stop { empty: false }));
        assert_eq!(q.workers, 7);
    }

    #[test]
    fn saturated_cores_cap_an_origins_workers() {
        assert_eq!(starts(&mut queue(0, 0, false), LIMITS, SATURATED), 2);
        // In HTTP/2 too, and a worker without a connection changes nothing.
        let mut q = queue(100, 2, false);
        assert_eq!(q.rebalance(Some(true), LIMITS, SATURATED), 0);
        assert_eq!(q.rebalance(None, LIMITS, SATURATED), 0);
        assert_eq!(q.workers, 2);
        // A limit below the cap stays the limit.
        let limits = Limits { http1: 1, ..LIMITS };
        assert_eq!(starts(&mut queue(0, 0, false), limits, SATURATED), 1);
    }

    #[test]
    fn workers_retire_to_the_cap_while_saturated_and_return_when_spare() {
        let mut q = queue(100, 8, false);
        let retired = (0..8).filter(|_| stops(&mut q, LIMITS, SATURATED)).count();
        assert_eq!(retired, 6);
        assert_eq!(q.workers, 2);
        // Time to spare again: the waiting jobs get workers up to the limit.
        assert_eq!(q.rebalance(None, LIMITS, None), 6);
        assert_eq!(q.workers, 8);
    }

    #[test]
    fn waiting_jobs_always_keep_a_worker() {
        assert_eq!(starts(&mut queue(0, 0, false), LIMITS, Some(0)), 1);
        let mut q = queue(5, 1, true);
        assert!(!stops(&mut q, LIMITS, Some(0)));
    }

    #[test]
    fn the_last_worker_stops_with_the_last_job_and_the_queue_can_go() {
        let mut q = queue(1, 1, false);
        assert!(matches!(q.next(LIMITS, None), Next::Job(_)));
        assert!(matches!(q.next(LIMITS, None), Next::Stop { empty: true }));
        assert_eq!(q.workers, 0);
    }

    #[test]
    fn a_held_origin_keeps_one_worker_that_waits_the_hold_out() {
        let now = Instant::now();
        let until = now + Duration::from_secs(1);
        let mut q = queue(100, 8, false);
        q.hold(until);
        // A shorter hold does not shorten it.
        q.hold(now);
        // No new workers, none added for the waiting jobs: all but one stop.
        assert_eq!(starts(&mut q, LIMITS, None), 0);
        assert_eq!(q.rebalance(None, LIMITS, None), 0);
        let stopped = (0..8).filter(|_| stops(&mut q, LIMITS, None)).count();
        assert_eq!(stopped, 7);
        assert_eq!(q.workers, 1);
        assert!(matches!(q.next(LIMITS, None), Next::Wait(u) if u == until));
        // With no job left it waits too, so that the queue keeps the hold.
        q.jobs.clear();
        assert!(matches!(q.next(LIMITS, None), Next::Wait(_)));
        assert_eq!(starts(&mut q, LIMITS, None), 0);
        // Not over yet: held still. Over: the limit again, and the jobs go.
        q.release();
        assert!(q.held_until.is_some());
        q.held_until = Some(now);
        q.release();
        assert!(q.held_until.is_none());
        assert_eq!(starts(&mut q, LIMITS, None), 7);
        q.jobs.push_back(Queued {
            delivery: delivery(),
            attempt: 1,
        });
        assert!(matches!(q.next(LIMITS, None), Next::Job(_)));
    }

    #[test]
    fn a_worker_that_did_not_park_was_busy_all_the_window() {
        let ms = Duration::from_millis;
        let count = |busy, park_unparks| WorkerCount {
            busy: ms(busy),
            park_unparks,
        };
        let window = ms(50);
        // No busy time added up yet, no park: busy all along.
        assert_eq!(
            busy_between(&[count(10, 4)], &[count(10, 4)], window),
            window
        );
        // Parked all along (an odd count): idle.
        assert_eq!(
            busy_between(&[count(10, 5)], &[count(10, 5)], window),
            ms(0)
        );
        // Parked and unparked meanwhile: the busy time added up, no more than the window.
        assert_eq!(
            busy_between(&[count(10, 4)], &[count(30, 6)], window),
            ms(20)
        );
        assert_eq!(
            busy_between(&[count(10, 4)], &[count(90, 7)], window),
            window
        );
        // Summed over the workers.
        assert_eq!(
            busy_between(
                &[count(0, 2), count(0, 3)],
                &[count(0, 2), count(25, 5)],
                window
            ),
            ms(75)
        );
    }

    #[test]
    fn saturated_cores_share_their_requests_in_flight_among_the_origins() {
        // Four in flight on saturated cores: all four for one origin, two each for
        // two or three, one each for fifty.
        assert_eq!(cap(Load::Saturated, 4, 1), Some(4));
        assert_eq!(cap(Load::Saturated, 4, 2), Some(2));
        assert_eq!(cap(Load::Saturated, 4, 3), Some(2));
        assert_eq!(cap(Load::Saturated, 4, 50), Some(1));
        assert_eq!(cap(Load::Saturated, 4, 0), Some(4));
        assert_eq!(cap(Load::Spare, 4, 50), None);
    }

    #[test]
    fn the_load_is_saturated_from_nine_tenths_of_the_workers_time_spare_below_seven() {
        let ms = Duration::from_millis;
        let (spare, saturated) = (Load::Spare, Load::Saturated);
        assert_eq!(judge(ms(18), ms(10), 2, spare), saturated);
        assert_eq!(judge(ms(20), ms(10), 2, spare), saturated);
        // Between seven and nine tenths, the last judgement stands.
        assert_eq!(judge(ms(17), ms(10), 2, spare), spare);
        assert_eq!(judge(ms(17), ms(10), 2, saturated), saturated);
        assert_eq!(judge(ms(14), ms(10), 2, saturated), saturated);
        assert_eq!(judge(ms(13), ms(10), 2, saturated), spare);
        // Idle, or no workers or time to judge by: spare.
        assert_eq!(judge(ms(0), ms(10), 2, saturated), spare);
        assert_eq!(judge(ms(5), ms(0), 2, saturated), spare);
        assert_eq!(judge(ms(5), ms(10), 0, saturated), spare);
    }
}
