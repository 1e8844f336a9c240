//! The IMAP front: a front door for IMAP clients. Clients connect to mailpushd (TLS on
//! 993, or STARTTLS on 143), which relays each session to the IMAP server and answers
//! `XAPPLEPUSHSERVICE` and the WEBPUSH family itself, through the service core, for
//! the user the server accepted. So any IMAP server gets both push extensions without
//! a plugin; mail events still come from the server (the Lua and OX drivers, or
//! `/notify`).
//!
//! `certs` chooses certificates by SNI and reads renewed ones; `session` relays;
//! `intercept` says what a command is and reads user names; `answer` answers the push
//! commands; `proxy` writes the PROXY v2 header that tells the server who the client
//! is.

mod answer;
mod certs;
mod intercept;
mod proxy;
mod session;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use imap_syntax::framing::{Frame, Framer};
use imap_webpush_proto::state::ConnectionIds;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub use certs::CertificateError;
use session::{Io, SessionEnd};

use crate::config::Front as FrontConfig;
use crate::core::{Core, FRONT_HEARTBEAT};
use crate::metrics::Metrics;
use crate::rate::{AtOnce, Rate, Verdict, WhenFull};

/// How often the certificate files are looked at for a renewal.
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// How long a client may take over its TLS handshake, and over the plain-text part
/// of a STARTTLS session.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long connecting to the IMAP server (and its greeting) may take.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Client addresses counted in a minute at most, for the connection rate. Past them,
/// an address not yet counted connects uncounted ([`WhenFull::Allow`]): `max_sessions`
/// still bounds what is open.
const MAX_ADDRESSES: usize = 100_000;

/// The longest line a client may send before `STARTTLS`.
const MAX_PLAIN_LINE: usize = 1024;

/// The front cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontError {
    /// A certificate cannot be served.
    #[error("IMAP front: {0}")]
    Certificate(#[from] CertificateError),
    /// A listening address cannot be bound.
    #[error("IMAP front: cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file for the IMAP server cannot be read.
    #[error("IMAP front: {0}")]
    Roots(#[from] crate::tls::RootsError),
    /// The name to verify the IMAP server by is not one.
    #[error("IMAP front: front.backend_tls_name {0:?} is not a server name")]
    BackendName(String),
    /// No connection ids can be drawn.
    #[error("IMAP front: no randomness for connection ids")]
    Randomness,
    /// The front cannot say it is alive in the store.
    #[error("IMAP front: its instance cannot be stored: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// What every session shares.
pub(crate) struct Context {
    core: Arc<Core>,
    front: FrontConfig,
    metrics: Arc<Metrics>,
    acceptor: TlsAcceptor,
    backend_tls: Option<(TlsConnector, ServerName<'static>)>,
    ids: Mutex<ConnectionIds>,
    rate: Mutex<Rate>,
    /// The sessions each client address has open and not logged in on.
    unauthenticated: Arc<AtOnce<IpAddr>>,
    sessions: Arc<Semaphore>,
}

/// Which listener a client came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    ImplicitTls,
    StartTls,
    Plain,
}

impl Listener {
    fn label(self) -> &'static str {
        match self {
            Listener::ImplicitTls => "implicit_tls",
            Listener::StartTls => "starttls",
            Listener::Plain => "plain",
        }
    }
}

/// The front's listeners, bound.
pub struct Front {
    context: Arc<Context>,
    listeners: Vec<(Listener, TcpListener, SocketAddr)>,
    certificates: Arc<certs::Certificates>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("listening", &self.addresses())
            .finish_non_exhaustive()
    }
}

