//! A local APNs stand-in: an HTTP/2 server over TLS (ALPN `h2`) with a certificate
//! made on the spot, which records every request and answers from a script. The demo
//! pushes to it, and the tests script it to answer as APNs does when things go wrong
//! (410 with a timestamp, 400, 403 `ExpiredProviderToken`, 429, 500, GOAWAY, a reset
//! connection, an answer slower than the sender's timeout). It also stands in for a
//! push service over HTTP/2 ([`Standin::start_counting`]), and [`PushService`] for one
//! over plain HTTP/1.1.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// What a stand-in saw: its connections, the requests it kept, how many arrived and
/// when the last did, and a wake-up for each arrival. Both stand-ins have one, and
/// answer its questions through it (they deref to it).
#[derive(Debug, Default)]
pub struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    /// How many arrived, kept or not, and when the last did.
    count: Mutex<(usize, Option<std::time::Instant>)>,
    arrived: Notify,
}

impl Seen {
    /// One more connection; its number, from 1.
    fn connected(&self) -> usize {
        self.connections.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A request arrived at `at`, not kept (a load run).
    fn arrive(&self, at: std::time::Instant) {
        {
            let mut count = lock(&self.count);
            *count = (count.0 + 1, Some(at));
        }
        self.arrived.notify_waiters();
    }

    /// A request arrived, kept.
    fn keep(&self, request: Recorded) {
        let at = request.at;
        lock(&self.requests).push(request);
        self.arrive(at);
    }

    /// Every request kept so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    /// How many requests arrived so far, kept or not, and when the last one did.
    pub fn received(&self) -> (usize, Option<std::time::Instant>) {
        *lock(&self.count)
    }

    /// How many connections were opened to it.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have arrived, or `timeout`; returns those kept.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let wait = async {
            loop {
                let arrived = self.arrived.notified();
                if self.received().0 >= n {
                    return;
                }
                arrived.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.requests()
    }
}

/// A running stand-in's address and task; the task stops with it.
struct Server {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request as it reached the stand-in.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// The headers, in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Which connection carried it, counted from 1.
    pub connection: usize,
    /// When it arrived whole.
    pub at: std::time::Instant,
}

impl Recorded {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for Recorded {
    /// The request as HTTP/2 carried it: pseudo-headers, headers, body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, ":method = {}", self.method)?;
        writeln!(f, ":scheme = https")?;
        writeln!(f, ":path = {}", self.path)?;
        writeln!(f, ":authority = {}", self.authority)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name} = {value}")?;
        }
        write!(f, "DATA {}", String::from_utf8_lossy(&self.body))
    }
}

/// How the stand-in answers one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Reply {
    /// A status and a body, as APNs answers (an `apns-id` header is added).
    Status(u16, &'static str),
    /// Answers `after` later with the inner reply: slower than a timeout.
    Slow(Duration, Box<Reply>),
    /// Sends GOAWAY on the connection (APNs's shutdown), and answers this stream with
    /// 503 `Shutdown`: later requests need a new connection.
    GoAway,
    /// Drops the connection without answering.
    Reset,
    /// Refuses the stream unprocessed (RST_STREAM with REFUSED_STREAM), as a server
    /// at its limit of streams may.
    Refused,
}

impl Reply {
    /// 200, delivered.
    pub const OK: Reply = Reply::Status(200, "");
}

struct State {
    /// Counts requests and answers 201 instead of recording and following the script:
    /// a push service over HTTP/2 for load runs.
    counting: bool,
    script: Mutex<VecDeque<Reply>>,
    /// An outage: every request is answered 503, the script waits.
    down: std::sync::atomic::AtomicBool,
    seen: Seen,
}

/// A running stand-in. It stops when dropped.
pub struct Standin {
    server: Server,
    ca_pem: String,
    state: Arc<State>,
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin")
            .field("address", &self.server.address)
            .finish_non_exhaustive()
    }
}

/// The stand-in cannot start.
#[derive(Debug, thiserror::Error)]
#[error("APNs stand-in: {0}")]
pub struct StandinError(String);

impl Standin {
    /// Starts on `127.0.0.1`, on a free port, answering 200 unless scripted otherwise.
    pub async fn start() -> Result<Self, StandinError> {
        Self::start_with(false).await
    }

    /// Starts one that stands in for a push service under load: every request is
    /// counted, not kept, and answered 201 ([`Seen::received`]).
    pub async fn start_counting() -> Result<Self, StandinError> {
        Self::start_with(true).await
    }

