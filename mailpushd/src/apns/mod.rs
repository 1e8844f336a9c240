//! The APNs sender: one long-lived HTTP/2 connection over TLS (ALPN `h2`), many
//! concurrent streams, a bound on requests in flight, a timeout per request, reconnects
//! after GOAWAY, errors or timeouts, and every `apns_proto::Action` carried out: a 410
//! is reported to the core (which removes registrations by the timestamp rule), an
//! expired provider token is renewed and the push resent, 429 and 5xx are retried by
//! the [`RetryPolicy`], 400s about the token are counted and never delete.
//!
//! Without credentials it prints the exact request it would send instead.

mod connection;
mod credentials;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use apns_proto::{Action, CertificateInfo, MailPush, ProviderTokens, Topic};
use tokio::sync::Semaphore;
use xaps_proto::{AccountId, DeviceToken};

pub use connection::AttemptError;
use connection::Connection;
pub use credentials::PLACEHOLDER_TOPIC;

use crate::config;
use crate::metrics::{Metrics, PushOutcome};
use crate::report::{Report, ReportSender};
use crate::retry::{Deadline, Retry, RetryPolicy};

/// The sender cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApnsError {
    /// A credential file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A credential file does not hold what it should.
    #[error("{path}: {reason}")]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured topic is not one.
    #[error("apns.topic {topic:?}: {source}")]
    Topic {
        /// The topic as configured.
        topic: String,
        /// Why.
        source: apns_proto::RequestError,
    },
    /// A topic configured beside a certificate, other than the certificate's own.
    #[error(
        "apns.topic {configured:?} is not the certificate's topic {certificate:?}: a certificate pushes for its own (its UID); leave apns.topic out"
    )]
    TopicNotCertificates {
        /// The topic as configured.
        configured: String,
        /// The certificate's.
        certificate: String,
    },
    /// No topic: none configured and no certificate to take it from.
    #[error(
        "no APNs topic: set apns.topic (keyFileTopic), or use a certificate, whose UID is the topic"
    )]
    NoTopic,
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The certificates to trust cannot be read.
    #[error(transparent)]
    Roots(#[from] crate::tls::RootsError),
}

/// The device `check-config` asks APNs to push: all zeros, which no device is.
const CHECK_DEVICE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why `check-config` got no answer from APNs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The request could not be made.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// No answer: the connection, TLS, HTTP/2 or the request failed.
    #[error(transparent)]
    Attempt(#[from] AttemptError),
    /// The made-up device is not one this build can write (a bug).
    #[error("the request for a made-up device cannot be made")]
    MadeUpDevice,
}

impl CheckError {
    /// Whether the configuration is at fault (see [`AttemptError::is_configuration`]).
    pub fn is_configuration(&self) -> bool {
        match self {
            CheckError::Build(_) => true,
            CheckError::Attempt(e) => e.is_configuration(),
            CheckError::MadeUpDevice => false,
        }
    }
}

/// A request that could not be built: a configuration or clock fault, not APNs's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The provider token could not be signed.
    #[error("cannot sign the provider token: {0}")]
    Token(#[from] apns_proto::TokenError),
    /// The request could not be made.
    #[error("cannot make the request: {0}")]
    Request(#[from] apns_proto::RequestError),
}

/// A push for one device.
#[derive(Debug, Clone)]
pub struct Job {
    /// The device.
    pub device_token: DeviceToken,
    /// The account, the payload's `account-id`.
    pub account_id: AccountId,
    /// When the event that caused it arrived, for the latency histogram.
    pub since: Instant,
    /// The owed push it sends, when it is one: its end is reported.
    pub owed: Option<crate::store::Sent>,
    /// What it is for, as the push log says.
    pub event: PushEvent,
}

/// What a push is for, as `mailpushd status` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushEvent {
    /// New mail, pushed at once.
    NewMail,
    /// Other changes after their quiet period, or a push owed from before a restart.
    Later,
    /// A round of attempts after one that failed.
    Retry,
    /// `mailpushd send-test`.
    Test,
}

impl PushEvent {
    /// As logged.
    pub fn as_str(self) -> &'static str {
        match self {
            PushEvent::NewMail => "new mail",
            PushEvent::Later => "after the quiet period, or owed from before a restart",
            PushEvent::Retry => "retry",
            PushEvent::Test => "send-test",
        }
    }
}

