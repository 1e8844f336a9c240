//! The IMAP front under bad input and faults, against a scripted IMAP server stand-in
//! (a real server cannot be made to die in the middle of a literal on cue): garbage,
//! an announced literal never sent, a line past the limit, a client that stops
//! reading, a server that refuses, resets or dies in the middle of a literal, and the
//! bounds on sessions and on connections per address. Each session gets what an IMAP
//! server would send, and the others go on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;
use support::imap::{Client, certificates, front_config, tls_over};

use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A scripted IMAP server: greets, takes `LOGIN`, `NOOP`, `APPEND` with a literal, and
/// `FETCH <n>` (a literal of `n` octets), `DIE <n>` (half of one, then it closes),
/// `RESET <n>` (half of one, then a reset), `QUIT` (it closes without a word). Counts the connections that ended.
struct Server {
    address: SocketAddr,
    ended: Arc<AtomicUsize>,
    /// Octets of the last `FETCH` written so far.
    written: Arc<AtomicUsize>,
    /// Every line read, of every connection.
    read: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts one in plain text, or with TLS when given an acceptor.
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let ended = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let read = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (e, w, r) = (ended.clone(), written.clone(), read.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (e, w, r, tls) = (e.clone(), w.clone(), r.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = match tls {
                        None => serve(stream, w, r).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => serve(stream, w, r).await,
                            Err(e) => Err(e),
                        },
                    };
                    e.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            address,
            ended,
            written,
            read,
        }
    }
}

/// A connection the stand-in can end with a reset.
trait Resettable: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    fn reset(self);
}

impl Resettable for TcpStream {
    fn reset(self) {
        let _ = self.set_zero_linger();
    }
}

impl Resettable for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset(self) {
        let _ = self.get_ref().0.set_zero_linger();
    }
}

async fn serve(
    stream: impl Resettable,
    written: Arc<AtomicUsize>,
    read: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=SCRAM-SHA-256 COMPRESS=DEFLATE STARTTLS] ready\r\n")
        .await?;
    loop {
        // What was written goes out (through TLS too) before the next command.
        stream.get_mut().flush().await?;
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        read.lock().unwrap().push(line.clone());
        let words: Vec<&str> = line.trim_end().split(' ').collect();
        let tagged = words
            .first()
            .is_some_and(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()));
        let out = stream.get_mut();
        if !tagged {
            out.write_all(b"* BAD Error in IMAP command\r\n").await?;
            continue;
        }
        match words.as_slice() {
            [tag, "LOGIN", ..] => {
                out.write_all(
                    format!("{tag} OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE UNAUTHENTICATE] Logged in\r\n")
                        .as_bytes(),
                )
                .await?
            }
            [_, "QUIT"] => return Ok(()),
            // A command with several literals that the server refuses after the first
            // one's octets, without reading the rest of its line.
            [tag, "MULTI", size] => {
                let n: usize = size
                    .trim_matches(|c| c == '{' || c == '}')
                    .parse()
                    .unwrap_or(0);
                out.write_all(b"+ OK\r\n").await?;
                stream.get_mut().flush().await?;
                let mut data = vec![0; n];
                stream.read_exact(&mut data).await?;
                stream
                    .get_mut()
                    .write_all(format!("{tag} NO [TOOBIG] After the first.\r\n").as_bytes())
                    .await?;
            }
            // IDLE until DONE, as Dovecot does.
            [tag, "IDLE"] => {
                out.write_all(b"+ idling\r\n").await?;
                stream.get_mut().flush().await?;
                let mut done = String::new();
                stream.read_line(&mut done).await?;
                let out = stream.get_mut();
                if done.trim_end().eq_ignore_ascii_case("DONE") {
                    out.write_all(format!("{tag} OK Idle completed.\r\n").as_bytes())
                        .await?
                } else {
                    out.write_all(format!("{tag} BAD Expected DONE.\r\n").as_bytes())
                        .await?
                }
            }
            [tag, "NOOP"] => {
                out.write_all(format!("{tag} OK NOOP completed\r\n").as_bytes())
                    .await?
            }
            // A command that takes the server a while.
            [tag, "CHECK"] => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                out.write_all(format!("{tag} OK CHECK completed\r\n").as_bytes())
                    .await?
            }
            [tag, "APPEND", _, size] => {
                let n: usize = size
                    .trim_matches(|c| c == '{' || c == '}')
                    .parse()
                    .unwrap_or(0);
                // Over its limit: refused before any octet of it.
                if n > 1000 {
                    out.write_all(format!("{tag} NO [TOOBIG] Too big.\r\n").as_bytes())
                        .await?;
                    continue;
                }
                out.write_all(b"+ OK\r\n").await?;
                let mut data = vec![0; n + 2];
                stream.read_exact(&mut data).await?;
                stream
                    .get_mut()
                    .write_all(format!("{tag} OK APPEND completed\r\n").as_bytes())
                    .await?;
            }
            [tag, verb @ ("FETCH" | "DIE" | "RESET"), size] => {
                let n: usize = size.parse().unwrap_or(0);
                out.write_all(format!("* 1 FETCH (BODY[] {{{n}}}\r\n").as_bytes())
                    .await?;
                let chunk = vec![b'x'; 64 * 1024];
                let send = if *verb == "FETCH" { n } else { n / 2 };
                written.store(0, Ordering::SeqCst);
                let mut sent = 0;
                while sent < send {
                    let k = chunk.len().min(send - sent);
                    out.write_all(&chunk[..k]).await?;
                    sent += k;
                    written.store(sent, Ordering::SeqCst);
                }
                match *verb {
                    "FETCH" => {
                        out.write_all(format!(")\r\n{tag} OK FETCH completed\r\n").as_bytes())
                            .await?
                    }
                    "RESET" => {
                        stream.into_inner().reset();
                        return Ok(());
                    }
                    _ => return Ok(()),
                }
            }
            [tag, ..] => {
                out.write_all(format!("{tag} BAD Error in IMAP command\r\n").as_bytes())
                    .await?
            }
            [] => out.write_all(b"* BAD Error in IMAP command\r\n").await?,
        }
    }
}

