//! Several daemons on one PostgreSQL database, a private cluster started by the test:
//! a subscription made through one is acknowledged through the other, a device
//! registered through one is pushed to by the other, the per-user limit holds when both
//! register at once, and one daemon killed in the middle of a stream of registrations
//! and subscriptions loses nothing it acknowledged while the other keeps serving.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;
use support::{JSON, Postgres, forward, free_port, spawn_daemon, wait_healthy};

use mailpushd::config::{Config, Database, PostgresUrl};
use mailpushd::daemon::Daemon;
use mailpushd::demo::{http, standin_config};
use mailpushd::standin::{PushService, Standin};
use mailpushd::store::Store;
use webpush_crypto::{UaKeys, decrypt};
use xaps_proto::AccountId;
use xaps_proto::registry::Registry;

const SUB: &str = "a8282bf9-6102-4e1b-bb61-d26d0e532e65";

/// A daemon's configuration on `url`, sending to the stand-ins, with its files in `dir`.
fn config(url: &str, apns: &Standin, dir: &std::path::Path) -> Config {
    let mut config = standin_config(apns, dir).unwrap();
    support::open_api(&mut config);
    config.database = Database::Postgres(PostgresUrl::new(url, 4).unwrap());
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    config.webpush.allow_local_push_service = true;
    config.push.check_interval = Duration::from_millis(100);
    config
}

fn register_body(user: &str, i: usize) -> String {
    format!(
        r#"{{"ApsAccountId":"ACCOUNT-{i:04}","ApsDeviceToken":"{:064x}","ApsSubtopic":"com.apple.mobilemail","Username":"{user}","Mailboxes": ["INBOX"]}}"#,
        i + 1
    )
}

