//! The one long-lived HTTP/2 connection to APNs over TLS (ALPN `h2`): opened when
//! needed, shared by every request, dropped after an error or a timeout so the next
//! request opens a new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apns_proto::Outcome;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use super::ApnsError;
use super::credentials::ClientAuth;
use crate::config;

/// Why one attempt got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// No TCP connection.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS with {address}: {source}")]
    Tls {
        /// Where.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate was refused: the server's by this side (an unknown CA, expired,
    /// a CA used as an end entity, another name), or this side's by the server. A
    /// configuration error: retrying cannot help.
    #[error("TLS with {address}: certificate refused: {reason}")]
    Certificate {
        /// Where.
        address: String,
        /// What rustls or the server said.
        reason: String,
    },
    /// The server did not agree to HTTP/2.
    #[error("{address} does not speak HTTP/2 (ALPN h2)")]
    NotHttp2 {
        /// Where.
        address: String,
    },
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 with {address}: {source}")]
    Handshake {
        /// Where.
        address: String,
        /// Why.
        source: hyper::Error,
    },
    /// The connection closed before the request could go.
    #[error("the connection closed: {0}")]
    Closed(hyper::Error),
    /// The request failed on the way.
    #[error("the request failed: {0}")]
    Request(hyper::Error),
    /// APNs did not process the request: it refused the stream, or went away before
    /// it ([`crate::retry::unprocessed`]). Sent again at once, it cannot arrive twice.
    #[error("APNs did not process the request: {0}")]
    Unprocessed(hyper::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The last connection attempt failed a moment ago: none is made before its
    /// back-off ends, so a burst of pushes does not make a handshake each.
    #[error("not connecting to {address} again for {left:?}: the last attempt failed: {reason}")]
    Backoff {
        /// Where.
        address: String,
        /// How long until the next attempt.
        left: Duration,
        /// Why the last attempt failed.
        reason: String,
        /// Whether that was the configuration's fault.
        configuration: bool,
    },
}

impl AttemptError {
    /// Whether the configuration is at fault (a certificate, a server that is not
    /// APNs): attempts cannot succeed until the operator changes something.
    pub fn is_configuration(&self) -> bool {
        match self {
            AttemptError::Certificate { .. } | AttemptError::NotHttp2 { .. } => true,
            AttemptError::Backoff { configuration, .. } => *configuration,
            _ => false,
        }
    }
}

/// A request's failure as the sender acts on it: [`AttemptError::Unprocessed`] when
/// APNs said it did not process it.
fn request_failed(e: hyper::Error) -> AttemptError {
    let h2 = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<h2::Error>());
    if h2.is_some_and(crate::retry::unprocessed) {
        AttemptError::Unprocessed(e)
    } else {
        AttemptError::Request(e)
    }
}

/// What a failed TLS handshake says of a certificate, if that is why it failed.
fn certificate_refused(source: &std::io::Error) -> Option<String> {
    tls_certificate_refused(source.get_ref()?.downcast_ref::<rustls::Error>()?)
}

/// Whether `error` is about a certificate: this side's refusal of the server's, or
/// the server's alert about this side's.
fn tls_certificate_refused(error: &rustls::Error) -> Option<String> {
    use rustls::AlertDescription as Alert;
    let refused = match error {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType => true,
        // The server's alerts about the certificate this side presented.
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            Alert::BadCertificate
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::CertificateRequired
                | Alert::AccessDenied
        ),
        _ => false,
    };
    refused.then(|| error.to_string())
}

/// Where a connection's transport puts the server's refusal of this side's
/// certificate: in TLS 1.3 it comes after the handshake, as the first thing read.
type Refusal = Arc<std::sync::Mutex<Option<String>>>;

/// A TLS stream that notes a refusal of this side's certificate as it reads it,
/// before HTTP/2 turns the error into text.
struct Watched<S> {
    inner: S,
    refusal: Refusal,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let read = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Err(e)) = &read
            && let Some(reason) = certificate_refused(e)
        {
            *crate::lock(&self.refusal) = Some(reason);
        }
        read
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection's settings and the connection itself, once open.
pub(crate) struct Connection {
    tls: TlsConnector,
    server_name: ServerName<'static>,
    address: String,
    open: Mutex<Slot>,
}

/// The connection requests share, numbered so that a request that failed on one drops
/// that one, never the one another request opened since.
#[derive(Default)]
struct Slot {
    current: Option<(u64, SendRequest<Full<Bytes>>, Refusal)>,
    opened: u64,
    /// The last connection attempt failed: none before `until`.
    failed: Option<Failed>,
}

/// A failed connection attempt, and the back-off it started.
struct Failed {
    until: Instant,
    backoff: Duration,
    reason: String,
    configuration: bool,
}

/// The back-off after a first failed connection attempt; doubled after each that
/// follows, up to [`MAX_CONNECT_BACKOFF`].
const FIRST_CONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between connection attempts.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(60);

