//! Connections to push services: each of an origin's workers holds its HTTP/1.1
//! connection, or shares the origin's HTTP/2 one (chosen by ALPN), and leaves it for
//! the next burst; one the service closed meanwhile is replaced before anything is
//! sent on it, and a request a kept connection hands back unsent goes once more on a
//! new one, so nothing is sent twice.
//!
//! HTTP/2 is spoken with `h2` directly: a worker opens its stream and waits for the
//! answer in its own task, and the connection's task only reads and writes frames.
//! Through hyper's client, each request would cost a task of its own and a hop
//! through the connection's task, and its body would go out in a write of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::TokioIo;
use webpush_crypto::Origin;

use super::resolve::Resolver;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// No connection: DNS, the address rule, TCP or TLS.
    #[error("cannot connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake: {0}")]
    Handshake(hyper::Error),
    /// The HTTP/1.1 connection failed before or while the request went out.
    #[error("the request failed: {0}")]
    Request(hyper::Error),
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake: {0}")]
    Http2Handshake(h2::Error),
    /// The HTTP/2 connection or the request's stream failed before the answer came.
    #[error("the request failed over HTTP/2: {0}")]
    Http2(h2::Error),
    /// The push service ended the request's HTTP/2 stream before processing any of it
    /// (RFC 9113 §8.7: it refused the stream, or went away gracefully before it or
    /// before it opened): sent again, it cannot arrive twice.
    #[error("the push service did not process the request (HTTP/2): {0}")]
    Unprocessed(h2::Error),
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
    Http2(Http2),
}

/// An origin's HTTP/2 connection as its workers share it: the handle that opens
/// streams, and whether it takes new ones. It takes none once its task has ended, it
/// failed to open a stream, or a request on it went unanswered in time: the streams
/// already on it go on, and new requests go on a new connection.
#[derive(Clone)]
pub(super) struct Http2 {
    streams: h2::client::SendRequest<Bytes>,
    /// Set by whichever worker, or the connection's task, finds it done.
    closed: Arc<AtomicBool>,
}

impl Http2 {
    /// Takes no new requests.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes it to new requests, for every worker that shares it.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// An answer's body, read only so that its connection can carry the next request.
pub(super) enum Body {
    Http1(Incoming),
    Http2(h2::RecvStream),
}

impl Body {
    /// Reads and drops the body, `limit` octets at most, within `time`. An HTTP/1.1
    /// connection whose answer did not end within both cannot carry another request
    /// and is taken from `conn`; an HTTP/2 stream is reset when dropped, and its
    /// connection goes on. Either way the answer's status stands.
    pub(super) async fn discard(self, limit: usize, time: Duration, conn: &mut Option<Conn>) {
        let http1 = matches!(self, Body::Http1(_));
        if tokio::time::timeout(time, self.read(limit, conn))
            .await
            .is_err()
        {
            tracing::debug!(?time, "a push service's answer body did not end in time");
            if http1 {
                *conn = None;
            }
        }
    }

    async fn read(self, limit: usize, conn: &mut Option<Conn>) {
        match self {
            Body::Http1(body) => {
                if let Err(e) = http_body_util::Limited::new(body, limit).collect().await {
                    *conn = None;
                    tracing::debug!(error = %e, "a push service's answer body not read whole");
                }
            }
            Body::Http2(mut body) => {
                let mut read = 0usize;
                while let Some(chunk) = body.data().await {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            tracing::debug!(error = %e, "a push service's answer body not read whole");
                            return;
                        }
                    };
                    read = read.saturating_add(chunk.len());
                    if read > limit {
                        tracing::debug!(
                            limit,
                            "a push service's answer body over the limit: its stream is reset"
                        );
                        return;
                    }
                    // The connection's window is given back as the body is read.
                    if let Err(e) = body.flow_control().release_capacity(chunk.len()) {
                        tracing::debug!(error = %e, "HTTP/2 flow control");
                        return;
                    }
                }
            }
        }
    }
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

    /// Whether the pool's handle is the only one, so that dropping it closes the
    /// connection: an HTTP/1.1 one is handed out, never shared; an HTTP/2 one kept is
    /// shared with the origin's workers while they send.
    fn held_only_here(&self) -> bool {
        match self {
            Conn::Http1(_) => true,
            // The pool's handle and the connection's task.
            Conn::Http2(c) => Arc::strong_count(&c.closed) <= 2,
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
        !self.conn.is_closed() && now.saturating_duration_since(self.since) < IDLE_TIMEOUT
    }
}

