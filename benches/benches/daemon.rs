//! mailpushd under load, against its APNs stand-in on the same machine: 100,000
//! registrations in the store; notifies for new mail at a steady rate over keep-alive
//! connections (latency from the notify to the push's arrival, p50 and p99); pushes as
//! fast as one HTTP/2 connection takes them (requests per second); and the resident
//! memory the registrations cost. Then the same steady rate of notifies for users with
//! one Web Push subscription each, to a push service stand-in, with the key pools
//! refilling between pushes and without them, in alternate phases.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench daemon [-- SECONDS RATE REGISTRATIONS]
//! ```

use mailpush_benches::{percentile, resident_kib};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mailpushd::apns::Job;
use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use mailpushd::store::Store;
use xaps_proto::registry::{Registration, Registry};
use xaps_proto::{AccountId, DeviceToken, Timestamp};

#[path = "../../mailpushd/tests/support/mod.rs"]
mod support;

fn account(i: usize) -> String {
    format!("{:08X}-0000-4000-8000-{i:012X}", i)
}

fn registry(range: std::ops::Range<usize>) -> Registry {
    let mut registry = Registry::new().with_max_accounts_per_user(usize::MAX);
    let now = Timestamp::from_system_time(std::time::SystemTime::now()).unwrap();
    for i in range {
        let registration = Registration {
            device_token: DeviceToken::new(&format!("{:064x}", i + 1)).expect("hex"),
            mailboxes: vec!["INBOX".to_owned()],
            registered_at: Some(now),
        };
        let _ = registry.restore(
            xaps_proto::UserName::new(&format!("user{i}")).expect("name"),
            AccountId::new(&account(i)).expect("id"),
            registration,
        );
    }
    registry
}

