//! Real Dovecots driving the daemon through the files shipped in `mailpushd/dovecot/`:
//! Debian 12's 2.3.19 and Debian 13's 2.4.1 (in a chroot), stock, no C plugin.
//!
//! For each: the Lua push driver with `mailpushd.lua` and the release's drop-in, included
//! unchanged (LMTP deliveries pushed at once, a burst of flag changes pushed once after
//! the quiet period, a MOVE's expunge, nothing for Junk); the OX driver; the script's
//! HTTP client timeout and attempts applied; a wrong setting logged once, not at every
//! delivery. And each release refusing the other's drop-in with the error the README
//! names.
//!
//! Needs Dovecot and root (its master starts as root): ignored unless asked for with
//! `--include-ignored`, as `.ci/run` does after installing Dovecot 2.3 and making the
//! Debian 13 chroot, and then a missing Dovecot is a failure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod support;
use support::{Dovecot, Driver, Release, shipped};

use mailpushd::config::BasicAuth;
use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// A daemon with the APNs stand-in, the quiet period of this test and the plugin's
/// credentials, and alice's iPhone registered as the xaps plugin registers it.
async fn daemon_with_a_device(dir: &std::path::Path) -> (Standin, Daemon) {
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir).unwrap();
    config.push.delay = DELAY;
    config.push.check_interval = Duration::from_millis(200);
    config.basic_auth = Some(BasicAuth {
        user: "dovecot".into(),
        password: zeroize::Zeroizing::new("s3cret".into()),
    });
    let daemon = Daemon::start(config).await.unwrap();
    register_as_the_plugin(daemon.local_addr().unwrap()).await;
    (standin, daemon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn the_lua_driver_on_dovecot_2_3() {
    lua_driver(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn the_lua_driver_on_dovecot_2_4() {
    lua_driver(Release::v2_4()).await;
}

async fn lua_driver(release: Release) {
    let dir = tempfile::tempdir().unwrap();
    let (standin, daemon) = daemon_with_a_device(dir.path()).await;
    let address = daemon.local_addr().unwrap();
    let dovecot = Dovecot::start(&release, &Driver::lua(address, Some(AUTHORIZATION))).await;

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
    // What an administrator looks for in Dovecot's log.
    let ready = format!(
        "mailpushd.lua: reporting mail events to http://{address}/notify (Dovecot {} settings; 5 s per attempt, 3 attempts, with an Authorization header)",
        release.name()
    );
    assert!(dovecot.log().contains(&ready), "{}", dovecot.log());

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

    // Headers of any length (folded, as mail has them; each quote two octets of JSON):
    // the event is pushed all the same, not refused as too large.
    let long = vec!["\"".repeat(900); 160].join("\r\n ");
    dovecot
        .deliver_message(
            "alice@example.org",
            &format!(
                "From: {long} <bob@example.org>\r\nTo: alice@example.org\r\nSubject: {long}\r\n\r\nHello.\r\n"
            ),
        )
        .await;
    assert_eq!(pushes(&standin, 5, Duration::ZERO).await, 5);
    imap.run("LOGOUT").await;
    assert!(!dovecot.log().contains("Error"), "{}", dovecot.log());
    dovecot.stop();
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn the_ox_driver_on_dovecot_2_3() {
    ox_driver(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn the_ox_driver_on_dovecot_2_4() {
    ox_driver(Release::v2_4()).await;
}

async fn ox_driver(release: Release) {
    let dir = tempfile::tempdir().unwrap();
    let (standin, daemon) = daemon_with_a_device(dir.path()).await;
    let address = daemon.local_addr().unwrap();
    let url = format!("http://dovecot:s3cret@{address}/ox");
    let dovecot = Dovecot::start(&release, &Driver::Ox { url }).await;
    // The driver pushes for users with this METADATA key; its user= names them.
    let mut imap = dovecot.imap().await;
    imap.run("SETMETADATA \"\" (/private/vendor/vendor.dovecot/http-notify \"user=alice\")")
        .await;
    imap.run("LOGOUT").await;

    // A delivery to INBOX is a PUT, one push at once.
    let start = Instant::now();
    dovecot.deliver("alice@example.org", "third").await;
    assert_eq!(pushes(&standin, 1, Duration::from_secs(1)).await, 1);
    assert!(start.elapsed() < DELAY + Duration::from_secs(1));
    assert!(!dovecot.log().contains("Error"), "{}", dovecot.log());
    dovecot.stop();
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[test]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
fn dovecot_2_4_refuses_the_2_3_drop_in_with_the_error_the_readme_names() {
    let release = Release::v2_4();
    let old = std::fs::read_to_string(shipped("2.3/90-mailpushd.conf")).unwrap();
    let error = Dovecot::check(&release, &Driver::Text(old)).unwrap_err();
    let named = "Unknown section name: plugin";
    assert!(error.contains(named), "{error}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(readme.contains(named), "the README names {named:?}");
    // And the shipped 2.4 drop-in passes, its settings in effect.
    let lua = Driver::lua(SocketAddr::from(([127, 0, 0, 1], 11619)), None);
    let settings = Dovecot::check(&release, &lua).unwrap();
    assert!(
        settings.contains("push_notification mailpushd {"),
        "{settings}"
    );
    assert!(settings.contains("driver = lua"), "{settings}");
}

#[test]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
fn dovecot_2_3_refuses_the_2_4_drop_in_with_the_error_the_readme_names() {
    let release = Release::v2_3();
    let new = std::fs::read_to_string(shipped("2.4/90-mailpushd.conf")).unwrap();
    let error = Dovecot::check(&release, &Driver::Text(new)).unwrap_err();
    let named = "Unknown setting: mail_plugins";
    assert!(error.contains(named), "{error}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(readme.contains(named), "the README names {named:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn the_scripts_timeout_and_attempts_apply_on_dovecot_2_3() {
    timeout_and_attempts(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn the_scripts_timeout_and_attempts_apply_on_dovecot_2_4() {
    timeout_and_attempts(Release::v2_4()).await;
}

/// Against a mailpushd that accepts connections and never answers, a report gives up
/// after its attempts, each as long as the timeout: the delivery is not held longer, and
/// the log says the event is not pushed. The reports that follow in the session (an
/// IMAP session's flag changes here) are tried once each while none is answered; once
/// one is, they get every attempt again.
async fn timeout_and_attempts(release: Release) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", silent.local_addr().unwrap());
    let answers = Arc::new(AtomicBool::new(false));
    let accepted = tokio::spawn({
        let answers = answers.clone();
        async move {
            // Each connection is answered once mailpushd "answers" again, if ever: a
            // mailpushd that hung and came back.
            while let Ok((stream, _)) = silent.accept().await {
                let answers = answers.clone();
                tokio::spawn(async move {
                    while !answers.load(Ordering::Acquire) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    answer_no_device(stream).await;
                });
            }
        }
    });
    let driver = Driver::Lua {
        url: url.clone(),
        authorization: None,
        settings: vec![
            ("mailpushd_timeout_secs".into(), "1".into()),
            ("mailpushd_attempts".into(), "3".into()),
        ],
    };
    let dovecot = Dovecot::start(&release, &driver).await;
    let delivery = || async {
        let start = Instant::now();
        dovecot.deliver("alice@example.org", "unheard").await;
        start.elapsed()
    };
    // Three attempts of one second each, not the client's default of a minute or more.
    let took = delivery().await;
    assert!(took >= Duration::from_secs(3), "gave up after {took:?}");
    assert!(took < Duration::from_secs(10), "held the delivery {took:?}");
    let log = dovecot
        .log_with("for INBOX: this event is not pushed")
        .await;
    assert!(
        log.contains("(Dovecot ") && log.contains("settings; 1 s per attempt, 3 attempts)"),
        "{log}"
    );
    assert!(
        log.contains(&format!("mailpushd.lua: {url} answered 9")),
        "{log}"
    );
    assert!(
        log.contains("the next reports are tried once each until one is answered"),
        "{log}"
    );
    assert!(
        log.contains("3 send attempts") || log.contains("2 times retried"),
        "{log}"
    );
    // An IMAP session's flag changes, each a report.
    let mut imap = dovecot.imap().await;
    imap.run("SELECT INBOX").await;
    let mut change = async |flag: &str| {
        let start = Instant::now();
        let done = imap.run(&format!("STORE 1 {flag}FLAGS (\\Flagged)")).await;
        assert!(done.contains("OK"), "{done}");
        start.elapsed()
    };
    let first = change("+").await;
    assert!(first >= Duration::from_secs(3), "gave up after {first:?}");
    // Still unanswered: one attempt, said so, and at least a timeout sooner (2.4 takes
    // the second; 2.3 first waits out its back-off from a service that failed).
    let took = change("-").await;
    assert!(
        took >= Duration::from_secs(1) && took + Duration::from_secs(1) <= first,
        "the next report took {took:?}, the first {first:?}"
    );
    let log = dovecot.log();
    let last = log.lines().rfind(|l| l.contains(" answered 9"));
    assert!(last.is_some_and(|l| l.contains("1 send attempts")), "{log}");
    // Answered (a 404 without a body, not logged): every attempt again for the next
    // that is not.
    let unanswered = || dovecot.log().matches(" answered 9").count();
    let before = unanswered();
    answers.store(true, Ordering::Release);
    change("+").await;
    answers.store(false, Ordering::Release);
    assert_eq!(unanswered(), before, "{}", dovecot.log());
    let took = change("-").await;
    assert!(took >= Duration::from_secs(3), "gave up after {took:?}");
    imap.run("LOGOUT").await;
    accepted.abort();
}

/// Answers one request as mailpushd answers a user without devices: 404, no body.
async fn answer_no_device(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let _ = stream
        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn a_wrong_path_is_logged_on_dovecot_2_3() {
    wrong_path(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn a_wrong_path_is_logged_on_dovecot_2_4() {
    wrong_path(Release::v2_4()).await;
}

/// A mailpushd_url whose path mailpushd has no route for: mailpushd answers 404 with a
/// body, which the script tells from the empty 404 of a user without devices, and logs,
/// since no event reaches mailpushd.
async fn wrong_path(release: Release) {
    let dir = tempfile::tempdir().unwrap();
    let (_standin, daemon) = daemon_with_a_device(dir.path()).await;
    let url = format!("http://{}/notify/", daemon.local_addr().unwrap());
    let driver = Driver::Lua {
        url: url.clone(),
        authorization: Some(AUTHORIZATION.to_owned()),
        settings: Vec::new(),
    };
    let dovecot = Dovecot::start(&release, &driver).await;
    dovecot.deliver("alice@example.org", "lost").await;
    let log = dovecot
        .log_with("for INBOX: this event is not pushed")
        .await;
    assert!(
        log.contains(&format!("mailpushd.lua: {url} answered 404")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn a_wrong_setting_is_logged_once_on_dovecot_2_3() {
    wrong_setting(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn a_wrong_setting_is_logged_once_on_dovecot_2_4() {
    wrong_setting(Release::v2_4()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3 and root; .ci/run installs it and runs --include-ignored"]
async fn a_url_dovecot_cannot_take_is_logged_once_without_its_password_on_dovecot_2_3() {
    unusable_url(Release::v2_3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Debian 13 chroot with Dovecot 2.4 (MAILPUSHD_DOVECOT24_ROOT) and root; .ci/run makes it and runs --include-ignored"]
async fn a_url_dovecot_cannot_take_is_logged_once_without_its_password_on_dovecot_2_4() {
    unusable_url(Release::v2_4()).await;
}

/// A setting the script cannot use is said in words that name it, once per session:
/// an IMAP session changing flags three times logs it once, not at every change.
async fn wrong_setting(release: Release) {
    let driver = Driver::Lua {
        url: "http://127.0.0.1:1/notify".into(),
        authorization: None,
        settings: vec![("mailpushd_attempts".into(), "many".into())],
    };
    said_once(
        &release,
        &driver,
        "mailpushd.lua: mailpushd_attempts = many is not a whole number from 1 to 10",
    )
    .await;
}

/// A `mailpushd_url` that starts as a URL should but that Dovecot's HTTP client cannot
/// parse: said once per session in the script's words, its password hidden, where
/// each report would have failed in Dovecot's words, the password shown.
async fn unusable_url(release: Release) {
    let driver = Driver::Lua {
        url: "http://dovecot:s3cret@[::1/notify".into(),
        authorization: None,
        settings: Vec::new(),
    };
    let dovecot = said_once(
        &release,
        &driver,
        "mailpushd.lua: mailpushd_url = http://<redacted>@[::1/notify is not a URL Dovecot's HTTP client takes",
    )
    .await;
    assert!(!dovecot.log().contains("s3cret"), "{}", dovecot.log());
}

/// Starts Dovecot with `driver`, delivers a message and changes flags in an IMAP
/// session: `line` is logged once by each. The Dovecot, for more checks.
async fn said_once(release: &Release, driver: &Driver, line: &str) -> Dovecot {
    let dovecot = Dovecot::start(release, driver).await;
    let said = |prefix: &str| {
        dovecot
            .log()
            .lines()
            .filter(|l| l.contains(prefix) && l.contains(line))
            .count()
    };
    dovecot.deliver("alice@example.org", "one").await;
    dovecot.log_with(line).await;
    assert_eq!(said("lmtp("), 1, "{}", dovecot.log());
    assert!(
        dovecot
            .log()
            .contains("no mail event reaches mailpushd until it is fixed and Dovecot reloaded"),
        "{}",
        dovecot.log()
    );
    let mut imap = dovecot.imap().await;
    imap.run("SELECT INBOX").await;
    for _ in 0..3 {
        imap.run("STORE 1 +FLAGS (\\Seen)").await;
        imap.run("STORE 1 -FLAGS (\\Seen)").await;
    }
    imap.run("LOGOUT").await;
    // The IMAP process's last line follows everything it logged: waited for, since the
    // log is written apart from the session.
    for _ in 0..200 {
        let log = dovecot.log();
        if log
            .lines()
            .any(|l| l.contains("imap(") && l.contains("Logged out"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(said("imap("), 1, "{}", dovecot.log());
    dovecot
}
