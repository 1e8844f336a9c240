//! Connections to push services: each of an origin's workers holds its HTTP/1.1
//! connection, or shares the origin's HTTP/2 one (chosen by ALPN), and leaves it for
//! the next burst; one the service closed meanwhile is replaced before anything is
//! sent on it, and a request a kept connection hands back unsent goes once more on a
//! new one, so nothing is sent twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::TokioExecutor;
use webpush_crypto::Origin;

use super::resolve::Resolver;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// No connection: DNS, the address rule, TCP or TLS.
    #[error("cannot connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP handshake failed.
    #[error("HTTP handshake: {0}")]
    Handshake(hyper::Error),
    /// The connection failed before or while the request went out.
    #[error("the request failed: {0}")]
    Request(hyper::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A request could not be made (a VAPID token, the encryption).
    #[error("the request could not be made: {0}")]
    Build(#[from] webpush_crypto::Error),
}

/// A connection to a push service: a worker's own while the origin speaks HTTP/1.1
/// (one request at a time), or one the origin's workers share in HTTP/2 (streams).
/// Held by the worker, it costs no pool checkout per push.
pub(super) enum Conn {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    pub(super) fn is_http2(&self) -> bool {
        matches!(self, Conn::Http2(_))
    }

    pub(super) fn is_closed(&self) -> bool {
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

/// The connector (resolver with the address rule, rustls, ALPN) and the connections
/// kept between bursts, per origin; closed or older than `IDLE_TIMEOUT` ones are dropped
/// whenever one is parked or taken.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector<Resolver>>,
    idle: std::sync::Mutex<HashMap<Origin, Vec<Idle>>>,
}

/// The sender's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The certificates to trust cannot be read.
    #[error(transparent)]
    Roots(#[from] crate::tls::RootsError),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl Pool {
    /// Connections as `config` says: the platform's roots (and `ca_file`), ALPN h2 and
    /// http/1.1, the address rule at connect time, https only unless the test-only
    /// `allow_local_push_service`.
    pub(super) fn new(config: &crate::config::WebPush) -> Result<Self, SetupError> {
        let roots = crate::tls::roots(config.ca_file.as_deref())?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(Resolver::new(
            config.names.clone(),
            config.allow_local_push_service,
        ));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.request_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = if config.allow_local_push_service {
            builder.https_or_http()
        } else {
            builder.https_only()
        }
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
        // No redirects are followed: an answer is only ever read for its status.
        Ok(Self {
            connector,
            idle: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Keeps `conn` for the origin's next burst: each HTTP/1.1 connection (as many as
    /// workers had), one HTTP/2 connection. Drops what has closed or waited too long.
    pub(super) fn park(&self, origin: Origin, conn: Conn) {
        let now = Instant::now();
        let mut idle = crate::lock(&self.idle);
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
    async fn connect(
        &self,
        origin: &Origin,
        uri: &http::Uri,
    ) -> Result<(Conn, bool), ExchangeError> {
        let kept = {
            let now = Instant::now();
            let mut idle = crate::lock(&self.idle);
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
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
            .await
            .map_err(ExchangeError::Connect)?;
        let io = tower_service::Service::call(&mut connector, uri.clone())
            .await
            .map_err(ExchangeError::Connect)?;
        let conn = if io.connected().is_negotiated_h2() {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(ExchangeError::Handshake)?;
            tokio::spawn(connection);
            Conn::Http2(sender)
        } else {
            let (sender, connection) = http1::handshake(io)
                .await
                .map_err(ExchangeError::Handshake)?;
            tokio::spawn(connection);
            Conn::Http1(sender)
        };
        Ok((conn, false))
    }

    /// Sends `request` over the worker's connection, opening or taking one first if it
    /// has none. If a kept connection turns out closed before the request went out, the
    /// request goes once more on a new one: nothing was sent, so nothing is sent twice.
    pub(super) async fn send(
        &self,
        origin: &Origin,
        mut request: http::Request<Full<Bytes>>,
        conn: &mut Option<Conn>,
    ) -> Result<http::Response<Incoming>, ExchangeError> {
        let mut fresh = false;
        loop {
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
                    return Err(ExchangeError::Request(e));
                }
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
                        request = unsent;
                    }
                    _ => return Err(ExchangeError::Request(e.into_error())),
                },
            }
        }
    }
}

/// How long a connection is kept between bursts.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The request as HTTP/1.1 sends it: the path in the request line, the authority in
/// `Host` (RFC 9112 §3.2); and the absolute URI it had, for a request that has to go
/// on another connection.
pub(super) fn origin_form(
    mut request: http::Request<Full<Bytes>>,
) -> (http::Request<Full<Bytes>>, http::Uri) {
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
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use super::*;

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
        let service = crate::standin::PushService::start().await.unwrap();
        let mut config = crate::config::Config::with_database("unused".into()).webpush;
        config.allow_local_push_service = true;
        let pool = Pool::new(&config).unwrap();
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
        pool.park(origin.clone(), Conn::Http1(kept));

        let request = http::Request::post(url.as_str())
            .body(Full::new(Bytes::from_static(b"push")))
            .unwrap();
        let mut conn = None;
        let response = pool.send(&origin, request, &mut conn).await.unwrap();
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
}
