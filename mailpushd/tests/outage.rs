//! An APNs outage delays pushes and never loses one, even when the daemon is killed in
//! the middle of it: every push acknowledged to the mail server is owed in the store,
//! retried in rounds while APNs answers 503, and sent once APNs is back by the daemon
//! restarted after SIGKILL (a ten-minute outage, scaled down to seconds), or, on a
//! shared PostgreSQL database, by the other daemon without a restart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::{JSON, free_port, spawn_daemon, wait_healthy};

use mailpushd::demo::{http, standin_config};
use mailpushd::standin::{Recorded, Standin};

/// Users whose devices get new mail during the outage.
const NEW_MAIL: usize = 30;
/// Users whose devices get a flag change (a push after the quiet period).
const FLAGS: usize = 10;

fn token(i: usize) -> String {
    format!("{:064x}", 0xA000 + i)
}

/// The daemon's configuration file in `dir`, sending to `standin`: rounds of two
/// attempts a second apart, a quiet period of two seconds, leases of ten.
fn write_config(
    dir: &Path,
    standin: &Standin,
    address: SocketAddr,
    database: &str,
) -> std::path::PathBuf {
    support::standin_toml(
        dir,
        standin,
        address,
        database,
        "[push]\ndelay_secs = 2\nretry_first_secs = 1\nretry_max_secs = 1\nlease_secs = 10\n",
    )
}

async fn post(address: SocketAddr, path: &str, body: String) -> u16 {
    http(address, "POST", path, &JSON, body.as_bytes())
        .await
        .unwrap()
        .0
}

