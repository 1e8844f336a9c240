//! A real Dovecot (Debian's 2.3.19, stock: no C plugin) driving the daemon: its Lua push
//! driver with `mailpushd.lua`, then its OX driver. LMTP deliveries, STORE `\Seen`, a
//! MOVE and a delivery to Junk happen over real IMAP and LMTP connections; the APNs
//! stand-in shows one immediate push per delivery to INBOX, one push after a burst of
//! flag changes, nothing for Junk.
//!
//! Needs `dovecot` installed and root (its master starts as root). `.ci/run` installs it
//! and sets `MAILPUSHD_REQUIRE_DOVECOT=1`, which makes a missing Dovecot a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod support;
use support::{Dovecot, ShowLogOnFailure, dovecot_available};

use mailpushd::config::BasicAuth;
use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "2918390218931890821908309283098109381029309829018310983092892829";
/// `dovecot:s3cret`, as the OX driver sends it from its URL's user info.
const AUTHORIZATION: &str = "Basic ZG92ZWNvdDpzM2NyZXQ=";
/// The quiet period after flag changes, in this test.
const DELAY: Duration = Duration::from_secs(2);

/// The exact bytes of the xaps plugin's registration (Dovecot 2.3.19's HTTP client).
async fn register_as_the_plugin(daemon: SocketAddr) {
    let body = format!(
        r#"{{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"{TOKEN}","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX","Sent Messages"]}}"#
    );
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: {daemon}\r\nDate: Tue, 01 Dec 2026 20:39:06 GMT\r\nAuthorization: {AUTHORIZATION}\r\nContent-Length: {}\r\nConnection: Keep-Alive\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(daemon).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(mailpushd::demo::DEMO_TOPIC), "{answer}");
}

/// Waits until the stand-in holds `n` pushes, then that no more come for `quiet`.
async fn pushes(standin: &Standin, n: usize, quiet: Duration) -> usize {
    standin.wait_for(n, Duration::from_secs(15)).await;
    tokio::time::sleep(quiet).await;
    standin.requests().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_dovecot_drives_the_daemon() {
    if !dovecot_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _log = ShowLogOnFailure(dir.path().join("dovecot.log"));
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    config.push.delay = DELAY;
    config.push.check_interval = Duration::from_millis(200);
    config.basic_auth = Some(BasicAuth {
        user: "dovecot".into(),
        password: zeroize::Zeroizing::new("s3cret".into()),
    });
    let daemon = Daemon::start(config).await.unwrap();
    let address = daemon.local_addr();
    register_as_the_plugin(address).await;

    // The Lua push driver, with the script as shipped.
    let lua = Dovecot::lua_driver(address, Some(AUTHORIZATION));
    let dovecot = Dovecot::start(dir.path(), &lua).await;

    // Each delivery to INBOX: a push at once, well before the quiet period.
    let start = Instant::now();
    dovecot.deliver("alice@example.org", "first").await;
    assert_eq!(pushes(&standin, 1, Duration::ZERO).await, 1);
    assert!(start.elapsed() < DELAY, "immediate: {:?}", start.elapsed());
    dovecot.deliver("alice@example.org", "second").await;
    assert_eq!(pushes(&standin, 2, Duration::ZERO).await, 2);
    let request = &standin.requests()[0];
    assert_eq!(request.path, format!("/3/device/{TOKEN}"));
    assert_eq!(
        request.body,
        br#"{"aps":{"account-id":"0715A26B-CA09-4730-A419-793000CA982E"}}"#
    );

    // A burst of flag changes: nothing at once, one push after the quiet period.
    let mut imap = dovecot.imap().await;
    imap.run("SELECT INBOX").await;
    let burst = Instant::now();
    imap.run("STORE 1 +FLAGS (\\Seen)").await;
    imap.run("STORE 2 +FLAGS (\\Seen)").await;
    imap.run("STORE 1 -FLAGS (\\Seen)").await;
    tokio::time::sleep(DELAY / 2).await;
    assert_eq!(standin.requests().len(), 2, "flag changes wait");
    assert_eq!(pushes(&standin, 3, DELAY + Duration::from_secs(1)).await, 3);
    assert!(burst.elapsed() >= DELAY);

    // A MOVE to Archive: INBOX's expunge pushes after the quiet period (Archive's
    // append pushes nothing: INBOX only, as xapsd).
    imap.run("MOVE 2 Archive").await;
    assert_eq!(pushes(&standin, 4, DELAY + Duration::from_secs(1)).await, 4);

    // A delivery to Junk wakes no phone.
    dovecot.deliver("alice+Junk@example.org", "spam").await;
    tokio::time::sleep(DELAY + Duration::from_secs(1)).await;
    assert_eq!(standin.requests().len(), 4, "nothing for Junk");
    // The user for the OX driver, set as its METADATA needs it.
    imap.run("SETMETADATA \"\" (/private/vendor/vendor.dovecot/http-notify \"user=alice\")")
        .await;
    imap.run("LOGOUT").await;
    dovecot.stop();

    // The OX driver: a delivery to INBOX is a PUT, one push.
    let ox = format!(
        "mail_plugins = $mail_plugins notify push_notification
plugin {{
  push_notification_driver = ox:url=http://dovecot:s3cret@{address}/ox
}}"
    );
    let dovecot = Dovecot::start(dir.path(), &ox).await;
    dovecot.deliver("alice@example.org", "third").await;
    assert_eq!(pushes(&standin, 5, Duration::from_secs(1)).await, 5);
    dovecot.stop();
    daemon.shutdown(Duration::from_secs(5)).await;
}
