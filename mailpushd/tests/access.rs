//! Who may use the daemon, tested as a local attacker would: with the shipped default,
//! every route that changes state refuses a request without the credential (made on
//! first start, readable by the daemon's user only) and nothing is stored; an xapsd
//! YAML keeps xapsd's own routes open as xapsd had them, never the Web Push ones; the
//! Unix socket serves HTTP and the xaps plugin's legacy lines to whom its mode lets in;
//! the store's files are the owner's only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use mailpushd::config::{Config, UnixSocket};
use mailpushd::daemon::Daemon;
use mailpushd::demo::http;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

mod support;
use support::JSON;

const REGISTER: &[u8] = br#"{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX"]}"#;
const NOTIFY: &[u8] = br#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}"#;
const OX: &[u8] = br#"{"user":"alice","event":"messageNew","folder":"INBOX"}"#;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every route that changes state, as a local process would call it.
async fn attempts(daemon: &Daemon, authorization: Option<&str>) -> Vec<(&'static str, u16)> {
    let address = daemon.local_addr().unwrap();
    let mut headers = JSON.to_vec();
    let identity = [
        ("x-mailpush-user", "alice"),
        ("x-mailpush-connection", "c1"),
    ];
    headers.extend(identity);
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    let mut out = Vec::new();
    for (name, method, path, body) in [
        ("register", "POST", "/register", REGISTER),
        ("notify", "POST", "/notify", NOTIFY),
        ("ox", "PUT", "/ox", OX),
        ("webpush", "POST", "/imap/webpush", &b"a1 GETVAPID\r\n"[..]),
        ("disconnect", "POST", "/imap/disconnect", &b""[..]),
    ] {
        let (status, _) = http(address, method, path, &headers, body).await.unwrap();
        out.push((name, status));
    }
    out
}

fn basic(credential: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credential.trim_end())
    )
}

#[tokio::test]
async fn the_shipped_default_refuses_every_state_changing_route_without_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default, as a file with nothing in it gives it; a local port.
    let mut config = Config::from_toml("", dir.path()).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    let daemon = Daemon::start(config).await.unwrap();

    let refused = attempts(&daemon, None).await;
    assert!(refused.iter().all(|(_, s)| *s == 401), "{refused:?}");
    let wrong = attempts(&daemon, Some(&basic("dovecot:guess"))).await;
    assert!(wrong.iter().all(|(_, s)| *s == 401), "{wrong:?}");
    assert_eq!(daemon.store().count().await.unwrap(), 0, "nothing stored");
    // Read-only routes stay open for monitoring.
    let address = daemon.local_addr().unwrap();
    assert_eq!(
        http(address, "GET", "/healthz", &[], b"").await.unwrap().0,
        200
    );
    assert_eq!(
        http(address, "GET", "/metrics", &[], b"").await.unwrap().0,
        200
    );

    // The credential was made on first start, for the daemon's user only.
    let file = dir.path().join("api-credential");
    assert_eq!(mode(&file), 0o600);
    let credential = std::fs::read_to_string(&file).unwrap();
    assert!(credential.starts_with("dovecot:"));
    let allowed = attempts(&daemon, Some(&basic(&credential))).await;
    assert_eq!(
        allowed,
        [
            ("register", 200),
            ("notify", 200),
            ("ox", 200),
            ("webpush", 200),
            ("disconnect", 204)
        ]
    );
    assert_eq!(daemon.store().count().await.unwrap(), 1);
    daemon.shutdown(Duration::from_secs(2)).await;

    // The store's files are the owner's only, whatever the umask.
    for name in [
        "mailpushd.sqlite",
        "mailpushd.sqlite-wal",
        "mailpushd.sqlite-shm",
    ] {
        let path = dir.path().join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}

#[tokio::test]
async fn an_older_store_readable_by_others_is_closed_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    let store = mailpushd::store::Store::open_sqlite(&path).await.unwrap();
    store.close().await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = mailpushd::store::Store::open_sqlite(&path).await.unwrap();
    store.close().await;
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn an_xapsd_yaml_keeps_xapsds_routes_open_and_guards_the_web_push_ones() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listenAddr: '127.0.0.1'\nport: {}\ndatabaseFile: {}\n",
        support::free_port(),
        dir.path().join("database.json").display()
    );
    let mut config = Config::from_xapsd_yaml(&yaml, dir.path()).unwrap();
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    let daemon = Daemon::start(config).await.unwrap();
    let answers = attempts(&daemon, None).await;
    assert_eq!(
        answers,
        [
            ("register", 200),
            ("notify", 200),
            ("ox", 200),
            ("webpush", 401),
            ("disconnect", 401)
        ]
    );
    daemon.shutdown(Duration::from_secs(2)).await;
}

