//! mailpushd's Web Push fan-out: one new-mail event for a user with 10,000 active
//! subscriptions spread over 50 push service origins (stand-ins on this machine, plain
//! HTTP/1.1), from the notify to the last push's arrival. Beside it, in the same run,
//! the crypto bound: one core's rate for building and encrypting one push request,
//! times the cores. Then the same event with the store on SQLite and on PostgreSQL (a
//! private cluster, when PostgreSQL is installed): reading the subscriptions, per push,
//! and the octets each stored subscription takes. PER_ORIGIN is
//! `webpush.max_per_origin_http1` (its default unless given), the stand-ins speaking
//! HTTP/1.1, or `webpush.max_per_origin` with `h2`. The bound is measured right before
//! and right after each event, and the event compared with the mean of the two, since
//! the machine's speed drifts. A push's build and encryption is timed in the event too
//! (the daemon's own measure), beside the bound's loop on one core alone and on all
//! cores at once. With `h2`, the stand-ins are HTTP/2 servers over TLS, as
//! real push services are reached. With `sink`, the stand-ins frame requests with the least
//! work possible instead of running hyper's server, so more of the cores go to the sender.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench fanout [-- ROUNDS SUBSCRIPTIONS ORIGINS PER_ORIGIN] [sink | h2]
//! ```

use mailpush_benches::resident_kib;
use std::time::{Duration, Instant, SystemTime};

use imap_webpush_proto::state::VapidKeyId;
use mailpushd::config::{Config, Database, PostgresUrl};
use mailpushd::daemon::Daemon;
use mailpushd::demo::http;
use mailpushd::standin::{PushService, Standin};
use mailpushd::store::Store;
use webpush_crypto::{
    Encryptor, Endpoint, PushRequest, Subject, TokenCache, Ttl, UaKeys, Urgency, VapidKey,
    VapidSigner,
};

#[path = "../../mailpushd/tests/support/mod.rs"]
mod support;

const USER: &str = "fan";
const PLAINTEXT: &[u8] = b"* SELECT INBOX\r\n* 7 UIDFETCH (ENVELOPE (\"Tue, 01 Dec 2026 20:39:06 +0000\" \"Hello\" ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL NIL NIL NIL NIL))\r\n";

/// A push service stand-in: plain HTTP/1.1, or HTTP/2 over TLS.
enum Service {
    Http1(PushService),
    Http2(Standin),
}

impl Service {
    fn endpoint(&self, path: &str) -> String {
        match self {
            Service::Http1(s) => s.endpoint(path),
            Service::Http2(s) => s.endpoint(path),
        }
    }

