//! The APNs sender: one long-lived HTTP/2 connection over TLS (ALPN `h2`), many
//! concurrent streams, a bound on requests in flight, a timeout per request, reconnects
//! after GOAWAY or errors, and every `apns_proto::Action` carried out: 410 removes
//! (the timestamp rule), an expired provider token is renewed and the push resent, 429
//! and 5xx are retried with exponential back-off and jitter, 400s about the token are
//! counted and never delete.
//!
//! Without credentials it prints the exact request it would send instead.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use apns_proto::{Action, CertificateInfo, MailPush, Outcome, ProviderKey, ProviderTokens, Topic};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use tokio_rustls::TlsConnector;
use xaps_proto::registry::Registry;
use xaps_proto::{AccountId, DeviceToken};

use crate::config;
use crate::metrics::{Metrics, PushOutcome};
use crate::store::Store;

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
    /// A credential does not parse.
    #[error("{0}")]
    Credentials(String),
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

/// A push for one device.
#[derive(Debug, Clone)]
pub struct Job {
    /// The device.
    pub device_token: DeviceToken,
    /// The account, the payload's `account-id`.
    pub account_id: AccountId,
    /// When the event that caused it arrived, for the latency histogram.
    pub since: Instant,
}

/// The placeholder topic when nothing names one: long enough for the Dovecot plugin's
/// check (it aborts on 50 octets or fewer), recognisably not Apple's.
pub const PLACEHOLDER_TOPIC: &str = "com.apple.mail.XServer.00000000-0000-0000-0000-000000000000";

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
    live: Option<Live>,
    push: std::sync::Mutex<MailPush>,
    tokens: Option<std::sync::Mutex<ProviderTokens>>,
    permits: Semaphore,
    request_timeout: Duration,
    max_attempts: u32,
    retry_base: Duration,
    store: Store,
    metrics: Arc<Metrics>,
    /// Jobs not finished, retries waiting included, for a graceful shutdown.
    in_flight: crate::inflight::InFlight,
    /// What the certificate says, for `check-config`.
    certificate: Option<CertificateInfo>,
}

