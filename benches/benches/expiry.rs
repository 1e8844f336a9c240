//! Expiry at scale, on each store: 100,000 registrations, half of them older than the
//! registration lifetime. How long the expiry takes, and `/register`'s latency while it
//! runs, beside the same load with no expiry running (the floor).
//!
//! ```text
//! cargo bench -p mailpush-benches --bench expiry [-- REGISTRATIONS RATE]
//! ```

use mailpush_benches::percentile;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mailpushd::config::{Database, PostgresUrl};
use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use mailpushd::store::Store;
use xaps_proto::registry::{Registration, Registry};
use xaps_proto::{AccountId, DeviceToken, Timestamp};

#[path = "../../mailpushd/tests/support/mod.rs"]
mod support;

/// Forty days ago: past the default lifetime of thirty.
fn expired() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now() - Duration::from_secs(40 * 86_400)).expect("now")
}

fn registry(range: std::ops::Range<usize>) -> Registry {
    let mut registry = Registry::new().with_max_accounts_per_user(usize::MAX);
    let now = Timestamp::from_system_time(SystemTime::now()).expect("now");
    for i in range {
        let registration = Registration {
            device_token: DeviceToken::new(&format!("{:064x}", i + 1)).expect("hex"),
            mailboxes: vec!["INBOX".to_owned()],
            // Every other one expired.
            registered_at: Some(if i % 2 == 0 { expired() } else { now }),
        };
        let _ = registry.restore(
            xaps_proto::UserName::new(&format!("user{i}")).expect("name"),
            AccountId::new(&format!("ACCOUNT-{i}")).expect("id"),
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

/// `/register` at `rate` per second (new users, `tag` apart) until `stop`; the latencies.
async fn register_load(
    address: SocketAddr,
    rate: u64,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut sender = connection(address).await;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until((start + interval.mul_f64(k as f64)).into()).await;
        let body = format!(
            r#"{{"ApsAccountId":"LOAD-{tag}-{k}","ApsDeviceToken":"{:064x}","ApsSubtopic":"com.apple.mobilemail","Username":"load-{tag}-{k}","Mailboxes":["INBOX"]}}"#,
            k + 1
        );
        let request = http::Request::post("/register")
            .header("host", "mailpushd")
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        if sender.ready().await.is_err() {
            sender = connection(address).await;
        }
        let sent = Instant::now();
        if let Ok(response) = sender.send_request(request).await {
            let ok = response.status() == 200;
            let _ = response.into_body().collect().await;
            if ok {
                latencies.push(sent.elapsed());
            }
        }
        k += 1;
    }
    latencies.sort();
    latencies
}

async fn run(name: &str, database: Database, dir: &std::path::Path, n: usize, rate: u64) {
    let standin = Standin::start().await.expect("stand-in");
    let mut config = standin_config(&standin, dir).expect("config");
    config.api.open = mailpushd::config::OpenRoutes::All;
    config.database = database;
    // Started first: its own expiry at start finds nothing, and the next is hours away.
    let daemon = Daemon::start(config.clone()).await.expect("daemon");
    {
        let store = Store::open(&config.database).await.expect("store");
        for start in (0..n).step_by(10_000) {
            store
                .import(&registry(start..(start + 10_000).min(n)))
                .await
                .expect("import");
        }
        store.close().await;
    }
    let address = daemon.local_addr().expect("the API listens");

    // The floor: the same load, nothing else running.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(register_load(address, rate, "floor", stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let floor = load.await.expect("load");

    // The expiry, with the load going on.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(register_load(address, rate, "during", stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let removed = daemon.expire_now().await.expect("expiry");
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = load.await.expect("load");
    let left = daemon.store().count().await.expect("count");
    println!(
        "{name}: {n} registrations, {removed} expired in {:.2} s ({:.0} per second), {left} left",
        took.as_secs_f64(),
        removed as f64 / took.as_secs_f64()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: /register at {rate}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms with nothing else ({} requests); p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms during the expiry ({} requests); p99 ratio {:.2}",
        ms(percentile(&floor, 0.5)),
        ms(percentile(&floor, 0.99)),
        ms(floor.last().copied().unwrap_or_default()),
        floor.len(),
        ms(percentile(&during, 0.5)),
        ms(percentile(&during, 0.99)),
        ms(during.last().copied().unwrap_or_default()),
        during.len(),
        percentile(&during, 0.99).as_secs_f64() / percentile(&floor, 0.99).as_secs_f64().max(1e-9)
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    mailpushd::logs::init(mailpushd::logs::LogFormat::Text).expect("MAILPUSHD_LOG");
    let args: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(100_000) as usize;
    let rate = args.get(1).copied().unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");
    run(
        "SQLite",
        Database::Sqlite(dir.path().join("expiry.sqlite")),
        dir.path(),
        n,
        rate,
    )
    .await;
    let Some(pg) = support::Postgres::try_start() else {
        println!("PostgreSQL: not installed here, skipped");
        return;
    };
    let url = pg.database("expiry").await;
    run(
        "PostgreSQL",
        Database::Postgres(PostgresUrl::new(&url, 10).expect("url")),
        dir.path(),
        n,
        rate,
    )
    .await;
}