impl Front {
    /// Loads the certificates and binds the listeners `config` names.
    pub async fn bind(
        core: Arc<Core>,
        config: &FrontConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, FrontError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certificates = Arc::new(certs::Certificates::load(
            provider.clone(),
            &config.certificates,
        )?);
        let server = certs::server_config(provider.clone(), certificates.clone())?;
        let backend_tls = match &config.backend_tls {
            None => None,
            Some(tls) => {
                let roots = crate::tls::roots(tls.ca_file.as_deref())?;
                let client = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(CertificateError::Tls)?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(tls.server_name.clone())
                    .map_err(|_| FrontError::BackendName(tls.server_name.clone()))?;
                Some((TlsConnector::from(Arc::new(client)), name))
            }
        };
        let mut listeners = Vec::new();
        for (kind, address) in [
            (Listener::ImplicitTls, config.implicit_tls),
            (Listener::StartTls, config.starttls),
            (Listener::Plain, config.plain),
        ] {
            let Some(address) = address else { continue };
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| FrontError::Listen { address, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| FrontError::Listen { address, source })?;
            listeners.push((kind, listener, bound));
        }
        let ids = ConnectionIds::new(&mut rand_core::OsRng).map_err(|_| FrontError::Randomness)?;
        // Stored before any session can silence under it: a crash at any time after
        // leaves a front the other daemons see die.
        core.front_alive(ids.instance()).await?;
        let context = Arc::new(Context {
            core,
            front: config.clone(),
            metrics,
            acceptor: TlsAcceptor::from(server),
            backend_tls,
            ids: Mutex::new(ids),
            rate: Mutex::new(Rate::new(
                config.max_connects_per_address_per_minute,
                MAX_ADDRESSES,
                WhenFull::Allow,
            )),
            unauthenticated: AtOnce::new(config.max_unauthenticated_per_address),
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
        });
        Ok(Self {
            context,
            listeners,
            certificates,
        })
    }

    /// Where it listens: the implicit-TLS address first, then the STARTTLS one, then the
    /// plain one (those configured).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, _, a)| *a).collect()
    }

    /// Serves until `stop` says so: one task per listener, one that reads renewed
    /// certificates, and one that says every [`FRONT_HEARTBEAT`] that the front is
    /// alive, and once its sessions ended at the stop, that it stopped.
    pub(crate) fn spawn(self, stop: watch::Receiver<bool>) -> Vec<(&'static str, JoinHandle<()>)> {
        for warning in warnings(&self.context.front) {
            tracing::warn!(backend = %self.context.front.backend, "IMAP front: {warning}");
        }
        let mut tasks = vec![(
            "IMAP front heartbeat",
            tokio::spawn(heartbeat(self.context.clone(), stop.clone())),
        )];
        for (kind, listener, address) in self.listeners {
            tracing::info!(%address, listener = kind.label(), backend = %self.context.front.backend, "IMAP front listening");
            if kind == Listener::Plain && !address.ip().to_canonical().is_loopback() {
                tracing::warn!(%address, "IMAP front: a plain-text listener off loopback: passwords cross the network in the clear");
            }
            tasks.push((
                "IMAP front listener",
                tokio::spawn(accept(self.context.clone(), kind, listener, stop.clone())),
            ));
        }
        let certificates = self.certificates;
        let mut stopped = stop;
        tasks.push((
            "IMAP front certificates",
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(RELOAD_INTERVAL) => {
                            let certificates = certificates.clone();
                            let _ = tokio::task::spawn_blocking(move || certificates.reload_changed()).await;
                        }
                        _ = stopped.changed() => return,
                    }
                }
            }),
        ));
        tasks
    }
}

/// How long a stopping front waits for its sessions to store their ends before it
/// says it stopped; past it, the front is left to be seen dead.
const SESSIONS_END_TIMEOUT: Duration = Duration::from_secs(10);