    fn received(&self) -> (usize, Option<Instant>) {
        match self {
            Service::Http1(s) => s.received(),
            Service::Http2(s) => s.received(),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `values`, each with `decimals` digits after the point, separated by commas.
fn listed(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU seconds this process used so far (user and system, all threads).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// Pushes per second one core builds and encrypts, as the sender does each: the VAPID
/// header from the cache, a fresh key pair and salt, aes128gcm, the request.
fn one_core_rate(endpoint: &Endpoint, ua: &UaKeys) -> f64 {
    let key = VapidKey::generate(&mut rand_core::OsRng).expect("key");
    let subject = Subject::new("mailto:postmaster@mail.example").expect("subject");
    let mut tokens = TokenCache::new(VapidSigner::new(key, subject));
    let encryptor = Encryptor::new();
    let keys = ua.subscription_keys();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let n = 400;
        let start = Instant::now();
        for _ in 0..n {
            let token = tokens
                .token(endpoint.origin(), SystemTime::now())
                .expect("token");
            let request = PushRequest::to(endpoint, &keys, Ttl::from_secs(86_400))
                .urgency(Urgency::High)
                .vapid(token)
                .build(&encryptor, PLAINTEXT, &mut rand_core::OsRng)
                .expect("request");
            std::hint::black_box(request);
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

/// The daemon's `mailpushd_webpush_encrypt_seconds_total`.
async fn encrypt_seconds(daemon: &Daemon) -> f64 {
    let page = support::metrics(daemon.local_addr().expect("the API listens")).await;
    support::metric_value(&page, "mailpushd_webpush_encrypt_seconds_total").unwrap_or(0.0)
}

/// `n` active subscriptions of `USER`, round robin over `services`, in one transaction.
async fn subscribe(store: &Store, services: &[Service], ua: &UaKeys, key: VapidKeyId, n: usize) {
    let endpoints = (0..n).map(|i| services[i % services.len()].endpoint(&format!("p/{i}")));
    support::store_active_subscriptions(store, USER, endpoints, ua, key).await;
}

fn received(services: &[Service]) -> (usize, Option<Instant>) {
    services
        .iter()
        .map(Service::received)
        .fold((0, None), |(n, last), (m, at)| (n + m, last.max(at)))
}

/// One notify; the deliveries per second from it to the last arrival, and the share of
/// the cores the process used meanwhile.
async fn one_event(daemon: &Daemon, services: &[Service], n: usize) -> (f64, f64) {
    let (before, _) = received(services);
    let cpu = cpu_seconds();
    let json = [("content-type", "application/json; charset=utf-8")];
    let body = format!(r#"{{"Username":"{USER}","Mailbox":"INBOX","Events": ["MessageNew"]}}"#);
    let start = Instant::now();
    let (status, _) = http(
        daemon.local_addr().expect("the API listens"),
        "POST",
        "/notify",
        &json,
        body.as_bytes(),
    )
    .await
    .expect("notify");
    assert!(status < 500, "notify answered {status}");
    let deadline = start + Duration::from_secs(120);
    loop {
        let (count, last) = received(services);
        if count >= before + n {
            let elapsed = last
                .unwrap_or(start)
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9);
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
            let busy = (cpu_seconds() - cpu) / (start.elapsed().as_secs_f64() * cores);
            return (n as f64 / elapsed, busy);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} pushes arrived",
            count - before
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What each run sends to.
struct Load {
    services: Vec<Service>,
    /// The stand-ins' CA certificates, for `h2`.
    ca_file: Option<std::path::PathBuf>,
    ua: UaKeys,
    rounds: usize,
    n: usize,
    per_origin: Option<usize>,
}

/// The crypto bound now: one core's rate (alone), and what all the cores build and
/// encrypt together (each thread as fast as it can, at once).
async fn bound(endpoint: &Endpoint, ua: &UaKeys) -> (f64, f64, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let (e, u) = (endpoint.clone(), ua.clone());
    let alone = tokio::task::spawn_blocking(move || one_core_rate(&e, &u))
        .await
        .expect("crypto bound");
    let together: Vec<_> = (0..cores)
        .map(|_| {
            let (e, u) = (endpoint.clone(), ua.clone());
            std::thread::spawn(move || one_core_rate(&e, &u))
        })
        .collect();
    let together = together
        .into_iter()
        .map(|t| t.join().expect("crypto thread"))
        .sum();
    (alone, together, cores)
}

/// Runs the fan-out on `database`, each event right after a measure of the crypto
/// bound (the machine's speed drifts); prints the medians.
async fn run(name: &str, database: Database, dir: &std::path::Path, load: &Load) {
    let Load {
        services,
        ca_file,
        ua,
        rounds,
        n,
        per_origin,
    } = load;
    let (services, ua, rounds, n) = (services.as_slice(), ua, *rounds, *n);
    let endpoint =
        Endpoint::new_allowing_plain_http(&services[0].endpoint("p/0")).expect("endpoint");
    {
        let store = Store::open(&database).await.expect("store");
        let key = VapidKey::generate(&mut rand_core::OsRng).expect("key");
        let (id, _) = store.first_vapid_key(key).await.expect("VAPID key");
        subscribe(&store, services, ua, id, n).await;
        store.close().await;
    }
    let mut config = Config::with_database(dir.join("unused.sqlite"));
    config.database = database;
    // The bench's own requests, as a local API opened in words lets them in.
    config.api.open = mailpushd::config::OpenRoutes::All;
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.apns.topic = Some(mailpushd::demo::DEMO_TOPIC.into());
    config.webpush.subject = Some("mailto:postmaster@mail.example".into());
    config.webpush.allow_local_push_service = true;
    config.webpush.max_subscriptions = n;
    config.webpush.request_timeout = Duration::from_secs(30);
    config.webpush.ca_file = ca_file.clone();
    let http2 = ca_file.is_some();
    match (per_origin, http2) {
        (Some(m), false) => config.webpush.max_per_origin_http1 = *m,
        (Some(m), true) => config.webpush.max_per_origin = *m,
        (None, _) => {}
    }
    let limit = if http2 {
        config.webpush.max_per_origin
    } else {
        config.webpush.max_per_origin_http1
    };
    let rss_before = resident_kib();
    let daemon = Daemon::start(config).await.expect("daemon");
    // The first event opens the connections; it is reported apart.
    let (cold, _) = one_event(&daemon, services, n).await;
    let mut rates = Vec::new();
    let mut busy = Vec::new();
    let mut ratios = Vec::new();
    let mut per_core = Vec::new();
    let mut all_cores = Vec::new();
    let mut ratios_all = Vec::new();
    let mut shares = Vec::new();
    // Microseconds per push built and encrypted: in the event, alone, all cores at once.
    let mut costs = (Vec::new(), Vec::new(), Vec::new());
    let mut cores = 1;
    for _ in 0..rounds {
        let (core_before, together_before, n_cores) = bound(&endpoint, ua).await;
        let encrypting = encrypt_seconds(&daemon).await;
        let (rate, cpu) = one_event(&daemon, services, n).await;
        let encrypted = encrypt_seconds(&daemon).await - encrypting;
        let (core_after, together_after, _) = bound(&endpoint, ua).await;
        let core = (core_before + core_after) / 2.0;
        let together = (together_before + together_after) / 2.0;
        cores = n_cores;
        per_core.push(core);
        all_cores.push(together);
        ratios.push(rate / (core * n_cores as f64));
        ratios_all.push(rate / together);
        // The event lasted n / rate seconds, on n_cores cores.
        shares.push(encrypted * rate / (n as f64 * n_cores as f64));
        costs.0.push(encrypted * 1e6 / n as f64);
        costs.1.push(1e6 / core);
        costs.2.push(1e6 * n_cores as f64 / together);
        rates.push(rate);
        busy.push(cpu);
    }
    let rss_after = resident_kib();
    let mut reads = Vec::new();
    for _ in 0..rounds.max(3) {
        let start = Instant::now();
        let account = daemon
            .store()
            .webpush_account(&support::user_name(USER))
            .await
            .expect("read");
        assert_eq!(account.records.len(), n);
        reads.push(start.elapsed().as_secs_f64());
    }
    let rate = median(rates.clone());
    let core = median(per_core);
    println!(
        "{name}: fan-out of one event to {n} subscriptions over {} origins, {limit} in flight per origin: median {rate:.0} deliveries/s over {rounds} events, the cores {:.0}% busy (first event, connecting: {cold:.0}/s; all: {})",
        services.len(),
        median(busy) * 100.0,
        listed(&rates, 0)
    );
    println!(
        "{name}: crypto bound {core:.0} pushes/s built and encrypted on one core (median), x {cores} cores = {:.0}/s; fan-out / bound, median of per-event ratios: {:.2} (all: {})",
        core * cores as f64,
        median(ratios.clone()),
        listed(&ratios, 2)
    );
    println!(
        "{name}: all {cores} cores at once build and encrypt {:.0} pushes/s ({:.2} x one core's rate); fan-out / that, median: {:.2}",
        median(all_cores.clone()),
        median(all_cores) / core,
        median(ratios_all)
    );
    println!(
        "{name}: share of the cores' time the sender spent encrypting and signing during each event (its own measure, free of the drift between the event and the bound), median: {:.2} (all: {})",
        median(shares.clone()),
        listed(&shares, 2)
    );
    println!(
        "{name}: one push built and encrypted, median: {:.0} µs in the event, {:.0} µs in the bound's loop alone, {:.0} µs with all {cores} cores building at once (in the event, all: {})",
        median(costs.0.clone()),
        median(costs.1),
        median(costs.2),
        listed(&costs.0, 0)
    );
    println!(
        "{name}: reading the subscriptions for one event: median {:.1} ms, {:.2} µs per push; resident memory grew {} KiB over the run ({:.0} octets per subscription: they are read from the store for each event, not kept)",
        median(reads.clone()) * 1e3,
        median(reads) * 1e6 / n as f64,
        rss_after.saturating_sub(rss_before),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64
    );
    daemon.shutdown(Duration::from_secs(10)).await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let rounds = args.first().copied().unwrap_or(5);
    let n = args.get(1).copied().unwrap_or(10_000);
    let origins = args.get(2).copied().unwrap_or(50);
    let per_origin = args.get(3).copied();
    let lean = std::env::args().any(|a| a == "sink");
    let h2 = std::env::args().any(|a| a == "h2");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut services = Vec::new();
    let mut cas = String::new();
    for _ in 0..origins {
        let service = if h2 {
            let standin = Standin::start_counting().await.expect("stand-in");
            cas.push_str(standin.ca_pem());
            Service::Http2(standin)
        } else if lean {
            Service::Http1(PushService::start_sink().await.expect("stand-in"))
        } else {
            Service::Http1(PushService::start_counting().await.expect("stand-in"))
        };
        services.push(service);
    }
    let ca_file = h2.then(|| {
        let path = dir.path().join("stand-ins.pem");
        std::fs::write(&path, &cas).expect("CA file");
        path
    });
    println!(
        "stand-ins: {origins}, {}",
        if h2 {
            "HTTP/2 over TLS (hyper's server)"
        } else if lean {
            "plain HTTP/1.1, lean sinks"
        } else {
            "plain HTTP/1.1, hyper servers"
        }
    );
    let load = Load {
        services,
        ca_file,
        ua: UaKeys::generate(&mut rand_core::OsRng).expect("keys"),
        rounds,
        n,
        per_origin,
    };

    let sqlite_file = dir.path().join("fanout.sqlite");
    run(
        "SQLite",
        Database::Sqlite(sqlite_file.clone()),
        dir.path(),
        &load,
    )
    .await;
    let size = std::fs::metadata(&sqlite_file).map_or(0, |m| m.len())
        + std::fs::metadata(dir.path().join("fanout.sqlite-wal")).map_or(0, |m| m.len());
    println!(
        "SQLite: {:.0} octets on disk per stored subscription",
        size as f64 / n as f64
    );

    let Some(pg) = support::Postgres::try_start() else {
        println!("PostgreSQL: not installed here, skipped");
        return;
    };
    let url = pg.database("fanout").await;
    run(
        "PostgreSQL",
        Database::Postgres(PostgresUrl::new(&url, 10).expect("url")),
        dir.path(),
        &load,
    )
    .await;
    let size: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query_scalar("SELECT pg_total_relation_size('webpush_subscriptions')")
            .fetch_one(&mut conn)
            .await
            .expect("size")
    };
    println!(
        "PostgreSQL: {:.0} octets per stored subscription (table, indexes and TOAST)",
        size as f64 / n as f64
    );
}
