//! The IMAP front against real Dovecots (Debian 12's 2.3.19, Debian 13's 2.4.1 in its
//! chroot), each with the shipped Lua script for events and no C plugin: an iOS-shaped
//! session through the front (CAPABILITY, ID, LOGIN, XAPPLEPUSHSERVICE, SELECT, IDLE)
//! registers the device, and an LMTP delivery then reaches the APNs stand-in for that
//! account. The client's address reaches Dovecot's log through the PROXY header; the
//! capability lists gain the push extensions only once a login was accepted; STARTTLS
//! is the front's own.
//!
//! Needs Dovecot and root: ignored unless asked for with `--include-ignored`, as
//! `.ci/run` does, and then a missing Dovecot is a failure.

use std::net::SocketAddr;
use std::time::Duration;

mod support;
use support::imap::{Client, certificates, connect_tls, front_config, tls_over};
use support::{Dovecot, Driver, Release};

use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ACCOUNT: &str = "0715A26B-CA09-4730-A419-793000CA982E";
const TOKEN: &str = "FD3ABAA234203CC2349587349587999BBBEC1CB40AEE23688E2665BBBB2A28D4";

/// A daemon with the APNs stand-in and a front on both listeners, relaying to
/// `backend` with a PROXY header.
async fn daemon_with_a_front(
    dir: &std::path::Path,
    backend: SocketAddr,
) -> (Standin, Daemon, rustls::RootCertStore) {
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir).unwrap();
    support::open_api(&mut config);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let (pair, roots) = certificates(dir);
    config.front = Some(front_config(pair, backend, true, true));
    let daemon = Daemon::start(config).await.unwrap();
    (standin, daemon, roots)
}

/// A front before a private Dovecot 2.3 with no event driver: for the tests of what
/// the front relays, refuses and answers.
struct OnDovecot {
    daemon: Daemon,
    roots: rustls::RootCertStore,
    front: SocketAddr,
    _standin: Standin,
    _dir: tempfile::TempDir,
    _dovecot: Dovecot,
}

impl OnDovecot {
    async fn start() -> Self {
        let dovecot = Dovecot::start(&Release::v2_3(), &Driver::Text(String::new())).await;
        let dir = tempfile::tempdir().unwrap();
        let (standin, daemon, roots) = daemon_with_a_front(dir.path(), dovecot.imap_proxied).await;
        let front = daemon.front_addresses()[0];
        Self {
            daemon,
            roots,
            front,
            _standin: standin,
            _dir: dir,
            _dovecot: dovecot,
        }
    }

    /// A client through the front, greeted.
    async fn client(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut imap =
            Client::new(connect_tls(self.front, &self.roots, [127, 0, 0, 1].into()).await);
        imap.read().await;
        imap
    }

    /// The devices registered for `user`.
    async fn devices(&self, user: &str) -> Vec<mailpushd::store::DeviceStatus> {
        self.daemon
            .store()
            .devices_of(&support::user_name(user))
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.daemon.shutdown(Duration::from_secs(5)).await;
    }
}