    async fn start_with(counting: bool) -> Result<Self, StandinError> {
        let error = |e: &dyn std::fmt::Display| StandinError(e.to_string());
        // A CA of its own, and a certificate for 127.0.0.1 and localhost signed by it:
        // the daemon is told to trust the CA (apns.ca_file), as it trusts Apple's.
        let ca_key = rcgen::KeyPair::generate().map_err(|e| error(&e))?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| error(&e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mailpushd APNs stand-in CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| error(&e))?;
        let key = rcgen::KeyPair::generate().map_err(|e| error(&e))?;
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(|e| error(&e))?;
        let cert = params.signed_by(&key, &ca).map_err(|e| error(&e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| error(&e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), CertificateDer::from(ca.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| error(&e))?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| error(&e))?;
        let address = listener.local_addr().map_err(|e| error(&e))?;
        let state = Arc::new(State {
            counting,
            script: Mutex::new(VecDeque::new()),
            down: std::sync::atomic::AtomicBool::new(false),
            seen: Seen::default(),
        });
        let task = tokio::spawn(accept(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            state.clone(),
        ));
        Ok(Self {
            server: Server { address, task },
            ca_pem: ca.pem(),
            state,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.server.address
    }

    /// The URL of `path` on it, as a push endpoint (https, its certificate's address).
    pub fn endpoint(&self, path: &str) -> String {
        format!("https://{}/{path}", self.server.address)
    }

    /// The CA certificate to trust, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Answers the next requests with `replies`, in order; 200 after them.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.script).extend(replies);
    }

    /// Starts (`true`) or ends an outage: meanwhile every request is answered 503
    /// `ServiceUnavailable`, as APNs does when it is down, and the script waits.
    pub fn set_down(&self, down: bool) {
        self.state
            .down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::ops::Deref for Standin {
    type Target = Seen;

    /// What it saw.
    fn deref(&self) -> &Seen {
        &self.state.seen
    }
}

use crate::lock;

async fn accept(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let number = state.seen.connected();
            let goaway = Arc::new(Notify::new());
            let reset = Arc::new(Notify::new());
            let service = {
                let (state, goaway, reset) = (state.clone(), goaway.clone(), reset.clone());
                service_fn(move |request| {
                    let (state, goaway, reset) = (state.clone(), goaway.clone(), reset.clone());
                    async move { answer(request, number, &state, &goaway, &reset).await }
                })
            };
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(tls), service);
            let mut connection = std::pin::pin!(connection);
            loop {
                tokio::select! {
                    _ = connection.as_mut() => return,
                    _ = goaway.notified() => connection.as_mut().graceful_shutdown(),
                    // Dropping the connection closes the socket mid-stream.
                    _ = reset.notified() => return,
                }
            }
        });
    }
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    connection: usize,
    state: &State,
    goaway: &Notify,
    reset: &Notify,
) -> Result<hyper::Response<Full<Bytes>>, h2::Error> {
    let (parts, body) = request.into_parts();
    if state.counting {
        let _ = body.collect().await;
        state.seen.arrive(std::time::Instant::now());
        return Ok(respond(201, ""));
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        authority: parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
            .collect(),
        body,
        connection,
        at: std::time::Instant::now(),
    };
    state.seen.keep(recorded);
    if state.down.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(respond(503, r#"{"reason":"ServiceUnavailable"}"#));
    }
    let mut reply = lock(&state.script).pop_front().unwrap_or(Reply::OK);
    loop {
        match reply {
            Reply::Slow(after, inner) => {
                tokio::time::sleep(after).await;
                reply = *inner;
            }
            Reply::Reset => {
                reset.notify_one();
                // Never answered: the connection goes first.
                std::future::pending::<()>().await;
            }
            Reply::GoAway => {
                goaway.notify_one();
                return Ok(respond(503, r#"{"reason":"Shutdown"}"#));
            }
            // hyper resets the stream with the reason of the h2 error the service
            // fails with.
            Reply::Refused => return Err(h2::Reason::REFUSED_STREAM.into()),
            Reply::Status(status, body) => return Ok(respond(status, body)),
        }
    }
}

fn respond(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "apns-id",
        http::HeaderValue::from_static("EC1BF194-B3B2-424A-89A9-5A918A6E7A9B"),
    );
    response
}

/// A push service stand-in (RFC 8030) on plain HTTP/1.1, for what a real one cannot be
/// made to answer: scripted statuses with their headers, slow answers. Requests are
/// recorded as they arrive.
pub struct PushService {
    server: Server,
    state: Arc<PushState>,
}

/// How the push service stand-in answers one request.
#[derive(Debug, Clone)]
pub struct PushReply {
    /// The status.
    pub status: u16,
    /// Extra headers (`Retry-After`, ...).
    pub headers: Vec<(&'static str, &'static str)>,
    /// Waits this long first.
    pub delay: Duration,
}

impl PushReply {
    /// A status, at once, without headers.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// What the push service stand-in does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Keeps it for the test to read, and answers from the script.
    Keep,
    /// Counts it, through hyper, and answers 201.
    Count,
    /// Counts it with the least work that frames HTTP/1.1, and answers 201.
    Sink,
}

struct PushState {
    mode: Mode,
    /// Closes a connection no request arrives on for this long, as push services do.
    idle_close: Option<Duration>,
    script: Mutex<VecDeque<PushReply>>,
    seen: Seen,
}

impl std::fmt::Debug for PushService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushService")
            .field("address", &self.server.address)
            .finish_non_exhaustive()
    }
}

