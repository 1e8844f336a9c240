//! A real push service (`web-push-testing`, the stand-in browsers' tests use) and a real
//! Dovecot, 2.3 and 2.4, with the shipped Lua script: GETVAPID through the daemon, a subscription at the push service with that
//! key, WEBPUSH through the daemon, the verification push arriving there decrypted,
//! ACKWEBPUSH, then an LMTP delivery arriving as a decrypted push with its envelope; the
//! subscription expired at the push service, the next push gets 410 and the
//! subscription is gone from the store. And the same session through the IMAP front
//! instead of forwarded commands: a real IMAP client's WEBPUSH answered by the front.
//!
//! Needs Dovecot (see `tests/dovecot.rs`) and `interop/node_modules/.bin/web-push-testing`
//! (`npm ci` in `interop/`): ignored unless asked for with `--include-ignored`, as
//! `.ci/run` does after installing them, and then a missing peer is a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;
use support::imap::{Client, certificates, connect_tls, front_config};
use support::{Dovecot, Driver, Release, free_port};

use mailpushd::config::Config;
use mailpushd::daemon::Daemon;
use mailpushd::demo::http;

/// web-push-testing's command, installed by `npm ci` in `interop/`.
fn web_push_testing() -> PathBuf {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/node_modules/.bin/web-push-testing");
    assert!(
        bin.exists(),
        "needs web-push-testing: run npm ci in interop/"
    );
    bin
}

/// The push service, stopped when dropped.
struct PushService {
    bin: PathBuf,
    /// Where its command line keeps the server's process id: `stop` must run there too.
    dir: PathBuf,
    port: u16,
}