/// What APNs last answered to a push, or why it did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: Option<u16>,
    /// The `apns-id`.
    pub apns_id: Option<String>,
    /// APNs's reason, or why there was no answer.
    pub reason: Option<String>,
}

/// How a push ended, and what APNs last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    /// How it ended.
    pub outcome: PushOutcome,
    /// What APNs last answered (none when nothing was sent).
    pub last: Option<Answer>,
}

impl Attempted {
    /// The push log's record of it, for `user`, ended now.
    pub fn record(&self, user: &xaps_proto::UserName, job: &Job) -> crate::store::PushRecord {
        let last = self.last.clone().unwrap_or_default();
        crate::store::PushRecord {
            user: user.clone(),
            account: job.account_id.clone(),
            token: job.device_token.clone(),
            at_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            event: job.event.as_str().to_owned(),
            outcome: self.outcome.as_str().to_owned(),
            status: last.status,
            apns_id: last.apns_id,
            reason: last.reason,
        }
    }
}

/// The sender. Cheap to clone.
#[derive(Clone)]
pub struct Apns {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Apns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apns")
            .field("topic", &self.inner.topic)
            .field("live", &self.inner.live.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    topic: Topic,
    live: Option<Connection>,
    push: std::sync::Mutex<MailPush>,
    tokens: Option<std::sync::Mutex<ProviderTokens>>,
    permits: Semaphore,
    request_timeout: std::time::Duration,
    retry: RetryPolicy,
    reports: ReportSender,
    metrics: Arc<Metrics>,
    /// Jobs not finished, retries waiting included, for a graceful shutdown.
    in_flight: crate::inflight::InFlight,
    /// What the certificate says, for `check-config`.
    certificate: Option<CertificateInfo>,
    /// A configuration fault was logged and nothing has been answered since: said
    /// once, not at every push.
    misconfigured: std::sync::atomic::AtomicBool,
}

impl Apns {
    /// A sender for `config`, handing in what APNs says of tokens (410) to `reports`.
    pub fn new(
        config: &config::Apns,
        reports: ReportSender,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ApnsError> {
        let loaded = credentials::load(config)?;
        let live = match &config.credentials {
            None => None,
            Some(_) => Some(Connection::new(config, loaded.client_auth)?),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                push: std::sync::Mutex::new(MailPush::new(config.server.clone(), &loaded.topic)),
                topic: loaded.topic,
                live,
                tokens: loaded.tokens.map(std::sync::Mutex::new),
                permits: Semaphore::new(config.max_in_flight),
                request_timeout: config.request_timeout,
                retry: RetryPolicy {
                    base: config.retry_base,
                    max_attempts: config.max_attempts,
                    max_wait: Duration::MAX,
                },
                reports,
                metrics,
                in_flight: crate::inflight::InFlight::default(),
                certificate: loaded.certificate,
                misconfigured: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The topic pushes go out on (the body of a `/register` answer).
    pub fn topic(&self) -> &Topic {
        &self.inner.topic
    }

    /// What the client certificate says, when there is one.
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        self.inner.certificate.as_ref()
    }

    /// Whether pushes are sent (credentials given) or printed.
    pub fn is_live(&self) -> bool {
        self.inner.live.is_some()
    }

    /// Asks APNs to push a device that does not exist (`check-config`), within the
    /// request timeout: a connection (TCP, TLS, HTTP/2) and the answer to a request
    /// with the credentials. APNs looks at those before the device, so an answer
    /// about the device (400 `BadDeviceToken`) says it takes them, and nothing is
    /// delivered. Under TLS 1.3 a server refuses a client certificate only after the
    /// handshake, so the request is also where a revoked certificate shows (when its
    /// alert is read before the connection closes). `None` without credentials
    /// (nothing is sent then).
    pub async fn check_connection(&self) -> Option<Result<apns_proto::Outcome, CheckError>> {
        let live = self.inner.live.as_ref()?;
        let job = match (
            DeviceToken::new(CHECK_DEVICE),
            AccountId::new("mailpushd-check-config"),
        ) {
            (Ok(device_token), Ok(account_id)) => Job {
                device_token,
                account_id,
                since: Instant::now(),
                owed: None,
                event: PushEvent::Test,
            },
            _ => return Some(Err(CheckError::MadeUpDevice)),
        };
        let request = match self.request(&job) {
            Ok((request, _)) => request,
            Err(e) => return Some(Err(e.into())),
        };
        Some(
            live.send(request, self.inner.request_timeout)
                .await
                .map_err(CheckError::from),
        )
    }

    /// Signs a provider token now, to check the key (`check-config`).
    pub fn sign_test_token(&self) -> Option<Result<(), apns_proto::TokenError>> {
        let tokens = self.inner.tokens.as_ref()?;
        let mut tokens = crate::lock(tokens);
        Some(tokens.header(SystemTime::now()).map(|_| ()))
    }

    /// Sends `job` in the background.
    pub fn spawn(&self, job: Job) {
        let sender = self.clone();
        self.inner.in_flight.start();
        tokio::spawn(async move {
            let attempted = sender.send(&job).await;
            if let Some(owed) = &job.owed {
                let settled = !matches!(
                    attempted.outcome,
                    PushOutcome::Deferred | PushOutcome::FixConfiguration
                );
                let record = attempted.record(&owed.key.user, &job);
                let report = Report::OwedDone {
                    sent: owed.clone(),
                    settled,
                    record: Some(Box::new(record)),
                };
                if sender.inner.reports.send(report).await.is_err() {
                    tracing::error!("an APNs push's end not recorded: the daemon is stopping");
                }
            }
            sender.inner.in_flight.finish();
        });
    }

    /// Waits until every job sent is done, or `deadline` passes; returns how many were
    /// still going.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.inner.in_flight.drain(deadline).await
    }

    /// Sends `job` until it is answered for good or out of attempts: then an owed push
    /// is [`PushOutcome::Deferred`] to a later round, any other given up.
    pub async fn send(&self, job: &Job) -> Attempted {
        let out_of_attempts = if job.owed.is_some() {
            PushOutcome::Deferred
        } else {
            PushOutcome::GaveUp
        };
        let metrics = &self.inner.metrics;
        let deadline = job.owed.as_ref().map_or(Deadline::NONE, Deadline::of_send);
        let timeout = self.inner.request_timeout;
        let mut renewed = false;
        let mut resent = 0;
        let mut attempt = 1;
        let mut last = None;
        let outcome = loop {
            if !deadline.allows(Duration::ZERO, timeout) {
                tracing::warn!(attempts = attempt - 1, token = ?job.device_token, "APNs push's round of attempts ends with its lease: owed, tried again later");
                break out_of_attempts;
            }
            let (request, authorization) = match self.request(job) {
                Ok(built) => built,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the APNs request");
                    break PushOutcome::FixConfiguration;
                }
            };
            let Some(live) = &self.inner.live else {
                print_request(&request);
                break PushOutcome::Printed;
            };
            let answer = {
                // A request that could not end within the lease does not start.
                let permit = match deadline.last_start(timeout) {
                    Some(last_start) => {
                        tokio::time::timeout_at(last_start.into(), self.inner.permits.acquire())
                            .await
                            .ok()
                    }
                    None => Some(self.inner.permits.acquire().await),
                };
                let Some(Ok(_permit)) = permit else {
                    break out_of_attempts;
                };
                metrics.in_flight().inc();
                let answer = live.send(request, timeout).await;
                metrics.in_flight().dec();
                answer
            };
            last = Some(match &answer {
                Ok(outcome) => Answer {
                    status: Some(outcome.status),
                    apns_id: outcome.apns_id.as_ref().map(|id| id.as_str().to_owned()),
                    reason: outcome.reason.as_ref().map(|r| r.as_str().to_owned()),
                },
                Err(why) => Answer {
                    status: None,
                    apns_id: None,
                    reason: Some(why.to_string()),
                },
            });
            if answer.is_ok() {
                self.inner
                    .misconfigured
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            let retry_after = match answer {
                Err(why) if why.is_configuration() => {
                    let first = !self
                        .inner
                        .misconfigured
                        .swap(true, std::sync::atomic::Ordering::Relaxed);
                    if first {
                        tracing::error!(reason = %why, "APNs cannot be reached as configured: fix the configuration (apns.ca_file, the certificate, base_url); pushes stay owed meanwhile");
                    } else {
                        tracing::debug!(reason = %why, "APNs still cannot be reached as configured");
                    }
                    break PushOutcome::FixConfiguration;
                }
                // A connection APNs is recycling: the push was not processed, so it
                // goes again now, on a new one; not a failed attempt.
                Err(why @ AttemptError::Unprocessed(_)) if resent < crate::retry::MAX_RESENDS => {
                    resent += 1;
                    metrics.push("apns", PushOutcome::Resent);
                    tracing::debug!(attempt, reason = %why, token = ?job.device_token, "APNs did not process the push: sent again at once");
                    continue;
                }
                Err(why) => {
                    tracing::warn!(attempt, reason = %why, token = ?job.device_token, "APNs push not delivered");
                    None
                }
                Ok(outcome) => match outcome.action() {
                    Action::Delivered => break PushOutcome::Delivered,
                    Action::DropToken { since } => {
                        let report = Report::ApnsTokenGone {
                            token: job.device_token.clone(),
                            since: since.unwrap_or_else(SystemTime::now),
                        };
                        if self.inner.reports.send(report).await.is_err() {
                            tracing::error!(token = ?job.device_token, "APNs says the device token is gone, and the daemon is stopping: not removed");
                        }
                        break PushOutcome::Gone;
                    }
                    Action::TokenRejected => {
                        tracing::warn!(
                            status = outcome.status,
                            reason = ?outcome.reason,
                            token = ?job.device_token,
                            "APNs refused this device token for the topic or environment; \
                             kept (a sandbox token, or a wrong topic, gives this for every device)"
                        );
                        break PushOutcome::TokenRejected;
                    }
                    Action::RenewProviderToken if !renewed => {
                        // The token this request carried, unless another refusal
                        // renewed it already.
                        if let (Some(tokens), Some(refused)) = (&self.inner.tokens, &authorization)
                        {
                            crate::lock(tokens).invalidate_refused(refused);
                        }
                        renewed = true;
                        // Resent at once with the new token; not a failed attempt.
                        continue;
                    }
                    Action::Retry => {
                        tracing::warn!(attempt, status = outcome.status, reason = ?outcome.reason, token = ?job.device_token, "APNs asks to retry");
                        None
                    }
                    Action::FixRequest => {
                        tracing::error!(status = outcome.status, reason = ?outcome.reason, "APNs refused the request as malformed");
                        break PushOutcome::FixRequest;
                    }
                    _ => {
                        tracing::error!(
                            status = outcome.status,
                            reason = ?outcome.reason,
                            "APNs refused the credentials or topic: fix the configuration"
                        );
                        break PushOutcome::FixConfiguration;
                    }
                },
            };
            let wait = match self
                .inner
                .retry
                .after(attempt, retry_after, crate::retry::jitter())
            {
                Retry::After(wait) if deadline.allows(wait, timeout) => wait,
                Retry::After(_) => {
                    tracing::warn!(attempts = attempt, token = ?job.device_token, "APNs push's next attempt would end after its lease: owed, tried again later");
                    break out_of_attempts;
                }
                Retry::GiveUp => {
                    if job.owed.is_some() {
                        tracing::warn!(attempts = attempt, token = ?job.device_token, "APNs push not delivered in this round of attempts: owed, tried again later");
                    } else {
                        tracing::warn!(attempts = attempt, token = ?job.device_token, "APNs push given up");
                    }
                    break out_of_attempts;
                }
            };
            metrics.push("apns", PushOutcome::Retried);
            metrics.retry_queue().inc();
            tokio::time::sleep(wait).await;
            metrics.retry_queue().dec();
            attempt += 1;
        };
        metrics.push("apns", outcome);
        metrics.latency(job.since.elapsed().as_secs_f64());
        Attempted { outcome, last }
    }

    /// `job`'s request, and the provider token it carries (with a key).
    fn request(
        &self,
        job: &Job,
    ) -> Result<(http::Request<Vec<u8>>, Option<http::HeaderValue>), BuildError> {
        let now = SystemTime::now();
        let authorization = match &self.inner.tokens {
            None => None,
            Some(tokens) => Some(crate::lock(tokens).header(now)?.clone()),
        };
        let mut push = crate::lock(&self.inner.push);
        let request = push.request(
            &job.device_token,
            job.account_id.as_str(),
            now,
            authorization.as_ref(),
        )?;
        Ok((request, authorization))
    }
}

/// The request as it would go out, for an operator without credentials yet.
fn print_request(request: &http::Request<Vec<u8>>) {
    let mut text = format!(
        "APNs request (not sent: no credentials configured)\n{} {}\n",
        request.method(),
        request.uri()
    );
    for (name, value) in request.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            value.to_str().unwrap_or("<binary>")
        ));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(request.body()));
    println!("{text}\n");
}