struct Setup {
    daemon: Daemon,
    roots: rustls::RootCertStore,
    server: Server,
    _standin: Standin,
    _dir: tempfile::TempDir,
}

async fn setup(change: impl FnOnce(&mut mailpushd::config::Front)) -> Setup {
    setup_with(false, |config| {
        if let Some(front) = config.front.as_mut() {
            change(front);
        }
    })
    .await
}

/// With `tls`, the server stand-in speaks TLS with the front's own certificate, and
/// the front verifies it with the test CA.
async fn setup_with(tls: bool, change: impl FnOnce(&mut mailpushd::config::Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (pair, roots) = certificates(dir.path());
    let acceptor = tls.then(|| {
        let pem = std::fs::read(&pair.cert_file).unwrap();
        let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .map(Result::unwrap)
            .collect();
        let key = std::fs::read(&pair.key_file).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let server = Server::start(acceptor).await;
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut front = front_config(pair, server.address, true, false);
    front.proxy_protocol = false;
    if tls {
        front.backend_tls = Some(mailpushd::config::BackendTls {
            server_name: support::imap::SERVER_NAME.into(),
            ca_file: Some(dir.path().join("ca.pem")),
        });
    }
    config.front = Some(front);
    change(&mut config);
    Setup {
        daemon: Daemon::start(config).await.unwrap(),
        roots,
        server,
        _standin: standin,
        _dir: dir,
    }
}

impl Setup {
    async fn connect(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.daemon.front_addresses()[0])
            .await
            .unwrap();
        let mut client = Client::new(tls_over(tcp, &self.roots).await);
        let greeting = client.read().await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        client
    }

    async fn logged_in(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut client = self.connect().await;
        let login = client.run("LOGIN alice secret").await.concat();
        assert!(login.contains("XAPPLEPUSHSERVICE"), "{login}");
        assert!(!login.contains("COMPRESS"), "{login}");
        assert!(!login.contains("UNAUTHENTICATE"), "{login}");
        client
    }
}

/// Reads until the stream ends; what came.
async fn rest(client: &mut Client<tokio_rustls::client::TlsStream<TcpStream>>) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), client.stream.read_to_end(&mut out))
        .await
        .expect("the session ends");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_the_servers_answer_and_the_session_goes_on() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    let mut other = s.logged_in().await;
    client.send("\u{1b}[31m garbage \u{0}\u{7f}").await;
    assert_eq!(client.read().await, "* BAD Error in IMAP command\r\n");
    client.send("a1 XAPPLEPUSHSERVICE aps-version 9").await;
    let bad = client.read().await;
    assert!(bad.starts_with("a1 BAD"), "{bad}");
    // A synchronizing literal in a line the front cannot read: refused by the front
    // itself, so that no literal is sent on a guess.
    client.send("{5}").await;
    assert_eq!(client.read().await, "* BAD Error in IMAP command.\r\n");
    // An announcement in a quoted string is none (a server ends the line there): what
    // follows is a command the front reads, not a literal it passes on unread.
    client.send("x NOOP \"{5+}\r\nc COMPRESS DEFLATE").await;
    let mut answers = [client.read().await, client.read().await];
    answers.sort();
    assert_eq!(
        answers,
        [
            "c NO COMPRESS is not available here.\r\n",
            "x BAD Error in IMAP command\r\n"
        ]
    );
    // A literal that waits for no "+" in a line the front reads no command in: a
    // server ends such a line at its line end, so it is refused, the literal with it.
    client.send("(x {9+}\r\nc COMPRESS").await;
    assert_eq!(client.read().await, "* BAD Error in IMAP command.\r\n");
    // A tag longer than the front counts: refused by the front, never sent, and
    // answered untagged, as Dovecot answers it (an answer never repeats more of a line
    // than a tag); so is a long word that a refused line begins with.
    let tag = "t".repeat(127);
    client.send(&format!("{tag} NOOP")).await;
    assert_eq!(client.read().await, "* BAD Tag too long.\r\n");
    client.send(&"t".repeat(1_000)).await;
    assert_eq!(client.read().await, "* BAD Error in IMAP command.\r\n");
    client.send(&format!("{} NOOP", &tag[1..])).await;
    assert_eq!(
        client.read().await,
        format!("{} OK NOOP completed\r\n", &tag[1..])
    );
    client.tag = 1;
    assert!(client.run("NOOP").await.concat().contains("2 OK"));
    assert!(other.run("NOOP").await.concat().contains("2 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reusing_a_running_commands_tag_is_refused() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    // Had the front waited on the APPEND's literal by its tag, the CHECK's OK would
    // have passed for the APPEND's refusal, and the two would no longer agree on what
    // the next octets are.
    client.send("a CHECK\r\na APPEND INBOX {5}").await;
    assert_eq!(
        client.read().await,
        "a BAD The tag is in use by a command still running.\r\n"
    );
    assert_eq!(client.read().await, "a OK CHECK completed\r\n");
    // Its tag free again, the same command goes.
    client.send("a APPEND INBOX {5}").await;
    assert_eq!(client.read().await, "+ OK\r\n");
    client.send("Hello").await;
    assert_eq!(client.read().await, "a OK APPEND completed\r\n");
    // A line the front reads no command in, but a server reads a tag in ("b" alone):
    // answered by the front, never sent, so no answer of the server's under "b" can
    // pass for the APPEND's.
    client.send("b\r\nb APPEND INBOX {5}").await;
    assert_eq!(client.read().await, "b BAD Error in IMAP command.\r\n");
    assert_eq!(client.read().await, "+ OK\r\n");
    client.send("Hello").await;
    assert_eq!(client.read().await, "b OK APPEND completed\r\n");
    client.tag = 1;
    assert!(client.run("NOOP").await.concat().contains("2 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_log_in_twice() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    // The front answers it: the server never ends the first login.
    let refused = client.run("UNAUTHENTICATE").await.concat();
    assert_eq!(refused, "2 NO UNAUTHENTICATE is not available here.\r\n");
    assert!(client.run("NOOP").await.concat().contains("3 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_command_past_its_limit_is_refused_and_the_session_goes_on() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    let long = format!(
        "a1 XAPPLEPUSHSERVICE aps-version 2 aps-account-id {}",
        "A".repeat(40_000)
    );
    client.send(&long).await;
    assert_eq!(client.read().await, "a1 BAD Command line too long.\r\n");
    // The same with a synchronizing literal: refused before the literal is asked for.
    client
        .send(&format!(
            "a2 XAPPLEPUSHSERVICE aps-version 2 aps-account-id {} {{5}}",
            "A".repeat(20_000)
        ))
        .await;
    assert_eq!(client.read().await, "a2 BAD Command line too long.\r\n");
    // A short line announcing a literal too long to hold: refused before "+", not
    // read and dropped.
    client
        .send("a3 WEBPUSH SUBSCRIBE \"https://push.example/x\" {4000000000}")
        .await;
    assert_eq!(client.read().await, "a3 BAD Command line too long.\r\n");
    client.tag = 3;
    assert!(client.run("NOOP").await.concat().contains("4 OK"));
}

/// A session's push commands are answered sixty a minute at most (each writes to the
/// store); past them, `NO [LIMIT]`, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_commands_past_sixty_a_minute_are_refused_and_the_session_goes_on() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    let register = format!(
        "XAPPLEPUSHSERVICE aps-version 2 aps-account-id 0A7C4DFD-3FC4-418D-B4FC-F6EE59603731 aps-device-token {} aps-subtopic com.apple.mobilemail mailboxes (INBOX)",
        "3A".repeat(32)
    );
    for n in 0..60 {
        let answer = client.run(&register).await.concat();
        assert!(answer.contains(" OK "), "{n}: {answer}");
    }
    let refused = client.run(&register).await.concat();
    assert!(
        refused.ends_with(
            "NO [LIMIT] Too many push commands in this session: try again in a minute.\r\n"
        ),
        "{refused}"
    );
    assert!(client.run("NOOP").await.concat().contains("OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_literal_never_sent_ends_with_the_client() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    client.send("a1 APPEND INBOX {100}").await;
    assert!(client.read().await.starts_with('+'));
    client
        .stream
        .get_mut()
        .write_all(b"only ten..")
        .await
        .unwrap();
    let ended = s.server.ended.load(Ordering::SeqCst);
    drop(client);
    // The server's connection ends with the client's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.server.ended.load(Ordering::SeqCst) == ended {
        assert!(
            Instant::now() < deadline,
            "the server's connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut other = s.logged_in().await;
    assert!(other.run("NOOP").await.concat().contains("2 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_the_server_back_not_the_front() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    let size = 50 * 1024 * 1024;
    client.send(&format!("a1 FETCH {size}")).await;
    // The client reads nothing: the server's writes stop once the sockets' buffers and
    // the front's one are full, far short of the whole.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = s.server.written.load(Ordering::SeqCst);
    assert!(
        written < size / 4,
        "{written} octets went while the client read none"
    );
    // Then it reads: the whole literal, exact.
    let header = client.read().await;
    assert_eq!(header, format!("* 1 FETCH (BODY[] {{{size}}}\r\n"));
    let mut data = vec![0; size];
    client.stream.read_exact(&mut data).await.unwrap();
    assert!(data.iter().all(|&b| b == b'x'));
    assert_eq!(client.read().await, ")\r\n");
    assert_eq!(client.read().await, "a1 OK FETCH completed\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_or_resets_in_a_literal_ends_that_session_only() {
    let s = setup(|_| {}).await;
    let mut other = s.logged_in().await;
    for verb in ["DIE", "RESET"] {
        let mut client = s.logged_in().await;
        client.send(&format!("a1 {verb} 1000000")).await;
        let got = rest(&mut client).await;
        assert!(
            got.starts_with(b"* 1 FETCH (BODY[] {1000000}\r\n"),
            "{verb}"
        );
        assert!(
            got.len() < 1_000_000,
            "{verb}: a whole literal from half of one"
        );
    }
    // Closed between lines without a goodbye: the front says it, as a server would.
    let mut client = s.logged_in().await;
    client.send("a1 QUIT").await;
    let got = String::from_utf8(rest(&mut client).await).unwrap();
    assert_eq!(
        got,
        "* BYE [UNAVAILABLE] The IMAP server closed the connection.\r\n"
    );
    other.tag = 1;
    assert!(other.run("NOOP").await.concat().contains("2 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_gets_the_client_a_bye() {
    let s = setup(|front| {
        // Nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        front.backend = closed.local_addr().unwrap().to_string();
    })
    .await;
    let tcp = TcpStream::connect(s.daemon.front_addresses()[0])
        .await
        .unwrap();
    let mut client = Client::new(tls_over(tcp, &s.roots).await);
    let bye = client.read().await;
    assert_eq!(
        bye,
        "* BYE [UNAVAILABLE] The IMAP server cannot be reached.\r\n"
    );
    let page = support::metrics(s.daemon.local_addr().unwrap()).await;
    assert!(
        page.contains("mailpushd_front_sessions_total{listener=\"implicit_tls\",outcome=\"server_unavailable\"} 1"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_log_in_in_time_is_closed_and_one_that_did_stays() {
    let timeout = Duration::from_millis(600);
    let s = setup(|front| front.login_timeout = timeout).await;
    let started = Instant::now();
    let mut idle = s.connect().await;
    let mut logged_in = s.logged_in().await;
    let logged_in_at = Instant::now();
    // Busy but never logged in: told, and closed all the same.
    assert!(idle.run("NOOP").await.concat().contains("1 OK"));
    assert_eq!(
        String::from_utf8(rest(&mut idle).await).unwrap(),
        "* BYE Disconnected: no login in time.\r\n"
    );
    assert!(started.elapsed() >= timeout);
    // Well past its own timeout, the session that logged in goes on.
    tokio::time::sleep_until((logged_in_at + timeout + Duration::from_millis(300)).into()).await;
    assert!(logged_in.run("NOOP").await.concat().contains("2 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_connections_per_address_are_bounded() {
    let s = setup(|front| {
        front.max_sessions = 2;
        front.max_connects_per_address_per_minute = 4;
    })
    .await;
    let first = s.connect().await;
    let second = s.connect().await;
    // A third waits to be accepted while two are open...
    let tcp = TcpStream::connect(s.daemon.front_addresses()[0])
        .await
        .unwrap();
    let third = tokio::spawn({
        let roots = s.roots.clone();
        async move {
            let mut client = Client::new(tls_over(tcp, &roots).await);
            client.read().await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "served past max_sessions");
    // ...and is served once one ends.
    drop(first);
    let greeting = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a session ended")
        .unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // The third's session ended with its task; the fourth connection is served...
    let _fourth = s.connect().await;
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and, four connections from one address a minute, the fifth is closed at once.
    let mut fifth = TcpStream::connect(s.daemon.front_addresses()[0])
        .await
        .unwrap();
    let mut octet = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut octet)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let page = support::metrics(s.daemon.local_addr().unwrap()).await;
    assert!(
        page.contains(
            "mailpushd_front_sessions_total{listener=\"implicit_tls\",outcome=\"rate_limited\"} 1"
        ),
        "{page}"
    );
}

/// An address holds at most so many sessions it has not logged in on: sessions that
/// never log in hold their places for minutes each, and one address must not hold
/// them all. A login gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_not_logged_in_per_address_are_bounded() {
    let s = setup(|front| front.max_unauthenticated_per_address = 2).await;
    let closed_at_once = || async {
        let mut tcp = TcpStream::connect(s.daemon.front_addresses()[0])
            .await
            .unwrap();
        let mut octet = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut octet)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    };
    let mut first = s.connect().await;
    let second = s.connect().await;
    assert!(closed_at_once().await, "a third not logged in");
    // The first logs in: its place is given back.
    assert!(
        first
            .run("LOGIN alice secret")
            .await
            .concat()
            .contains("OK")
    );
    let third = s.connect().await;
    assert!(closed_at_once().await, "a fourth not logged in");
    // One that ends gives its place back too (once the front sees it end).
    drop((second, third));
    let api = s.daemon.local_addr().unwrap();
    support::wait_metric(api, "mailpushd_front_open_sessions 1").await;
    let _fifth = s.connect().await;
    assert!(first.run("NOOP").await.concat().contains("OK"));
    let page = support::metrics(s.daemon.local_addr().unwrap()).await;
    let refused = "mailpushd_front_sessions_total{listener=\"implicit_tls\",outcome=\"too_many_unauthenticated\"} 2";
    assert!(page.contains(refused), "{page}");
}

/// A client that sends its last commands and ends its side (`printf ... | nc -N`)
/// still gets their answers: the server is told of the end and answers first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_ends_its_side_still_gets_the_answers() {
    use tokio::io::AsyncWriteExt as _;
    let s = setup(|_| {}).await;
    let client = s.logged_in().await;
    let mut stream = client.stream;
    stream.write_all(b"n1 NOOP\r\nn2 NOOP\r\n").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(read.is_ok(), "still open: {rest}");
    assert!(rest.contains("n1 OK") && rest.contains("n2 OK"), "{rest}");
    // The server's end that follows is the one the client asked for: no goodbye.
    assert!(!rest.contains("BYE"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_is_not_speaking_tls_is_dropped_and_the_others_go_on() {
    let s = setup(|_| {}).await;
    let mut garbage = TcpStream::connect(s.daemon.front_addresses()[0])
        .await
        .unwrap();
    garbage
        .write_all(b"a1 LOGIN alice secret\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), garbage.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "a client that is not speaking TLS is closed");
    let mut other = s.logged_in().await;
    assert!(other.run("NOOP").await.concat().contains("2 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_server_verified_and_a_literal_through_it() {
    let s = setup_with(true, |_| {}).await;
    let mut client = s.logged_in().await;
    client.send("a1 FETCH 300000").await;
    assert_eq!(client.read().await, "* 1 FETCH (BODY[] {300000}\r\n");
    let mut data = vec![0; 300_000];
    client.stream.read_exact(&mut data).await.unwrap();
    assert!(data.iter().all(|&b| b == b'x'));
    assert_eq!(client.read().await, ")\r\n");
    assert_eq!(client.read().await, "a1 OK FETCH completed\r\n");
    // A server whose certificate the front does not trust is not used: one for
    // another name under the trusted CA, and one for the right name under a CA the
    // front was not given.
    let untrusted: [fn(&mut mailpushd::config::BackendTls); 2] = [
        |tls| tls.server_name = "other.example.test".into(),
        |tls| tls.ca_file = None,
    ];
    for change in untrusted {
        let s = setup_with(true, |config| {
            if let Some(tls) = config.front.as_mut().and_then(|f| f.backend_tls.as_mut()) {
                change(tls);
            }
        })
        .await;
        let tcp = TcpStream::connect(s.daemon.front_addresses()[0])
            .await
            .unwrap();
        let mut client = Client::new(tls_over(tcp, &s.roots).await);
        assert_eq!(
            client.read().await,
            "* BYE [UNAVAILABLE] The IMAP server cannot be reached.\r\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mechanisms_the_front_cannot_read_are_offered_or_hidden_as_configured() {
    let s = setup(|_| {}).await;
    let greeting = s.connect().await.transcript;
    assert!(
        greeting.contains("AUTH=SCRAM-SHA-256") && greeting.contains("AUTH=PLAIN"),
        "{greeting}"
    );
    assert!(
        !greeting.contains("STARTTLS") && !greeting.contains("COMPRESS"),
        "{greeting}"
    );
    let s = setup(|front| front.hide_unreadable_mechanisms = true).await;
    let greeting = s.connect().await.transcript;
    assert!(!greeting.contains("AUTH=SCRAM-SHA-256"), "{greeting}");
    assert!(greeting.contains("AUTH=PLAIN"), "{greeting}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_may_run_the_front_alone() {
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let s = setup_with(false, |config| {
        config.listen = api;
        config.api.tcp = false;
    })
    .await;
    assert_eq!(s.daemon.local_addr(), None, "no HTTP API on TCP");
    assert!(
        TcpStream::connect(api).await.is_err(),
        "nothing listens at the API's address"
    );
    let mut client = s.logged_in().await;
    assert!(client.run("NOOP").await.concat().contains("2 OK"));
}

/// Runs `statement` on the SQLite store at `path`.
async fn sqlite(path: &std::path::Path, statement: &str) -> Vec<(i64, i64)> {
    use sqlx::{Connection, Row};
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query(statement).fetch_all(&mut db).await.unwrap();
    db.close().await.unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.try_get(1).unwrap_or(0)))
        .collect()
}

/// Through `client`, logged in: subscribes `ua` at `push`, acknowledges the
/// verification push, and silences the subscription until this connection ends.
async fn subscribe_and_silence<S>(
    client: &mut Client<S>,
    push: &mailpushd::standin::PushService,
    ua: &webpush_crypto::UaKeys,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ok = |lines: Vec<String>| {
        let last = lines.last().cloned().unwrap_or_default();
        assert_eq!(last.split(' ').nth(1), Some("OK"), "{lines:?}");
    };
    let id = "a8282bf9-6102-4e1b-bb61-d26d0e532e65";
    let subscribe = format!(
        "WEBPUSH {id} {} {} {}",
        push.endpoint("p/1"),
        ua.public_key().to_base64url(),
        ua.auth().to_base64url()
    );
    let before = push.requests().len();
    ok(client.run(&subscribe).await);
    let requests = push.wait_for(before + 1, Duration::from_secs(10)).await;
    let ack = webpush_crypto::decrypt(ua, &requests[before].body).unwrap();
    let ack = String::from_utf8(ack).unwrap();
    let token = ack.trim_end().strip_prefix("* ACKWEBPUSH ").unwrap();
    ok(client.run(&format!("ACKWEBPUSH {token}")).await);
    ok(client.run(&format!("SILWEBPUSH {id} 0")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_stopped_with_a_silenced_session_open_ends_it_then_is_forgotten() {
    let push = mailpushd::standin::PushService::start().await.unwrap();
    let ua = webpush_crypto::UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let s = setup_with(false, |config| {
        config.webpush.subject = Some("mailto:postmaster@mail.example".into());
        config.webpush.allow_local_push_service = true;
    })
    .await;
    let mut client = s.logged_in().await;
    subscribe_and_silence(&mut client, &push, &ua).await;
    let store = s._dir.path().join("mailpushd.sqlite");
    let fronts = "SELECT instance, alive_ms FROM front_instances";
    let named = "SELECT COUNT(*) FROM webpush_subscriptions WHERE silenced_by IS NOT NULL";
    assert_eq!(sqlite(&store, fronts).await.len(), 1, "alive while it runs");
    assert_eq!(
        sqlite(&store, named).await,
        [(1, 0)],
        "the silence names it"
    );
    s.daemon.shutdown(Duration::from_secs(5)).await;
    // The end state only: the session stored its end, and the front forgot itself.
    // (Which came first is not forced here: a session ends at the stop faster than
    // the front's wait, with or without it.)
    assert_eq!(sqlite(&store, named).await, [(0, 0)]);
    assert!(sqlite(&store, fronts).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_a_session_still_in_its_tls_handshake() {
    let s = setup(|_| {}).await;
    // Connected to the TLS listener, and silent: the handshake waits up to a minute.
    let _silent = TcpStream::connect(s.daemon.front_addresses()[0])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let store = s._dir.path().join("mailpushd.sqlite");
    let started = Instant::now();
    s.daemon.shutdown(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let fronts = "SELECT instance, alive_ms FROM front_instances";
    assert!(
        sqlite(&store, fronts).await.is_empty(),
        "the front forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_of_a_front_killed_mid_session_end_once_it_is_seen_dead() {
    use mailpushd::config::Config;
    use mailpushd::standin::PushService;
    let dir = tempfile::tempdir().unwrap();
    let (pair, _) = certificates(dir.path());
    let server = Server::start(None).await;
    let standin = Standin::start().await.unwrap();
    let push = PushService::start().await.unwrap();
    let ua = webpush_crypto::UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let api = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let front = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let webpush = "[webpush]\nsubject = \"mailto:postmaster@mail.example\"\nallow_local_push_service = true\n";
    let front_toml = format!(
        "[front]\nplain = \"{front}\"\nbackend = \"{}\"\nproxy_protocol = false\n\
         [[front.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        server.address,
        pair.cert_file.display(),
        pair.key_file.display(),
    );
    let config = support::standin_toml(
        dir.path(),
        &standin,
        api,
        "sqlite:store.sqlite",
        &format!("{webpush}{front_toml}"),
    );
    let mut daemon = support::spawn_daemon(&config);
    support::wait_healthy(api).await;

    // Subscribed, acknowledged and silenced "until this connection ends" through the
    // front; then the daemon is killed with the session open.
    let mut tcp = None;
    for _ in 0..100 {
        match TcpStream::connect(front).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut client = Client::new(tcp.expect("the front listens"));
    assert!(client.read().await.starts_with("* OK"));
    assert!(
        client
            .run("LOGIN alice secret")
            .await
            .concat()
            .contains("1 OK")
    );
    subscribe_and_silence(&mut client, &push, &ua).await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    drop(client);

    // The silence names the front, whose heartbeat is stored.
    let store = dir.path().join("store.sqlite");
    let fronts = sqlite(&store, "SELECT instance, alive_ms FROM front_instances").await;
    let silenced = sqlite(
        &store,
        "SELECT COALESCE(silenced_by, 0) FROM webpush_subscriptions",
    )
    .await;
    assert_eq!(fronts.len(), 1);
    assert_eq!(silenced, [(fronts[0].0, 0)]);

    let mut restarted = Config::with_database(store.clone());
    support::open_api(&mut restarted);
    restarted.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    restarted.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
    restarted.webpush.subject = Some("mailto:postmaster@mail.example".into());
    restarted.webpush.allow_local_push_service = true;
    let new_mail = |daemon: &Daemon| {
        let address = daemon.local_addr().unwrap();
        async move {
            let body = r#"{"Username":"alice","Mailbox":"INBOX","Events":["MessageNew"]}"#;
            let (status, _) =
                mailpushd::demo::http(address, "POST", "/notify", &support::JSON, body.as_bytes())
                    .await
                    .unwrap();
            // 404 (no iOS device) as xapsd answers: Web Push is not counted.
            assert_eq!(status, 404);
        }
    };

    // Restarted at once: the front may still be alive for all this start knows (it
    // could be another daemon's), and the silence holds.
    let again = Daemon::start(restarted.clone()).await.unwrap();
    new_mail(&again).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(push.requests().len(), 1, "still silenced");
    again.shutdown(Duration::from_secs(5)).await;

    // Its heartbeat older than the bound (as five minutes later): the next start ends
    // the silence and forgets the front, and new mail is pushed.
    let long_ago =
        fronts[0].1 - i64::try_from(mailpushd::core::FRONT_DEAD_AFTER.as_millis()).unwrap();
    sqlite(
        &store,
        &format!("UPDATE front_instances SET alive_ms = {long_ago} RETURNING instance"),
    )
    .await;
    let later = Daemon::start(restarted).await.unwrap();
    assert_eq!(
        sqlite(
            &store,
            "SELECT COALESCE(silenced_by, 0) FROM webpush_subscriptions"
        )
        .await,
        [(0, 0)],
        "the silence ended"
    );
    assert!(
        sqlite(&store, "SELECT instance FROM front_instances")
            .await
            .is_empty(),
        "the front forgotten"
    );
    new_mail(&later).await;
    push.wait_for(2, Duration::from_secs(10)).await;
    later.shutdown(Duration::from_secs(5)).await;
}

/// A server that answers a login before its literal (this stand-in answers a LOGIN
/// line at once, whatever literal it announces): the front asked for the "+" of the
/// literal that waits for none, so nothing of the literal reached the server; the
/// answer reaches the client under the client's tag, never the front's; the rest of
/// the client's line is dropped, as the server has had all of the command it reads;
/// the session goes on, logged in as no one the front could name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_answered_before_its_literal_sends_none_of_it() {
    let s = setup(|_| {}).await;
    let mut client = s.connect().await;
    client
        .stream
        .get_mut()
        .write_all(b"a LOGIN {5+}\r\nalice secret\r\nb NOOP\r\n")
        .await
        .unwrap();
    let early = client.read().await;
    assert!(early.starts_with("a OK"), "{early}");
    assert!(!early.contains("XAPPLEPUSHSERVICE"), "{early}");
    assert_eq!(client.read().await, "b OK NOOP completed\r\n");
    client.send("c XAPPLEPUSHSERVICE aps-version 2").await;
    assert!(client.read().await.starts_with("c NO [CANNOT]"));
    let read = s.server.read.lock().unwrap().clone();
    assert!(
        read.iter()
            .all(|l| !l.contains("alice") && !l.contains('+')),
        "{read:?}"
    );
}

/// A literal that waits for no "+" goes to the server as one that does: a server that
/// answers its command without reading it (NOOP reads no arguments; Dovecot then skips
/// to the line's end) never sees its octets, which it would run as commands. One it
/// reads goes on once the server's "+", which the client never asked for and never
/// sees, came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_literal_that_waits_for_no_plus_goes_only_once_the_server_asked_for_it() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    client
        .stream
        .get_mut()
        .write_all(b"a NOOP {20+}\r\nb COMPRESS DEFLATE\r\n\r\nc APPEND INBOX {5+}\r\nHello\r\n")
        .await
        .unwrap();
    assert_eq!(client.read().await, "a BAD Error in IMAP command\r\n");
    assert_eq!(client.read().await, "c OK APPEND completed\r\n");
    client.send("d NOOP").await;
    assert_eq!(client.read().await, "d OK NOOP completed\r\n");
    let read = s.server.read.lock().unwrap().clone();
    assert!(
        read.iter()
            .all(|l| !l.contains("COMPRESS") && !l.contains('+')),
        "{read:?}"
    );
    assert!(
        read.iter().any(|l| l == "c APPEND INBOX {5}\r\n"),
        "{read:?}"
    );
    assert!(
        !client.transcript.contains("S: + "),
        "{}",
        client.transcript
    );
}

/// A brace that announces no literal (`{0}x`: Dovecot answers "+" to it at once, then
/// refuses the line) is refused by the front, the line never sent, so that no "+" can
/// pass for a later literal's go-ahead; so is a line too long to read whole. A DONE
/// with no IDLE running is answered by the front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brace_that_announces_nothing_is_refused() {
    let s = setup(|f| f.max_line = 1000).await;
    let mut client = s.logged_in().await;
    for line in ["a NOOP {0}x", "a NOOP {5} {3}", "a NOOP {}y", "(b {0}x"] {
        client.send(line).await;
        let answer = client.read().await;
        assert!(
            answer.ends_with("BAD Error in IMAP command: a brace that announces no literal.\r\n"),
            "{line}: {answer}"
        );
    }
    client.send(&format!("a NOOP {}", "x".repeat(2000))).await;
    assert_eq!(client.read().await, "a BAD Command line too long.\r\n");
    client.send("DONE").await;
    assert_eq!(client.read().await, "DONE BAD Error in IMAP command.\r\n");
    client.send("c NOOP \"{0}x\"").await;
    assert_eq!(client.read().await, "c BAD Error in IMAP command\r\n");
    let read = s.server.read.lock().unwrap().clone();
    assert!(
        read.iter().all(|l| !l.contains("{0}x") || l.contains('"')),
        "{read:?}"
    );
    assert!(read.iter().all(|l| !l.starts_with("DONE")), "{read:?}");
}

/// While an IDLE runs the server reads only DONE: any other line, with a literal or
/// not, is answered by the front and never sent. The IDLE's "+" is its own, even when
/// the client sent DONE and a command with a literal before it came: a refusal of that
/// command then leaves the front reading the client's next command, not a literal.
/// Once the IDLE ended, and under its tag again, literals go as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_done_goes_while_idle_runs_and_its_plus_is_its_own() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    for line in ["b APPEND INBOX {5}", "b APPEND INBOX {3+}\r\nabc", "b NOOP"] {
        client.send(&format!("a IDLE\r\n{line}")).await;
        let mut lines = vec![client.read().await, client.read().await];
        lines.sort();
        assert_eq!(
            lines,
            ["+ idling\r\n", "b BAD Expected DONE.\r\n"],
            "{line}: {}",
            client.transcript
        );
        client.send("DONE").await;
        assert_eq!(client.read().await, "a OK Idle completed.\r\n");
    }
    // DONE and a command the server refuses before its literal, ahead of the "+".
    client.send("a IDLE\r\nDONE\r\nb APPEND INBOX {2000}").await;
    assert_eq!(client.read().await, "+ idling\r\n");
    assert_eq!(client.read().await, "a OK Idle completed.\r\n");
    assert_eq!(client.read().await, "b NO [TOOBIG] Too big.\r\n");
    client.send("c COMPRESS DEFLATE").await;
    assert_eq!(
        client.read().await,
        "c NO COMPRESS is not available here.\r\n",
        "{}",
        client.transcript
    );
    // DONE and the next command in one write; then the IDLE's tag again.
    client.send("a IDLE").await;
    assert_eq!(client.read().await, "+ idling\r\n");
    client.send("DONE\r\nb APPEND INBOX {5}").await;
    assert_eq!(client.read().await, "a OK Idle completed.\r\n");
    assert_eq!(client.read().await, "+ OK\r\n");
    client.send("Hello").await;
    assert_eq!(client.read().await, "b OK APPEND completed\r\n");
    client.send("a APPEND INBOX {5}").await;
    assert_eq!(client.read().await, "+ OK\r\n");
    client.send("Hello").await;
    assert_eq!(client.read().await, "a OK APPEND completed\r\n");
}

/// Two IDLEs sent before the first one's "+" came: each "+" is its own IDLE's, in
/// order, so neither passes for the go-ahead the front asks for a later literal that
/// waits for no "+" (which the server, answering NOOP without reading it, never gives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_idles_in_one_write_each_take_their_own_plus() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    client
        .stream
        .get_mut()
        .write_all(
            b"a IDLE\r\nDONE\r\nb IDLE\r\nDONE\r\nc NOOP {20+}\r\nx COMPRESS DEFLATE\r\n\r\n",
        )
        .await
        .unwrap();
    let mut lines = Vec::new();
    for _ in 0..5 {
        lines.push(client.read().await);
    }
    assert_eq!(
        lines,
        [
            "+ idling\r\n",
            "a OK Idle completed.\r\n",
            "+ idling\r\n",
            "b OK Idle completed.\r\n",
            "c BAD Error in IMAP command\r\n"
        ]
    );
    client.send("d NOOP").await;
    assert_eq!(client.read().await, "d OK NOOP completed\r\n");
    let read = s.server.read.lock().unwrap().clone();
    assert!(read.iter().all(|l| !l.contains("COMPRESS")), "{read:?}");
}

/// A command the server answers after one of its literals, before the rest of its line:
/// the server reads what follows as commands, so the front, which would read it as
/// that command's, ends the session at once instead of waiting on a "+" that never
/// comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_answered_between_its_literals_ends_the_session() {
    let s = setup(|_| {}).await;
    let mut client = s.logged_in().await;
    client.send("b MULTI {5}").await;
    assert_eq!(client.read().await, "+ OK\r\n");
    client.stream.get_mut().write_all(b"hello").await.unwrap();
    assert_eq!(client.read().await, "b NO [TOOBIG] After the first.\r\n");
    client.send(" {5}").await;
    let rest = String::from_utf8(rest(&mut client).await).unwrap();
    assert!(!rest.contains('+'), "{rest}");
    let read = s.server.read.lock().unwrap().clone();
    assert!(
        read.iter()
            .all(|l| l.starts_with("b MULTI") || !l.contains("{5}")),
        "{read:?}"
    );
}
