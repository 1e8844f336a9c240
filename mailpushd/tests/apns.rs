//! The daemon against the APNs stand-in: the request byte for byte, and what each
//! scripted answer does to the store.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
mod support;
use support::JSON;

use mailpushd::daemon::Daemon;
use mailpushd::demo::{DEMO_TOPIC, http, standin_config};
use mailpushd::standin::{Reply, Standin};

const TOKEN: &str = "73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF";
const ACCOUNT: &str = "55FAD99D-748E-44DA-8A7F-91D3478CAABD";

struct Setup {
    standin: Standin,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

async fn setup(change: impl FnOnce(&mut mailpushd::config::Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    config.push.delay = Duration::from_millis(300);
    config.push.check_interval = Duration::from_millis(100);
    change(&mut config);
    let daemon = Daemon::start(config).await.unwrap();
    Setup {
        standin,
        daemon,
        _dir: dir,
    }
}

impl Setup {
    fn address(&self) -> SocketAddr {
        self.daemon.local_addr().unwrap()
    }

    async fn register(&self, user: &str, account: &str, token: &str) -> (u16, Vec<u8>) {
        let body = format!(
            r#"{{"ApsAccountId":"{account}","ApsDeviceToken":"{token}","ApsSubtopic":"com.apple.mobilemail","Username":"{user}","Mailboxes": ["INBOX"]}}"#
        );
        http(self.address(), "POST", "/register", &JSON, body.as_bytes())
            .await
            .unwrap()
    }

    async fn notify(&self, user: &str, events: &str) -> u16 {
        let body = format!(r#"{{"Username":"{user}","Mailbox":"INBOX","Events": [{events}]}}"#);
        http(self.address(), "POST", "/notify", &JSON, body.as_bytes())
            .await
            .unwrap()
            .0
    }

    async fn count(&self) -> u64 {
        self.daemon.store().count().await.unwrap()
    }

    /// Waits until the store holds `n` registrations.
    async fn wait_count(&self, n: u64) -> u64 {
        for _ in 0..100 {
            if self.count().await == n {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.count().await
    }

    /// Waits until the metrics show `line`.
    async fn wait_metric(&self, line: &str) -> String {
        support::wait_metric(self.address(), line).await
    }
}

fn claims(jwt: &str) -> (serde_json::Value, serde_json::Value) {
    let mut parts = jwt.split('.');
    let decode = |p: &str| {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    (decode(parts.next().unwrap()), decode(parts.next().unwrap()))
}

#[tokio::test]
async fn the_request_byte_for_byte() {
    let s = setup(|_| {}).await;
    let (status, body) = s.register("Alice", ACCOUNT, TOKEN).await;
    assert_eq!((status, body.as_slice()), (200, DEMO_TOPIC.as_bytes()));
    assert_eq!(s.count().await, 1);
    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(s.notify("alice", r#""MessageNew""#).await, 200);
    let requests = s.standin.wait_for(1, Duration::from_secs(10)).await;
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    // The token as the device sent it, as xapsd passes it on.
    assert_eq!(r.path, format!("/3/device/{TOKEN}"));
    assert_eq!(
        r.body,
        format!(r#"{{"aps":{{"account-id":"{ACCOUNT}"}}}}"#).as_bytes()
    );
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "content-type",
            "apns-topic",
            "apns-push-type",
            "apns-priority",
            "apns-expiration",
            "authorization",
            "content-length"
        ]
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("apns-topic"), Some(DEMO_TOPIC));
    assert_eq!(r.header("apns-push-type"), Some("background"));
    assert_eq!(r.header("apns-priority"), Some("5"));
    let expiration: u64 = r.header("apns-expiration").unwrap().parse().unwrap();
    assert!((before + 86_400..=before + 86_402).contains(&expiration));
    let jwt = r
        .header("authorization")
        .unwrap()
        .strip_prefix("bearer ")
        .unwrap();
    let (header, claims) = claims(jwt);
    assert_eq!(
        header,
        serde_json::json!({"alg": "ES256", "kid": "DEMO123456"})
    );
    assert_eq!(claims["iss"], "TEAM123456");
    // A flag burst: one push, after the quiet period.
    for _ in 0..5 {
        assert_eq!(
            s.notify("alice", r#""FlagsClear","FlagsSet","MessageRead""#)
                .await,
            200
        );
    }
    let requests = s.standin.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.standin.requests().len(), 2, "{requests:?}");
    // xapsd's answers: 404 for an unknown user, 200 and nothing for Junk.
    assert_eq!(s.notify("bob", r#""MessageNew""#).await, 404);
    let junk = br#"{"Username":"alice","Mailbox":"Junk","Events": ["MessageNew"]}"#;
    assert_eq!(
        http(s.address(), "POST", "/notify", &JSON, junk)
            .await
            .unwrap()
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.standin.requests().len(), 2);
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 2")
        .await;
}

#[tokio::test]
async fn a_410_removes_only_registrations_older_than_its_timestamp() {
    let s = setup(|_| {}).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    // APNs learned of the token's end before the device registered: it stays.
    s.standin.script([Reply::Status(
        410,
        r#"{"reason":"Unregistered","timestamp":1000}"#,
    )]);
    s.notify("alice", r#""MessageNew""#).await;
    s.standin.wait_for(1, Duration::from_secs(10)).await;
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"gone\"} 1")
        .await;
    // Counted as what happened: kept.
    s.wait_metric("mailpushd_gone_total{service=\"apns\",result=\"kept\"} 1")
        .await;
    assert_eq!(s.count().await, 1, "registered after the 410's timestamp");
    // After it: gone.
    let later = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let body: &'static str =
        Box::leak(format!(r#"{{"reason":"Unregistered","timestamp":{later}}}"#).into_boxed_str());
    s.standin.script([Reply::Status(410, body)]);
    s.notify("alice", r#""MessageNew""#).await;
    assert_eq!(s.wait_count(0).await, 0);
    s.wait_metric("mailpushd_gone_total{service=\"apns\",result=\"removed\"} 1")
        .await;
    assert_eq!(s.notify("alice", r#""MessageNew""#).await, 404);
    // A timestamp past year 9999 (as large as its JSON number holds) still compares:
    // the registration, older, goes, and the daemon goes on.
    assert_eq!(s.register("alice", ACCOUNT, TOKEN).await.0, 200);
    s.standin.script([Reply::Status(
        410,
        r#"{"reason":"Unregistered","timestamp":18446744073709551615}"#,
    )]);
    s.notify("alice", r#""MessageNew""#).await;
    assert_eq!(s.wait_count(0).await, 0);
    s.wait_metric("mailpushd_gone_total{service=\"apns\",result=\"removed\"} 2")
        .await;
    s.wait_metric("mailpushd_owed_pushes 0").await;
    assert_eq!(s.register("alice", ACCOUNT, TOKEN).await.0, 200);
    // The pushes that found the token gone went with their registration: a device that
    // registers again starts with no history.
    let logged = s
        .daemon
        .store()
        .pushes_of(&support::user_name("alice"))
        .await
        .unwrap();
    assert!(logged.is_empty(), "{logged:?}");
}

/// A round of attempts ends with its lease: a retry whose wait would run past it is
/// left to the next round, and the timer does not send the push again beside it.
#[tokio::test]
async fn a_round_of_attempts_ends_with_its_lease() {
    let s = setup(|c| {
        // Two seconds for attempts once the lease's margin is kept.
        c.push.lease = Duration::from_secs(7);
        c.push.retry_first = Duration::from_secs(1);
        c.apns.request_timeout = Duration::from_secs(1);
        c.apns.retry_base = Duration::from_secs(12);
    })
    .await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.standin
        .script([Reply::Status(503, r#"{"reason":"ServiceUnavailable"}"#)]);
    s.notify("alice", r#""MessageNew""#).await;
    let requests = s.standin.wait_for(2, Duration::from_secs(6)).await;
    assert_eq!(requests.len(), 2, "the next round within seconds");
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 1")
        .await;
    // Neither the first lease's end (7 s) nor the first round's retry (12 s or more)
    // sends it again.
    let more = s.standin.wait_for(3, Duration::from_secs(14)).await;
    assert_eq!(more.len(), 2);
}

#[tokio::test]
async fn a_400_about_the_token_is_counted_and_deletes_nothing() {
    let s = setup(|_| {}).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.standin.script([
        Reply::Status(400, r#"{"reason":"BadDeviceToken"}"#),
        Reply::Status(400, r#"{"reason":"DeviceTokenNotForTopic"}"#),
    ]);
    s.notify("alice", r#""MessageNew""#).await;
    s.notify("alice", r#""MessageNew""#).await;
    s.standin.wait_for(2, Duration::from_secs(10)).await;
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"token_rejected\"} 2")
        .await;
    assert_eq!(s.count().await, 1);
    assert_eq!(s.standin.requests().len(), 2, "not retried");
}

#[tokio::test]
async fn an_expired_provider_token_is_renewed_and_the_push_resent() {
    let s = setup(|_| {}).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.standin
        .script([Reply::Status(403, r#"{"reason":"ExpiredProviderToken"}"#)]);
    s.notify("alice", r#""MessageNew""#).await;
    let requests = s.standin.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].header("authorization"),
        requests[1].header("authorization")
    );
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 1")
        .await;
}

/// Pushes refused together for an expired token renew it once: every resend carries
/// the same new token.
#[tokio::test]
async fn many_refusals_of_one_expired_token_renew_it_once() {
    let s = setup(|_| {}).await;
    let devices = 4;
    for i in 1..=devices {
        s.register("alice", &format!("ACCOUNT-{i}"), &format!("{i:064x}"))
            .await;
    }
    s.standin.script(
        std::iter::repeat_with(|| Reply::Status(403, r#"{"reason":"ExpiredProviderToken"}"#))
            .take(devices),
    );
    s.notify("alice", r#""MessageNew""#).await;
    let requests = s
        .standin
        .wait_for(2 * devices, Duration::from_secs(10))
        .await;
    assert_eq!(requests.len(), 2 * devices);
    let tokens: std::collections::BTreeSet<_> = requests
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 2, "the refused token and one renewal");
    s.wait_metric(&format!(
        "mailpushd_pushes_total{{service=\"apns\",outcome=\"delivered\"}} {devices}"
    ))
    .await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_in_rounds_then_given_up() {
    let s = setup(|c| {
        c.apns.max_attempts = 3;
        c.push.retry_first = Duration::from_millis(300);
        c.push.retry_max = Duration::from_millis(300);
        c.push.give_up_after = Duration::from_secs(2);
    })
    .await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.standin.script([
        Reply::Status(429, r#"{"reason":"TooManyRequests"}"#),
        Reply::Status(500, r#"{"reason":"InternalServerError"}"#),
    ]);
    s.notify("alice", r#""MessageNew""#).await;
    assert_eq!(
        s.standin.wait_for(3, Duration::from_secs(10)).await.len(),
        3
    );
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 1")
        .await;
    // A round of three failures: owed, and the next round delivers it.
    s.standin.script([
        Reply::Status(503, r#"{"reason":"ServiceUnavailable"}"#),
        Reply::Status(502, "<html>Bad Gateway</html>"),
        Reply::Status(503, ""),
    ]);
    s.notify("alice", r#""MessageNew""#).await;
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"deferred\"} 1")
        .await;
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 2")
        .await;
    assert_eq!(s.standin.requests().len(), 7);
    s.wait_metric("mailpushd_owed_pushes 0").await;
    // Failing for longer than push.give_up_after: given up, the registration kept.
    s.standin
        .script(std::iter::repeat_with(|| Reply::Status(503, "")).take(100));
    s.notify("alice", r#""MessageNew""#).await;
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"gave_up\"} 1")
        .await;
    // The store's gauges are read at most once a second.
    s.wait_metric("mailpushd_owed_pushes 0").await;
    assert_eq!(s.count().await, 1);
}

#[tokio::test]
async fn goaway_resets_and_slow_answers_reconnect_and_retry() {
    let s = setup(|c| c.apns.request_timeout = Duration::from_millis(700)).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.standin.script([
        Reply::GoAway,
        Reply::Reset,
        Reply::Slow(Duration::from_secs(3), Box::new(Reply::OK)),
    ]);
    s.notify("alice", r#""MessageNew""#).await;
    let requests = s.standin.wait_for(4, Duration::from_secs(15)).await;
    assert_eq!(requests.len(), 4, "three failures, then delivered");
    // GOAWAY and the reset each cost the connection.
    assert_eq!(requests[0].connection, 1);
    assert_eq!(requests[1].connection, 2);
    assert!(requests[2].connection >= 3);
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 1")
        .await;
    // The same body every time.
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

/// A stream APNs refuses unprocessed (a server at its limit of streams, or going away)
/// goes again at once, not as a failed attempt after a back-off.
#[tokio::test]
async fn a_push_apns_did_not_process_goes_again_at_once() {
    let s = setup(|_| {}).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.standin.script([Reply::Refused, Reply::Refused]);
    s.notify("alice", r#""MessageNew""#).await;
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 1")
        .await;
    let page = s
        .wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"resent\"} 2")
        .await;
    assert_eq!(s.standin.requests().len(), 3);
    assert!(!page.contains("outcome=\"deferred\""), "{page}");
    // A refused stream costs no connection: all three went on the first.
    assert_eq!(s.standin.connections(), 1);
}

/// Requests that fail one after another on one connection (each timing out) drop it
/// once: the first one's retry opens a new connection, which the later failures on
/// the old one leave to the others instead of each opening one more.
#[tokio::test]
async fn failures_on_a_connection_drop_it_once_not_each_the_next() {
    // All five are sent before the first times out, with room to spare on a loaded
    // machine: a request sent after the first retry opened its connection would go on
    // that one, and its own time-out would drop it.
    let s = setup(|c| c.apns.request_timeout = Duration::from_secs(3)).await;
    let tokens: Vec<String> = (1..=5).map(|i| format!("{i:064x}")).collect();
    for (i, token) in tokens.iter().enumerate() {
        s.register(&format!("user{i}"), ACCOUNT, token).await;
    }
    s.standin.script(
        std::iter::repeat_with(|| Reply::Slow(Duration::from_secs(10), Box::new(Reply::OK)))
            .take(tokens.len()),
    );
    // Each request times out 200 ms after the one before.
    for i in 0..tokens.len() {
        s.notify(&format!("user{i}"), r#""MessageNew""#).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"delivered\"} 5")
        .await;
    assert_eq!(
        s.standin.connections(),
        2,
        "one for the timed out, one for the rest"
    );
}

/// Ten devices pushed at once through an APNs address whose server answers each TCP
/// connection as `hold` says (`true`: kept open and silent; `false`: closed at once),
/// in rounds of three attempts of `timeout` each; how many connections were made
/// once every push's round ended (deferred to a later round).
async fn connection_attempts(hold: bool, timeout: Duration) -> usize {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if hold {
                held.push(socket);
            }
        }
    });
    let s = setup(|c| {
        c.apns.server = apns_proto::Server::new(&format!("127.0.0.1:{port}")).unwrap();
        c.apns.max_attempts = 3;
        c.apns.request_timeout = timeout;
    })
    .await;
    let devices = 10;
    for i in 1..=devices {
        s.register(&format!("user{i}"), ACCOUNT, &format!("{i:064x}"))
            .await;
    }
    for i in 1..=devices {
        s.notify(&format!("user{i}"), r#""MessageNew""#).await;
    }
    s.wait_metric(&format!(
        "mailpushd_pushes_total{{service=\"apns\",outcome=\"deferred\"}} {devices}"
    ))
    .await;
    accepted.load(std::sync::atomic::Ordering::SeqCst)
}

/// After a failed connection attempt (every handshake fails: the server closes the
/// connection), the pushes of a burst do not each make one: they wait out the
/// attempt's back-off (and go in the next round). One attempt, not thirty.
#[tokio::test]
async fn a_failed_connection_is_not_tried_again_by_every_push_at_once() {
    let made = connection_attempts(false, Duration::from_secs(2)).await;
    assert!(made <= 2, "{made} connection attempts");
}

/// A server that takes the TCP connection and never says a word: the connection
/// attempt fails within the request's timeout, with its back-off, so that the
/// pushes of a burst do not each wait on one.
#[tokio::test]
async fn a_silent_server_is_a_failed_connection_attempt_not_a_wait_for_each_push() {
    let made = connection_attempts(true, Duration::from_millis(300)).await;
    assert!(made <= 2, "{made} connection attempts");
}

#[tokio::test]
async fn a_token_is_kept_as_received_and_found_in_any_case() {
    let s = setup(|_| {}).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    // The same device again, its token in lower case: a refresh, not a second device.
    s.register("alice", ACCOUNT, &TOKEN.to_lowercase()).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    assert_eq!(s.count().await, 1);
    let lower = xaps_proto::DeviceToken::new(&TOKEN.to_lowercase()).unwrap();
    let (found, text) = s
        .daemon
        .store()
        .update_token(&lower, xaps_proto::registry::Registry::new(), |r| {
            let text = r
                .iter()
                .map(|(_, _, reg)| reg.device_token.as_str().to_owned())
                .collect::<Vec<_>>();
            ((r.len(), text), Vec::new())
        })
        .await
        .unwrap();
    assert_eq!(found, 1, "found by its lower case");
    assert_eq!(text, [TOKEN], "stored as last received");
}

#[tokio::test]
async fn a_refused_certificate_is_a_configuration_error_not_retried() {
    // The daemon trusts another CA than the one that signed the stand-in's certificate.
    let other = Standin::start().await.unwrap();
    let trust = tempfile::tempdir().unwrap();
    let ca = trust.path().join("other-ca.pem");
    std::fs::write(&ca, other.ca_pem()).unwrap();
    let s = setup(|c| c.apns.ca_file = Some(ca.clone())).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    s.notify("alice", r#""MessageNew""#).await;
    let page = s
        .wait_metric("mailpushd_pushes_total{service=\"apns\",outcome=\"fix_configuration\"} 1")
        .await;
    assert!(!page.contains("outcome=\"retried\""), "{page}");
    assert!(s.standin.requests().is_empty());
    // Still owed: once the configuration is fixed, it goes.
    s.wait_metric("mailpushd_owed_pushes 1").await;
}

#[tokio::test]
async fn an_account_on_two_devices_pushes_both_until_one_is_gone() {
    let s = setup(|_| {}).await;
    // An iPhone restored from another's backup registers the same account id with its
    // own token; neither replaces the other.
    let other = "C0FFEE".repeat(10) + "C0FE";
    s.register("alice", ACCOUNT, TOKEN).await;
    s.register("alice", ACCOUNT, &other).await;
    s.register("alice", ACCOUNT, TOKEN).await;
    assert_eq!(s.count().await, 2);
    s.notify("alice", r#""MessageNew""#).await;
    let requests = s.standin.wait_for(2, Duration::from_secs(10)).await;
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    let mut expected = [format!("/3/device/{TOKEN}"), format!("/3/device/{other}")];
    expected.sort_unstable();
    assert_eq!(paths, expected);
    // APNs says the first token is gone: that device goes, the other stays and is
    // pushed alone.
    let later = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let body: &'static str =
        Box::leak(format!(r#"{{"reason":"Unregistered","timestamp":{later}}}"#).into_boxed_str());
    s.standin.script([Reply::Status(410, body)]);
    s.notify("alice", r#""MessageNew""#).await;
    assert_eq!(s.wait_count(1).await, 1);
    s.notify("alice", r#""MessageNew""#).await;
    let requests = s.standin.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 5);
    // The 410 answered the first of the second round; the last push goes to the
    // device that stays.
    assert!(expected.contains(&requests[4].path));
    assert_ne!(requests[4].path, requests[2].path);
}