/// Registers one device per user, then, with APNs down, new mail for the first
/// [`NEW_MAIL`] users and a flag change for the next [`FLAGS`]: each acknowledged.
async fn owe_pushes_during_an_outage(address: SocketAddr, standin: &Standin) {
    for i in 0..NEW_MAIL + FLAGS {
        let body = format!(
            r#"{{"ApsAccountId":"ACCOUNT-{i}","ApsDeviceToken":"{}","ApsSubtopic":"com.apple.mobilemail","Username":"user{i}","Mailboxes":["INBOX"]}}"#,
            token(i)
        );
        assert_eq!(post(address, "/register", body).await, 200);
    }
    standin.set_down(true);
    for i in 0..NEW_MAIL + FLAGS {
        let events = if i < NEW_MAIL {
            r#""MessageNew""#
        } else {
            r#""FlagsSet""#
        };
        let body = format!(r#"{{"Username":"user{i}","Mailbox":"INBOX","Events":[{events}]}}"#);
        assert_eq!(post(address, "/notify", body).await, 200, "acknowledged");
    }
}

/// Waits until every device has been pushed since `up`; the pushes since then, by token.
async fn pushed_since(standin: &Standin, up: Instant, within: Duration) -> HashMap<String, usize> {
    let end = Instant::now() + within;
    loop {
        let mut by_token: HashMap<String, usize> = HashMap::new();
        for r in standin.requests().iter().filter(|r: &&Recorded| r.at >= up) {
            let token = r.path.trim_start_matches("/3/device/").to_owned();
            *by_token.entry(token).or_default() += 1;
        }
        if by_token.len() >= NEW_MAIL + FLAGS || Instant::now() > end {
            return by_token;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_apns_outage_loses_no_acknowledged_push() {
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = write_config(dir.path(), &standin, address, "sqlite:store.sqlite");
    let mut daemon = spawn_daemon(&config);
    wait_healthy(address).await;
    owe_pushes_during_an_outage(address, &standin).await;

    // Rounds go on against 503s; a few seconds in, the daemon is killed.
    let tried = standin
        .wait_for(2 * NEW_MAIL, Duration::from_secs(20))
        .await;
    assert!(tried.len() >= 2 * NEW_MAIL, "{} attempts", tried.len());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let during = standin.requests().len();

    // APNs is back; so is the daemon: every device is pushed, once.
    standin.set_down(false);
    let up = Instant::now();
    let mut daemon = spawn_daemon(&config);
    wait_healthy(address).await;
    let pushed = pushed_since(&standin, up, Duration::from_secs(30)).await;
    let missing: Vec<usize> = (0..NEW_MAIL + FLAGS)
        .filter(|&i| !pushed.contains_key(&token(i)))
        .collect();
    assert!(missing.is_empty(), "never pushed: users {missing:?}");
    let twice: Vec<_> = pushed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "pushed more than once: {twice:?}");
    let page = support::wait_metric(address, "mailpushd_owed_pushes 0").await;
    assert!(page.contains("mailpushd_owed_pushes 0"));
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    println!(
        "{during} attempts during the outage; after SIGKILL and restart, all {} devices pushed once in {:?}",
        NEW_MAIL + FLAGS,
        up.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (Debian: postgresql); .ci/run installs it and runs --include-ignored"]
async fn the_pushes_a_killed_daemon_owed_are_sent_by_the_other_on_the_same_database() {
    let pg = support::Postgres::start();
    let url = pg.database("outage").await;
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    // A: a process of its own, to be killed; B: in this one, serving on.
    let a_address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let a_config = write_config(dir.path(), &standin, a_address, &url);
    let mut a = spawn_daemon(&a_config);
    wait_healthy(a_address).await;
    std::fs::create_dir(dir.path().join("b")).unwrap();
    let mut b_config = standin_config(&standin, &dir.path().join("b")).unwrap();
    support::open_api(&mut b_config);
    b_config.database = mailpushd::config::Database::Postgres(
        mailpushd::config::PostgresUrl::new(&url, 4).unwrap(),
    );
    b_config.push.lease = Duration::from_secs(10);
    b_config.push.retry_first = Duration::from_secs(1);
    b_config.push.retry_max = Duration::from_secs(1);
    let b = mailpushd::daemon::Daemon::start(b_config).await.unwrap();

    owe_pushes_during_an_outage(a_address, &standin).await;
    let tried = standin
        .wait_for(2 * NEW_MAIL, Duration::from_secs(20))
        .await;
    assert!(tried.len() >= 2 * NEW_MAIL, "{} attempts", tried.len());
    a.kill().unwrap();
    a.wait().unwrap();

    // APNs is back: B sends what A owed, each lease A held ended (ten seconds), without
    // a restart of anything.
    standin.set_down(false);
    let up = Instant::now();
    let pushed = pushed_since(&standin, up, Duration::from_secs(40)).await;
    let missing: Vec<usize> = (0..NEW_MAIL + FLAGS)
        .filter(|&i| !pushed.contains_key(&token(i)))
        .collect();
    assert!(missing.is_empty(), "never pushed: users {missing:?}");
    let twice: Vec<_> = pushed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "pushed more than once: {twice:?}");
    support::wait_metric(b.local_addr().unwrap(), "mailpushd_owed_pushes 0").await;
    println!(
        "A killed during the outage; B pushed all {} devices in {:?} after APNs came back",
        NEW_MAIL + FLAGS,
        up.elapsed()
    );
    b.shutdown(Duration::from_secs(5)).await;
}

/// A backlog waits in the store, not in tasks: 5,000 pushes due at start (an outage's)
/// are sent at most 2,000 at a time, and all of them are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_sent_a_bounded_number_at_a_time() {
    const BACKLOG: usize = 5000;
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    let mailpushd::config::Database::Sqlite(path) = &config.database else {
        unreachable!("the stand-in's configuration is on SQLite")
    };
    // Owed before the start, as an outage leaves them.
    let store = mailpushd::store::Store::open_sqlite(path).await.unwrap();
    let events: Vec<_> = (0..BACKLOG)
        .map(|i| {
            let key = mailpushd::store::OwedKey {
                user: support::user_name(&format!("user{i}")),
                target: mailpushd::store::OwedTarget::Device {
                    token: xaps_proto::DeviceToken::new(&token(i)).unwrap(),
                    account: xaps_proto::AccountId::new(&format!("ACCOUNT-{i}")).unwrap(),
                },
                mailbox: String::new(),
            };
            (key, false)
        })
        .collect();
    let lease = mailpushd::store::Lease {
        owner: "before",
        until_ms: 0,
    };
    store.owe(&events, 0, Duration::ZERO, lease).await.unwrap();
    store.close().await;
    // Each answer takes a while, so that the sends pile up if nothing bounds them.
    standin.script(
        std::iter::repeat_with(|| {
            mailpushd::standin::Reply::Slow(
                Duration::from_millis(300),
                Box::new(mailpushd::standin::Reply::OK),
            )
        })
        .take(BACKLOG),
    );
    let daemon = mailpushd::daemon::Daemon::start(config).await.unwrap();
    let mut most = 0;
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let page = support::metrics(daemon.local_addr().unwrap()).await;
        let sending: usize = page
            .lines()
            .find_map(|l| l.strip_prefix("mailpushd_owed_sending "))
            .and_then(|n| n.parse().ok())
            .unwrap();
        most = most.max(sending);
        if page.lines().any(|l| l == "mailpushd_owed_pushes 0") || Instant::now() > end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        most > 0 && most <= 2000,
        "at most {most} on their way at once"
    );
    assert_eq!(standin.requests().len(), BACKLOG);
    support::wait_metric(daemon.local_addr().unwrap(), "mailpushd_owed_pushes 0").await;
    println!("{BACKLOG} owed at start: all sent, at most {most} on their way at once");
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// New mail while as many owed pushes are on their way as may be (APNs answering
/// slowly): what comes beyond the bound waits in the store for the timer instead of
/// each starting a send of its own, and every push still goes, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mail_beyond_the_bound_of_sends_waits_in_the_store() {
    // Users with a hundred devices each: one notify, a hundred pushes.
    const USERS: usize = 23;
    const DEVICES: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    config.push.max_accounts_per_user = DEVICES;
    // Queued behind the stand-in's limit of streams, no request times out.
    config.apns.request_timeout = Duration::from_secs(120);
    config.apns.max_in_flight = 5000;
    let daemon = mailpushd::daemon::Daemon::start(config).await.unwrap();
    let address = daemon.local_addr().unwrap();
    // Each answer takes a second, and hyper's server takes 200 streams at once: the
    // sends pile up if nothing bounds them.
    standin.script(
        std::iter::repeat_with(|| {
            mailpushd::standin::Reply::Slow(
                Duration::from_secs(1),
                Box::new(mailpushd::standin::Reply::OK),
            )
        })
        .take(USERS * DEVICES),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for start in 0..32 {
        tasks.spawn(async move {
            for n in (start..USERS * DEVICES).step_by(32) {
                let body = format!(
                    r#"{{"ApsAccountId":"ACCOUNT-{n}","ApsDeviceToken":"{}","ApsSubtopic":"com.apple.mobilemail","Username":"user{}","Mailboxes":["INBOX"]}}"#,
                    token(n),
                    n / DEVICES
                );
                assert_eq!(post(address, "/register", body).await, 200, "{n}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for i in 0..USERS {
        let body = format!(r#"{{"Username":"user{i}","Mailbox":"INBOX","Events":["MessageNew"]}}"#);
        assert_eq!(post(address, "/notify", body).await, 200);
    }
    let mut most = 0_f64;
    loop {
        let page = support::metrics(address).await;
        most = most.max(support::metric_value(&page, "mailpushd_owed_sending").unwrap());
        if page.lines().any(|l| l == "mailpushd_owed_pushes 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The bound, and at most one notify's hundred more: the one stored when it was
    // reached.
    assert!(
        (1500.0..=2100.0).contains(&most),
        "at most {most} on their way at once"
    );
    let mut pushed: HashMap<String, usize> = HashMap::new();
    for r in standin.requests() {
        *pushed.entry(r.path).or_default() += 1;
    }
    assert_eq!(pushed.len(), USERS * DEVICES);
    assert!(pushed.values().all(|&n| n == 1), "some pushed twice");
    println!(
        "{} new mails with slow answers: all sent once, at most {most} on their way at once",
        USERS * DEVICES
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}
