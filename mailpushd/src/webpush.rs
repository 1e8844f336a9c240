//! The Web Push sender: RFC 8030 requests to push services over HTTP/1.1 or HTTP/2 (by
//! ALPN), TLS with the platform's roots, connections reused per origin, a bound on
//! requests in flight per origin, timeouts, no redirects. The endpoint policy is applied
//! again to the addresses DNS returns, when connecting, so a name that resolves to a
//! private address is refused (DNS rebinding). VAPID tokens are cached per origin.
//! Every `Outcome` has its effect: 404/410 delete the subscription, 413 resends the
//! generic push, 429 and 5xx are retried after `Retry-After` or with back-off, 401/403
//! are reported as a VAPID configuration fault.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
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
    /// Whose subscription.
    pub user: String,
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
    client: Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>,
    tokens: std::sync::Mutex<TokenCache>,
    encryptor: Encryptor,
    /// Each origin's waiting deliveries and running workers.
    origins: std::sync::Mutex<HashMap<Origin, OriginQueue>>,
    ttl: Ttl,
    request_timeout: Duration,
    max_per_origin: usize,
    max_per_origin_http1: usize,
    /// Origins that answered in HTTP/2, so they get `max_per_origin` streams. Capped
    /// at `MAX_HTTP2_ORIGINS`: an origin left out keeps the HTTP/1.1 limit.
    http2_origins: std::sync::Mutex<std::collections::HashSet<Origin>>,
    max_attempts: u32,
    store: Store,
    metrics: Arc<Metrics>,
    in_flight: crate::inflight::InFlight,
}

