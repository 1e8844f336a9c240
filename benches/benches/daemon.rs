//! mailpushd under load, against its APNs stand-in on the same machine: 100,000
//! registrations in the store; notifies for new mail at a steady rate over keep-alive
//! connections (latency from the notify to the push's arrival, p50 and p99); pushes as
//! fast as one HTTP/2 connection takes them (requests per second); and the resident
//! memory the registrations cost.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench daemon [-- SECONDS RATE REGISTRATIONS]
//! ```

use mailpush_benches::resident_kib;
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

fn account(i: usize) -> String {
    format!("{:08X}-0000-4000-8000-{i:012X}", i)
}

fn registry(range: std::ops::Range<usize>) -> Registry {
    let mut registry = Registry::new().with_max_accounts_per_user(usize::MAX);
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
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
    let daemon = Daemon::start(config).await.expect("daemon");
    let address = daemon.local_addr().expect("the API listens");
    let after = resident_kib();
    println!(
        "{n} registrations in the store; resident memory {before} KiB before the import, {after} KiB with the daemon started ({:.0} octets per registration: the daemon keeps them in the store, not in memory)",
        (after.saturating_sub(before) * 1024) as f64 / n as f64
    );

    // Notifies at `rate` per second, spread over 16 keep-alive connections.
    let mut senders = Vec::new();
    for _ in 0..16 {
        senders.push(connection(address).await);
    }
    let total = (seconds * rate) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent_at = HashMap::<String, Instant>::with_capacity(total);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        let due = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        let i = (k * 7919) % n;
        let body =
            format!(r#"{{"Username":"user{i}","Mailbox":"INBOX","Events": ["MessageNew"]}}"#);
        let request = http::Request::post("/notify")
            .header("host", "mailpushd")
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let sender = &mut senders[k % 16];
        if sender.ready().await.is_err() {
            *sender = connection(address).await;
        }
        sent_at.insert(account(i), Instant::now());
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
}