/// Whether a login's answer lists capabilities (untagged, as Dovecot does after a
/// client asked CAPABILITY before, or in its OK) with XAPPLEPUSHSERVICE last, as the
/// xaps plugin puts it.
fn last_capability_is_xaps(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        let l = l.trim_end();
        (l.starts_with("* CAPABILITY ") && l.ends_with(" XAPPLEPUSHSERVICE"))
            || (l.contains(" OK [CAPABILITY ") && l.contains(" XAPPLEPUSHSERVICE]"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn an_ios_session_through_the_front_to_dovecot_2_3() {
    ios_session(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn an_ios_session_through_the_front_to_dovecot_2_4() {
    ios_session(Release::v2_4()).await;
}

async fn ios_session(release: Release) {
    let dir = tempfile::tempdir().unwrap();
    // The daemon's API address is known only once it runs, and Dovecot's once it
    // runs: Dovecot first, reporting to a port chosen now.
    let api = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let dovecot = Dovecot::start(&release, &Driver::lua(api, None)).await;
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    config.listen = api;
    let (pair, roots) = certificates(dir.path());
    config.front = Some(front_config(pair, dovecot.imap_proxied, true, false));
    let daemon = Daemon::start(config).await.unwrap();
    let front = daemon.front_addresses()[0];

    let client_address = std::net::IpAddr::from([127, 0, 0, 2]);
    let mut imap = Client::new(connect_tls(front, &roots, client_address).await);
    let greeting = imap.read().await;
    assert!(greeting.starts_with("* OK [CAPABILITY "), "{greeting}");
    assert!(
        !greeting.contains("XAPPLEPUSHSERVICE"),
        "before login: {greeting}"
    );
    assert!(
        !greeting.contains("STARTTLS"),
        "the front's TLS is the only one: {greeting}"
    );
    let capability = imap.run("CAPABILITY").await;
    assert!(!capability.concat().contains("XAPPLEPUSHSERVICE"));
    imap.run(
        r#"ID ("name" "iPhone Mail" "version" "21A329" "os" "iOS" "os-version" "17.0 (21A329)")"#,
    )
    .await;
    // A push command before a login is the server's to refuse.
    let early = imap.run("XAPPLEPUSHSERVICE aps-version 2").await;
    assert!(
        !early.concat().contains("OK XAPPLEPUSHSERVICE"),
        "{early:?}"
    );
    let login = imap.run("LOGIN alice secret").await;
    assert!(login.last().unwrap().starts_with("4 OK"), "{login:?}");
    assert!(
        last_capability_is_xaps(&login),
        "XAPPLEPUSHSERVICE last in the logged-in list: {login:?}"
    );
    let capability = imap.run("CAPABILITY").await.concat();
    assert_eq!(
        capability.matches("XAPPLEPUSHSERVICE").count(),
        1,
        "{capability}"
    );
    let registered = imap
        .run(&format!(
            "XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX \"Sent Messages\")"
        ))
        .await;
    assert_eq!(
        registered,
        [
            format!(
                "* XAPPLEPUSHSERVICE aps-version \"2\" aps-topic \"{}\"\r\n",
                mailpushd::demo::DEMO_TOPIC
            ),
            "6 OK XAPPLEPUSHSERVICE completed.\r\n".to_owned(),
        ]
    );
    imap.run("SELECT INBOX").await;
    imap.send("8 IDLE").await;
    imap.tag = 8;
    assert!(imap.read().await.starts_with('+'));

    // New mail: Dovecot's Lua script tells the daemon, which pushes the device the
    // session registered.
    dovecot.deliver("alice@example.org", "first").await;
    standin.wait_for(1, Duration::from_secs(15)).await;
    let request = &standin.requests()[0];
    imap.transcript.push_str(&format!(
        "APNs: {} {} {}\n{}\n",
        request.method,
        request.authority,
        request.path,
        request
            .headers
            .iter()
            .filter(|(name, _)| name != "authorization")
            .map(|(name, value)| format!("APNs: {name}: {value}\n"))
            .collect::<String>()
            + &format!("APNs: {}", String::from_utf8_lossy(&request.body))
    ));
    assert_eq!(request.path, format!("/3/device/{TOKEN}"));
    assert_eq!(
        request.body,
        format!(r#"{{"aps":{{"account-id":"{ACCOUNT}"}}}}"#).into_bytes()
    );
    // IDLE goes on through the front: Dovecot's EXISTS arrives.
    let exists = imap.read().await;
    assert!(exists.contains("EXISTS"), "{exists}");
    imap.send("DONE").await;
    loop {
        if imap.read().await.starts_with("8 OK") {
            break;
        }
    }
    imap.run("LOGOUT").await;
    // Dovecot saw the client's own address, and that it spoke TLS.
    let log = dovecot.log();
    let login_line = log
        .lines()
        .find(|l| {
            l.contains("imap-login") && l.contains("user=<alice>") && l.contains("rip=127.0.0.2")
        })
        .unwrap_or_else(|| panic!("no login from the client's address in:\n{log}"));
    assert!(
        login_line.contains("TLS") || login_line.contains("secured"),
        "{login_line}"
    );
    println!("{}", imap.transcript);
    let page = support::metrics(daemon.local_addr().unwrap()).await;
    assert!(page.contains(
        "mailpushd_front_push_commands_total{command=\"xapplepushservice\",outcome=\"registered\"} 1"
    ), "{page}");
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn starttls_is_the_fronts_own_and_a_login_in_plain_text_is_refused() {
    let release = Release::v2_3();
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start(&release, &Driver::Text(String::new())).await;
    let (_standin, daemon, roots) = daemon_with_a_front(dir.path(), dovecot.imap_proxied).await;
    let starttls = daemon.front_addresses()[1];
    let mut plain = Client::new(TcpStream::connect(starttls).await.unwrap());
    let greeting = plain.read().await;
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    let refused = plain.run("LOGIN alice secret").await;
    assert!(
        refused[0].starts_with("1 NO [PRIVACYREQUIRED]"),
        "{refused:?}"
    );
    let started = plain.run("STARTTLS").await;
    assert!(started[0].starts_with("2 OK"), "{started:?}");
    let tcp = plain.stream.into_inner();
    let mut imap = Client::new(tls_over(tcp, &roots).await);
    // No second greeting: the client asks again.
    let capability = imap.run("CAPABILITY").await.concat();
    assert!(!capability.contains("STARTTLS"), "{capability}");
    assert!(!capability.contains("LOGINDISABLED"), "{capability}");
    let login = imap.run("LOGIN alice secret").await;
    assert!(last_capability_is_xaps(&login), "{login:?}");
    let again = imap.run("STARTTLS").await;
    assert!(again[0].starts_with("3 BAD"), "{again:?}");
    // A literal through the front, synchronizing: "+" from Dovecot, then the data.
    imap.send("4 APPEND INBOX {23}").await;
    imap.tag = 4;
    assert!(imap.read().await.starts_with('+'));
    imap.stream
        .get_mut()
        .write_all(b"Subject: hi\r\n\r\nHello.\r\n\r\n")
        .await
        .unwrap();
    loop {
        let line = imap.read().await;
        if line.starts_with("4 ") {
            assert!(line.starts_with("4 OK"), "{line}");
            break;
        }
    }
    let fetched = imap.run("EXAMINE INBOX").await.concat();
    assert!(fetched.contains("1 EXISTS"), "{fetched}");
    imap.run("LOGOUT").await;
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn who_the_session_is_comes_from_the_login_dovecot_accepted() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let on = OnDovecot::start().await;
    let (daemon, front, roots) = (&on.daemon, on.front, &on.roots);
    let register = |tag: &str| {
        format!(
            "{tag} XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX)"
        )
    };
    let connect = || connect_tls(front, roots, [127, 0, 0, 1].into());

    // A wrong password, then a push command: not logged in, so Dovecot refuses it.
    let mut imap = Client::new(connect().await);
    imap.read().await;
    let refused = imap.run("LOGIN alice wrong").await.concat();
    assert!(refused.contains("1 NO"), "{refused}");
    assert!(!refused.contains("XAPPLEPUSHSERVICE"), "{refused}");
    imap.send(&register("a2")).await;
    let answer = imap.read().await;
    assert!(
        answer.starts_with("a2 BAD"),
        "Dovecot's, before a login: {answer}"
    );
    // Claiming another user as the authorization identity: Dovecot refuses it.
    imap.send(&format!(
        "a3 AUTHENTICATE PLAIN {}",
        b64(b"bob\0alice\0secret")
    ))
    .await;
    let answer = imap.read().await;
    assert!(answer.starts_with("a3 NO"), "{answer}");

    // AUTHENTICATE PLAIN with an initial response.
    imap.send(&format!(
        "a4 AUTHENTICATE PLAIN {}",
        b64(b"\0alice\0secret")
    ))
    .await;
    let mut answer = imap.read().await;
    while !answer.starts_with("a4 ") {
        answer = imap.read().await;
    }
    assert!(answer.starts_with("a4 OK"), "{answer}");
    imap.send(&register("a5")).await;
    assert!(imap.read().await.starts_with("* XAPPLEPUSHSERVICE"));
    assert!(imap.read().await.starts_with("a5 OK"));

    // Without one, and the LOGIN mechanism: the user name read from the exchange.
    for (mechanism, responses) in [
        ("PLAIN", vec![b64(b"\0alice\0secret")]),
        ("LOGIN", vec![b64(b"alice"), b64(b"secret")]),
    ] {
        let mut imap = Client::new(connect().await);
        imap.read().await;
        imap.send(&format!("b1 AUTHENTICATE {mechanism}")).await;
        for response in responses {
            let challenge = imap.read().await;
            assert!(challenge.starts_with('+'), "{mechanism}: {challenge}");
            imap.send(&response).await;
        }
        let mut answer = imap.read().await;
        while !answer.starts_with("b1 ") {
            answer = imap.read().await;
        }
        assert!(answer.starts_with("b1 OK"), "{mechanism}: {answer}");
        imap.send(&register("b2")).await;
        let registered = imap.read().await;
        assert!(
            registered.starts_with("* XAPPLEPUSHSERVICE"),
            "{mechanism}: {registered}"
        );
    }
    // Every registration is alice's, as Dovecot accepted her.
    let devices = on.devices("alice").await;
    assert_eq!(
        devices.len(),
        1,
        "one device, registered three times: {devices:?}"
    );
    let page = support::metrics(daemon.local_addr().unwrap()).await;
    assert!(
        page.contains(
            "mailpushd_front_push_commands_total{command=\"xapplepushservice\",outcome=\"registered\"} 3"
        ),
        "{page}"
    );
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn an_answer_to_another_command_with_the_logins_tag_is_not_the_logins() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let on = OnDovecot::start().await;
    // A command, and in the same write a login with the same tag and a wrong password:
    // Dovecot's OK to the first, which comes first, must not log the session in.
    for (i, login) in [
        "LOGIN alice wrong".to_owned(),
        format!("AUTHENTICATE PLAIN {}", b64(b"\0alice\0wrong")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut imap = on.client().await;
        imap.send(&format!("a NOOP\r\na {login}")).await;
        let noop = imap.read().await;
        assert!(noop.starts_with("a OK"), "{i}: {noop}");
        // The login's own answer, under the client's tag.
        let mut answer = imap.read().await;
        while answer.starts_with("* ") {
            answer = imap.read().await;
        }
        assert!(answer.starts_with("a NO"), "{i}: {answer}");
        imap.send(&format!(
            "b XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX)"
        ))
        .await;
        let refused = imap.read().await;
        assert!(
            refused.starts_with("b BAD"),
            "{i}: Dovecot's, before a login: {refused}\n{}",
            imap.transcript
        );
        // A login that works still does, under its own tag, with the push extensions.
        let logged_in = imap.run("LOGIN alice secret").await;
        assert!(
            logged_in.last().is_some_and(|l| l.starts_with("1 OK")),
            "{i}: {logged_in:?}"
        );
        assert!(last_capability_is_xaps(&logged_in), "{i}: {logged_in:?}");
    }
    let devices = on.devices("alice").await;
    assert!(devices.is_empty(), "{devices:?}");
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn a_literal_in_a_sasl_response_cancels_the_exchange() {
    let on = OnDovecot::start().await;
    for literal in ["{0}\r\n", "{3+}\r\nabc y\r\n"] {
        let mut imap = on.client().await;
        imap.send("a AUTHENTICATE PLAIN").await;
        let challenge = imap.read().await;
        assert!(challenge.starts_with('+'), "{challenge}");
        // Had the server taken "x {0}" for the response, what follows would reach it
        // as a command the front never read.
        imap.send(&format!("x {literal}c COMPRESS DEFLATE")).await;
        let cancelled = imap.read().await;
        assert!(cancelled.starts_with("a BAD"), "{literal}: {cancelled}");
        let compress = imap.read().await;
        assert_eq!(
            compress, "c NO COMPRESS is not available here.\r\n",
            "{literal}: {}",
            imap.transcript
        );
    }
    on.stop().await;
}

/// A login whose literal the front would read where Dovecot reads none (a `{n+}` in a
/// quoted string, or straight after an atom, where Dovecot ends the line): the front
/// refuses it, or relays it as the one line Dovecot reads, and none of it reaches
/// Dovecot as a literal. So no answer of Dovecot's shows the client the front's tag,
/// what the client sends as the "literal" (a login of its own under that tag) is
/// never read as the login's, and the session does not act for the user the line
/// named.
/// An AUTHENTICATE line whose initial response Dovecot reads and a one-word reader
/// misses (two spaces, a CR) or cuts short (a space in the base64) is refused whole.
/// Relayed, Dovecot took the response for the user name (`alice`) and asked for the
/// password, which the front then read as the user name: its session acted for a user
/// named as alice's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn an_authenticate_line_dovecot_reads_otherwise_is_refused() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let on = OnDovecot::start().await;
    let (alice, secret) = (b64(b"alice"), b64(b"secret"));
    let (ali, ce) = alice.split_at(4);
    for line in [
        format!("t AUTHENTICATE LOGIN  {alice}"),
        format!("t AUTHENTICATE LOGIN\r{alice}"),
        format!("t AUTHENTICATE LOGIN {ali} {ce}"),
    ] {
        let mut imap = on.client().await;
        imap.send(&line).await;
        let answer = imap.read().await;
        if answer.starts_with('+') {
            // Relayed: the password, then a push command as whoever the front took.
            imap.send(&secret).await;
            let mut answer = imap.read().await;
            while !answer.starts_with("t ") {
                answer = imap.read().await;
            }
        } else {
            assert!(answer.starts_with("t BAD"), "{}", imap.transcript);
        }
        imap.send(&format!(
            "r XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX)"
        ))
        .await;
        let mut answer = imap.read().await;
        while answer.starts_with("* ") {
            answer = imap.read().await;
        }
        assert!(answer.starts_with("r BAD"), "{}", imap.transcript);
    }
    for user in ["secret", "alice"] {
        let devices = on.devices(user).await;
        assert!(devices.is_empty(), "{user}: {devices:?}");
    }
    // An empty initial response (`=`) is none to the LOGIN mechanism: Dovecot asks for
    // the user name next, and the front reads it there.
    let mut imap = on.client().await;
    imap.send("t AUTHENTICATE LOGIN =").await;
    assert!(imap.read().await.starts_with("+ "), "{}", imap.transcript);
    imap.send(&alice).await;
    assert!(imap.read().await.starts_with("+ "), "{}", imap.transcript);
    imap.send(&secret).await;
    let mut answer = imap.read().await;
    while !answer.starts_with("t ") {
        answer = imap.read().await;
    }
    assert!(answer.starts_with("t OK"), "{}", imap.transcript);
    imap.send(&format!(
        "r XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX)"
    ))
    .await;
    assert!(
        imap.read().await.starts_with("* XAPPLEPUSHSERVICE"),
        "{}",
        imap.transcript
    );
    let devices = on.devices("alice").await;
    assert_eq!(devices.len(), 1);
    on.stop().await;
}

/// A literal's length is read as Dovecot reads it, leading zeros and all: the front
/// waits for Dovecot's "+", passes the literal on, and reads the next command where
/// Dovecot does. (Read as text, the literal's octets were taken for a command of their
/// own, and the SELECT waited for them for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn literal_lengths_are_read_as_dovecot_reads_them() {
    let on = OnDovecot::start().await;
    let mut imap = on.client().await;
    let logged_in = imap.run("LOGIN alice secret").await;
    assert!(logged_in.last().is_some_and(|l| l.starts_with("1 OK")));
    // A literal that waits for no "+" in a command Dovecot answers without reading it
    // (NOOP, then it skips to the line's end): the front asked for Dovecot's "+",
    // which never came, so the literal's octets never reached Dovecot, which would
    // have run them. One Dovecot reads goes on.
    imap.stream
        .get_mut()
        .write_all(b"n NOOP {20+}\r\nb COMPRESS DEFLATE\r\n\r\n")
        .await
        .unwrap();
    assert!(imap.read().await.starts_with("n OK"), "{}", imap.transcript);
    let message = "Subject: through the front\r\n\r\nHello\r\n";
    imap.stream
        .get_mut()
        .write_all(format!("p APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes())
        .await
        .unwrap();
    let mut answer = imap.read().await;
    while answer.starts_with("* ") {
        answer = imap.read().await;
    }
    assert!(answer.starts_with("p OK"), "{}", imap.transcript);
    // A brace that announces no literal: Dovecot would answer "+" to it at once.
    imap.send("q SELECT {0}x").await;
    assert!(
        imap.read()
            .await
            .starts_with("q BAD Error in IMAP command: a brace"),
        "{}",
        imap.transcript
    );
    assert!(!imap.transcript.contains("S: +"), "{}", imap.transcript);
    assert!(!imap.transcript.contains("b OK"), "{}", imap.transcript);
    let zeros = "0".repeat(30);
    for (tag, command, plus) in [("s", "SELECT", ""), ("e", "EXAMINE", "+")] {
        imap.send(&format!("{tag} {command} {{{zeros}5{plus}}}"))
            .await;
        if plus.is_empty() {
            let go_on = imap.read().await;
            assert!(go_on.starts_with('+'), "{}", imap.transcript);
        }
        imap.send("INBOX").await;
        let mut answer = imap.read().await;
        while answer.starts_with("* ") {
            answer = imap.read().await;
        }
        assert!(
            answer.starts_with(&format!("{tag} OK")),
            "{}",
            imap.transcript
        );
    }
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn a_login_the_front_and_dovecot_would_read_differently_is_refused_whole() {
    use base64::Engine as _;
    use tokio::io::AsyncWriteExt as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let on = OnDovecot::start().await;
    let own_login = "LOGIN alice secret";
    for start in [
        "LOGIN bob \"".to_owned(),
        "LOGIN bob".to_owned(),
        format!("AUTHENTICATE PLAIN {} \"", b64(b"\0bob\0x")),
    ] {
        let mut imap = on.client().await;
        // The front's tags are 27 characters long: the "literal" is a login under one.
        let n = 27 + 1 + own_login.len();
        imap.send(&format!("a {start}{{{n}+}}")).await;
        // Refused at once (the front took no literal), or waiting for the literal;
        // before the fix, Dovecot's BAD to the cut line came back under the front's tag.
        let early = tokio::time::timeout(Duration::from_secs(2), imap.read()).await;
        let tag = match &early {
            Ok(line) if line.starts_with("a BAD") => None,
            Ok(line) if line.starts_with("mpf") => Some(line.split(' ').next().unwrap().to_owned()),
            Ok(line) => panic!("{start}: {line}"),
            Err(_) => Some("mpf000000000000000000000000".to_owned()),
        };
        if let Some(tag) = tag {
            assert_eq!(tag.len(), 27);
            let literal = format!("{tag} {own_login}");
            assert_eq!(literal.len(), n);
            imap.stream
                .get_mut()
                .write_all(literal.as_bytes())
                .await
                .unwrap();
            imap.send("").await;
            let mut answer = imap.read().await;
            while answer.starts_with("* ") || answer.starts_with("mpf") {
                answer = imap.read().await;
            }
            assert!(
                answer.starts_with("a BAD"),
                "{start}: {answer}\n{}",
                imap.transcript
            );
        }
        imap.send(&format!(
            "b XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX)"
        ))
        .await;
        let refused = imap.read().await;
        assert!(
            refused.starts_with("b BAD"),
            "{start}: Dovecot's, before a login: {refused}\n{}",
            imap.transcript
        );
        assert!(
            !imap.transcript.contains("S: mpf"),
            "{start}: the front's tag was shown:\n{}",
            imap.transcript
        );
        // A login that works still does.
        let logged_in = imap.run(own_login).await;
        assert!(
            logged_in.last().is_some_and(|l| l.starts_with("1 OK")),
            "{start}: {logged_in:?}"
        );
    }
    for user in ["bob", "alice"] {
        let devices = on.devices(user).await;
        assert!(devices.is_empty(), "{user}: {devices:?}");
    }
    on.stop().await;
}

/// A client that sends its last commands and ends its side (`printf ... | nc -N`)
/// gets Dovecot's answers through the front, as it does directly, and the session
/// ends when Dovecot closes, with no goodbye of the front's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn a_client_that_ends_its_side_gets_dovecots_answers() {
    let on = OnDovecot::start().await;
    let mut imap = on.client().await;
    let logged_in = imap.run("LOGIN alice secret").await;
    assert!(logged_in.last().is_some_and(|l| l.starts_with("1 OK")));
    let mut stream = imap.stream;
    stream
        .get_mut()
        .write_all(b"n1 NOOP\r\nn2 SELECT INBOX\r\n")
        .await
        .unwrap();
    stream.get_mut().shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(read.is_ok(), "still open after Dovecot's answers: {rest}");
    assert!(rest.contains("n1 OK") && rest.contains("n2 OK"), "{rest}");
    assert!(!rest.contains("BYE [UNAVAILABLE]"), "{rest}");
    on.stop().await;
}