impl Connection {
    pub(crate) fn new(
        config: &config::Apns,
        client_auth: Option<ClientAuth>,
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
            open: Mutex::new(Slot::default()),
        })
    }

    /// The open connection, or a new one made within `within`, with its number. After
    /// a failed attempt, none is made until its back-off ends: the requests meanwhile
    /// fail at once.
    async fn connection(
        &self,
        within: Duration,
    ) -> Result<(u64, SendRequest<Full<Bytes>>, Refusal), AttemptError> {
        let mut slot = self.open.lock().await;
        if let Some((number, sender, refusal)) = slot.current.as_ref()
            && !sender.is_closed()
        {
            return Ok((*number, sender.clone(), refusal.clone()));
        }
        let now = Instant::now();
        if let Some(failed) = &slot.failed
            && now < failed.until
        {
            return Err(AttemptError::Backoff {
                address: self.address.clone(),
                left: failed.until.saturating_duration_since(now),
                reason: failed.reason.clone(),
                configuration: failed.configuration,
            });
        }
        // Timed here, inside the slot's lock, so that a server that never answers is
        // a failed attempt with its back-off, not a wait every queued request repeats.
        let opened = match tokio::time::timeout(within, self.open()).await {
            Ok(opened) => opened,
            Err(_) => Err(AttemptError::Connect {
                address: self.address.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection made within {} ms", within.as_millis()),
                ),
            }),
        };
        match opened {
            Ok((sender, refusal)) => {
                slot.failed = None;
                slot.opened = slot.opened.wrapping_add(1);
                slot.current = Some((slot.opened, sender.clone(), refusal.clone()));
                Ok((slot.opened, sender, refusal))
            }
            Err(e) => {
                let backoff = slot.failed.as_ref().map_or(FIRST_CONNECT_BACKOFF, |f| {
                    f.backoff.saturating_mul(2).min(MAX_CONNECT_BACKOFF)
                });
                slot.failed = Some(Failed {
                    // A moment the clock cannot hold is no back-off.
                    until: now.checked_add(backoff).unwrap_or(now),
                    backoff,
                    reason: e.to_string(),
                    configuration: e.is_configuration(),
                });
                Err(e)
            }
        }
    }

    /// A new connection: TCP, TLS with ALPN h2, HTTP/2; and where its transport puts
    /// the server's refusal of this side's certificate, should one come later.
    async fn open(&self) -> Result<(SendRequest<Full<Bytes>>, Refusal), AttemptError> {
        let address = || self.address.clone();
        let tcp = TcpStream::connect(self.address.as_str())
            .await
            .map_err(|source| AttemptError::Connect {
                address: address(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| match certificate_refused(&source) {
                Some(reason) => AttemptError::Certificate {
                    address: address(),
                    reason,
                },
                None => AttemptError::Tls {
                    address: address(),
                    source,
                },
            })?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(AttemptError::NotHttp2 { address: address() });
        }
        let refusal = Refusal::default();
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(Watched {
                inner: tls,
                refusal: refusal.clone(),
            }))
            .await
            .map_err(|source| AttemptError::Handshake {
                address: address(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::info!(error = %e, "APNs connection ended");
            }
        });
        Ok((sender, refusal))
    }

    /// Sends `request` and reads the answer within `timeout`. Any failure but a
    /// stream refused unprocessed drops the connection it was sent on: the next attempt
    /// opens a new one rather than trusting one that may have gone silently. The many requests a GOAWAY or a stall fails at
    /// once drop that connection once, not each the one opened after it.
    pub(crate) async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Outcome, AttemptError> {
        let mut sent_on = None;
        let mut refusal = None;
        // A failure the server's refusal of this side's certificate caused is said
        // as that (h2 keeps only the text of the I/O error that carried it).
        let refused = |e: hyper::Error,
                       refusal: &Option<Refusal>,
                       otherwise: fn(hyper::Error) -> AttemptError| {
            match refusal.as_ref().and_then(|r| crate::lock(r).clone()) {
                Some(reason) => AttemptError::Certificate {
                    address: self.address.clone(),
                    reason,
                },
                None => otherwise(e),
            }
        };
        let attempt = async {
            // Before the request's own timeout ends the wait, so that the failure is
            // the attempt's, with its back-off.
            let within = timeout.saturating_sub(timeout / 10);
            let (number, mut sender, certificate) = self.connection(within).await?;
            sent_on = Some(number);
            refusal = Some(certificate);
            sender
                .ready()
                .await
                .map_err(|e| refused(e, &refusal, AttemptError::Closed))?;
            let response = sender
                .send_request(request.map(|body| Full::new(Bytes::from(body))))
                .await
                .map_err(|e| refused(e, &refusal, request_failed))?;
            let (parts, body) = response.into_parts();
            // An answer whose body does not arrive whole is read by its status.
            let body = match Limited::new(body, apns_proto::MAX_BODY_LEN).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok(Outcome::from_response(&http::Response::from_parts(
                parts, body,
            )))
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(answer) => answer,
            Err(_) => Err(AttemptError::Timeout(timeout)),
        };
        // A stream refused unprocessed leaves its connection as it was: only that
        // stream ended (a GOAWAY ends the connection, and is dropped with it).
        let stream_only = matches!(&result, Err(AttemptError::Unprocessed(e))
            if std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<h2::Error>())
                .is_some_and(h2::Error::is_reset));
        if result.is_err()
            && !stream_only
            && let Some(failed) = sent_on
        {
            let mut slot = self.open.lock().await;
            if slot.current.as_ref().is_some_and(|(n, _, _)| *n == failed) {
                slot.current = None;
            }
        }
        result
    }
}