struct Live {
    tls: TlsConnector,
    server_name: ServerName<'static>,
    address: String,
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

/// What one attempt came to.
enum Attempt {
    Answered(Outcome),
    Failed(String),
}

impl Apns {
    /// A sender for `config`, removing registrations from `store` on 410.
    pub fn new(
        config: &config::Apns,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ApnsError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ApnsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let mut tokens = None;
        let mut client_auth = None;
        let mut certificate = None;
        match &config.credentials {
            None => {}
            Some(config::Credentials::Token {
                key_file,
                key_id,
                team_id,
            }) => {
                let key = ProviderKey::from_p8_pem(&read(key_file)?, key_id, team_id)
                    .map_err(|e| ApnsError::Credentials(format!("{}: {e}", key_file.display())))?;
                tokens = Some(std::sync::Mutex::new(ProviderTokens::new(key)));
            }
            Some(config::Credentials::Pem {
                certificate: cert_file,
                key,
            }) => {
                let pem = read(cert_file)?;
                certificate = Some(CertificateInfo::from_pem_or_der(&pem).map_err(|e| {
                    ApnsError::Credentials(format!("{}: {e}", cert_file.display()))
                })?);
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ApnsError::Credentials(format!("{}: {e}", cert_file.display())))?;
                let key = PrivateKeyDer::from_pem_slice(&read(key)?)
                    .map_err(|e| ApnsError::Credentials(format!("{}: {e}", key.display())))?;
                client_auth = Some((chain, key));
            }
            Some(config::Credentials::Pkcs12 { file, password }) => {
                let store = p12_keystore::KeyStore::from_pkcs12(&read(file)?, password)
                    .map_err(|e| ApnsError::Credentials(format!("{}: {e}", file.display())))?;
                let (_, entry) = store.private_key_chain().ok_or_else(|| {
                    ApnsError::Credentials(format!(
                        "{}: no private key with its certificate",
                        file.display()
                    ))
                })?;
                let chain: Vec<CertificateDer<'static>> = entry
                    .chain()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect();
                let leaf = chain.first().ok_or_else(|| {
                    ApnsError::Credentials(format!("{}: no certificate", file.display()))
                })?;
                certificate = Some(
                    CertificateInfo::from_pem_or_der(leaf)
                        .map_err(|e| ApnsError::Credentials(format!("{}: {e}", file.display())))?,
                );
                let key = PrivateKeyDer::try_from(entry.key().to_vec())
                    .map_err(|e| ApnsError::Credentials(format!("{}: {e}", file.display())))?;
                client_auth = Some((chain, key));
            }
        }
        let topic_text = match (&certificate, &config.topic) {
            (Some(info), _) => info.topic.as_str().to_owned(),
            (None, Some(topic)) => topic.clone(),
            (None, None) if config.credentials.is_none() => PLACEHOLDER_TOPIC.to_owned(),
            (None, None) => return Err(ApnsError::NoTopic),
        };
        let topic = Topic::try_from(topic_text.as_str())
            .map_err(|e| ApnsError::Credentials(format!("topic {topic_text:?}: {e}")))?;
        let live = match &config.credentials {
            None => None,
            Some(_) => Some(Live::new(config, client_auth)?),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                push: std::sync::Mutex::new(MailPush::new(config.server.clone(), &topic)),
                topic,
                live,
                tokens,
                permits: Semaphore::new(config.max_in_flight),
                request_timeout: config.request_timeout,
                max_attempts: config.max_attempts,
                retry_base: config.retry_base,
                store,
                metrics,
                in_flight: crate::inflight::InFlight::default(),
                certificate,
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
            sender.send(job).await;
            sender.inner.in_flight.finish();
        });
    }

    /// Waits until every job sent is done, or `deadline` passes; returns how many were
    /// still going.
    pub async fn drain(&self, deadline: Duration) -> usize {
        self.inner.in_flight.drain(deadline).await
    }

    /// Sends `job` until it is answered for good or out of attempts.
    pub async fn send(&self, job: Job) -> PushOutcome {
        let metrics = &self.inner.metrics;
        let mut renewed = false;
        let mut attempt = 1;
        let outcome = loop {
            let request = match self.request(&job) {
                Ok(request) => request,
                Err(message) => {
                    tracing::error!(error = %message, "cannot build the APNs request");
                    break PushOutcome::FixConfiguration;
                }
            };
            let Some(live) = &self.inner.live else {
                print_request(&request);
                break PushOutcome::Printed;
            };
            let answer = {
                let Ok(_permit) = self.inner.permits.acquire().await else {
                    break PushOutcome::GaveUp;
                };
                metrics.in_flight().inc();
                let answer = live.send(request, self.inner.request_timeout).await;
                metrics.in_flight().dec();
                answer
            };
            let retry = |why: String| {
                tracing::warn!(attempt, reason = %why, token = ?job.device_token, "APNs push to retry");
                attempt < self.inner.max_attempts
            };
            let outcome = match answer {
                Attempt::Failed(why) => {
                    if retry(why) {
                        None
                    } else {
                        Some(PushOutcome::GaveUp)
                    }
                }
                Attempt::Answered(outcome) => match outcome.action() {
                    Action::Delivered => Some(PushOutcome::Delivered),
                    Action::DropToken { since } => {
                        self.drop_token(&job.device_token, since).await;
                        Some(PushOutcome::Dropped)
                    }
                    Action::TokenRejected => {
                        tracing::warn!(
                            status = outcome.status,
                            reason = ?outcome.reason,
                            token = ?job.device_token,
                            "APNs refused this device token for the topic or environment; \
                             kept (a sandbox token, or a wrong topic, gives this for every device)"
                        );
                        Some(PushOutcome::TokenRejected)
                    }
                    Action::RenewProviderToken if !renewed => {
                        if let Some(tokens) = &self.inner.tokens {
                            crate::lock(tokens).invalidate();
                        }
                        renewed = true;
                        // Resent at once with the new token; not a failed attempt.
                        continue;
                    }
                    Action::Retry => {
                        if retry(format!("status {} {:?}", outcome.status, outcome.reason)) {
                            None
                        } else {
                            Some(PushOutcome::GaveUp)
                        }
                    }
                    Action::FixRequest => {
                        tracing::error!(status = outcome.status, reason = ?outcome.reason, "APNs refused the request as malformed");
                        Some(PushOutcome::FixRequest)
                    }
                    _ => {
                        tracing::error!(
                            status = outcome.status,
                            reason = ?outcome.reason,
                            "APNs refused the credentials or topic: fix the configuration"
                        );
                        Some(PushOutcome::FixConfiguration)
                    }
                },
            };
            if let Some(outcome) = outcome {
                break outcome;
            }
            metrics.push("apns", PushOutcome::Retried);
            metrics.retry_queue().inc();
            tokio::time::sleep(backoff(self.inner.retry_base, attempt)).await;
            metrics.retry_queue().dec();
            attempt += 1;
        };
        metrics.push("apns", outcome);
        metrics.latency(job.since.elapsed().as_secs_f64());
        outcome
    }

    fn request(&self, job: &Job) -> Result<http::Request<Vec<u8>>, String> {
        let now = SystemTime::now();
        let authorization = match &self.inner.tokens {
            None => None,
            Some(tokens) => {
                let mut tokens = crate::lock(tokens);
                Some(tokens.header(now).map_err(|e| e.to_string())?.clone())
            }
        };
        let mut push = crate::lock(&self.inner.push);
        push.request(
            &job.device_token,
            job.account_id.as_str(),
            now,
            authorization.as_ref(),
        )
        .map_err(|e| e.to_string())
    }

    /// A 410: the crate's rule removes the token's registrations made before `since`.
    async fn drop_token(&self, token: &DeviceToken, since: Option<SystemTime>) {
        let since = since.unwrap_or_else(SystemTime::now);
        let token_for_rule = token.clone();
        match self
            .inner
            .store
            .update_token(token, Registry::new(), move |registry| {
                let removed = registry.unregistered(&token_for_rule, since);
                let changes = removed.iter().cloned().map(Into::into).collect();
                (removed, changes)
            })
            .await
        {
            Ok(removed) => {
                for r in removed {
                    tracing::info!(user = %r.user, account = %r.account_id, "APNs says the device token is gone: registration removed");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot remove an unregistered device token"),
        }
    }
}

/// Exponential back-off from `base`, doubled per attempt, with up to 50 % jitter.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let mut random = [0u8; 2];
    // Jitter needs no cryptographic strength; without it the plain delay serves.
    let _ = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut random);
    let jitter = f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * 0.5;
    exp.mul_f64(1.0 + jitter)
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