/// One request over the socket, whole, and the whole answer.
async fn over_socket(path: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn the_socket_serves_http_and_the_legacy_lines_to_whom_its_mode_lets_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_toml("", dir.path()).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let socket = dir.path().join("api.sock");
    config.api.socket = Some(UnixSocket {
        path: socket.clone(),
        group: None,
        mode: 0o660,
    });
    let daemon = Daemon::start(config).await.unwrap();
    assert_eq!(mode(&socket), 0o660);

    // HTTP over the socket: its mode is the credential.
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        REGISTER.len()
    );
    let answer = over_socket(&socket, &[request.as_bytes(), REGISTER].concat()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let topic = daemon.apns().topic().as_str().to_owned();
    assert!(answer.ends_with(&topic), "{answer}");

    // The first xaps plugin's lines, as it writes them, answered as xapsd did.
    let register = "REGISTER aps-account-id=\"0A7C4DFD-3FC4-418D-B4FC-F6EE59603731\"\taps-device-token=\"3A1E4FBA6214E9DB210D15BAF10D5EE85ED217437B9BAC4AFACB8416AAD6E46D\"\taps-subtopic=\"com.apple.mobilemail\"\tdovecot-username=\"bob\"\tdovecot-mailboxes=(\"INBOX\",\"Notes\")\r\n";
    assert_eq!(
        over_socket(&socket, register.as_bytes()).await,
        format!("OK {topic}\n")
    );
    let notify =
        "NOTIFY dovecot-username=\"bob\"\tdovecot-mailbox=\"INBOX\"\tevents=(\"MessageNew\")\r\n";
    assert_eq!(over_socket(&socket, notify.as_bytes()).await, "OK \n");
    // The verb in any case, as the parser reads it (HTTP's 400 before), and a line
    // that comes in pieces.
    let lower = notify.replacen("NOTIFY", "notify", 1);
    assert_eq!(over_socket(&socket, lower.as_bytes()).await, "OK \n");
    let mut stream = UnixStream::connect(&socket).await.unwrap();
    for piece in notify.as_bytes().chunks(5) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "OK \n");
    let refused = "REGISTER aps-account-id=\"A\"\taps-subtopic=\"other\"\r\n";
    assert!(
        over_socket(&socket, refused.as_bytes())
            .await
            .starts_with("ERROR "),
    );
    assert_eq!(daemon.store().count().await.unwrap(), 2);

    // Over TCP the credential is still asked.
    let (status, _) = http(
        daemon.local_addr().unwrap(),
        "POST",
        "/register",
        &JSON,
        REGISTER,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    daemon.shutdown(Duration::from_secs(2)).await;
}

/// A mailbox's name comes from mail: a line break or a terminal escape in it reaches
/// the log escaped, never as a forged line or a colour change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_mail_reach_the_log_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let push = mailpushd::standin::PushService::start().await.unwrap();
    let address = format!("127.0.0.1:{}", support::free_port());
    let config = dir.path().join("mailpushd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{address}\"\ndatabase = \"sqlite:store.sqlite\"\n{}[webpush]\nsubject = \"mailto:postmaster@mail.example\"\nallow_local_push_service = true\n[push]\nmailboxes = [\"Junk\\nFAKE ERROR forged line\\u001b[31m\"]\n",
            support::OPEN_API_TOML
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mailpushd"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("MAILPUSHD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = address.parse().unwrap();
    support::wait_healthy(address).await;
    // An active subscription for alice, stored as a fan-out finds it.
    let store = mailpushd::store::Store::open_sqlite(&dir.path().join("store.sqlite"))
        .await
        .unwrap();
    let key = store.vapid_key().await.unwrap().unwrap().0;
    let ua = webpush_crypto::UaKeys::generate(&mut rand_core::OsRng).unwrap();
    support::store_active_subscriptions(&store, "alice", [push.endpoint("p/1")], &ua, key).await;
    // New mail in a mailbox with a forged log line and a terminal escape in its name,
    // its envelope too large to push: the log says what was left out, and names it.
    let mailbox = "Junk\nFAKE ERROR forged line\u{1b}[31m";
    let from = "x".repeat(5000);
    let body = serde_json::json!({
        "Username": "alice", "Mailbox": mailbox, "Events": ["MessageNew"],
        "Messages": [{"Uid": 1, "From": from}],
    });
    let (status, _) = http(
        address,
        "POST",
        "/notify",
        &JSON,
        body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    // 404 as xapsd answers (no iOS device); the Web Push subscription is pushed.
    assert_eq!(status, 404);
    push.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("left out of a push"), "{log}");
    assert!(log.contains("Junk\\nFAKE ERROR"), "the name escaped: {log}");
    assert!(!log.contains('\u{1b}'), "a raw escape in: {log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("FAKE ERROR")),
        "a forged line in: {log}"
    );
}