/// Says every [`FRONT_HEARTBEAT`] that the front is alive, until `stop`; then, once its
/// sessions ended (each ending its silences), that it stopped.
async fn heartbeat(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let instance = crate::lock(&context.ids).instance();
    let mut every = tokio::time::interval(FRONT_HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = context.core.front_alive(instance).await {
                    tracing::error!(error = %e, "IMAP front: its heartbeat not stored: after five minutes without one, other daemons end its sessions' silences");
                }
            }
            _ = stop.changed() => break,
        }
    }
    // Every session holds a permit until it stored its end.
    let all = u32::try_from(context.front.max_sessions).unwrap_or(u32::MAX);
    match tokio::time::timeout(SESSIONS_END_TIMEOUT, context.sessions.acquire_many(all)).await {
        Ok(Ok(_)) => context.core.front_stopped(instance).await,
        Ok(Err(_)) | Err(_) => tracing::warn!(
            "IMAP front: sessions still ending at the stop: the daemons end their silences in five minutes"
        ),
    }
}

/// What the configuration of the connection to the server risks, said at start.
fn warnings(front: &FrontConfig) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if front.backend_tls.is_none() && !on_loopback(&front.backend) {
        warnings.push("the connection to the IMAP server is plain text and not to this machine: passwords cross the network in the clear (set backend_tls_name)");
    }
    if !front.proxy_protocol {
        warnings.push("without proxy_protocol the IMAP server sees every client at the front's address: keep that address out of its login_trusted_networks, or any client may claim another address with ID");
    }
    warnings
}

