//! IMAP WEBPUSH through the daemon, against a scripted push-service stand-in: the
//! lifecycle, what each answer of a push service does to the store, DNS rebinding
//! refused at connect time, and malformed forwarded commands.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod support;
use support::JSON;

use mailpushd::config::Config;
use mailpushd::daemon::Daemon;
use mailpushd::demo::http;
use mailpushd::standin::{PushReply, PushService};
use webpush_crypto::{UaKeys, decrypt};

const ID: &str = "a8282bf9-6102-4e1b-bb61-d26d0e532e65";

struct Setup {
    daemon: Daemon,
    push: PushService,
    ua: UaKeys,
    _dir: tempfile::TempDir,
}

async fn setup(change: impl FnOnce(&mut Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::with_database(dir.path().join("store.sqlite"));
    support::open_api(&mut config);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    config.webpush.allow_local_push_service = true;
    config.webpush.request_timeout = Duration::from_millis(800);
    config.webpush.max_attempts = 3;
    config.push.delay = Duration::from_millis(500);
    config.push.check_interval = Duration::from_millis(100);
    change(&mut config);
    Setup {
        daemon: Daemon::start(config).await.unwrap(),
        push: PushService::start().await.unwrap(),
        ua: UaKeys::generate(&mut rand_core::OsRng).unwrap(),
        _dir: dir,
    }
}

impl Setup {
    fn address(&self) -> SocketAddr {
        self.daemon.local_addr().unwrap()
    }

    /// Forwards one command line as the IMAP server would; returns the lines to send.
    async fn forward(&self, connection: &str, line: &str) -> String {
        let (status, body) = support::forward(self.address(), "Alice", connection, line).await;
        assert_eq!(status, 200, "{line}: {body}");
        body
    }

    fn subscribe_line(&self, tag: &str, endpoint: &str) -> String {
        format!(
            "{tag} WEBPUSH {ID} {endpoint} {} {}\r\n",
            self.ua.public_key().to_base64url(),
            self.ua.auth().to_base64url()
        )
    }

    /// The plaintext of push number `n` (from 0) at the stand-in.
    async fn pushed(&self, n: usize) -> String {
        let requests = self.push.wait_for(n + 1, Duration::from_secs(10)).await;
        let request = requests.get(n).expect("the push arrived");
        String::from_utf8(decrypt(&self.ua, &request.body).unwrap()).unwrap()
    }

    /// Subscribes and acknowledges; returns the endpoint.
    async fn active(&self, path: &str) -> String {
        let endpoint = self.push.endpoint(path);
        let before = self.push.requests().len();
        self.forward("c1", &self.subscribe_line("s1", &endpoint))
            .await;
        let ack = self.pushed(before).await;
        let token = ack
            .trim_end()
            .strip_prefix("* ACKWEBPUSH ")
            .unwrap()
            .to_owned();
        let answer = self
            .forward("c1", &format!("s2 ACKWEBPUSH {token}\r\n"))
            .await;
        assert!(
            answer.ends_with("s2 OK ACKWEBPUSH completed\r\n"),
            "{answer}"
        );
        endpoint
    }

    async fn notify(&self, events: &str, messages: &str) -> u16 {
        let body =
            format!(r#"{{"Username":"alice","Mailbox":"INBOX","Events": [{events}]{messages}}}"#);
        http(self.address(), "POST", "/notify", &JSON, body.as_bytes())
            .await
            .unwrap()
            .0
    }

    /// Reports the end of IMAP connection `connection` of alice's.
    async fn disconnect(&self, connection: &str) {
        let headers = [
            ("x-mailpush-user", "alice"),
            ("x-mailpush-connection", connection),
        ];
        let (status, _) = http(self.address(), "POST", "/imap/disconnect", &headers, b"")
            .await
            .unwrap();
        assert_eq!(status, 204);
    }

    async fn subscriptions(&self) -> usize {
        self.daemon
            .store()
            .webpush_account(&support::user_name("alice"))
            .await
            .unwrap()
            .records
            .len()
    }

    async fn wait_subscriptions(&self, n: usize) -> usize {
        for _ in 0..100 {
            if self.subscriptions().await == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.subscriptions().await
    }
}

#[tokio::test]
async fn the_lifecycle_through_the_daemon() {
    let s = setup(|_| {}).await;
    let answer = s.forward("c1", "a1 GETVAPID\r\n").await;
    let key = support::vapid_key(&answer);
    assert!(answer.ends_with("a1 OK GETVAPID completed\r\n"));

    let endpoint = s.push.endpoint("push/1");
    let answer = s.forward("c1", &s.subscribe_line("a2", &endpoint)).await;
    assert_eq!(
        answer,
        format!("* VAPID {key}\r\n* WEBPUSH {ID} {endpoint} NIL\r\na2 OK WEBPUSH completed\r\n")
    );
    // The verification push: the token, encrypted for the subscription, signed with
    // the key GETVAPID gave.
    let ack = s.pushed(0).await;
    let token = ack
        .strip_prefix("* ACKWEBPUSH ")
        .unwrap()
        .strip_suffix("\r\n")
        .unwrap();
    let request = &s.push.requests()[0];
    assert_eq!(request.path, "/push/1");
    assert_eq!(request.header("content-encoding"), Some("aes128gcm"));
    assert_eq!(request.header("urgency"), Some("high"));
    assert_eq!(request.header("ttl"), Some("86400"));
    assert!(
        request
            .header("authorization")
            .unwrap()
            .ends_with(&format!("k={key}"))
    );

    let answer = s.forward("c1", &format!("a3 ACKWEBPUSH {token}\r\n")).await;
    assert_eq!(
        answer,
        format!("* WEBPUSH {ID} {endpoint} NIL\r\na3 OK ACKWEBPUSH completed\r\n")
    );

    // New mail with what the Lua script tells of it: the ENVELOPE form, at once, as the
    // IMAP server's own would be (sender and reply-to are the From when the message has
    // neither).
    let messages = r#","Messages":[{"Uid":7,"UidValidity":1,"From":"Bob <bob@example.org>","Subject":"Hello","Date":"Tue, 01 Dec 2026 20:39:06 +0000","MessageId":"<7@example.org>"}]"#;
    s.notify(r#""MessageNew""#, messages).await;
    assert_eq!(
        s.pushed(1).await,
        "* SELECT INBOX\r\n* 7 UIDFETCH (ENVELOPE (\"Tue, 01 Dec 2026 20:39:06 +0000\" \"Hello\" ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL NIL \"<7@example.org>\"))\r\n"
    );
    let topic = s.push.requests()[1].header("topic").unwrap().to_owned();
    assert_eq!(topic.len(), 32);
    // New mail without details: the generic push.
    s.notify(r#""MessageNew""#, "").await;
    assert_eq!(s.pushed(2).await, "* SELECT INBOX\r\n");
    // New mail in Junk: push.mailboxes (INBOX by default) holds for Web Push too.
    let junk = r#"{"Username":"alice","Mailbox":"Junk","Events": ["MessageNew"]}"#;
    http(s.address(), "POST", "/notify", &JSON, junk.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.push.requests().len(), 3, "Junk pushed");
    // A burst of flag changes: one generic push after the quiet period.
    let burst = Instant::now();
    for _ in 0..3 {
        s.notify(r#""FlagsSet","MessageRead""#, "").await;
    }
    assert_eq!(s.pushed(3).await, "* SELECT INBOX\r\n");
    assert!(burst.elapsed() >= Duration::from_millis(500));
    assert_eq!(s.push.requests()[3].header("urgency"), Some("normal"));

    // Silenced until connection c2 ends: nothing; then c2 ends, and pushes flow.
    let answer = s.forward("c2", &format!("a4 SILWEBPUSH {ID} 0\r\n")).await;
    assert!(
        answer.starts_with(&format!("* WEBPUSH {ID} {endpoint} 0\r\n")),
        "{answer}"
    );
    s.notify(r#""MessageNew""#, "").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.push.requests().len(), 4, "silenced");
    s.disconnect("c2").await;
    let answer = s.forward("c1", "a5 LWEBPUSH *\r\n").await;
    assert_eq!(
        answer,
        format!("* WEBPUSH {ID} {endpoint} NIL\r\na5 OK LWEBPUSH completed\r\n")
    );
    s.notify(r#""MessageNew""#, "").await;
    assert_eq!(s.pushed(4).await, "* SELECT INBOX\r\n");
    // Dovecot's OX driver gives the UID and the raw From and Subject: the ENVELOPE form.
    let ox = r#"{"user":"alice","event":"messageNew","folder":"INBOX","imap-uidvalidity":1,"imap-uid":8,"from":"Bob <bob@example.org>","subject":"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=","snippet":"Hello.","unseen":1}"#;
    let (status, _) = http(s.address(), "PUT", "/ox", &JSON, ox.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(
        s.pushed(5).await,
        "* SELECT INBOX\r\n* 8 UIDFETCH (ENVELOPE (NIL \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\" ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL NIL NIL))\r\n"
    );
    // Unsubscribed: gone.
    let answer = s.forward("c1", &format!("a6 WEBPUSH {ID} NIL\r\n")).await;
    assert_eq!(answer, "a6 OK WEBPUSH completed\r\n");
    assert_eq!(s.subscriptions().await, 0);
}

/// A silence "until this connection ends" forwarded by an IMAP server, which may never
/// report the end (it crashes), lasts `webpush.forwarded_silence_max_secs` at most:
/// stored with that bound, and due for housekeeping then; the connection's reported
/// end still ends it first.
#[tokio::test]
async fn a_forwarded_silence_until_disconnect_is_bounded() {
    use imap_webpush_proto::state::Silence;
    let s = setup(|config| config.webpush.forwarded_silence_max = Duration::from_secs(600)).await;
    s.active("push/1").await;
    let user = support::user_name("alice");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = s.forward("c2", &format!("a1 SILWEBPUSH {ID} 0\r\n")).await;
    assert!(answer.contains(" 0\r\na1 OK"), "{answer}");
    let account = s.daemon.store().webpush_account(&user).await.unwrap();
    let Silence::UntilDisconnectOrTime(_, until) = account.records[0].silence else {
        panic!("{:?}", account.records[0].silence)
    };
    assert!((before + 600..=before + 602).contains(&until), "{until}");
    let store = s.daemon.store();
    assert!(
        store
            .webpush_users_due(until - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.webpush_users_due(until, 10).await.unwrap(), [user]);
    // Silenced meanwhile; the reported end ends it.
    s.notify(r#""MessageNew""#, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pushed = s.push.requests().len();
    s.disconnect("c2").await;
    s.notify(r#""MessageNew""#, "").await;
    assert_eq!(s.pushed(pushed).await, "* SELECT INBOX\r\n");
}

#[tokio::test]
async fn each_answer_of_a_push_service_has_its_effect() {
    let s = setup(|_| {}).await;
    s.active("push/1").await;
    // 413: the generic push instead.
    s.push.script([PushReply::status(413)]);
    let messages = format!(
        r#","Messages":[{{"Uid":7,"Subject":"{}"}}]"#,
        "x".repeat(100)
    );
    s.notify(r#""MessageNew""#, &messages).await;
    assert!(s.pushed(1).await.contains("UIDFETCH"));
    assert_eq!(s.pushed(2).await, "* SELECT INBOX\r\n");
    // 429 with Retry-After: retried no sooner; 503 and a slow answer: retried.
    s.push.script([PushReply {
        status: 429,
        headers: vec![("retry-after", "1")],
        delay: Duration::ZERO,
    }]);
    let start = Instant::now();
    s.notify(r#""MessageNew""#, "").await;
    let requests = s.push.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 5);
    assert!(requests[4].at.duration_since(requests[3].at) >= Duration::from_secs(1));
    assert!(start.elapsed() >= Duration::from_secs(1));
    s.push.script([
        PushReply::status(503),
        PushReply {
            status: 201,
            headers: vec![],
            delay: Duration::from_secs(2),
        },
    ]);
    s.notify(r#""MessageNew""#, "").await;
    assert_eq!(s.push.wait_for(8, Duration::from_secs(15)).await.len(), 8);
    // 403: a VAPID fault, reported; the subscription stays.
    s.push.script([PushReply::status(403)]);
    s.notify(r#""MessageNew""#, "").await;
    s.push.wait_for(9, Duration::from_secs(10)).await;
    let fault = "mailpushd_pushes_total{service=\"webpush\",outcome=\"fix_configuration\"} 1";
    let metrics = support::wait_metric(s.address(), fault).await;
    assert!(metrics.lines().any(|l| l == fault), "{metrics}");
    assert_eq!(s.subscriptions().await, 1);
    // 404: the subscription is deleted.
    s.push.script([PushReply::status(404)]);
    s.notify(r#""MessageNew""#, "").await;
    assert_eq!(s.wait_subscriptions(0).await, 0);
    support::wait_metric(
        s.address(),
        "mailpushd_gone_total{service=\"webpush\",result=\"removed\"} 1",
    )
    .await;
    let answer = s.forward("c1", "l1 LWEBPUSH *\r\n").await;
    assert_eq!(answer, "l1 OK LWEBPUSH completed\r\n");
}

#[tokio::test]
async fn a_service_is_held_once_several_users_are_told_to_wait_and_no_other() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One request at a time to each, so each answer comes before the next request.
    // A: four users' subscriptions, the first three answered 429 with Retry-After: the
    // service's limit, not one user's, so the fourth waits too. B: two subscriptions,
    // one 429 with Retry-After: only that push waits. C: answers every push. D: three
    // users, 429 without Retry-After, held for the back-off. E: two subscriptions, a
    // 503 without Retry-After, which holds nothing. F: one user's three subscriptions
    // answered 429 with Retry-After hold nothing either (a user's own devices, or one
    // user making their service refuse them, must not hold everyone's pushes), so
    // another user's push goes at once.
    let start = || async { PushService::start().await.unwrap() };
    let (a, b, c, d, e, f) = (
        start().await,
        start().await,
        start().await,
        start().await,
        start().await,
        start().await,
    );
    let users = ["u0", "u1", "u2", "u3"];
    let mut subscriptions: Vec<(&str, Vec<String>)> =
        users.iter().map(|u| (*u, Vec::new())).collect();
    for (n, (_, endpoints)) in subscriptions.iter_mut().enumerate() {
        endpoints.push(a.endpoint(&format!("p/{n}")));
        if n < 2 {
            endpoints.push(b.endpoint(&format!("p/{n}")));
            endpoints.push(e.endpoint(&format!("p/{n}")));
        }
        if n == 0 {
            endpoints.push(c.endpoint("p/c"));
            endpoints.extend((0..3).map(|i| f.endpoint(&format!("p/{i}"))));
        }
        if n == 1 {
            endpoints.push(f.endpoint("p/other"));
        }
        if n < 3 {
            endpoints.push(d.endpoint(&format!("p/{n}")));
        }
    }
    let daemon = with_users(dir.path(), &ua, &subscriptions, |c| {
        c.webpush.max_per_origin_http1 = 1;
    })
    .await;
    let wait = Duration::from_secs(1);
    let rate_limited = || PushReply {
        status: 429,
        headers: vec![("retry-after", "1")],
        delay: Duration::ZERO,
    };
    // The least back-off after a first attempt.
    let backoff = Duration::from_millis(500);
    // The first answer of A, D and F comes after every user's push is queued: a
    // burst, as the origin's queue lives while it has work (the "wait" answers of
    // pushes that came one at a time, each after the last was done, are not counted
    // together).
    let slowly = |reply: PushReply| PushReply {
        delay: Duration::from_millis(300),
        ..reply
    };
    a.script([slowly(rate_limited()), rate_limited(), rate_limited()]);
    b.script([rate_limited()]);
    d.script([
        slowly(PushReply::status(429)),
        PushReply::status(429),
        PushReply::status(429),
    ]);
    e.script([PushReply::status(503)]);
    f.script([slowly(rate_limited()), rate_limited(), rate_limited()]);
    for user in users {
        event_for(&daemon, user, "MessageNew").await;
    }

    // A: four pushes and three retries; the fourth waited for the hold.
    let at_a = a.wait_for(7, Duration::from_secs(20)).await;
    assert_eq!(at_a.len(), 7);
    let third = at_a[2].at;
    for (n, request) in at_a.iter().enumerate().skip(3) {
        assert!(
            request.at >= third + wait,
            "A: request {n} came {:?} after the third 429",
            request.at - third
        );
    }
    // D: the same, held for the back-off.
    let at_d = d.wait_for(6, Duration::from_secs(20)).await;
    assert_eq!(at_d.len(), 6);
    let third = at_d[2].at;
    assert!(
        at_d.iter().skip(3).all(|r| r.at >= third + backoff),
        "D was not held after three subscriptions' 429s"
    );
    // B: one subscription told to wait holds nothing else: its second push went at
    // once, the refused one after the wait.
    let at_b = b.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(at_b.len(), 3);
    assert!(
        at_b[1].at < at_b[0].at + wait,
        "B held for one subscription's 429"
    );
    assert!(
        at_b[2].at >= at_b[0].at + wait,
        "B's refused push did not wait"
    );
    // C was not held: its push went at once.
    let at_c = c.wait_for(1, Duration::from_secs(10)).await;
    assert!(at_c[0].at < at_a[0].at + wait, "C waited for A's hold");
    // E was not held: its second push went at once, not after the back-off.
    let at_e = e.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(at_e.len(), 3);
    assert!(
        at_e[1].at < at_e[0].at + backoff,
        "E held for {:?} after a 503 without Retry-After",
        at_e[1].at - at_e[0].at
    );
    // F: u0's three refused, u1's went at once; then u0's three after the wait.
    let at_f = f.wait_for(7, Duration::from_secs(20)).await;
    assert_eq!(at_f.len(), 7);
    let other = at_f.iter().find(|r| r.path.ends_with("/p/other")).unwrap();
    assert!(
        other.at < at_f[0].at + wait,
        "F held for one user's 429s: u1's push went {:?} after the first",
        other.at - at_f[0].at
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_wait_of_a_day_holds_a_push_for_webpush_max_hold() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..3).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        c.webpush.max_per_origin_http1 = 1;
        c.webpush.max_hold = Duration::from_secs(1);
    })
    .await;
    let a_day = || PushReply {
        status: 429,
        headers: vec![("retry-after", "86400")],
        delay: Duration::ZERO,
    };
    push.script([a_day(), a_day(), a_day()]);
    new_mail(&daemon).await;
    // Three refused (the service held), then all three again after a second.
    let arrived = push.wait_for(6, Duration::from_secs(20)).await;
    assert_eq!(arrived.len(), 6);
    let last = arrived[5].at - arrived[2].at;
    assert!(
        last >= Duration::from_secs(1) && last < Duration::from_secs(10),
        "the pushes asked to wait a day went after {last:?}"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// A round of attempts ends with its lease: a push told to wait past it is owed to
/// the next round, which waits as long as the service asked (not the shorter first
/// round's wait), and is not sent again by the timer beside the round still waiting.
#[tokio::test]
async fn a_round_of_attempts_ends_with_its_lease() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints = [push.endpoint("p/0")];
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        // Two seconds for attempts once the lease's margin is kept.
        c.push.lease = Duration::from_secs(7);
        c.push.retry_first = Duration::from_secs(1);
        c.webpush.request_timeout = Duration::from_secs(1);
        c.webpush.max_hold = Duration::from_secs(30);
    })
    .await;
    push.script([PushReply {
        status: 429,
        headers: vec![("retry-after", "4")],
        delay: Duration::ZERO,
    }]);
    new_mail(&daemon).await;
    // Asked to wait 4 s, past the lease: the next round sends it then, not after the
    // first round's second.
    let arrived = push.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(arrived.len(), 2);
    let between = arrived[1].at - arrived[0].at;
    assert!(
        between >= Duration::from_secs(4) && between < Duration::from_secs(8),
        "the next round went after {between:?}"
    );
    // Delivered then: nothing goes again, neither at the first lease's end (7 s) nor
    // later.
    let more = push.wait_for(3, Duration::from_secs(8)).await;
    assert_eq!(more.len(), 2, "sent again: {more:?}");
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// A Web Push owed when the daemon starts without `webpush.subject` stays owed, as in
/// an outage: started again with it, the daemon sends it.
#[tokio::test]
async fn a_push_owed_while_web_push_is_off_is_kept_for_when_it_is_on() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints = [push.endpoint("p/0")];
    with_subscriptions(dir.path(), &ua, &endpoints, |_| {})
        .await
        .shutdown(Duration::from_secs(5))
        .await;
    // Owed from before, due now, as a stop leaves new mail it could not send.
    let mut off = config_in(dir.path());
    let store = mailpushd::store::Store::open(&off.database).await.unwrap();
    let key = mailpushd::store::OwedKey {
        user: support::user_name("alice"),
        target: mailpushd::store::OwedTarget::Subscriptions,
        mailbox: "INBOX".into(),
    };
    let lease = mailpushd::store::Lease {
        owner: "before",
        until_ms: 0,
    };
    store
        .owe(
            &[(key, true)],
            mailpushd::store::now_ms(std::time::SystemTime::now()),
            Duration::ZERO,
            lease,
        )
        .await
        .unwrap();
    store.close().await;
    // Started without the subject: rounds every 300 ms go by, the push kept.
    off.webpush.subject = None;
    off.push.retry_first = Duration::from_millis(300);
    off.push.retry_max = Duration::from_millis(300);
    let daemon = Daemon::start(off).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = support::metrics(daemon.local_addr().unwrap()).await;
    assert!(
        page.lines().any(|l| l == "mailpushd_owed_pushes 1"),
        "{page}"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
    assert!(push.requests().is_empty());
    // With it again: sent.
    let daemon = Daemon::start(config_in(dir.path())).await.unwrap();
    assert_eq!(push.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    support::wait_metric(daemon.local_addr().unwrap(), "mailpushd_owed_pushes 0").await;
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_flood_of_mail_to_one_user_is_coalesced_and_rate_limited() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let daemon = with_subscriptions(dir.path(), &ua, &[push.endpoint("p/1")], |c| {
        c.webpush.max_per_origin_http1 = 1;
        c.webpush.max_pushes_per_user_per_minute = 20;
    })
    .await;
    // A slow service: pushes for the same mailbox meet one still waiting.
    let slow = PushReply {
        status: 201,
        headers: Vec::new(),
        delay: Duration::from_millis(200),
    };
    push.script(std::iter::repeat_n(slow, 200));
    let events = 200;
    for _ in 0..events {
        new_mail(&daemon).await;
    }
    let count = |page: &str, outcome: &str| {
        page.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "mailpushd_pushes_total{{service=\"webpush\",outcome=\"{outcome}\"}} "
                ))
            })
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut page = String::new();
    for _ in 0..200 {
        page = support::metrics(daemon.local_addr().unwrap()).await;
        if count(&page, "rate_limited") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        count(&page, "rate_limited") >= 1.0,
        "nothing rate-limited:\n{page}"
    );
    assert!(
        count(&page, "coalesced") >= 1.0,
        "nothing coalesced:\n{page}"
    );
    // Let what was let through arrive; the rest is owed to a later round.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (received, _) = push.received();
    assert!(
        received <= 20,
        "{received} pushes reached the service for {events} events at 20 a minute"
    );
    assert!(received >= 1);
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused_at_connect_time() {
    // A listener where the rebinding name points: nothing may reach it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let s = setup(|c| {
        c.webpush.allow_local_push_service = false;
        c.webpush.max_attempts = 2;
        c.webpush.names = Some(HashMap::from([(
            "push.rebind.example".to_owned(),
            vec!["127.0.0.1".parse().unwrap()],
        )]));
    })
    .await;
    // An address literal that is not globally reachable is refused before storing.
    let local = format!("https://127.0.0.1:{port}/p/1");
    let answer = s.forward("c1", &s.subscribe_line("a0", &local)).await;
    assert!(
        answer.starts_with(
            "a0 NO [CANNOT] push endpoint refused: the address is not globally reachable"
        ),
        "{answer}"
    );
    assert_eq!(s.subscriptions().await, 0);
    let endpoint = format!("https://push.rebind.example:{port}/p/1");
    // The name passes the endpoint policy: it is stored...
    let answer = s.forward("c1", &s.subscribe_line("a1", &endpoint)).await;
    assert!(answer.ends_with("a1 OK WEBPUSH completed\r\n"), "{answer}");
    assert_eq!(s.subscriptions().await, 1);
    // ...but its address is refused when connecting: the verification push goes nowhere.
    let gave_up = "mailpushd_pushes_total{service=\"webpush\",outcome=\"gave_up\"} 1";
    let metrics = support::wait_metric(s.address(), gave_up).await;
    assert!(metrics.lines().any(|l| l == gave_up), "{metrics}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_forwarded_commands_get_the_grammars_answer_and_change_nothing() {
    let s = setup(|_| {}).await;
    s.active("push/1").await;
    let before = s
        .daemon
        .store()
        .webpush_account(&support::user_name("alice"))
        .await
        .unwrap();
    for (line, answer) in [
        (
            "b1 WEBPUSH bad/id NIL\r\n",
            "b1 BAD subscription id may contain only letters, digits, '-', '_' and '.'\r\n",
        ),
        (
            "b2 WEBPUSH x https://push.example/p AAAA BTBZMqHH6r4Tts7J_aSIgg\r\n",
            "b2 BAD p256dh key is invalid",
        ),
        ("b3 SILWEBPUSH x\r\n", "b3 BAD"),
        ("b4 ACKWEBPUSH\r\n", "b4 BAD"),
        (
            "b5 ACKWEBPUSH AAAAAAAAAAAAAAAAAAAAAA\r\n",
            "b5 NO unknown ack token\r\n",
        ),
        (
            "b6 SILWEBPUSH nope 10\r\n",
            "b6 NO no such push subscription\r\n",
        ),
    ] {
        let got = s.forward("c1", line).await;
        assert!(got.starts_with(answer), "{line:?}: {got:?}");
    }
    assert_eq!(
        s.daemon
            .store()
            .webpush_account(&support::user_name("alice"))
            .await
            .unwrap(),
        before
    );
    // Not a whole command, or not WEBPUSH, or without the forwarding headers: 400.
    let headers = [
        ("x-mailpush-user", "alice"),
        ("x-mailpush-connection", "c1"),
    ];
    for body in [
        &b"b8 WEBPUSH x"[..],
        b"b9 SELECT INBOX\r\n",
        b"c1 GETVAPID\r\nc2 GETVAPID\r\n",
    ] {
        let (status, _) = http(s.address(), "POST", "/imap/webpush", &headers, body)
            .await
            .unwrap();
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(body));
    }
    let (status, _) = http(
        s.address(),
        "POST",
        "/imap/webpush",
        &[],
        b"a1 GETVAPID\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
}

/// The HTTP/2 stand-in's CA certificate in a file in `dir`, for `webpush.ca_file`.
fn ca_file(dir: &std::path::Path, standin: &mailpushd::standin::Standin) -> std::path::PathBuf {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, standin.ca_pem()).unwrap();
    ca
}

/// A daemon whose store holds `endpoints` as active subscriptions of alice's, and
/// `change` applied to its configuration.
async fn with_subscriptions(
    dir: &std::path::Path,
    ua: &UaKeys,
    endpoints: &[String],
    change: impl FnOnce(&mut Config),
) -> Daemon {
    with_users(dir, ua, &[("alice", endpoints.to_vec())], change).await
}

/// A daemon whose store holds each user's endpoints as their active subscriptions,
/// and `change` applied to its configuration.
async fn with_users(
    dir: &std::path::Path,
    ua: &UaKeys,
    users: &[(&str, Vec<String>)],
    change: impl FnOnce(&mut Config),
) -> Daemon {
    let mut config = config_in(dir);
    change(&mut config);
    let store = mailpushd::store::Store::open(&config.database)
        .await
        .unwrap();
    let key = webpush_crypto::VapidKey::generate(&mut rand_core::OsRng).unwrap();
    let (id, _) = store.first_vapid_key(key).await.unwrap();
    for (user, endpoints) in users {
        support::store_active_subscriptions(&store, user, endpoints.iter().cloned(), ua, id).await;
    }
    store.close().await;
    Daemon::start(config).await.unwrap()
}

/// A daemon's configuration with its store in `dir`, pushing to local stand-ins.
fn config_in(dir: &std::path::Path) -> Config {
    let mut config = Config::with_database(dir.join("store.sqlite"));
    support::open_api(&mut config);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    config.webpush.allow_local_push_service = true;
    config.webpush.request_timeout = Duration::from_secs(10);
    config
}

/// New mail for alice, as the Lua script reports it.
async fn new_mail(daemon: &Daemon) {
    event(daemon, "MessageNew").await;
}

/// An event in alice's INBOX, as the Lua script reports it.
async fn event(daemon: &Daemon, event: &str) {
    event_for(daemon, "alice", event).await;
}

/// An event in `user`'s INBOX, as the Lua script reports it.
async fn event_for(daemon: &Daemon, user: &str, event: &str) {
    let body = format!(r#"{{"Username":"{user}","Mailbox":"INBOX","Events": ["{event}"]}}"#);
    let (status, _) = http(
        daemon.local_addr().unwrap(),
        "POST",
        "/notify",
        &JSON,
        body.as_bytes(),
    )
    .await
    .unwrap();
    // 404 as xapsd answers (no iOS device); the Web Push subscriptions are pushed.
    assert_eq!(status, 404);
}

/// How many of `arrivals` came before the first answer (each answer takes `slow`),
/// and how many in the wave after it.
fn waves(mut arrivals: Vec<Instant>, slow: Duration) -> (usize, usize) {
    arrivals.sort();
    let first = arrivals[0];
    let before = arrivals.iter().filter(|a| **a < first + slow / 2).count();
    let next = arrivals
        .iter()
        .filter(|a| **a >= first + slow / 2 && **a < first + slow + slow / 2)
        .count();
    (before, next)
}

#[tokio::test]
async fn an_http1_origin_gets_few_connections_an_http2_origin_many_streams() {
    let slow = Duration::from_secs(1);
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let limits = |c: &mut Config| {
        c.webpush.max_per_origin = 64;
        c.webpush.max_per_origin_http1 = 3;
    };

    // HTTP/1.1: never more than three at once, each on a connection of its own.
    let dir = tempfile::tempdir().unwrap();
    let h1 = PushService::start().await.unwrap();
    h1.script((0..9).map(|_| PushReply {
        status: 201,
        headers: vec![],
        delay: slow,
    }));
    let endpoints: Vec<String> = (0..9).map(|i| h1.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, limits).await;
    new_mail(&daemon).await;
    let requests = h1.wait_for(9, Duration::from_secs(20)).await;
    assert_eq!(requests.len(), 9);
    let (first, second) = waves(requests.iter().map(|r| r.at).collect(), slow);
    assert_eq!((first, second), (3, 3), "HTTP/1.1 waves");
    daemon.shutdown(Duration::from_secs(5)).await;

    // HTTP/2 (TLS, ALPN h2): three while the protocol is unknown, then, after the first
    // answer says HTTP/2, every waiting push at once as streams.
    let dir = tempfile::tempdir().unwrap();
    let h2 = mailpushd::standin::Standin::start().await.unwrap();
    let ca = ca_file(dir.path(), &h2);
    h2.script((0..12).map(|_| {
        mailpushd::standin::Reply::Slow(slow, Box::new(mailpushd::standin::Reply::Status(201, "")))
    }));
    let endpoints: Vec<String> = (0..12).map(|i| h2.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        limits(c);
        c.webpush.ca_file = Some(ca.clone());
    })
    .await;
    new_mail(&daemon).await;
    let requests = h2.wait_for(12, Duration::from_secs(20)).await;
    assert_eq!(requests.len(), 12);
    let (first, second) = waves(requests.iter().map(|r| r.at).collect(), slow);
    assert_eq!((first, second), (3, 9), "HTTP/2 waves");
    assert!(h2.connections() <= 3, "{} connections", h2.connections());
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// Keeps each of the runtime's `workers` busy, as a fan-out that has the cores to
/// itself does, yielding every 0.1 ms (about a push's build) so that the daemon
/// still runs; until `stop`.
fn keep_the_cores_busy(
    workers: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let until = Instant::now() + Duration::from_micros(100);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_saturated_cores_an_origin_gets_two_requests_in_flight_per_core() {
    let slow = Duration::from_millis(600);
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h1 = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..12).map(|i| h1.endpoint(&format!("p/{i}"))).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = keep_the_cores_busy(2, &stop);
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        c.webpush.max_per_origin_http1 = 8;
    })
    .await;
    // More than a few of the sender's windows of measure, all busy.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let script = || {
        (0..12).map(|_| PushReply {
            status: 201,
            headers: vec![],
            delay: slow,
        })
    };
    h1.script(script());
    new_mail(&daemon).await;
    let requests = h1.wait_for(12, Duration::from_secs(30)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in busy {
        task.await.unwrap();
    }
    let (first, _) = waves(requests.iter().map(|r| r.at).collect(), slow);
    assert_eq!(first, 4, "requests in flight while the cores are saturated");

    // The cores idle again, the last answers in: the same origin gets its limit.
    tokio::time::sleep(slow + Duration::from_millis(300)).await;
    h1.script(script());
    new_mail(&daemon).await;
    let requests = h1.wait_for(24, Duration::from_secs(30)).await;
    let (first, _) = waves(requests.iter().skip(12).map(|r| r.at).collect(), slow);
    assert_eq!(first, 8, "requests in flight with time to spare");
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_counting_http2_stand_in_counts_what_the_sender_delivers() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h2 = mailpushd::standin::Standin::start_counting().await.unwrap();
    let ca = ca_file(dir.path(), &h2);
    let endpoints: Vec<String> = (0..5).map(|i| h2.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        c.webpush.ca_file = Some(ca.clone());
    })
    .await;
    let new_mail = r#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}"#;
    http(
        daemon.local_addr().unwrap(),
        "POST",
        "/notify",
        &JSON,
        new_mail.as_bytes(),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        if h2.received().0 == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h2.received().0, 5);
    assert!(h2.received().1.is_some());
    // Nothing kept, and every push delivered (201), none retried.
    assert!(h2.requests().is_empty());
    let delivered = "mailpushd_pushes_total{service=\"webpush\",outcome=\"delivered\"} 5";
    let metrics = support::wait_metric(daemon.local_addr().unwrap(), delivered).await;
    assert!(metrics.lines().any(|l| l == delivered), "{metrics}");
    // The five were encrypted and signed, and the time that took is counted.
    let encrypting = support::metric_value(&metrics, "mailpushd_webpush_encrypt_seconds_total");
    assert!(encrypting.is_some_and(|s| s > 0.0), "{metrics}");
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// One subscription on an HTTP/2 stand-in answering from `script`, one new mail, and
/// the requests that arrive until the push is delivered, each failure retried once
/// after 50 ms, with the sender's `timeout`.
async fn one_push_over_http2(
    script: Vec<mailpushd::standin::Reply>,
    timeout: Duration,
) -> (Vec<mailpushd::standin::Recorded>, usize) {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h2 = mailpushd::standin::Standin::start().await.unwrap();
    let ca = ca_file(dir.path(), &h2);
    let answers = script.len();
    h2.script(script);
    let endpoints = [h2.endpoint("p/1")];
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        c.webpush.ca_file = Some(ca.clone());
        c.webpush.retry_base = Duration::from_millis(50);
        c.webpush.request_timeout = timeout;
    })
    .await;
    new_mail(&daemon).await;
    let requests = h2.wait_for(answers, Duration::from_secs(20)).await;
    let delivered = "mailpushd_pushes_total{service=\"webpush\",outcome=\"delivered\"} 1";
    let metrics = support::wait_metric(daemon.local_addr().unwrap(), delivered).await;
    let retried = "mailpushd_pushes_total{service=\"webpush\",outcome=\"retried\"}";
    assert_eq!(
        support::metric_value(&metrics, retried),
        Some((answers - 1) as f64),
        "{metrics}"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
    // Nothing more arrived: the push went once after its last failure.
    assert_eq!(h2.requests().len(), answers);
    (requests, h2.connections())
}

#[tokio::test]
async fn over_http2_an_answer_body_past_the_limit_resets_its_stream_not_the_connection() {
    use mailpushd::standin::Reply;
    // 503 with a body longer than the sender reads (64 KiB): the push is tried again,
    // on the same connection.
    let long: &'static str = "x".repeat(100 * 1024).leak();
    // The sender's timeout is longer than the test's wait: a read that hangs fails it.
    let (requests, connections) = one_push_over_http2(
        vec![Reply::Status(503, long), Reply::Status(201, "")],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(requests.len(), 2);
    assert_eq!(connections, 1);
    assert_eq!(requests[0].connection, requests[1].connection);
    assert_eq!(
        requests[0].path, requests[1].path,
        "the same subscription again"
    );
}

#[tokio::test]
async fn over_http2_a_connection_that_goes_away_or_drops_is_replaced_for_the_next_attempt() {
    use mailpushd::standin::Reply;
    // GOAWAY after answering 503, or the connection dropped with the request
    // unanswered: the retry opens a new connection.
    for first in [Reply::GoAway, Reply::Reset] {
        let (requests, connections) =
            one_push_over_http2(vec![first, Reply::Status(201, "")], Duration::from_secs(60)).await;
        assert_eq!(requests.len(), 2);
        assert_eq!(connections, 2);
        assert_ne!(requests[0].connection, requests[1].connection);
    }
}

#[tokio::test]
async fn over_http2_a_kept_connection_that_does_not_answer_in_time_takes_no_new_requests() {
    use mailpushd::standin::Reply;
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h2 = mailpushd::standin::Standin::start().await.unwrap();
    let ca = ca_file(dir.path(), &h2);
    let slow = Reply::Slow(Duration::from_secs(3), Box::new(Reply::Status(201, "")));
    h2.script([Reply::Status(201, ""), slow, Reply::Status(201, "")]);
    let daemon = with_subscriptions(dir.path(), &ua, &[h2.endpoint("p/1")], |c| {
        c.webpush.ca_file = Some(ca.clone());
        c.webpush.retry_base = Duration::from_millis(50);
        c.webpush.request_timeout = Duration::from_millis(500);
    })
    .await;
    let delivered =
        |n| format!("mailpushd_pushes_total{{service=\"webpush\",outcome=\"delivered\"}} {n}");
    // The first push opens the connection, which is kept for the next burst.
    new_mail(&daemon).await;
    support::wait_metric(daemon.local_addr().unwrap(), &delivered(1)).await;
    // The next goes on it, and gets no answer in time: its retry opens another,
    // though nothing else has closed the kept one.
    new_mail(&daemon).await;
    support::wait_metric(daemon.local_addr().unwrap(), &delivered(2)).await;
    let requests = h2.wait_for(3, Duration::from_secs(20)).await;
    daemon.shutdown(Duration::from_secs(5)).await;
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[0].connection, requests[1].connection,
        "the kept one"
    );
    assert_ne!(requests[1].connection, requests[2].connection);
    assert_eq!(h2.connections(), 2);
}

#[tokio::test]
async fn a_subscription_that_no_longer_reads_costs_only_its_own_push() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..3).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    // Stored, then the middle one edited by hand into something that does not read.
    with_subscriptions(dir.path(), &ua, &endpoints, |_| {})
        .await
        .shutdown(Duration::from_secs(5))
        .await;
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let edited = sqlx::query(
            "UPDATE webpush_subscriptions SET record = '{\"sub_id\":' WHERE sub_id = 'sub-00001'",
        )
        .execute(&mut db)
        .await
        .unwrap();
        assert_eq!(edited.rows_affected(), 1);
        // And its housekeeping due long ago.
        sqlx::query("UPDATE webpush_subscriptions SET due_at = 0")
            .execute(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
    let daemon = Daemon::start(config_in(dir.path())).await.unwrap();
    // The housekeeping the start ran failed for the account, and put it off a minute
    // rather than leave it due (it ran again at once, for ever).
    {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let due: i64 = sqlx::query("SELECT MIN(due_at) FROM webpush_subscriptions")
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(due >= now as i64 + 50, "due at {due}, now {now}");
        db.close().await.unwrap();
    }

    new_mail(&daemon).await;
    let requests = push.wait_for(2, Duration::from_secs(10)).await;
    let mut paths: Vec<String> = requests.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/p/0", "/p/2"]);
    // Nothing more comes, and the account as a whole is reported unreadable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(push.requests().len(), 2);
    let whole = daemon
        .store()
        .webpush_account(&support::user_name("alice"))
        .await;
    assert!(
        matches!(whole, Err(mailpushd::store::StoreError::Corrupt { .. })),
        "{whole:?}"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn connections_are_kept_between_events_and_replaced_when_the_service_closed_them() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let three = |c: &mut Config| c.webpush.max_per_origin_http1 = 3;
    let paths = |push: &PushService| {
        let mut paths: Vec<String> = push.requests().iter().map(|r| r.path.clone()).collect();
        paths.sort();
        paths
    };
    let twice = ["/p/0", "/p/0", "/p/1", "/p/1", "/p/2", "/p/2"];

    // The second event goes over the connections the first opened.
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..3).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, three).await;
    new_mail(&daemon).await;
    assert_eq!(push.wait_for(3, Duration::from_secs(10)).await.len(), 3);
    let opened = push.connections();
    assert!((1..=3).contains(&opened), "{opened} connections");
    new_mail(&daemon).await;
    assert_eq!(push.wait_for(6, Duration::from_secs(10)).await.len(), 6);
    assert_eq!(push.connections(), opened, "no new connection");
    assert_eq!(paths(&push), twice);
    daemon.shutdown(Duration::from_secs(5)).await;

    // A service that closed them meanwhile gets each push once, over new ones.
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start_closing_idle(Duration::from_millis(200))
        .await
        .unwrap();
    let endpoints: Vec<String> = (0..3).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, three).await;
    new_mail(&daemon).await;
    assert_eq!(push.wait_for(3, Duration::from_secs(10)).await.len(), 3);
    let opened = push.connections();
    tokio::time::sleep(Duration::from_millis(600)).await;
    new_mail(&daemon).await;
    push.wait_for(6, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(paths(&push), twice, "each push exactly once");
    assert!(push.connections() > opened, "new connections");
    let delivered = "mailpushd_pushes_total{service=\"webpush\",outcome=\"delivered\"} 6";
    let metrics = support::wait_metric(daemon.local_addr().unwrap(), delivered).await;
    assert!(metrics.lines().any(|l| l == delivered), "{metrics}");
    // A closed connection costs no attempt: none was retried.
    let retried = "mailpushd_pushes_total{service=\"webpush\",outcome=\"retried\"}";
    assert!(!metrics.contains(retried), "{metrics}");
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// A subscription never acknowledged goes when its token expires: the timer sweeps it
/// at that deadline (not at a fixed tick), and the account's limit has room again.
#[tokio::test]
async fn an_unacknowledged_subscription_goes_when_its_token_expires() {
    let s = setup(|c| {
        c.webpush.ack_lifetime = Duration::from_secs(1);
        c.webpush.max_subscriptions = 1;
    })
    .await;
    let endpoint = s.push.endpoint("/push/1");
    let answer = s.forward("c1", &s.subscribe_line("s1", &endpoint)).await;
    assert!(answer.ends_with("s1 OK WEBPUSH completed\r\n"), "{answer}");
    assert_eq!(s.subscriptions().await, 1);
    // At the limit while it waits for ACKWEBPUSH.
    let other = format!(
        "s2 WEBPUSH other {endpoint} {} {}\r\n",
        s.ua.public_key().to_base64url(),
        s.ua.auth().to_base64url()
    );
    let answer = s.forward("c1", &other).await;
    assert!(answer.starts_with("s2 NO [LIMIT]"), "{answer}");
    // Its token expires after a second; the timer deletes it then.
    let started = Instant::now();
    assert_eq!(s.wait_subscriptions(0).await, 0, "swept at its deadline");
    assert!(started.elapsed() < Duration::from_secs(4));
    let answer = s.forward("c1", &other).await;
    assert!(answer.ends_with("s2 OK WEBPUSH completed\r\n"), "{answer}");
}

/// A 410 arriving late, for an endpoint the subscription has left since (the client
/// subscribed again with the same id and another endpoint), deletes nothing: the
/// answer was about the old endpoint.
#[tokio::test]
async fn a_late_410_for_an_old_endpoint_keeps_the_subscription_that_replaced_it() {
    let s = setup(|c| c.webpush.request_timeout = Duration::from_secs(5)).await;
    s.active("push/old").await;
    // The next push to the old endpoint is answered 410, after a second.
    s.push.script([PushReply {
        status: 410,
        headers: vec![],
        delay: Duration::from_secs(1),
    }]);
    s.notify(r#""MessageNew""#, "").await;
    // Meanwhile the client moves the subscription to a new endpoint and acknowledges.
    let new = s.active("push/new").await;
    // Three requests: the old verification, the push answered 410 a second later,
    // the new verification; then the 410 has had its effect.
    let requests = s.push.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(requests.iter().filter(|r| r.path == "/push/old").count(), 2);
    support::wait_metric(
        s.address(),
        "mailpushd_gone_total{service=\"webpush\",result=\"kept\"} 1",
    )
    .await;
    let answer = s.forward("c1", "l1 LWEBPUSH *\r\n").await;
    assert_eq!(
        answer,
        format!("* WEBPUSH {ID} {new} NIL\r\nl1 OK LWEBPUSH completed\r\n")
    );
}

/// An endpoint stored while the test-only `allow_local_push_service` was on (here an
/// https IP literal, which no resolver sees) is not contacted once it is off: the
/// endpoint rule is applied again at send time.
#[tokio::test]
async fn a_stored_endpoint_the_rule_now_refuses_is_not_contacted() {
    let local = mailpushd::standin::Standin::start().await.unwrap();
    let trust = tempfile::tempdir().unwrap();
    let ca = trust.path().join("ca.pem");
    std::fs::write(&ca, local.ca_pem()).unwrap();
    let s = setup(|c| {
        c.webpush.allow_local_push_service = false;
        c.webpush.ca_file = Some(ca.clone());
    })
    .await;
    let key = s.daemon.store().vapid_key().await.unwrap().unwrap().0;
    support::store_active_subscriptions(
        s.daemon.store(),
        "alice",
        [local.endpoint("push/1")],
        &s.ua,
        key,
    )
    .await;
    s.notify(r#""MessageNew""#, "").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(local.requests().is_empty(), "{:?}", local.requests());
    assert_eq!(
        s.subscriptions().await,
        1,
        "kept: the rule may change again"
    );
}

/// `webpush.key_file` is imported once: a restart does not undo a rotation made since,
/// and daemons with different files do not take turns.
#[tokio::test]
async fn a_key_file_is_imported_once_and_never_undoes_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("store.sqlite");
    let write_key = |name: &str| {
        let key = webpush_crypto::VapidKey::generate(&mut rand_core::OsRng).unwrap();
        let path = dir.path().join(name);
        mailpushd::files::write_private(&path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        (path, key.public_key().to_string())
    };
    let (file_a, key_a) = write_key("a.pem");
    let (file_b, key_b) = write_key("b.pem");
    let current = |file: std::path::PathBuf| {
        let database = database.clone();
        async move {
            let mut config = Config::with_database(database);
            support::open_api(&mut config);
            config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            config.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
            config.webpush.subject = Some("mailto:postmaster@mail.example".into());
            config.webpush.key_file = Some(file);
            let daemon = Daemon::start(config).await.unwrap();
            let (_, answer) = support::forward(
                daemon.local_addr().unwrap(),
                "alice",
                "c1",
                "v GETVAPID\r\n",
            )
            .await;
            daemon.shutdown(Duration::from_secs(1)).await;
            support::vapid_key(&answer)
        }
    };
    assert_eq!(current(file_a.clone()).await, key_a, "imported");
    // Rotated by the operator; the same file at the next start: the rotation stands.
    let store = mailpushd::store::Store::open_sqlite(&database)
        .await
        .unwrap();
    let rotated = webpush_crypto::VapidKey::generate(&mut rand_core::OsRng).unwrap();
    store.add_vapid_key(&rotated).await.unwrap();
    store.close().await;
    let rotated = rotated.public_key().to_string();
    assert_eq!(current(file_a.clone()).await, rotated);
    // A new file is a rotation; the old one again does not take its turn back.
    assert_eq!(current(file_b.clone()).await, key_b);
    assert_eq!(current(file_a).await, key_b);
    assert_eq!(current(file_b).await, key_b);
}

#[tokio::test]
async fn a_push_waiting_out_its_quiet_period_is_sent_after_a_stop() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let quiet = |c: &mut Config| c.push.delay = Duration::from_secs(2);
    let daemon = with_subscriptions(dir.path(), &ua, &[push.endpoint("p/1")], quiet).await;
    // A flag change waits out the quiet period; the daemon stops (as on SIGTERM) first.
    event(&daemon, "FlagsSet").await;
    daemon.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        push.received().0,
        0,
        "sent before its quiet period was over"
    );
    // Started again on the same store, it sends the push it owed.
    let mut config = config_in(dir.path());
    quiet(&mut config);
    let daemon = Daemon::start(config).await.unwrap();
    let arrived = push.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(arrived.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(push.received().0, 1, "sent twice");
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_ahead_while_idle_are_spent_by_a_burst_then_made_in_line() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..30).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        c.webpush.key_pool_size = 10;
        c.webpush.key_pool_fill_per_second = 1000;
    })
    .await;
    let address = daemon.local_addr().unwrap();
    // Filled while the sender is idle.
    support::wait_metric(address, "mailpushd_webpush_key_pool 10").await;
    new_mail(&daemon).await;
    let arrived = push.wait_for(30, Duration::from_secs(20)).await;
    // Every push decrypts, whichever way its key was made.
    for request in &arrived {
        let plaintext = decrypt(&ua, &request.body).unwrap();
        assert!(plaintext.starts_with(b"* SELECT INBOX"), "{plaintext:?}");
    }
    let page = support::metrics(address).await;
    let made = |how: &str| {
        support::metric_value(
            &page,
            &format!("mailpushd_webpush_keys_made_total{{made=\"{how}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let ready = support::metric_value(&page, "mailpushd_webpush_key_pool").unwrap_or(0.0);
    // Every push spent one key: one made ahead and taken from the pool, or one made in
    // line when the pool was empty (a burst of thirty empties a pool of ten).
    assert!(made("ahead") >= 10.0, "{page}");
    assert!(
        made("ahead") - ready >= 10.0,
        "the ten made while idle were spent: {page}"
    );
    assert_eq!(made("ahead") - ready + made("inline"), 30.0, "{page}");
    assert!(made("inline") >= 1.0, "{page}");
    // And once idle again, the pool fills again.
    support::wait_metric(address, "mailpushd_webpush_key_pool 10").await;
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// A subscription pushed to gets a key agreed ahead with its keys while the sender is
/// idle, and its next push spends it: the second burst to thirty subscriptions finds
/// an agreement for each, every message decrypts, and no key id serves twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_agreed_ahead_serve_the_next_push_of_each_subscription_pushed_to() {
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..30).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        // Without the other pool, so that what is not agreed ahead is made in line.
        c.webpush.key_pool_size = 0;
        c.webpush.agreement_pool_size = 100;
        c.webpush.key_pool_fill_per_second = 1000;
    })
    .await;
    let address = daemon.local_addr().unwrap();
    let taken = |page: &str, found: &str| {
        support::metric_value(
            page,
            &format!("mailpushd_webpush_agreements_taken_total{{found=\"{found}\"}}"),
        )
        .unwrap_or(0.0)
    };
    // Nothing is known of a subscription before its first push.
    new_mail(&daemon).await;
    push.wait_for(30, Duration::from_secs(20)).await;
    let page = support::wait_metric(address, "mailpushd_webpush_agreement_pool 30").await;
    assert_eq!(taken(&page, "false"), 30.0, "{page}");
    assert_eq!(taken(&page, "true"), 0.0, "{page}");
    // The next burst finds one for each.
    new_mail(&daemon).await;
    let arrived = push.wait_for(60, Duration::from_secs(20)).await;
    let mut ids = std::collections::HashSet::new();
    for request in &arrived {
        let plaintext = decrypt(&ua, &request.body).unwrap();
        assert!(plaintext.starts_with(b"* SELECT INBOX"), "{plaintext:?}");
        let (header, _) = webpush_crypto::ece::Header::parse(&request.body).unwrap();
        assert!(ids.insert(header.keyid.to_vec()), "a key id served twice");
    }
    let page = support::wait_metric(address, "mailpushd_webpush_agreement_pool 30").await;
    assert_eq!(taken(&page, "true"), 30.0, "{page}");
    assert_eq!(taken(&page, "false"), 30.0, "{page}");
    assert_eq!(
        support::metric_value(&page, "mailpushd_webpush_agreements_made_total"),
        Some(60.0),
        "{page}"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// A mail server that closes its connection before the answer to a notify (a client's
/// timeout) leaves each push it owed on its way, none counted as sending for good: a
/// push counted and never ended would take one of the owed sends' places until a
/// restart, and new mail waits for the timer once they are all taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_whose_caller_goes_away_still_sends_what_it_owed() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let push = PushService::start().await.unwrap();
    let endpoints: Vec<String> = (0..4).map(|i| push.endpoint(&format!("p/{i}"))).collect();
    let daemon = with_subscriptions(dir.path(), &ua, &endpoints, |c| {
        c.webpush.max_pushes_per_user_per_minute = 100_000;
    })
    .await;
    let address = daemon.local_addr().unwrap();
    let body = r#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}"#;
    let request = format!(
        "POST /notify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for round in 0..200_u64 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        // Gone at a different moment of the notify each round.
        tokio::time::sleep(Duration::from_micros(round * 37 % 2_000)).await;
        drop(stream);
    }
    support::wait_metric(address, "mailpushd_owed_sending 0").await;
    // And nothing stays owed: each push went (or was merged into one that did).
    let mut owed = daemon.store().owed_count().await.unwrap();
    for _ in 0..100 {
        if owed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        owed = daemon.store().owed_count().await.unwrap();
    }
    assert_eq!(owed, 0, "pushes left owed");
    assert!(!push.requests().is_empty());
    daemon.shutdown(Duration::from_secs(5)).await;
}