/// How many origins the sender remembers as HTTP/2: far more than any installation's
/// push services, and a bound on what subscriptions to made-up origins can take.
const MAX_HTTP2_ORIGINS: usize = 4096;

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
        // No redirects are followed: the legacy client never does.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                tokens: std::sync::Mutex::new(tokens),
                encryptor: Encryptor::new(),
                origins: std::sync::Mutex::new(HashMap::new()),
                ttl: Ttl::from_secs(u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX)),
                request_timeout: config.request_timeout,
                max_per_origin: config.max_per_origin.max(1),
                max_per_origin_http1: config
                    .max_per_origin_http1
                    .clamp(1, config.max_per_origin.max(1)),
                http2_origins: std::sync::Mutex::new(std::collections::HashSet::new()),
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
    /// has answered in HTTP/2): a fan-out to many subscriptions costs a queue entry
    /// each, not a task each, until its turn.
    pub fn spawn(&self, delivery: Delivery) {
        self.inner.in_flight.start();
        self.enqueue(Queued {
            delivery,
            attempt: 1,
        });
    }

    /// Requests in flight `origin` gets: `max_per_origin` once it has answered in
    /// HTTP/2 (streams share one connection), `max_per_origin_http1` until then (each
    /// is a connection of its own).
    fn limit(&self, origin: &Origin) -> usize {
        let http2 = crate::lock(&self.inner.http2_origins).contains(origin);
        if http2 {
            self.inner.max_per_origin
        } else {
            self.inner.max_per_origin_http1
        }
    }

    /// `origin` answered in HTTP/2: the first time, it gets the workers its waiting
    /// deliveries can use, up to the HTTP/2 limit.
    fn speaks_http2(&self, origin: &Origin) {
        {
            let mut known = crate::lock(&self.inner.http2_origins);
            if known.len() >= MAX_HTTP2_ORIGINS || !known.insert(origin.clone()) {
                return;
            }
        }
        let more = {
            let mut origins = crate::lock(&self.inner.origins);
            let Some(queue) = origins.get_mut(origin) else {
                return;
            };
            let wanted = self
                .inner
                .max_per_origin
                .min(queue.workers + queue.jobs.len());
            let more = wanted.saturating_sub(queue.workers);
            queue.workers += more;
            more
        };
        for _ in 0..more {
            let (sender, origin) = (self.clone(), origin.clone());
            tokio::spawn(async move { sender.work(origin).await });
        }
    }

    fn enqueue(&self, job: Queued) {
        let origin = job.delivery.push.endpoint.origin().clone();
        let limit = self.limit(&origin);
        let start_worker = {
            let mut origins = crate::lock(&self.inner.origins);
            let queue = origins.entry(origin.clone()).or_default();
            queue.jobs.push_back(job);
            let start = queue.workers < limit;
            if start {
                queue.workers += 1;
            }
            start
        };
        if start_worker {
            let sender = self.clone();
            tokio::spawn(async move { sender.work(origin).await });
        }
    }

    /// One of an origin's workers: takes deliveries until the queue is empty.
    async fn work(&self, origin: Origin) {
        loop {
            let job = {
                let mut origins = crate::lock(&self.inner.origins);
                let Some(queue) = origins.get_mut(&origin) else {
                    return;
                };
                match queue.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        queue.workers = queue.workers.saturating_sub(1);
                        if queue.workers == 0 {
                            origins.remove(&origin);
                        }
                        return;
                    }
                }
            };
            let Queued {
                mut delivery,
                attempt,
            } = job;
            match self.step(&mut delivery, attempt).await {
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
    async fn step(&self, delivery: &mut Delivery, attempt: u32) -> Step {
        let metrics = &self.inner.metrics;
        let origin = delivery.push.endpoint.origin().clone();
        loop {
            metrics.in_flight().inc();
            let answer = self.attempt(delivery).await;
            metrics.in_flight().dec();
            let wait = match answer {
                Err(why) => {
                    tracing::warn!(attempt, %origin, reason = %why, "push not delivered");
                    None
                }
                Ok(Outcome::Delivered { .. }) => return Step::Done(PushOutcome::Delivered),
                Ok(outcome @ Outcome::RemoveSubscription { .. }) => {
                    let change = delivery.push.on_outcome(&outcome);
                    let user = delivery.user.clone();
                    match self
                        .inner
                        .store
                        .update_webpush(&user, |_| ((), change.into_iter().collect()))
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(%user, sub_id = delivery.push.sub_id.as_str(), %origin, "push service says the subscription is gone: deleted")
                        }
                        Err(e) => tracing::error!(error = %e, "cannot delete a gone subscription"),
                    }
                    return Step::Done(PushOutcome::Dropped);
                }
                Ok(Outcome::PayloadTooLarge) => match delivery.generic.take() {
                    Some(generic) => {
                        tracing::info!(%origin, "push too large for the service: sending the generic one");
                        delivery.push.plaintext = generic;
                        continue;
                    }
                    None => return Step::Done(PushOutcome::FixRequest),
                },
                Ok(Outcome::VapidRejected { status }) => {
                    tracing::error!(%status, %origin, "the push service refused the VAPID token: check webpush.subject and the VAPID key; subscriptions made under another key must subscribe again");
                    return Step::Done(PushOutcome::FixConfiguration);
                }
                Ok(
                    Outcome::RateLimited { retry_after } | Outcome::RetryLater { retry_after, .. },
                ) => retry_after.map(|r| r.delay(SystemTime::now())),
                Ok(other) => {
                    tracing::error!(outcome = ?other, %origin, "the push service refused the push");
                    return Step::Done(PushOutcome::FixRequest);
                }
            };
            if attempt >= self.inner.max_attempts {
                return Step::Done(PushOutcome::GaveUp);
            }
            metrics.push("webpush", PushOutcome::Retried);
            metrics.retry_queue().inc();
            let backoff = crate::apns::backoff(Duration::from_millis(500), attempt);
            return Step::Later(wait.map_or(backoff, |w| w.max(backoff)));
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> Result<Outcome, String> {
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
        let request = request
            .build(
                &self.inner.encryptor,
                &push.plaintext,
                &mut rand_core::OsRng,
            )
            .map_err(|e| e.to_string())?
            .map(|body| Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .inner
                .client
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            if response.version() == http::Version::HTTP_2 {
                self.speaks_http2(push.endpoint.origin());
            }
            let outcome = Outcome::from_response(&response);
            // Read (and drop) the body, so the connection can be reused.
            let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await;
            Ok(outcome)
        };
        tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.inner.request_timeout))?
    }
}