async fn connection(address: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// Notifies of new mail at `rate` per second, `total` of them, spread over 16
/// keep-alive connections; the `k`th for the user `who(k).0`. When each was sent, by
/// `who(k).1`.
async fn notify_stream(
    address: SocketAddr,
    rate: u64,
    total: usize,
    who: impl Fn(usize) -> (String, String),
) -> HashMap<String, Instant> {
    let mut senders = Vec::new();
    for _ in 0..16 {
        senders.push(connection(address).await);
    }
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent_at = HashMap::<String, Instant>::with_capacity(total);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        let due = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        let (user, key) = who(k);
        let body = format!(r#"{{"Username":"{user}","Mailbox":"INBOX","Events": ["MessageNew"]}}"#);
        let request = http::Request::post("/notify")
            .header("host", "mailpushd")
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let sender = &mut senders[k % 16];
        if sender.ready().await.is_err() {
            *sender = connection(address).await;
        }
        sent_at.insert(key, Instant::now());
        let response = sender.send_request(request);
        tasks.push(tokio::spawn(async move {
            if let Ok(r) = response.await {
                let _ = r.into_body().collect().await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    sent_at
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    mailpushd::logs::init(mailpushd::logs::LogFormat::Text).expect("MAILPUSHD_LOG");
    let args: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(10);
    let rate = args.get(1).copied().unwrap_or(1000);
    let n = args.get(2).copied().unwrap_or(100_000) as usize;

    let dir = tempfile::tempdir().expect("temp dir");
    let standin = Standin::start().await.expect("stand-in");
    let mut config = standin_config(&standin, dir.path()).expect("config");
    // The bench's own requests, as a local API opened in words lets them in.
    config.api.open = mailpushd::config::OpenRoutes::All;
    let before = resident_kib();
    {
        let store = Store::open(&config.database).await.expect("store");
        // In chunks, so the bench's own copy does not weigh on the measurement.
        for start in (0..n).step_by(1000) {
            store
                .import(&registry(start..(start + 1000).min(n)))
                .await
                .expect("import");
        }
        store.close().await;
    }
    let config_for_web_push = config.clone();
    let daemon = Daemon::start(config).await.expect("daemon");
    let address = daemon.local_addr().expect("the API listens");
    let after = resident_kib();
    println!(
        "{n} registrations in the store; resident memory {before} KiB before the import, {after} KiB with the daemon started ({:.0} octets per registration: the daemon keeps them in the store, not in memory)",
        (after.saturating_sub(before) * 1024) as f64 / n as f64
    );

    let total = (seconds * rate) as usize;
    let start = Instant::now();
    let sent_at = notify_stream(address, rate, total, |k| {
        let i = (k * 7919) % n;
        (format!("user{i}"), account(i))
    })
    .await;
    let offered = start.elapsed();
    let requests = standin.wait_for(total, Duration::from_secs(30)).await;
    let mut latencies: Vec<Duration> = requests
        .iter()
        .filter_map(|r| {
            let body = String::from_utf8_lossy(&r.body);
            let id = body.split('"').nth(5)?;
            Some(r.at.saturating_duration_since(*sent_at.get(id)?))
        })
        .collect();
    latencies.sort();
    println!(
        "notify -> APNs, new mail, {rate}/s for {seconds} s ({} notifies in {:.2} s, {} pushes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total,
        offered.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Pushes as fast as the sender takes them, over the one connection.
    let burst = 50_000usize;
    let already = standin.requests().len();
    let start = Instant::now();
    for i in 0..burst {
        daemon.apns().spawn(Job {
            device_token: DeviceToken::new(&format!("{:064x}", i + 1)).expect("hex"),
            account_id: AccountId::new(&account(i % n)).expect("id"),
            since: Instant::now(),
            // The sender alone: no mark in the store to settle.
            owed: None,
            event: mailpushd::apns::PushEvent::Test,
        });
    }
    let arrived = standin
        .wait_for(already + burst, Duration::from_secs(120))
        .await;
    let last = arrived
        .iter()
        .skip(already)
        .map(|r| r.at)
        .max()
        .unwrap_or(start);
    println!(
        "APNs requests over {} connection(s): {} in {:.2} s, {:.0} requests/s",
        standin.connections(),
        arrived.len() - already,
        last.saturating_duration_since(start).as_secs_f64(),
        (arrived.len() - already) as f64
            / last
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9),
    );
    daemon.shutdown(Duration::from_secs(5)).await;

    web_push_stream(&config_for_web_push, seconds, rate).await;
}

/// Users with one Web Push subscription each, for the stream of single pushes.
const WEB_PUSH_USERS: usize = 2000;

/// A steady stream of single Web Push new-mail pushes (each to a user with one
/// subscription) at `rate` per second, with the key pools as configured by default
/// (ephemeral keys, and keys agreed with the subscriptions pushed to, refilled while
/// the sender is idle) and without them (every key made in line, as before the pools),
/// alternately, two phases of `seconds` each: notify to arrival.
async fn web_push_stream(config: &mailpushd::config::Config, seconds: u64, rate: u64) {
    use mailpushd::standin::PushService;
    use webpush_crypto::{UaKeys, VapidKey};
    let service = PushService::start().await.expect("push service stand-in");
    {
        let store = Store::open(&config.database).await.expect("store");
        let key = VapidKey::generate(&mut rand_core::OsRng).expect("key");
        let (id, _) = store.first_vapid_key(key).await.expect("VAPID key");
        let ua = UaKeys::generate(&mut rand_core::OsRng).expect("keys");
        for i in 0..WEB_PUSH_USERS {
            support::store_active_subscriptions(
                &store,
                &format!("wp{i}"),
                [service.endpoint(&format!("p/{i}"))],
                &ua,
                id,
            )
            .await;
        }
        store.close().await;
    }
    let mut p99 = [Vec::new(), Vec::new()];
    let mut p50 = [Vec::new(), Vec::new()];
    let total = (seconds * rate) as usize;
    for phase in 0..4 {
        let pooled = phase % 2 == 0;
        let mut config = config.clone();
        config.webpush.subject = Some("mailto:postmaster@mail.example".into());
        config.webpush.allow_local_push_service = true;
        if !pooled {
            config.webpush.key_pool_size = 0;
            config.webpush.agreement_pool_size = 0;
        }
        let daemon = Daemon::start(config).await.expect("daemon");
        // The pool fills (at its default rate) before the stream starts.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let already = service.requests().len();
        let sent_at = notify_stream(
            daemon.local_addr().expect("the API listens"),
            rate,
            total,
            |k| {
                let i = k % WEB_PUSH_USERS;
                (format!("wp{i}"), format!("{i}#{}", k / WEB_PUSH_USERS))
            },
        )
        .await;
        let mut arrived = service
            .wait_for(already + total, Duration::from_secs(30))
            .await
            .split_off(already);
        arrived.sort_by_key(|r| r.at);
        // A user's pushes are two seconds apart: its nth arrival is its nth notify's.
        let mut nth = HashMap::<String, usize>::new();
        let mut latencies: Vec<Duration> = arrived
            .iter()
            .filter_map(|r| {
                let i = r.path.strip_prefix("/p/")?.to_owned();
                let k = nth.entry(i.clone()).or_default();
                let sent = sent_at.get(&format!("{i}#{k}"))?;
                *k += 1;
                Some(r.at.saturating_duration_since(*sent))
            })
            .collect();
        latencies.sort();
        let (a, b) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!(
            "notify -> Web Push, new mail, {rate}/s for {seconds} s, {}: {} pushes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            if pooled {
                "key pools at their defaults"
            } else {
                "no key pools"
            },
            latencies.len(),
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        if pooled {
            let page = support::metrics(daemon.local_addr().expect("the API listens")).await;
            let taken = |found: &str| {
                support::metric_value(
                    &page,
                    &format!("mailpushd_webpush_agreements_taken_total{{found=\"{found}\"}}"),
                )
                .unwrap_or(0.0)
            };
            println!(
                "  of them with a key agreed ahead: {:.0}, without: {:.0}",
                taken("true"),
                taken("false")
            );
        }
        p50[usize::from(!pooled)].push(a.as_secs_f64() * 1e3);
        p99[usize::from(!pooled)].push(b.as_secs_f64() * 1e3);
        daemon.shutdown(Duration::from_secs(5)).await;
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    println!(
        "notify -> Web Push, each phase: p99 {} ms with the key pools, {} ms without; p50 {} ms with, {} ms without",
        list(&p99[0]),
        list(&p99[1]),
        list(&p50[0]),
        list(&p50[1]),
    );
}