/// Whether `host:port` names this machine: a loopback address or `localhost`.
fn on_loopback(backend: &str) -> bool {
    let host = backend.rsplit_once(':').map_or(backend, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Accepts clients on one listener until `stop` says so.
async fn accept(
    context: Arc<Context>,
    kind: Listener,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    // At the bound, nothing more is accepted until a session ends.
    while let Some((stream, peer, permit)) = crate::accept::next(
        &context.sessions,
        &mut stop,
        || listener.accept(),
        kind.label(),
    )
    .await
    {
        let verdict = crate::lock(&context.rate).check(&rate_key(peer.ip()), Instant::now());
        if let Verdict::Refused { first } = verdict {
            context.metrics.front_session(kind.label(), "rate_limited");
            // Said once a minute per address, however many the client opens.
            if first {
                tracing::info!(client = %peer, "IMAP front: too many connections from this address: closed, and the rest of this minute's");
            }
            continue;
        }
        // Sessions that never log in hold their permits for minutes each: one address
        // holding many would soon hold them all.
        let Some(unauthenticated) = context.unauthenticated.hold(rate_key(peer.ip())) else {
            context
                .metrics
                .front_session(kind.label(), "too_many_unauthenticated");
            tracing::debug!(client = %peer, "IMAP front: too many sessions not logged in from this address: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let stop = stop.clone();
        // The handshakes in a box of their own, freed once they are done: an idle
        // session then holds only what relaying needs, not the room its setup took.
        tokio::spawn(async move {
            context.metrics.front_open().inc();
            let mut stop = stop;
            // A stop ends a session still being set up (handshakes take up to a
            // minute): the stopping front waits for every session to end.
            let prepared = tokio::select! {
                prepared = Box::pin(prepare(&context, kind, stream, peer)) => prepared,
                _ = stop.changed() => Err(SessionEnd::Stopping),
            };
            let end = match prepared {
                Ok(ready) => {
                    session::relay(
                        &context,
                        ready.client,
                        ready.server,
                        ready.read_ahead,
                        ready.connection,
                        unauthenticated,
                        stop,
                    )
                    .await
                }
                Err(end) => end,
            };
            drop(permit);
            ended(&context, peer, &end);
        });
    }
}

/// A session ended: counted and said.
fn ended(context: &Context, peer: SocketAddr, end: &SessionEnd) {
    context.metrics.front_open().dec();
    match end {
        SessionEnd::ClientClosed | SessionEnd::ServerClosed | SessionEnd::Stopping => {
            tracing::debug!(client = %peer, reason = %end, "IMAP front: session ended");
        }
        other => tracing::info!(client = %peer, reason = %other, "IMAP front: session ended"),
    }
}

/// A session ready to relay: the client (greeted unless the server's greeting is in
/// `read_ahead`), the server, and the connection's id.
struct Ready {
    client: Box<dyn Io>,
    server: Box<dyn Io>,
    read_ahead: BytesMut,
    connection: imap_webpush_proto::state::ConnectionId,
}

/// One client, from its first octet to a session ready to relay (or its end).
async fn prepare(
    context: &Context,
    kind: Listener,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<Ready, SessionEnd> {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(source) => {
            return Err(SessionEnd::Io {
                side: "client",
                source,
            });
        }
    };
    let client = match kind {
        Listener::ImplicitTls => tls(context, stream).await,
        Listener::StartTls => match plain_text(stream).await {
            Ok(Some(stream)) => tls(context, stream).await,
            Ok(None) => return Err(SessionEnd::ClientClosed),
            Err(end) => return Err(end),
        },
        Listener::Plain => {
            let client_info = proxy::Client {
                source: peer,
                destination: local,
                tls: None,
                server_name: None,
            };
            return connect_server(context, kind, Box::new(stream), &client_info).await;
        }
    };
    let client = match client {
        Ok(client) => client,
        Err(end) => {
            context
                .metrics
                .front_session(kind.label(), "handshake_failed");
            return Err(end);
        }
    };
    let (_, connection) = client.get_ref();
    let tls_version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
        Some(_) => Some("TLSv1.2"),
        None => None,
    };
    let server_name = connection.server_name().map(str::to_owned);
    let client_info = proxy::Client {
        source: peer,
        destination: local,
        tls: tls_version,
        server_name,
    };
    connect_server(context, kind, Box::new(client), &client_info).await
}

/// Connects `client` (come in by `kind`) to the IMAP server.
async fn connect_server(
    context: &Context,
    kind: Listener,
    mut client: Box<dyn Io>,
    client_info: &proxy::Client,
) -> Result<Ready, SessionEnd> {
    let (server, mut read_ahead) = match backend(context, client_info).await {
        Ok(connected) => connected,
        Err(e) => {
            tracing::error!(error = %e, "IMAP front: the IMAP server cannot be reached");
            context
                .metrics
                .front_session(kind.label(), "server_unavailable");
            let _ = client
                .write_all(b"* BYE [UNAVAILABLE] The IMAP server cannot be reached.\r\n")
                .await;
            return Err(SessionEnd::ServerClosed);
        }
    };
    if kind == Listener::StartTls {
        // The client was greeted before STARTTLS: the server's greeting is not a
        // second one, unless it says goodbye. (Otherwise it goes through the relay,
        // its capability list edited.)
        let greeting_len = imap_syntax::framing::line_len(&read_ahead).unwrap_or(read_ahead.len());
        if read_ahead.starts_with(b"* BYE") {
            let _ = client.write_all(&read_ahead).await;
            return Err(SessionEnd::ServerClosed);
        }
        let _ = read_ahead.split_to(greeting_len);
    }
    context.metrics.front_session(kind.label(), "relayed");
    let connection = crate::lock(&context.ids).next_id();
    Ok(Ready {
        client,
        server,
        read_ahead,
        connection,
    })
}

/// The TLS handshake with a client.
async fn tls(
    context: &Context,
    stream: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, SessionEnd> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, context.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(SessionEnd::Io {
            side: "client's TLS handshake",
            source,
        }),
        Err(_) => Err(SessionEnd::TimedOut("the client's TLS handshake")),
    }
}

/// What the connection rate counts of a client's address: an IPv4 address whole, an
/// IPv6 one by its /64, one site's network, whose hosts choose (and, for privacy,
/// change) their own addresses in it; an IPv4-mapped one as the IPv4 address.
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// What a STARTTLS listener says before TLS: it greets, lists what it can do, and
/// takes `STARTTLS`; it refuses a login in plain text. The stream, once `STARTTLS` is
/// accepted; `None` when the client left. All of it, writes included, within
/// [`HANDSHAKE_TIMEOUT`]: a client that sends commands and never reads the answers
/// would otherwise hold its session (and its permit) for good.
async fn plain_text(stream: TcpStream) -> Result<Option<TcpStream>, SessionEnd> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    tokio::time::timeout_at(deadline, before_tls(stream, deadline))
        .await
        .unwrap_or(Err(SessionEnd::TimedOut("the client before STARTTLS")))
}

/// [`plain_text`]'s exchange, its reads within `deadline`.
async fn before_tls(
    mut stream: TcpStream,
    deadline: tokio::time::Instant,
) -> Result<Option<TcpStream>, SessionEnd> {
    const CAPABILITIES: &str = "IMAP4rev1 STARTTLS LOGINDISABLED";
    let greeting = format!("* OK [CAPABILITY {CAPABILITIES}] Ready.\r\n");
    said(&mut stream, &greeting).await?;
    let mut framer = Framer::new(MAX_PLAIN_LINE);
    let mut buffer = BytesMut::with_capacity(MAX_PLAIN_LINE);
    loop {
        let frame = framer.frame(&buffer);
        let len = match frame {
            Frame::Line(len) => len,
            Frame::TooLong { discard } => {
                let _ = buffer.split_to(discard);
                said(&mut stream, "* BAD Line too long.\r\n").await?;
                continue;
            }
            Frame::Discard(n) if n > 0 => {
                let _ = buffer.split_to(n);
                continue;
            }
            Frame::Incomplete {
                continuation: Some(_),
            } => {
                // A literal before TLS: refused, so that nothing is sent in the clear.
                let n = framer.refuse_literal();
                let _ = buffer.split_to(n.min(buffer.len()));
                said(&mut stream, "* BAD Use STARTTLS first.\r\n").await?;
                continue;
            }
            _ => {
                buffer.reserve(MAX_PLAIN_LINE);
                let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buffer)).await;
                match read {
                    Ok(Ok(0)) => return Ok(None),
                    Ok(Ok(_)) => continue,
                    Ok(Err(source)) => {
                        return Err(SessionEnd::Io {
                            side: "client",
                            source,
                        });
                    }
                    Err(_) => {
                        let _ = stream
                            .write_all(b"* BYE Autologout; use STARTTLS.\r\n")
                            .await;
                        return Err(SessionEnd::TimedOut("the client before STARTTLS"));
                    }
                }
            }
        };
        let line = buffer.split_to(len);
        let Some((tag, name, _)) = imap_syntax::relay::command(&line) else {
            said(&mut stream, "* BAD Error in IMAP command.\r\n").await?;
            continue;
        };
        let tag = tag.as_str().to_owned();
        let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
        let answer = if is("STARTTLS") {
            said(
                &mut stream,
                &format!("{tag} OK Begin TLS negotiation now.\r\n"),
            )
            .await?;
            if !buffer.is_empty() {
                // Octets sent after STARTTLS in the clear are never read as if they
                // came through TLS.
                tracing::info!("IMAP front: octets after STARTTLS before the handshake: dropped");
            }
            return Ok(Some(stream));
        } else if is("CAPABILITY") {
            format!("* CAPABILITY {CAPABILITIES}\r\n{tag} OK Capability completed.\r\n")
        } else if is("NOOP") {
            format!("{tag} OK NOOP completed.\r\n")
        } else if is("LOGOUT") {
            said(
                &mut stream,
                &format!("* BYE Logging out.\r\n{tag} OK Logout completed.\r\n"),
            )
            .await?;
            return Ok(None);
        } else if is("LOGIN") || is("AUTHENTICATE") {
            format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first.\r\n")
        } else {
            format!("{tag} BAD Use STARTTLS first.\r\n")
        };
        said(&mut stream, &answer).await?;
    }
}