fn subscribe_line(ua: &UaKeys, endpoint: &str) -> String {
    format!(
        "s1 WEBPUSH {SUB} {endpoint} {} {}\r\n",
        ua.public_key().to_base64url(),
        ua.auth().to_base64url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (Debian: postgresql); .ci/run installs it and runs --include-ignored"]
async fn what_one_daemon_stores_the_other_serves() {
    let pg = Postgres::start();
    let url = pg.database("shared").await;
    let dir = tempfile::tempdir().unwrap();
    let apns = Standin::start().await.unwrap();
    let push = PushService::start().await.unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    // Started together on a new database: one migrates while the other waits, and
    // both end up with the one VAPID key the first made.
    let (a, b) = tokio::join!(
        Daemon::start(config(&url, &apns, &dir.path().join("a"))),
        Daemon::start(config(&url, &apns, &dir.path().join("b"))),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (_, key_a) = forward(a.local_addr().unwrap(), "alice", "c1", "v GETVAPID\r\n").await;
    let (_, key_b) = forward(b.local_addr().unwrap(), "alice", "c9", "v GETVAPID\r\n").await;
    assert!(key_a.starts_with("* VAPID "), "{key_a}");
    assert_eq!(key_a, key_b);

    // Subscribe through A; the verification push carries the token; acknowledge
    // through B.
    let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
    let endpoint = push.endpoint("push/alice");
    let (status, answer) = forward(
        a.local_addr().unwrap(),
        "alice",
        "c1",
        &subscribe_line(&ua, &endpoint),
    )
    .await;
    assert_eq!(status, 200);
    assert!(answer.ends_with("s1 OK WEBPUSH completed\r\n"), "{answer}");
    let pushed = push.wait_for(1, Duration::from_secs(10)).await;
    let ack = String::from_utf8(decrypt(&ua, &pushed[0].body).unwrap()).unwrap();
    let token = ack.strip_prefix("* ACKWEBPUSH ").unwrap().trim_end();
    let (_, answer) = forward(
        b.local_addr().unwrap(),
        "alice",
        "c2",
        &format!("s2 ACKWEBPUSH {token}\r\n"),
    )
    .await;
    assert!(
        answer.ends_with("s2 OK ACKWEBPUSH completed\r\n"),
        "{answer}"
    );
    // The same token again, through A: used up.
    let (_, answer) = forward(
        a.local_addr().unwrap(),
        "alice",
        "c1",
        &format!("s3 ACKWEBPUSH {token}\r\n"),
    )
    .await;
    assert!(answer.starts_with("s3 NO"), "{answer}");

    // Register an iOS device through A; new mail reported to B pushes to both.
    let (status, _) = http(
        a.local_addr().unwrap(),
        "POST",
        "/register",
        &JSON,
        register_body("alice", 1).as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let notify = br#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}"#;
    let (status, _) = http(b.local_addr().unwrap(), "POST", "/notify", &JSON, notify)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let sent = apns.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(sent[0].path, format!("/3/device/{:064x}", 2));
    // Logged for `mailpushd status`, in PostgreSQL as in SQLite.
    let mut logged = 0;
    for _ in 0..100 {
        logged = a
            .store()
            .pushes_of(&support::user_name("alice"))
            .await
            .unwrap()
            .len();
        if logged == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(logged, 1, "the push to the device is logged");
    let pushed = push.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        String::from_utf8(decrypt(&ua, &pushed[1].body).unwrap()).unwrap(),
        "* SELECT INBOX\r\n"
    );

    // An APNs 410 seen by B removes the registration A made, for both.
    apns.script([mailpushd::standin::Reply::Status(
        410,
        r#"{"reason":"Unregistered"}"#,
    )]);
    let (status, _) = http(b.local_addr().unwrap(), "POST", "/notify", &JSON, notify)
        .await
        .unwrap();
    assert_eq!(status, 200);
    apns.wait_for(2, Duration::from_secs(10)).await;
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = a
            .store()
            .user(&support::user_name("alice"), Registry::new())
            .await
            .unwrap()
            .len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "A still sees the device B was told is gone");
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (Debian: postgresql); .ci/run installs it and runs --include-ignored"]
async fn the_per_user_limit_holds_when_both_register_at_once() {
    let pg = Postgres::start();
    let url = pg.database("limits").await;
    let dir = tempfile::tempdir().unwrap();
    let apns = Standin::start().await.unwrap();
    let mut daemons = Vec::new();
    for name in ["a", "b"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        let mut config = config(&url, &apns, &dir.path().join(name));
        config.push.max_accounts_per_user = 10;
        daemons.push(Daemon::start(config).await.unwrap());
    }
    let addresses: Vec<SocketAddr> = daemons.iter().map(|d| d.local_addr().unwrap()).collect();
    // 40 devices of one user at once, half through each daemon.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let address = addresses[i % 2];
            tokio::spawn(async move {
                http(
                    address,
                    "POST",
                    "/register",
                    &JSON,
                    register_body("carol", i).as_bytes(),
                )
                .await
                .unwrap()
                .0
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap() == 200 {
            accepted += 1;
        }
    }
    let store = Store::open_postgres(&url, 1).await.unwrap();
    let stored = store
        .user(&support::user_name("carol"), Registry::new())
        .await
        .unwrap()
        .len();
    assert_eq!((accepted, stored), (10, 10));
    for daemon in daemons {
        daemon.shutdown(Duration::from_secs(5)).await;
    }
}

/// What one client did: what was acknowledged, and what was not answered with success.
#[derive(Default)]
struct Tally {
    registered: Vec<usize>,
    subscribed: Vec<usize>,
    failed: Vec<String>,
}

/// Registers device `i` and subscribes user `i` through `address`.
async fn one_of_each(
    address: SocketAddr,
    i: usize,
    endpoint: &str,
    ua: &UaKeys,
    tally: &Mutex<Tally>,
) {
    let user = format!("user{i:04}");
    match http(
        address,
        "POST",
        "/register",
        &JSON,
        register_body(&user, i).as_bytes(),
    )
    .await
    {
        Ok((200, _)) => tally.lock().unwrap().registered.push(i),
        other => tally
            .lock()
            .unwrap()
            .failed
            .push(format!("register {i}: {other:?}")),
    }
    let headers = [
        ("x-mailpush-user", user.as_str()),
        ("x-mailpush-connection", "c"),
    ];
    let line = subscribe_line(ua, endpoint);
    match http(address, "POST", "/imap/webpush", &headers, line.as_bytes()).await {
        Ok((200, body)) if body.ends_with(b"s1 OK WEBPUSH completed\r\n") => {
            tally.lock().unwrap().subscribed.push(i);
        }
        other => tally
            .lock()
            .unwrap()
            .failed
            .push(format!("subscribe {i}: {other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian: postgresql); .ci/run installs it and runs --include-ignored"]
async fn sigkill_of_one_daemon_loses_nothing_and_the_other_serves_on() {
    let pg = Postgres::start();
    let url = pg.database("crash").await;
    let dir = tempfile::tempdir().unwrap();
    let apns = Standin::start().await.unwrap();
    let push = PushService::start().await.unwrap();
    let endpoint = push.endpoint("push/any");
    let ua = Arc::new(UaKeys::generate(&mut rand_core::OsRng).unwrap());

    // A: a process of its own, to be killed.
    let a_address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let a_config = dir.path().join("a.toml");
    std::fs::write(
        &a_config,
        format!(
            "listen = \"{a_address}\"\ndatabase = \"{url}\"\n{}[apns]\ntopic = \"{}\"\n[webpush]\nsubject = \"mailto:postmaster@mail.example\"\nallow_local_push_service = true\n",
            support::OPEN_API_TOML,
            mailpushd::demo::DEMO_TOPIC
        ),
    )
    .unwrap();
    let mut a = spawn_daemon(&a_config);
    wait_healthy(a_address).await;
    let b = Daemon::start(config(&url, &apns, dir.path()))
        .await
        .unwrap();
    let b_address = b.local_addr().unwrap();

    // 600 users, each a registration and a subscription: the first 400 through A from
    // 20 clients, the rest through B from 10.
    let through_a = Arc::new(Mutex::new(Tally::default()));
    let through_b = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for worker in 0..30 {
        let (address, tally, first, step) = if worker < 20 {
            (a_address, through_a.clone(), worker, 20)
        } else {
            (b_address, through_b.clone(), 400 + worker - 20, 10)
        };
        let (endpoint, ua) = (endpoint.clone(), ua.clone());
        let end = if worker < 20 { 400 } else { 600 };
        tasks.push(tokio::spawn(async move {
            for i in (first..end).step_by(step) {
                one_of_each(address, i, &endpoint, &ua, &tally).await;
            }
        }));
    }
    while through_a.lock().unwrap().registered.len() < 120 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }

    let a_tally = std::mem::take(&mut *through_a.lock().unwrap());
    let b_tally = std::mem::take(&mut *through_b.lock().unwrap());
    assert!(
        a_tally.registered.len() < 400,
        "A finished before it was killed"
    );
    // B kept serving: every one of its requests succeeded, during and after.
    assert!(b_tally.failed.is_empty(), "{:?}", b_tally.failed);
    assert_eq!(
        (b_tally.registered.len(), b_tally.subscribed.len()),
        (200, 200)
    );

    // Everything either daemon acknowledged is in the database.
    let store = Store::open_postgres(&url, 1).await.unwrap();
    let registry = store.all(Registry::new()).await.unwrap();
    let mut missing = Vec::new();
    for &i in a_tally.registered.iter().chain(&b_tally.registered) {
        let account = AccountId::new(&format!("ACCOUNT-{i:04}")).unwrap();
        if registry
            .devices(&support::user_name(&format!("user{i:04}")), &account)
            .next()
            .is_none()
        {
            missing.push(format!("registration {i}"));
        }
    }
    for &i in a_tally.subscribed.iter().chain(&b_tally.subscribed) {
        let account = store
            .webpush_account(&support::user_name(&format!("user{i:04}")))
            .await
            .unwrap();
        if !account.records.iter().any(|r| r.sub_id.as_str() == SUB) {
            missing.push(format!("subscription {i}"));
        }
    }
    assert!(missing.is_empty(), "lost after a success: {missing:?}");
    println!(
        "A acknowledged {} registrations and {} subscriptions before SIGKILL, B {} and {}; all in PostgreSQL ({} registrations stored)",
        a_tally.registered.len(),
        a_tally.subscribed.len(),
        b_tally.registered.len(),
        b_tally.subscribed.len(),
        registry.len()
    );
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (Debian: postgresql); .ci/run installs it and runs --include-ignored"]
async fn silences_of_a_front_that_died_are_ended_by_the_next_daemon_to_start() {
    use imap_webpush_proto::state::{Change, ConnectionId, Silence};
    let pg = Postgres::start();
    let url = pg.database("fronts").await;
    let dir = tempfile::tempdir().unwrap();
    let apns = Standin::start().await.unwrap();
    let push = PushService::start().await.unwrap();
    let a = Daemon::start(config(&url, &apns, dir.path()))
        .await
        .unwrap();
    // Alice and Bob subscribed and acknowledged.
    for (i, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
        let address = a.local_addr().unwrap();
        let line = subscribe_line(&ua, &push.endpoint(&format!("push/{user}")));
        assert_eq!(forward(address, user, "c1", &line).await.0, 200);
        let pushed = push.wait_for(i + 1, Duration::from_secs(10)).await;
        let ack = String::from_utf8(decrypt(&ua, &pushed[i].body).unwrap()).unwrap();
        let token = ack.strip_prefix("* ACKWEBPUSH ").unwrap().trim_end();
        let (_, answer) = forward(address, user, "c1", &format!("s2 ACKWEBPUSH {token}\r\n")).await;
        assert!(
            answer.ends_with("s2 OK ACKWEBPUSH completed\r\n"),
            "{answer}"
        );
    }
    a.shutdown(Duration::from_secs(5)).await;

    // As two fronts left them: alice silenced by a session of one that stopped saying
    // it is alive six minutes ago (an instance past i64's range, stored as a negative
    // number), bob by one alive a moment ago.
    let store = Store::open_postgres(&url, 2).await.unwrap();
    let (dead, alive) = (u64::MAX - 6, 7_u64);
    store.front_alive(dead).await.unwrap();
    store.front_alive(alive).await.unwrap();
    let fronts = |statement: &'static str| {
        let url = url.clone();
        async move {
            use sqlx::{Connection, Row};
            let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(statement).fetch_all(&mut db).await.unwrap();
            db.close().await.unwrap();
            rows.iter()
                .map(|r| r.get::<i64, _>(0))
                .collect::<Vec<i64>>()
        }
    };
    fronts("UPDATE front_instances SET alive_ms = alive_ms - 360000 WHERE instance < 0 RETURNING instance").await;
    for (user, instance) in [("alice", dead), ("bob", alive)] {
        store
            .update_webpush(&support::user_name(user), |account| {
                let mut record = account.records[0].clone();
                record.silence = Silence::UntilDisconnect(ConnectionId {
                    instance,
                    serial: 1,
                });
                ((), vec![Change::Store(Box::new(record))])
            })
            .await
            .unwrap();
    }
    // Carol's row names the dead front, but her record is not silenced: as a daemon
    // of an earlier version leaves a row it rewrote.
    fronts("UPDATE webpush_subscriptions SET silenced_by = (SELECT MIN(instance) FROM front_instances) WHERE username = 'carol' RETURNING silenced_by").await;
    let silenced = |user: &'static str| {
        let store = store.clone();
        async move {
            let account = store
                .webpush_account(&support::user_name(user))
                .await
                .unwrap();
            account.records[0].silence != Silence::None
        }
    };
    let dead_after = mailpushd::core::FRONT_DEAD_AFTER;
    // Paged in the order of the stored instance (the dead one's is negative).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let first = store.silent_fronts(Duration::ZERO, None, 1).await.unwrap();
    assert_eq!(first, [dead]);
    let next = store
        .silent_fronts(Duration::ZERO, Some(dead), 1)
        .await
        .unwrap();
    assert_eq!(next, [alive]);
    let past = store
        .silent_fronts(Duration::ZERO, Some(alive), 1)
        .await
        .unwrap();
    assert!(past.is_empty());
    assert_eq!(
        store.silent_fronts(dead_after, None, 10).await.unwrap(),
        [dead]
    );
    assert_eq!(
        store
            .users_silenced_by(dead, dead_after, None, 10)
            .await
            .unwrap(),
        [support::user_name("alice"), support::user_name("carol")]
    );
    // The live one's users are not the dead pass's.
    assert!(
        store
            .users_silenced_by(alive, dead_after, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Still named by a silence: not forgotten.
    assert!(!store.forget_front(dead, Some(dead_after)).await.unwrap());

    // Another daemon starts on the database: alice's silence ends and that front is
    // forgotten; bob's, whose front is alive, holds.
    let b = Daemon::start(config(&url, &apns, dir.path()))
        .await
        .unwrap();
    assert!(!silenced("alice").await);
    assert!(silenced("bob").await);
    let named = "SELECT COUNT(*) FROM webpush_subscriptions WHERE silenced_by IS NOT NULL AND username = 'carol'";
    assert_eq!(
        fronts(named).await,
        [0],
        "carol's row no longer names the dead front"
    );
    assert_eq!(
        fronts("SELECT instance FROM front_instances").await,
        [i64::try_from(alive).unwrap()]
    );
    b.shutdown(Duration::from_secs(5)).await;
    store.close().await;
}