impl PushService {
    /// Starts on `127.0.0.1`, on a free port, answering 201 unless scripted otherwise.
    pub async fn start() -> Result<Self, StandinError> {
        Self::start_with(Mode::Keep, None).await
    }

    /// Like [`PushService::start`], closing each connection that carries no request for
    /// `idle`, as push services close idle ones.
    pub async fn start_closing_idle(idle: Duration) -> Result<Self, StandinError> {
        Self::start_with(Mode::Keep, Some(idle)).await
    }

    /// Starts one that only counts requests and answers 201, for load: nothing is kept,
    /// so [`Seen::requests`] stays empty and [`Seen::received`] counts.
    pub async fn start_counting() -> Result<Self, StandinError> {
        Self::start_with(Mode::Count, None).await
    }

    /// Like [`PushService::start_counting`], with the least work that still frames each
    /// HTTP/1.1 request (headers, `Content-Length`, body) instead of a full server: for
    /// load runs that should measure the sender, not the stand-in.
    pub async fn start_sink() -> Result<Self, StandinError> {
        Self::start_with(Mode::Sink, None).await
    }

    async fn start_with(mode: Mode, idle_close: Option<Duration>) -> Result<Self, StandinError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| StandinError(e.to_string()))?;
        let address = listener
            .local_addr()
            .map_err(|e| StandinError(e.to_string()))?;
        let state = Arc::new(PushState {
            mode,
            idle_close,
            script: Mutex::new(VecDeque::new()),
            seen: Seen::default(),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                let _ = tcp.set_nodelay(true);
                let number = state.seen.connected();
                if state.mode == Mode::Sink {
                    tokio::spawn(sink(tcp, state));
                    continue;
                }
                tokio::spawn(async move {
                    let idle_close = state.idle_close;
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { push_answer(request, number, &state).await }
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    if let Some(idle) = idle_close {
                        // The wait for a request's head is the idle time.
                        builder.timer(TokioTimer::new()).header_read_timeout(idle);
                    }
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        Ok(Self {
            server: Server { address, task },
            state,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.server.address
    }

    /// An endpoint on it.
    pub fn endpoint(&self, path: &str) -> String {
        format!("http://{}/{path}", self.server.address)
    }

    /// Answers the next requests with `replies`, in order; 201 after them.
    pub fn script(&self, replies: impl IntoIterator<Item = PushReply>) {
        lock(&self.state.script).extend(replies);
    }
}

impl std::ops::Deref for PushService {
    type Target = Seen;

    /// What it saw.
    fn deref(&self) -> &Seen {
        &self.state.seen
    }
}

/// Reads HTTP/1.1 requests off `tcp` and answers each 201, counting them.
async fn sink(mut tcp: tokio::net::TcpStream, state: Arc<PushState>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CREATED: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
    // Read straight into the buffer, which keeps its capacity between requests.
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let mut answered = 0;
        while let Some(length) = request_length(buffer.get(answered..).unwrap_or_default()) {
            answered += length;
            state.seen.arrive(std::time::Instant::now());
            if tcp.write_all(CREATED).await.is_err() {
                return;
            }
        }
        buffer.drain(..answered);
        match tcp.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The length of the request `octets` start with (head, then a body of its
/// Content-Length), once all of it is there.
fn request_length(octets: &[u8]) -> Option<usize> {
    let head = octets.windows(4).position(|w| w == b"\r\n\r\n")?;
    let body = octets
        .get(..head)?
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            if !name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
                return None;
            }
            std::str::from_utf8(value.get(1..)?)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    let length = head + 4 + body;
    (octets.len() >= length).then_some(length)
}

async fn push_answer(
    request: hyper::Request<hyper::body::Incoming>,
    connection: usize,
    state: &PushState,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let at = std::time::Instant::now();
    if state.mode == Mode::Keep {
        state.seen.keep(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            authority: parts
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
                .collect(),
            body,
            connection,
            at,
        });
    } else {
        state.seen.arrive(at);
    }
    let reply = lock(&state.script)
        .pop_front()
        .unwrap_or_else(|| PushReply::status(201));
    tokio::time::sleep(reply.delay).await;
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_sink_frames_requests_on_one_connection() {
        let sink = PushService::start_sink().await.unwrap();
        let mut tcp = tokio::net::TcpStream::connect(sink.address())
            .await
            .unwrap();
        // A body that looks like the end of a head must not end the request early.
        let body = b"\r\n\r\nPOST / HTTP/1.1\r\n\r\n";
        let request = format!(
            "POST /p/1 HTTP/1.1\r\nhost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut both = request.into_bytes();
        both.extend_from_slice(body);
        both.extend_from_slice(b"POST /p/2 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
        // Split mid-head, as TCP may deliver it.
        let (first, second) = both.split_at(10);
        tcp.write_all(first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tcp.write_all(second).await.unwrap();
        let created = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        let mut answers = vec![0u8; created.len() * 2];
        tcp.read_exact(&mut answers).await.unwrap();
        assert_eq!(answers, [&created[..], &created[..]].concat());
        assert_eq!(sink.received().0, 2);
    }
}