/// Writes the front's own `text` to a client before TLS.
async fn said(stream: &mut TcpStream, text: &str) -> Result<(), SessionEnd> {
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|source| SessionEnd::Io {
            side: "client",
            source,
        })
}

/// Why the IMAP server cannot be used.
#[derive(Debug, thiserror::Error)]
enum BackendError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} took too long")]
    TimedOut { address: String },
    #[error("{address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} closed the connection before its greeting")]
    NoGreeting { address: String },
}

/// Connects to the IMAP server for `client`: the PROXY header, TLS if configured, and
/// what it sent up to the end of its greeting (returned, not yet sent on).
async fn backend(
    context: &Context,
    client: &proxy::Client,
) -> Result<(Box<dyn Io>, BytesMut), BackendError> {
    let address = context.front.backend.clone();
    let connected = async {
        let mut stream =
            TcpStream::connect(&address)
                .await
                .map_err(|source| BackendError::Connect {
                    address: address.clone(),
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        let io = |source| BackendError::Io {
            address: address.clone(),
            source,
        };
        if context.front.proxy_protocol {
            stream.write_all(&proxy::header(client)).await.map_err(io)?;
        }
        let mut stream: Box<dyn Io> = match &context.backend_tls {
            None => Box::new(stream),
            Some((connector, name)) => {
                Box::new(connector.connect(name.clone(), stream).await.map_err(io)?)
            }
        };
        // Up to the end of its greeting (and whatever came with it, which the relay
        // reads first).
        let mut read = BytesMut::with_capacity(1024);
        while imap_syntax::framing::line_len(&read).is_none() {
            if read.len() > context.front.max_line {
                break;
            }
            read.reserve(1024);
            if stream.read_buf(&mut read).await.map_err(io)? == 0 {
                return Err(BackendError::NoGreeting {
                    address: address.clone(),
                });
            }
        }
        Ok((stream, read))
    };
    match tokio::time::timeout(BACKEND_TIMEOUT, connected).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::TimedOut {
            address: context.front.backend.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_an_ipv6_client_by_its_64() {
        let key = |ip: &str| rate_key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    /// A plain-text connection to a server elsewhere, and no PROXY header, are said at
    /// start; the default (PROXY header, a server on this machine) says nothing.
    #[test]
    fn a_risky_connection_to_the_server_is_said() {
        let config = crate::config::Config::from_toml(
            "[front]\nplain = \"127.0.0.1:1143\"\nbackend = \"127.0.0.1:10143\"\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        let mut front = config.front.unwrap();
        assert!(warnings(&front).is_empty());
        for here in [
            "localhost:143",
            "[::1]:143",
            "127.0.0.2:143",
            "[::ffff:127.0.0.1]:143",
        ] {
            assert!(on_loopback(here), "{here}");
        }
        for elsewhere in ["imap.example.org:143", "192.0.2.1:143", "[2001:db8::1]:143"] {
            assert!(!on_loopback(elsewhere), "{elsewhere}");
        }
        front.backend = "imap.internal.example.org:143".into();
        front.proxy_protocol = false;
        let said = warnings(&front);
        assert!(said[0].contains("plain text") && said[1].contains("login_trusted_networks"));
        front.backend_tls = Some(crate::config::BackendTls {
            server_name: "imap.internal.example.org".into(),
            ca_file: None,
        });
        assert_eq!(warnings(&front).len(), 1);
    }

    /// A client that sends commands before STARTTLS and never reads the answers is let
    /// go at the deadline, however its writes block.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_before_starttls_is_let_go() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // Small buffers, so that the answers back up after a few hundred lines.
        socket.set_send_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let mut client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let writer = tokio::spawn(async move {
            let noops = b"a NOOP\r\n".repeat(200_000);
            // Blocks once the front stops reading, until it lets go.
            let _ = client.write_all(&noops).await;
            client
        });
        let started = tokio::time::Instant::now();
        // Bounded here too, so that a front that blocks fails the test, not hangs it.
        let ended = tokio::time::timeout(2 * HANDSHAKE_TIMEOUT, plain_text(server))
            .await
            .expect("the front let the client go by its deadline");
        assert!(
            matches!(ended, Err(SessionEnd::TimedOut(_))),
            "{:?}",
            ended.map(|s| s.is_some())
        );
        assert!(started.elapsed() >= HANDSHAKE_TIMEOUT);
        writer.abort();
    }
}