impl PushService {
    /// Starts it, its state kept in `dir`.
    fn start(bin: PathBuf, dir: &Path) -> Self {
        let port = free_port();
        let status = Command::new(&bin)
            .current_dir(dir)
            .args(["--port", &port.to_string(), "start"])
            .status()
            .unwrap();
        assert!(status.success());
        Self {
            bin,
            dir: dir.to_owned(),
            port,
        }
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn call(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let json = [("content-type", "application/json")];
        let (status, body) = http(
            self.address(),
            "POST",
            path,
            &json,
            body.to_string().as_bytes(),
        )
        .await
        .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// A browser's subscription made with the VAPID key `key`.
    async fn subscribe(&self, key: &str) -> Subscription {
        let (status, subscription) = self
            .call(
                "/subscribe",
                &serde_json::json!({ "applicationServerKey": key, "userVisibleOnly": "true" }),
            )
            .await;
        assert_eq!(status, 200, "{subscription}");
        let data = &subscription["data"];
        let text = |value: &serde_json::Value| value.as_str().unwrap().to_owned();
        Subscription {
            endpoint: text(&data["endpoint"]),
            client: text(&data["clientHash"]),
            p256dh: text(&data["keys"]["p256dh"]),
            auth: text(&data["keys"]["auth"]),
        }
    }

    /// The decrypted messages it received for `client`.
    async fn messages(&self, client: &str, at_least: usize) -> Vec<String> {
        for _ in 0..100 {
            let (_, answer) = self
                .call(
                    "/get-notifications",
                    &serde_json::json!({ "clientHash": client }),
                )
                .await;
            let messages: Vec<String> = answer["data"]["messages"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if messages.len() >= at_least {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fewer than {at_least} pushes arrived");
    }
}

/// A subscription at the push service, as the browser would hand it to the client.
struct Subscription {
    endpoint: String,
    /// The push service's name for the subscriber, to read its messages.
    client: String,
    p256dh: String,
    auth: String,
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin)
            .current_dir(&self.dir)
            .args(["--port", &self.port.to_string(), "stop"])
            .status();
    }
}

async fn forward(daemon: SocketAddr, line: &str) -> String {
    let (status, body) = support::forward(daemon, "alice", "imap-1", line).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs web-push-testing (npm ci in interop/), Dovecot 2.3 and root; .ci/run installs them and runs --include-ignored"]
async fn a_real_push_service_and_dovecot_2_3() {
    real_push_service_and_dovecot(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs web-push-testing (npm ci in interop/), a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes them and runs --include-ignored"]
async fn a_real_push_service_and_dovecot_2_4() {
    real_push_service_and_dovecot(Release::v2_4()).await;
}

/// A message whose envelope has a little of everything: a display name in an
/// encoded-word, a subject Dovecot decodes to UTF-8 (the script sends it so, the
/// daemon encodes it again), a date in a zone west of UTC.
const MESSAGE: &str = "From: =?UTF-8?Q?Bob_Br=C3=A4un?= <bob@example.org>\r\n\
To: alice@example.org\r\n\
Subject: =?ISO-8859-1?Q?Quarterly_Gr=FC=DFe?=\r\n\
Date: Tue, 1 Dec 2026 21:39:06 -0130\r\n\
Message-ID: <quarterly@example.org>\r\n\
\r\n\
Hello.\r\n";

/// The push it gives, as the IMAP server's own ENVELOPE would have it.
const PUSH: &str = "* SELECT INBOX\r\n\
* 1 UIDFETCH (ENVELOPE (\"Tue, 1 Dec 2026 21:39:06 -0130\" \"=?UTF-8?B?UXVhcnRlcmx5IEdyw7zDn2U=?=\" \
((\"=?UTF-8?Q?Bob_Br=C3=A4un?=\" NIL \"bob\" \"example.org\")) \
((\"=?UTF-8?Q?Bob_Br=C3=A4un?=\" NIL \"bob\" \"example.org\")) \
((\"=?UTF-8?Q?Bob_Br=C3=A4un?=\" NIL \"bob\" \"example.org\")) \
NIL NIL NIL NIL \"<quarterly@example.org>\"))\r\n";

async fn real_push_service_and_dovecot(release: Release) {
    let bin = web_push_testing();
    let dir = tempfile::tempdir().unwrap();
    let service = PushService::start(bin, dir.path());

    let mut config = Config::with_database(dir.path().join("store.sqlite"));
    support::open_api(&mut config);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    // web-push-testing listens on plain http on localhost: the test-only opt-in.
    config.webpush.allow_local_push_service = true;
    let daemon = Daemon::start(config).await.unwrap();
    let address = daemon.local_addr().unwrap();

    // GETVAPID gives the key the browser subscribes with.
    let answer = forward(address, "a1 GETVAPID\r\n").await;
    let Subscription {
        endpoint,
        client,
        p256dh,
        auth,
    } = service.subscribe(&support::vapid_key(&answer)).await;

    let answer = forward(
        address,
        &format!("a2 WEBPUSH sub-1 {endpoint} {p256dh} {auth}\r\n"),
    )
    .await;
    assert!(answer.ends_with("a2 OK WEBPUSH completed\r\n"), "{answer}");
    // The verification push, decrypted by the push service.
    let messages = service.messages(&client, 1).await;
    let token = messages[0]
        .strip_prefix("* ACKWEBPUSH ")
        .unwrap()
        .strip_suffix("\r\n")
        .unwrap();
    let answer = forward(address, &format!("a3 ACKWEBPUSH {token}\r\n")).await;
    assert!(
        answer.ends_with("a3 OK ACKWEBPUSH completed\r\n"),
        "{answer}"
    );

    // A real delivery, reported by the shipped Lua script with the message's details.
    let dovecot = Dovecot::start(&release, &Driver::lua(address, None)).await;
    dovecot.deliver_message("alice@example.org", MESSAGE).await;
    let messages = service.messages(&client, 2).await;
    assert_eq!(messages[1], PUSH);

    // Expired at the push service: the next push is answered 410, and the
    // subscription is gone from the store.
    let (status, _) = service
        .call(
            &format!("/expire-subscription/{client}"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    dovecot.deliver("alice@example.org", "Again").await;
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = daemon
            .store()
            .webpush_account(&support::user_name("alice"))
            .await
            .unwrap()
            .records
            .len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the 410 deleted the subscription");
    let answer = forward(address, "a4 LWEBPUSH *\r\n").await;
    assert_eq!(answer, "a4 OK LWEBPUSH completed\r\n");
    dovecot.stop();
    daemon.shutdown(Duration::from_secs(5)).await;

    // Stopped with the test, not left running.
    let push_service = service.address();
    drop(service);
    let mut gone = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(push_service).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "web-push-testing still answers on {push_service}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs web-push-testing (npm ci in interop/), a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes them and runs --include-ignored"]
async fn webpush_through_the_front_to_dovecot_2_4() {
    let release = Release::v2_4();
    let bin = web_push_testing();
    let dir = tempfile::tempdir().unwrap();
    let service = PushService::start(bin, dir.path());
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dovecot = Dovecot::start(&release, &Driver::lua(api, None)).await;

    let mut config = Config::with_database(dir.path().join("store.sqlite"));
    support::open_api(&mut config);
    config.listen = api;
    config.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    config.webpush.allow_local_push_service = true;
    let (pair, roots) = certificates(dir.path());
    config.front = Some(front_config(pair, dovecot.imap_proxied, true, false));
    let daemon = Daemon::start(config).await.unwrap();
    let front = daemon.front_addresses()[0];

    let mut imap = Client::new(connect_tls(front, &roots, [127, 0, 0, 1].into()).await);
    assert!(!imap.read().await.contains("WEBPUSH"), "before login");
    let login = imap.run("LOGIN alice secret").await.concat();
    assert!(login.contains(" WEBPUSH"), "{login}");
    // GETVAPID gives the key the browser subscribes with.
    let answer = imap.run("GETVAPID").await.concat();
    let Subscription {
        endpoint,
        client,
        p256dh,
        auth,
    } = service.subscribe(&support::vapid_key(&answer)).await;
    let answer = imap
        .run(&format!("WEBPUSH sub-1 {endpoint} {p256dh} {auth}"))
        .await
        .concat();
    assert!(answer.ends_with("3 OK WEBPUSH completed\r\n"), "{answer}");
    // The verification push, decrypted by the push service.
    let messages = service.messages(&client, 1).await;
    let token = messages[0]
        .strip_prefix("* ACKWEBPUSH ")
        .unwrap()
        .strip_suffix("\r\n")
        .unwrap();
    let answer = imap.run(&format!("ACKWEBPUSH {token}")).await.concat();
    assert!(
        answer.ends_with("4 OK ACKWEBPUSH completed\r\n"),
        "{answer}"
    );
    let answer = imap.run("LWEBPUSH *").await.concat();
    assert!(answer.contains("sub-1"), "{answer}");

    // A real delivery, reported by the shipped Lua script, arrives decrypted with the
    // envelope the server's own ENVELOPE would give.
    imap.run("SELECT INBOX").await;
    dovecot.deliver_message("alice@example.org", MESSAGE).await;
    let messages = service.messages(&client, 2).await;
    assert_eq!(messages[1], PUSH);
    imap.run("LOGOUT").await;
    let page = support::metrics(daemon.local_addr().unwrap()).await;
    assert!(
        page.contains(
            "mailpushd_front_push_commands_total{command=\"webpush\",outcome=\"answered\"} 4"
        ),
        "{page}"
    );
    dovecot.stop();
    daemon.shutdown(Duration::from_secs(5)).await;
}