/// The connector (resolver with the address rule, rustls, ALPN) and the connections
/// kept between bursts, per origin; closed or older than `IDLE_TIMEOUT` ones are dropped
/// whenever one is parked or taken.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector<Resolver>>,
    /// The address rule, for endpoints whose host is an address (the connector asks
    /// the resolver about names only).
    rule: Resolver,
    idle: std::sync::Mutex<HashMap<Origin, Vec<Idle>>>,
    /// One permit per connection open, held by the connection's task until its socket
    /// closes: `webpush.max_connections`, however many origins.
    open: Arc<tokio::sync::Semaphore>,
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
        let rule = Resolver::new(config.names.clone(), config.allow_local_push_service);
        let mut http = HttpConnector::new_with_resolver(rule.clone());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.request_timeout));
        // A service that stops taking what was sent (a zero window, a dead path)
        // ends its connection, and the connection's task, within a request's time;
        // an idle one that died unseen is found by keep-alive probes.
        #[cfg(target_os = "linux")]
        http.set_tcp_user_timeout(Some(config.request_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
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
            rule,
            idle: std::sync::Mutex::new(HashMap::new()),
            open: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
        })
    }

    /// A place for one more connection: at the bound, the connection kept idle the
    /// longest (of those no worker holds: dropping one a worker holds closes nothing)
    /// is closed to make room, else this waits for one to close (the request's timeout
    /// bounds the wait).
    async fn room(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ExchangeError> {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let oldest = {
            let mut idle = crate::lock(&self.idle);
            let oldest = idle
                .iter()
                .flat_map(|(origin, conns)| {
                    conns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.conn.held_only_here())
                        .map(move |(i, c)| (c.since, origin, i))
                })
                .min_by_key(|(since, _, _)| *since)
                .map(|(_, origin, i)| (origin.clone(), i));
            oldest.and_then(|(origin, i)| {
                let conns = idle.get_mut(&origin)?;
                let closed = (i < conns.len()).then(|| conns.swap_remove(i));
                if conns.is_empty() {
                    idle.remove(&origin);
                }
                closed
            })
        };
        // Dropped outside the lock: its task ends, and gives its permit back.
        drop(oldest);
        tracing::debug!("webpush.max_connections open: waiting for one to close");
        self.open
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ExchangeError::Connect(e.into()))
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
        // Stored endpoints passed the address rule, but this machine's addresses are
        // known only here, and may have changed since.
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        if let Some(ip) = literal.and_then(|h| h.parse::<std::net::IpAddr>().ok())
            && let Some(why) = self.rule.refusal(ip)
        {
            return Err(ExchangeError::Connect(
                format!("{ip} is not an address pushes may go to ({why})").into(),
            ));
        }
        let open = self.room().await?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
            .await
            .map_err(ExchangeError::Connect)?;
        let io = tower_service::Service::call(&mut connector, uri.clone())
            .await
            .map_err(ExchangeError::Connect)?;
        let conn = if io.connected().is_negotiated_h2() {
            let (streams, connection) = h2::client::Builder::new()
                .enable_push(false)
                // As hyper's client has them: a bound on what the service's headers
                // may make this side hold, and on streams before its SETTINGS.
                .max_header_list_size(MAX_ANSWER_HEADERS)
                .initial_max_send_streams(100)
                .handshake(TokioIo::new(io))
                .await
                .map_err(ExchangeError::Http2Handshake)?;
            let closed = Arc::new(AtomicBool::new(false));
            let ended = closed.clone();
            tokio::spawn(async move {
                let _open = open;
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "an HTTP/2 connection to a push service failed");
                }
                ended.store(true, Ordering::Release);
            });
            Conn::Http2(Http2 { streams, closed })
        } else {
            let (sender, connection) = http1::handshake(io)
                .await
                .map_err(ExchangeError::Handshake)?;
            tokio::spawn(async move {
                let _open = open;
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "an HTTP/1.1 connection to a push service failed");
                }
            });
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
        mut request: http::Request<Bytes>,
        conn: &mut Option<Conn>,
    ) -> Result<http::Response<Body>, ExchangeError> {
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
            match &mut current {
                Conn::Http1(c) => {
                    if let Err(e) = c.ready().await {
                        if fresh {
                            return Err(ExchangeError::Request(e));
                        }
                        continue;
                    }
                    let (outgoing, absolute) = origin_form(request.map(Full::new));
                    match c.try_send_request(outgoing).await {
                        Ok(response) => {
                            *conn = Some(current);
                            return Ok(response.map(Body::Http1));
                        }
                        Err(mut e) => match e.take_message() {
                            Some(unsent) if !fresh => {
                                // The body back from its wrapper, which holds it whole
                                // (one chunk, not copied).
                                let (head, body) = unsent.into_parts();
                                let Ok(body) = body.collect().await.map(|b| b.to_bytes());
                                request = http::Request::from_parts(head, body);
                                // Absolute again: the next connection is found by its
                                // URI, and may be HTTP/2, which carries the authority in it.
                                *request.uri_mut() = absolute;
                            }
                            _ => return Err(ExchangeError::Request(e.into_error())),
                        },
                    }
                }
                Conn::Http2(c) => {
                    // Fails if the connection has failed or was told to go away
                    // (nothing was sent then), and waits while this handle's last
                    // stream has not opened; the peer's limit on streams is kept by
                    // h2, which holds a new stream until one ends.
                    if let Err(e) = std::future::poll_fn(|cx| c.streams.poll_ready(cx)).await {
                        c.close();
                        if fresh {
                            return Err(failed(e));
                        }
                        continue;
                    }
                    let (head, body) = request.into_parts();
                    let end = body.is_empty();
                    let (answer, mut stream) = c
                        .streams
                        .send_request(http::Request::from_parts(head, ()), end)
                        .map_err(|e| {
                            if connection_failed(&e) {
                                c.close();
                            }
                            failed(e)
                        })?;
                    // Queued with the headers, so that both usually go out in one write.
                    if !end {
                        stream.send_data(body, true).map_err(ExchangeError::Http2)?;
                    }
                    // The worker's while the answer is awaited: one that does not
                    // come in time closes it to new requests.
                    *conn = Some(current);
                    let response = match answer.await {
                        Ok(response) => response,
                        Err(e) => {
                            if connection_failed(&e)
                                && let Some(Conn::Http2(c)) = conn.as_ref()
                            {
                                c.close();
                            }
                            return Err(failed(e));
                        }
                    };
                    return Ok(response.map(Body::Http2));
                }
            }
        }
    }
}