impl Live {
    fn new(
        config: &config::Apns,
        client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, ApnsError> {
        let tls_error = |e: rustls::Error| ApnsError::Tls(e.to_string());
        let roots = crate::tls::roots(config.ca_file.as_deref())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots);
        let mut tls = match client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(tls_error)?,
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let authority = config.server.authority();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| ApnsError::Tls(format!("{host}: {e}")))?;
        let port = authority.port_u16().unwrap_or(443);
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
            server_name,
            address: format!("{}:{port}", authority.host()),
            connection: Mutex::new(None),
        })
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut slot = self.connection.lock().await;
        if let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let tcp = TcpStream::connect(self.address.as_str())
            .await
            .map_err(|e| format!("connect {}: {e}", self.address))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", self.address))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(format!("{} does not speak HTTP/2 (ALPN h2)", self.address));
        }
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP/2 with {}: {e}", self.address))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::info!(error = %e, "APNs connection ended");
            }
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }

    async fn send(&self, request: http::Request<Vec<u8>>, timeout: Duration) -> Attempt {
        let attempt = async {
            let mut sender = self.connection().await?;
            sender
                .ready()
                .await
                .map_err(|e| format!("connection closed: {e}"))?;
            let response = sender
                .send_request(request.map(|body| Full::new(Bytes::from(body))))
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, apns_proto::MAX_BODY_LEN)
                .collect()
                .await
                .map(|b| b.to_bytes())
                // An answer whose body does not arrive whole is read by its status.
                .unwrap_or_default();
            let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
            Ok::<_, String>(Outcome::from_parts(
                parts.status.as_u16(),
                header("apns-id"),
                header("apns-unique-id"),
                &body,
            ))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(outcome)) => Attempt::Answered(outcome),
            Ok(Err(why)) => {
                // The next attempt opens a new connection.
                self.connection.lock().await.take();
                Attempt::Failed(why)
            }
            Err(_) => Attempt::Failed(format!("no answer within {timeout:?}")),
        }
    }
}