#[cfg(test)]
impl Http2 {
    /// The handle of a connection whose other end a test drives, open.
    pub(super) fn open(streams: h2::client::SendRequest<Bytes>) -> Self {
        Self {
            streams,
            closed: Arc::default(),
        }
    }
}

/// Whether an HTTP/2 error is its connection's, not one stream's: the service went
/// away, or the transport failed. Such a connection takes no new requests from any of
/// the workers that share it.
fn connection_failed(e: &h2::Error) -> bool {
    e.is_go_away() || e.is_io()
}

/// An HTTP/2 request's failure, opening its stream or awaiting its answer, as the
/// sender acts on it: [`ExchangeError::Unprocessed`] if the push service said it did
/// not process the stream ([`crate::retry::unprocessed`]).
fn failed(e: h2::Error) -> ExchangeError {
    if crate::retry::unprocessed(&e) {
        ExchangeError::Unprocessed(e)
    } else {
        ExchangeError::Http2(e)
    }
}

/// The longest header list an answer may have, in octets (HPACK's measure): a push
/// service answers with a status and a few headers.
const MAX_ANSWER_HEADERS: u32 = 16 * 1024;

/// How long a connection is kept between bursts.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The request as HTTP/1.1 sends it: the path in the request line, the authority in
/// `Host` (RFC 9112 §3.2); and the absolute URI it had, for a request that has to go
/// on another connection.
pub(super) fn origin_form<B>(mut request: http::Request<B>) -> (http::Request<B>, http::Uri) {
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
pub(super) mod tests {
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
        one_push_past(Conn::Http1(kept)).await;
        assert!(
            crate::lock(&written).is_empty(),
            "written on the gone connection"
        );
    }

    /// A push request to `url` (plain http allowed, for stand-ins), and its origin.
    fn push_to(url: &str) -> (Origin, http::Request<Bytes>) {
        let origin = webpush_crypto::Endpoint::new_allowing_plain_http(url)
            .unwrap()
            .origin()
            .clone();
        let request = http::Request::post(url)
            .body(Bytes::from_static(b"push"))
            .unwrap();
        (origin, request)
    }

    /// One push through a pool that kept `kept` for a push service stand-in's origin:
    /// it arrives once, over one new connection, which the worker then holds.
    async fn one_push_past(kept: Conn) {
        let service = crate::standin::PushService::start().await.unwrap();
        let mut config = crate::config::Config::with_database("unused".into()).webpush;
        config.allow_local_push_service = true;
        let pool = Pool::new(&config).unwrap();
        let (origin, request) = push_to(&service.endpoint("p/1"));
        pool.park(origin.clone(), kept);
        let mut conn = None;
        let response = pool.send(&origin, request, &mut conn).await.unwrap();
        assert_eq!(response.status(), 201);
        let arrived = service.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(arrived.len(), 1);
        assert_eq!(arrived[0].body, b"push");
        assert_eq!(service.connections(), 1);
        assert!(
            conn.is_some_and(|c| !c.is_closed()),
            "the new connection is kept"
        );
    }

    /// With `webpush.max_connections` open, a push to another origin closes the one
    /// kept idle the longest to make room, and waits while every one is in use.
    #[tokio::test]
    async fn connections_to_push_services_are_bounded_in_all() {
        let services = [
            crate::standin::PushService::start().await.unwrap(),
            crate::standin::PushService::start().await.unwrap(),
        ];
        let mut config = crate::config::Config::with_database("unused".into()).webpush;
        config.allow_local_push_service = true;
        config.max_connections = 1;
        let pool = Pool::new(&config).unwrap();
        let target = |service: &crate::standin::PushService| push_to(&service.endpoint("p/1"));
        let (a, request) = target(&services[0]);
        let mut conn = None;
        let answer = pool.send(&a, request, &mut conn).await.unwrap();
        assert_eq!(answer.status(), 201);
        pool.park(a.clone(), conn.take().unwrap());
        // The kept one makes room.
        let (b, request) = target(&services[1]);
        let answer = pool.send(&b, request, &mut conn).await.unwrap();
        assert_eq!(answer.status(), 201);
        assert!(crate::lock(&pool.idle).is_empty(), "the kept one closed");
        // Every one in use: the next waits until one closes.
        let (_, request) = target(&services[0]);
        let waiting = tokio::time::timeout(
            Duration::from_millis(300),
            pool.send(&a, request, &mut None),
        )
        .await;
        assert!(waiting.is_err(), "a second connection opened");
        let (_, request) = target(&services[0]);
        let mut other = None;
        let (answer, ()) = tokio::join!(pool.send(&a, request, &mut other), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn = None;
        });
        assert_eq!(answer.unwrap().status(), 201);
        assert_eq!(services[0].connections(), 2);
        assert_eq!(services[1].connections(), 1);
    }

    #[tokio::test]
    async fn no_push_goes_to_an_address_of_this_machine_written_in_the_endpoint() {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = crate::config::Config::with_database("unused".into()).webpush;
        let pool = Pool::new(&config).unwrap();
        let mut hosts = vec!["127.0.0.1".to_owned(), "[::ffff:127.0.0.1]".to_owned()];
        // The address this machine sends from to the world, whichever rule refuses it.
        if let Ok(outward) = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:443").and_then(|()| s.local_addr()))
        {
            hosts.push(outward.ip().to_string());
        }
        for host in hosts {
            let (origin, request) = push_to(&format!("https://{host}:{port}/p"));
            let Err(refused) = pool.send(&origin, request, &mut None).await else {
                panic!("{host}: a push went out");
            };
            assert!(
                matches!(refused, ExchangeError::Connect(_))
                    && refused
                        .to_string()
                        .contains("is not an address pushes may go to"),
                "{host}: {refused}"
            );
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "nothing connected");
    }

    #[tokio::test]
    async fn a_kept_connection_found_gone_before_the_request_is_replaced() {
        a_push_over_a_gone_connection(0).await;
    }

    #[tokio::test]
    async fn a_request_a_kept_connection_hands_back_unsent_goes_once_on_a_new_one() {
        a_push_over_a_gone_connection(1).await;
    }

    /// An HTTP/2 client and server over an in-memory pipe: the client's handle (its
    /// connection driven by a task of its own), and the server's connection.
    async fn h2_pair() -> (
        h2::client::SendRequest<Bytes>,
        h2::server::Connection<tokio::io::DuplexStream, Bytes>,
    ) {
        let (near, far) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(h2::server::handshake(far));
        let (client, connection) = h2::client::handshake(near).await.unwrap();
        tokio::spawn(connection);
        (client, server.await.unwrap().unwrap())
    }

    /// An in-memory HTTP/2 connection whose server refuses its first stream
    /// unprocessed (REFUSED_STREAM) and answers 201 to the others; a message for each
    /// stream it was asked to open.
    pub(in crate::webpush) async fn refusing_first_stream()
    -> (Http2, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let (client, mut server) = h2_pair().await;
        let (streams, opened) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut refuse = true;
            while let Some(Ok((_, mut respond))) = server.accept().await {
                let _ = streams.send(());
                if std::mem::take(&mut refuse) {
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                } else {
                    let answer = http::Response::builder().status(201).body(()).unwrap();
                    respond.send_response(answer, true).unwrap();
                }
            }
        });
        (Http2::open(client), opened)
    }

    /// The server sends `len` octets of body (without end if `None`); the reason the
    /// client reset the stream for, if it did before the body's end.
    async fn answer_with_body(
        mut respond: h2::server::SendResponse<Bytes>,
        len: Option<usize>,
    ) -> Option<h2::Reason> {
        let mut body = respond
            .send_response(http::Response::new(()), false)
            .unwrap();
        let mut left = len.unwrap_or(usize::MAX);
        while left > 0 {
            body.reserve_capacity(left.min(16 * 1024));
            let Some(Ok(granted)) = std::future::poll_fn(|cx| body.poll_capacity(cx)).await else {
                break;
            };
            left -= granted;
            if body
                .send_data(Bytes::from(vec![b'x'; granted]), left == 0)
                .is_err()
            {
                break;
            }
        }
        if left == 0 {
            return None;
        }
        std::future::poll_fn(|cx| body.poll_reset(cx)).await.ok()
    }

    const MAX_BODY: usize = 64 * 1024;

    #[tokio::test]
    async fn an_http2_answer_body_past_the_limit_resets_its_stream_and_frees_the_window() {
        let (mut client, mut server) = h2_pair().await;
        // A body without end, then one just under the connection's window (64 KiB),
        // which goes through only if the first one's unread octets were given back.
        let (reasons, mut reset) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let mut lens = vec![None, Some(60 * 1024)].into_iter();
            while let Some(Ok((_, respond))) = server.accept().await {
                let (len, reasons) = (lens.next().flatten(), reasons.clone());
                tokio::spawn(async move {
                    let _ = reasons.send(answer_with_body(respond, len).await).await;
                });
            }
        });
        for _ in 0..2 {
            std::future::poll_fn(|cx| client.poll_ready(cx))
                .await
                .unwrap();
            let request = http::Request::post("https://push.example/p/1")
                .body(())
                .unwrap();
            let (answer, _) = client.send_request(request, true).unwrap();
            let body = Body::Http2(answer.await.unwrap().into_body());
            // Ended by the limit, or by the body's end: not by the time.
            let mut conn = None;
            let read = body.discard(MAX_BODY, Duration::from_secs(600), &mut conn);
            tokio::time::timeout(Duration::from_secs(30), read)
                .await
                .expect("the read ends before its time");
        }
        assert_eq!(reset.recv().await, Some(Some(h2::Reason::CANCEL)));
        assert_eq!(
            reset.recv().await,
            Some(None),
            "the second body was not read whole"
        );
    }

    /// Sends one request through `pool` on `conn`, an in-memory HTTP/2 connection.
    async fn send_on(
        pool: &Pool,
        conn: &mut Option<Conn>,
    ) -> Result<http::Response<Body>, ExchangeError> {
        let url = "https://push.example/p/1";
        let origin = webpush_crypto::Endpoint::new(url).unwrap().origin().clone();
        let request = http::Request::post(url)
            .body(Bytes::from_static(b"push"))
            .unwrap();
        pool.send(&origin, request, conn).await
    }

    #[tokio::test]
    async fn a_stream_refused_unprocessed_is_told_apart_and_its_connection_kept() {
        let (shared, _) = refusing_first_stream().await;
        let config = crate::config::Config::with_database("unused".into()).webpush;
        let pool = Pool::new(&config).unwrap();
        let mut conn = Some(Conn::Http2(shared.clone()));
        let refused = send_on(&pool, &mut conn).await.map(|_| ()).unwrap_err();
        assert!(
            matches!(&refused, ExchangeError::Unprocessed(e) if e.reason() == Some(h2::Reason::REFUSED_STREAM)),
            "{refused:?}"
        );
        assert!(!shared.is_closed(), "a refused stream closes no connection");
        let answer = send_on(&pool, &mut conn).await.unwrap();
        assert_eq!(answer.status(), 201);
    }

    /// A request on a connection whose server goes away with `reason` before reading
    /// it (its last stream 0), or, with `read`, after it read the request: how the
    /// answer fails, and whether the connection is then closed to new requests.
    async fn gone_away(reason: h2::Reason, read: bool) -> (ExchangeError, bool) {
        let (client, mut server) = h2_pair().await;
        let (sent, wait) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = wait.await;
            let mut streams = Vec::new();
            if read && let Some(Ok(stream)) = server.accept().await {
                streams.push(stream);
            }
            server.abrupt_shutdown(reason);
            while let Some(Ok(stream)) = server.accept().await {
                streams.push(stream);
            }
        });
        let config = crate::config::Config::with_database("unused".into()).webpush;
        let pool = Pool::new(&config).unwrap();
        let shared = Http2::open(client);
        let mut conn = Some(Conn::Http2(shared.clone()));
        let answer = tokio::spawn(async move { send_on(&pool, &mut conn).await.map(|_| ()) });
        // The request is on its way before the server goes away.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent.send(()).unwrap();
        let failed = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the answer fails in time")
            .unwrap()
            .unwrap_err();
        (failed, shared.is_closed())
    }

    #[tokio::test]
    async fn a_stream_above_a_graceful_goaway_is_unprocessed_and_the_connection_closed() {
        let (failed, closed) = gone_away(h2::Reason::NO_ERROR, false).await;
        assert!(
            matches!(&failed, ExchangeError::Unprocessed(e) if e.is_go_away()),
            "{failed:?}"
        );
        assert!(closed, "a connection gone away is closed to new requests");
    }

    /// The error a new stream meets on a connection whose server went away with
    /// `reason` before it, as the sender classes it.
    async fn opened_after_goaway(reason: h2::Reason) -> ExchangeError {
        let (mut client, mut server) = h2_pair().await;
        tokio::spawn(async move {
            server.abrupt_shutdown(reason);
            while let Some(Ok(_)) = server.accept().await {}
        });
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match std::future::poll_fn(|cx| client.poll_ready(cx)).await {
                    Err(e) => break e,
                    // The GOAWAY not read yet.
                    Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await
        .expect("the GOAWAY arrives");
        failed(refused)
    }

    #[tokio::test]
    async fn a_stream_opened_after_a_goaway_is_unprocessed_only_if_it_was_graceful() {
        let failed = opened_after_goaway(h2::Reason::NO_ERROR).await;
        assert!(
            matches!(&failed, ExchangeError::Unprocessed(e) if e.is_go_away()),
            "{failed:?}"
        );
        // A service in trouble: the back-off, as for the streams it ended.
        let failed = opened_after_goaway(h2::Reason::INTERNAL_ERROR).await;
        assert!(
            matches!(&failed, ExchangeError::Http2(e) if e.is_go_away()),
            "{failed:?}"
        );
    }

    #[tokio::test]
    async fn a_goaway_with_an_error_code_or_after_the_stream_was_read_is_a_failure() {
        let (failed, _) = gone_away(h2::Reason::INTERNAL_ERROR, false).await;
        assert!(
            matches!(&failed, ExchangeError::Http2(e) if e.is_go_away()),
            "{failed:?}"
        );
        // Read before the GOAWAY: maybe processed, so not sent again at once.
        let (failed, _) = gone_away(h2::Reason::NO_ERROR, true).await;
        assert!(matches!(failed, ExchangeError::Http2(_)), "{failed:?}");
    }

    /// A kept HTTP/2 connection whose service has since sent GOAWAY, and whose flag
    /// says open (its task was not ours): the sender finds it gone when it asks for a
    /// stream, closes it for every worker that shares it, and sends the push once,
    /// over a new connection; nothing goes on the gone one.
    #[tokio::test]
    async fn a_kept_http2_connection_told_to_go_away_is_closed_for_all_and_replaced() {
        let (near, far) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(async move {
            let mut connection = h2::server::handshake(far).await.unwrap();
            connection.graceful_shutdown();
            let mut streams = 0;
            while let Some(Ok(_)) = connection.accept().await {
                streams += 1;
            }
            streams
        });
        let (streams, connection) = h2::client::handshake(near).await.unwrap();
        // Driven to its end by a task that does not mark the handle.
        tokio::spawn(connection).await.unwrap().unwrap();
        let kept = Http2::open(streams);
        let shared = kept.clone();
        one_push_past(Conn::Http2(kept)).await;
        assert!(shared.is_closed(), "closed for the workers that share it");
        assert_eq!(server.await.unwrap(), 0, "a stream on the gone connection");
    }
}
