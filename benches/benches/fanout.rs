//! mailpushd's Web Push fan-out: one new-mail event for a user with 10,000 active
//! subscriptions spread over 50 push service origins, from the notify to the last
//! push's arrival. The stand-ins run in a child process of their own, so that this
//! process's CPU time is the daemon's alone: hyper's HTTP/1.1 server in plain text
//! (`http1`), then hyper's HTTP/2 server over TLS (`h2`), as real push services are
//! reached; one of them if named, or lean HTTP/1.1 sinks (`sink`). Beside it, in the same run, the crypto bound: one core's rate for
//! building and encrypting one push request with a key made in line, times the cores,
//! measured right before and right after each event (the machine's speed drifts), the
//! event compared with the mean of the two.
//!
//! The daemon's agreement pool (`webpush.agreement_pool_size`) holds a key agreed ahead
//! with each subscription, made after the first event (which is reported apart) and
//! full again before each one; its key pool (`webpush.key_pool_size`) holds a key for
//! every push and is full too. `keys` empties the agreement pool (size 0), so that each
//! push takes a key from the key pool and does its own ECDH; `inline` empties both, so
//! that every key is made in line as before the pools. Per delivery the bench gives the daemon's CPU
//! time (the process's CPU clock, user and system time of all its threads, as
//! `getrusage` counts them) beside its crypto time (`mailpushd_webpush_encrypt_seconds_total`,
//! the daemon's own measure), and the stand-ins' CPU time. Then the same event with the
//! store on SQLite and on PostgreSQL (a private cluster, when PostgreSQL is installed):
//! reading the subscriptions, per push, and the octets each stored subscription takes.
//! PER_ORIGIN is `webpush.max_per_origin_http1` (its default unless given), or
//! `webpush.max_per_origin` with `h2`. With `profile`, the bound is measured once
//! before the events, which follow each other, for a profiler to attach to. With
//! `pinned`, the daemon (this process, its runtime then one worker) keeps to the first
//! CPU it may use and the stand-ins to the second, so that the bound is one core's
//! rate and the fan-out is measured on a core the stand-ins do not share (PostgreSQL's
//! processes, started before, may use either). With `pinned polling`, the stand-ins
//! poll for I/O instead of sleeping (their CPU is then always busy): on loopback a
//! write that wakes its sleeping receiver pays for that wake-up, which a push service
//! on another machine would not cost the daemon.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench fanout [-- ROUNDS SUBSCRIPTIONS ORIGINS PER_ORIGIN] [http1] [h2] [sink] [keys|inline] [profile] [pinned [polling]]
//! ```

use mailpush_benches::{median, resident_kib};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailpushd::config::{Config, Database, PostgresUrl};
use mailpushd::daemon::Daemon;
use mailpushd::demo::http;
use mailpushd::standin::{PushService, Standin};
use mailpushd::store::Store;
use webpush_crypto::{
    Encryptor, Endpoint, EphemeralKey, PushRequest, Subject, TokenCache, Ttl, UaKeys, Urgency,
    VapidKey, VapidSigner,
};

#[path = "../../mailpushd/tests/support/mod.rs"]
mod support;

const USER: &str = "fan";
const PLAINTEXT: &[u8] = b"* SELECT INBOX\r\n* 7 UIDFETCH (ENVELOPE (\"Tue, 01 Dec 2026 20:39:06 +0000\" \"Hello\" ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL NIL NIL NIL NIL))\r\n";

/// `values`, each with `decimals` digits after the point, separated by commas.
fn listed(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU seconds this process used so far, user and system time of all its threads: the
/// kernel's per-process CPU clock, which counts what `getrusage` does, to the nanosecond.
fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// User and system CPU seconds of process `pid` so far, from `/proc` (in clock ticks of
/// 10 ms: fine over a run, coarse for one event).
fn user_system_seconds(pid: &str) -> (f64, f64) {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let tick = |i: usize| Some(fields.get(i)?.parse::<f64>().ok()? / 100.0);
            Some((tick(11)?, tick(12)?))
        })
        .unwrap_or((0.0, 0.0))
}

/// Keeps the calling thread, and every thread or process it starts from now on, on
/// CPU `cpu`.
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("CPU affinity");
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    let set = rustix::thread::sched_getaffinity(None).expect("CPU affinity");
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect()
}

// ---- The stand-ins' process ----

/// One stand-in's count of requests, and when the last arrived.
type Received = Box<dyn Fn() -> (usize, Option<Instant>)>;

/// The stand-ins' side: starts `origins` push services of `kind`, prints their base
/// URLs on one line (the CA certificates in `dir`, for `h2`), then answers each line
/// `N` on stdin, once the services have received N requests in all, with the count and
/// the last arrival's time (nanoseconds since the epoch). Ends when stdin closes.
///
/// `polling`: one thread that never sleeps, on a CPU of its own. On loopback the
/// sender's write runs the receiver's TCP receive, and wakes the receiver if it sleeps
/// in `epoll_wait`: a cross-CPU wake-up, costly in a virtual machine. Stand-ins that
/// poll are never asleep, so the daemon's writes do not pay to wake them, as they
/// would not to wake a push service on another machine.
fn run_standins(origins: usize, kind: &str, dir: &Path, polling: bool) {
    let runtime = if polling {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .expect("runtime");
    if polling {
        // A task that is always ready: between its turns the runtime polls for I/O
        // without waiting, so its thread never sleeps.
        runtime.spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
    runtime.block_on(async {
        let mut services = Vec::new();
        let mut bases = Vec::new();
        let mut cas = String::new();
        for _ in 0..origins {
            let (base, service): (String, Received) = match kind {
                "h2" => {
                    let s = Standin::start_counting().await.expect("stand-in");
                    cas.push_str(s.ca_pem());
                    (s.endpoint(""), Box::new(move || s.received()))
                }
                "sink" => {
                    let s = PushService::start_sink().await.expect("stand-in");
                    (s.endpoint(""), Box::new(move || s.received()))
                }
                _ => {
                    let s = PushService::start_counting().await.expect("stand-in");
                    (s.endpoint(""), Box::new(move || s.received()))
                }
            };
            bases.push(base);
            services.push(service);
        }
        if kind == "h2" {
            std::fs::write(dir.join("stand-ins.pem"), &cas).expect("CA file");
        }
        println!("ready {}", bases.join(" "));
        std::io::stdout().flush().expect("stdout");
        let (lines, mut wanted) = tokio::sync::mpsc::channel::<usize>(4);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Some(n) = line.ok().and_then(|l| l.trim().parse().ok()) else {
                    return;
                };
                if lines.blocking_send(n).is_err() {
                    return;
                }
            }
        });
        while let Some(n) = wanted.recv().await {
            loop {
                let (count, last) = services
                    .iter()
                    .map(|s| s())
                    .fold((0, None), |(n, last), (m, at)| (n + m, last.max(at)));
                if count >= n {
                    let last =
                        last.map_or(SystemTime::now(), |at| SystemTime::now() - at.elapsed());
                    let nanos = last.duration_since(UNIX_EPOCH).expect("clock").as_nanos();
                    println!("{count} {nanos}");
                    std::io::stdout().flush().expect("stdout");
                    break;
                }
                // The bench gone (its stdin closed) mid-event: no one waits for this.
                if wanted.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
}

/// The stand-ins' process, seen from the bench.
struct Standins {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    bases: Vec<String>,
    pid: String,
    /// Requests received so far.
    count: usize,
}

impl Standins {
    /// The stand-ins' process, on CPU `cpu` if given, polling rather than sleeping
    /// if `polling` (on a CPU of their own only).
    fn spawn(origins: usize, kind: &str, dir: &Path, cpu: Option<usize>, polling: bool) -> Self {
        let me = std::env::current_exe().expect("this bench");
        let mut child = Command::new(me)
            .args(["--standins", &origins.to_string(), kind])
            .arg(dir)
            .args(cpu.map(|c| c.to_string()))
            .args((cpu.is_some() && polling).then_some("polling"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the stand-ins' process");
        let to = child.stdin.take().expect("stdin");
        let mut from = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        from.read_line(&mut line)
            .expect("the stand-ins' first line");
        let bases = line
            .strip_prefix("ready ")
            .expect("the stand-ins started")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Standins {
            pid: child.id().to_string(),
            child,
            to,
            from,
            bases,
            count: 0,
        }
    }

    fn endpoint(&self, i: usize) -> String {
        format!("{}p/{i}", self.bases[i % self.bases.len()])
    }

    /// Blocks until `n` more requests arrived; when the last did.
    fn wait_for(&mut self, n: usize) -> SystemTime {
        writeln!(self.to, "{}", self.count + n).expect("to the stand-ins");
        let mut line = String::new();
        self.from.read_line(&mut line).expect("from the stand-ins");
        let mut words = line.split_whitespace();
        self.count = words.next().and_then(|w| w.parse().ok()).expect("count");
        let nanos: u64 = words.next().and_then(|w| w.parse().ok()).expect("time");
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    /// The stand-ins' CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let (user, system) = user_system_seconds(&self.pid);
        user + system
    }
}

impl Drop for Standins {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- The bench ----

/// Pushes per second one core builds and encrypts, as the sender did each before the
/// pool (`ahead` false: the VAPID header from the cache, a key pair made in line and a
/// salt, aes128gcm, the request), or as it does each with a key from the pool (`ahead`:
/// the keys made before the timing starts).
fn one_core_rate(endpoint: &Endpoint, ua: &UaKeys, ahead: bool) -> f64 {
    let key = VapidKey::generate(&mut rand_core::OsRng).expect("key");
    let subject = Subject::new("mailto:postmaster@mail.example").expect("subject");
    let mut tokens = TokenCache::new(VapidSigner::new(key, subject));
    let encryptor = Encryptor::new();
    let keys = ua.subscription_keys();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let n = 400;
        let mut made: Vec<EphemeralKey> = if ahead {
            (0..n)
                .map(|_| EphemeralKey::generate(encryptor.provider(), &mut rand_core::OsRng))
                .collect::<Result<_, _>>()
                .expect("keys")
        } else {
            Vec::new()
        };
        let start = Instant::now();
        for _ in 0..n {
            let token = tokens
                .token(endpoint.origin(), SystemTime::now())
                .expect("token");
            let push = PushRequest::to(endpoint, &keys, Ttl::from_secs(86_400))
                .urgency(Urgency::High)
                .vapid(token);
            let request = match made.pop() {
                Some(key) => push.build_prepared(&encryptor, PLAINTEXT, key, &mut rand_core::OsRng),
                None => push.build(&encryptor, PLAINTEXT, &mut rand_core::OsRng),
            };
            std::hint::black_box(request.expect("request"));
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

/// One core's rate with keys made ahead, off the runtime's workers.
async fn rate_ahead(endpoint: &Endpoint, ua: &UaKeys) -> f64 {
    let (e, u) = (endpoint.clone(), ua.clone());
    tokio::task::spawn_blocking(move || one_core_rate(&e, &u, true))
        .await
        .expect("crypto alone")
}

/// The crypto bound now: one core's rate (alone), and what all the cores build and
/// encrypt together (each thread as fast as it can, at once).
async fn bound(endpoint: &Endpoint, ua: &UaKeys) -> (f64, f64, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let (e, u) = (endpoint.clone(), ua.clone());
    let alone = tokio::task::spawn_blocking(move || one_core_rate(&e, &u, false))
        .await
        .expect("crypto bound");
    let together: Vec<_> = (0..cores)
        .map(|_| {
            let (e, u) = (endpoint.clone(), ua.clone());
            std::thread::spawn(move || one_core_rate(&e, &u, false))
        })
        .collect();
    let together = together
        .into_iter()
        .map(|t| t.join().expect("crypto thread"))
        .sum();
    (alone, together, cores)
}

/// A metric of the daemon's, 0 when absent.
async fn metric(daemon: &Daemon, name: &str) -> f64 {
    let page = support::metrics(daemon.local_addr().expect("the API listens")).await;
    support::metric_value(&page, name).unwrap_or(0.0)
}

/// The count of pushes that found a key agreed ahead.
const FOUND_AGREED: &str = "mailpushd_webpush_agreements_taken_total{found=\"true\"}";

/// Waits until the daemon's key pool holds `keys` keys and its agreement pool
/// `agreements` agreements.
async fn pools_full(daemon: &Daemon, keys: usize, agreements: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for (gauge, size) in [
        ("mailpushd_webpush_key_pool", keys),
        ("mailpushd_webpush_agreement_pool", agreements),
    ] {
        while metric(daemon, gauge).await < size as f64 {
            assert!(Instant::now() < deadline, "{gauge} did not reach {size}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One event's measures.
struct Event {
    /// Deliveries per second, from the notify to the last arrival.
    rate: f64,
    /// The daemon's CPU seconds from the notify to the last arrival.
    cpu: f64,
    /// The stand-ins' CPU seconds meanwhile.
    standins_cpu: f64,
    /// The wall-clock seconds it lasted.
    seconds: f64,
}

/// One notify, and its measures once `n` pushes arrived.
async fn one_event(daemon: &Daemon, standins: &mut Standins, n: usize) -> Event {
    let json = [("content-type", "application/json; charset=utf-8")];
    let body = format!(r#"{{"Username":"{USER}","Mailbox":"INBOX","Events": ["MessageNew"]}}"#);
    let standins_cpu = standins.cpu_seconds();
    let cpu = cpu_seconds();
    let start = SystemTime::now();
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
    // The wait blocks this thread only: the daemon's tasks run on the other workers.
    let last = tokio::task::block_in_place(|| standins.wait_for(n));
    let cpu = cpu_seconds() - cpu;
    let seconds = last
        .duration_since(start)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-9);
    Event {
        rate: n as f64 / seconds,
        cpu,
        standins_cpu: standins.cpu_seconds() - standins_cpu,
        seconds,
    }
}

/// What each run sends to.
struct Load {
    standins: Standins,
    /// The stand-ins' CA certificates, for `h2`.
    ca_file: Option<std::path::PathBuf>,
    ua: UaKeys,
    rounds: usize,
    n: usize,
    per_origin: Option<usize>,
    /// The key pool's size: the event's pushes, or 0 (`inline`).
    pool: usize,
    /// The agreement pool's size: the event's pushes, or 0 (`keys`, `inline`).
    agreements: usize,
    /// The bound measured once, not around each event (`profile`).
    profile: bool,
    /// The stand-ins on a CPU of their own (`pinned`): the busy share is the daemon's.
    pinned: bool,
}

/// Runs the fan-out on `database`, each event between two measures of the crypto
/// bound (the machine's speed drifts), the pool full before each; prints the medians.
async fn run(name: &str, database: Database, dir: &Path, load: &mut Load) {
    let (rounds, n, pool) = (load.rounds, load.n, load.pool);
    let endpoint = Endpoint::new_allowing_plain_http(&load.standins.endpoint(0)).expect("endpoint");
    {
        let store = Store::open(&database).await.expect("store");
        let key = VapidKey::generate(&mut rand_core::OsRng).expect("key");
        let (id, _) = store.first_vapid_key(key).await.expect("VAPID key");
        let endpoints = (0..n).map(|i| load.standins.endpoint(i));
        support::store_active_subscriptions(&store, USER, endpoints, &load.ua, id).await;
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
    config.webpush.ca_file = load.ca_file.clone();
    config.webpush.key_pool_size = pool;
    config.webpush.agreement_pool_size = load.agreements;
    // Fast, so that the rounds do not wait; the filler runs only between events.
    config.webpush.key_pool_fill_per_second = 100_000;
    let http2 = load.ca_file.is_some();
    match (load.per_origin, http2) {
        (Some(m), false) => config.webpush.max_per_origin_http1 = m,
        (Some(m), true) => config.webpush.max_per_origin = m,
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
    // No agreement before the first event: no subscription was pushed to yet.
    pools_full(&daemon, pool, 0).await;
    let cold = one_event(&daemon, &mut load.standins, n).await.rate;
    let agreed = load.agreements;
    let (mut rates, mut ratios, mut ratios_all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut per_core, mut all_cores) = (Vec::new(), Vec::new());
    // Per delivery, in µs: the daemon's CPU, its crypto, the stand-ins' CPU, and one
    // push built and encrypted in the bound's loop alone and with all cores at once.
    let (mut cpu, mut crypto, mut standins_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut alone, mut together_cost) = (Vec::new(), Vec::new());
    // The same with a key made ahead; the bound's cost over the daemon's CPU per
    // delivery; that CPU over the cost with a key made ahead.
    let (mut alone_ahead, mut own_cores, mut over_alone) = (Vec::new(), Vec::new(), Vec::new());
    let (mut over_crypto, mut busy) = (Vec::new(), Vec::new());
    let mut made_inline = 0.0;
    let (user_before, system_before) = user_system_seconds("self");
    let mut cores = 1;
    // With `profile`, the bound is measured once, before the events, which then follow
    // each other: a profiler attached meanwhile sees the daemon alone.
    let (once, once_ahead) = if load.profile {
        (
            Some(bound(&endpoint, &load.ua).await),
            Some(rate_ahead(&endpoint, &load.ua).await),
        )
    } else {
        (None, None)
    };
    let mut found_agreed = 0.0;
    // The daemon's CPU per delivery to refill the pools after each event (the
    // agreements' ECDH, done while idle), and with the event's own.
    let (mut refill, mut whole) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        pools_full(&daemon, pool, agreed).await;
        let ahead = match once_ahead {
            Some(rate) => rate,
            None => rate_ahead(&endpoint, &load.ua).await,
        };
        let (core_before, together_before, n_cores) = match once {
            Some(b) => b,
            None => bound(&endpoint, &load.ua).await,
        };
        let encrypting = metric(&daemon, "mailpushd_webpush_encrypt_seconds_total").await;
        let inline = metric(
            &daemon,
            "mailpushd_webpush_keys_made_total{made=\"inline\"}",
        )
        .await;
        let found = metric(&daemon, FOUND_AGREED).await;
        let event = one_event(&daemon, &mut load.standins, n).await;
        found_agreed += metric(&daemon, FOUND_AGREED).await - found;
        let encrypted =
            metric(&daemon, "mailpushd_webpush_encrypt_seconds_total").await - encrypting;
        made_inline += metric(
            &daemon,
            "mailpushd_webpush_keys_made_total{made=\"inline\"}",
        )
        .await
            - inline;
        let refilling = cpu_seconds();
        pools_full(&daemon, pool, agreed).await;
        let refilled = (cpu_seconds() - refilling) * 1e6 / n as f64;
        refill.push(refilled);
        whole.push(event.cpu * 1e6 / n as f64 + refilled);
        let (core_after, together_after, _) = match once {
            Some(b) => b,
            None => bound(&endpoint, &load.ua).await,
        };
        let core = (core_before + core_after) / 2.0;
        let together = (together_before + together_after) / 2.0;
        cores = n_cores;
        per_core.push(core);
        all_cores.push(together);
        ratios.push(event.rate / (core * n_cores as f64));
        ratios_all.push(event.rate / together);
        cpu.push(event.cpu * 1e6 / n as f64);
        crypto.push(encrypted * 1e6 / n as f64);
        over_crypto.push(event.cpu / encrypted);
        standins_cpu.push(event.standins_cpu * 1e6 / n as f64);
        let shared = if load.pinned { 0.0 } else { event.standins_cpu };
        busy.push((event.cpu + shared) / (event.seconds * n_cores as f64));
        alone.push(1e6 / core);
        alone_ahead.push(1e6 / ahead);
        own_cores.push((1e6 / core) / (event.cpu * 1e6 / n as f64));
        over_alone.push(event.cpu * ahead / n as f64);
        together_cost.push(1e6 * n_cores as f64 / together);
        rates.push(event.rate);
    }
    let (user_after, system_after) = user_system_seconds("self");
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
    let keys = match (pool, agreed) {
        (0, _) => "no key pools".to_owned(),
        (_, 0) => format!("a key pool of {pool}, full before each event, no agreement pool"),
        _ => format!(
            "a key pool of {pool} and an agreement pool of {agreed}, both full before each event"
        ),
    };
    println!(
        "{name}: fan-out of one event to {n} subscriptions over {} origins, {limit} in flight per origin, {keys}: median {rate:.0} deliveries/s over {rounds} events (first event, connecting: {cold:.0}/s; all: {})",
        load.standins.bases.len(),
        listed(&rates, 0)
    );
    println!(
        "{name}: per push during the events: {:.2} with a key agreed ahead, {:.2} with a key made in line (the others from the key pool)",
        found_agreed / (n * rounds) as f64,
        made_inline / (n * rounds) as f64
    );
    println!(
        "{name}: crypto bound {core:.0} pushes/s built and encrypted on one core with keys made in line (median), x {cores} cores = {:.0}/s; fan-out / bound, median of per-event ratios: {:.2} (all: {})",
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
        "{name}: per delivery, medians: the daemon's CPU {:.1} µs, of which its crypto {:.1} µs: CPU / crypto {:.2} (all: {}); the stand-ins' CPU {:.1} µs; the daemon's cores {:.0}% busy. Over the run {:.0}% of the daemon's CPU was system time",
        median(cpu.clone()),
        median(crypto.clone()),
        median(over_crypto.clone()),
        listed(&over_crypto, 2),
        median(standins_cpu),
        median(busy) * 100.0,
        100.0 * (system_after - system_before)
            / ((user_after - user_before) + (system_after - system_before)).max(1e-9)
    );
    println!(
        "{name}: one push built and encrypted, median: {:.1} µs with a key made in line in the bound's loop alone, {:.1} µs so with all {cores} cores building at once, {:.1} µs with a key made ahead alone; the daemon's CPU per delivery over that last: {:.2} (all: {})",
        median(alone),
        median(together_cost),
        median(alone_ahead),
        median(over_alone.clone()),
        listed(&over_alone, 2)
    );
    println!(
        "{name}: refilling the pools after each event (this process's CPU while the bench waits for them, its polls of /metrics included), median: {:.1} µs a delivery; with the event's own CPU, {:.1} µs a delivery in all (all: {})",
        median(refill),
        median(whole.clone()),
        listed(&whole, 1)
    );
    println!(
        "{name}: the bound's cost per push over the daemon's CPU per delivery (the fan-out / bound it would reach with the cores to itself), median: {:.2} (all: {})",
        median(own_cores.clone()),
        listed(&own_cores, 2)
    );
    println!(
        "{name}: reading the subscriptions for one event: median {:.1} ms, {:.2} µs per push; resident memory grew {} KiB over the run ({:.0} octets per subscription: they are read from the store for each event, not kept; the pools' keys are)",
        median(reads.clone()) * 1e3,
        median(reads) * 1e6 / n as f64,
        rss_after.saturating_sub(rss_before),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64
    );
    daemon.shutdown(Duration::from_secs(10)).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--standins") {
        let origins = args.get(2).and_then(|a| a.parse().ok()).expect("origins");
        let kind = args.get(3).expect("kind");
        let dir = args.get(4).expect("dir");
        if let Some(cpu) = args.get(5).and_then(|a| a.parse().ok()) {
            pin_to(cpu);
        }
        let polling = args.get(6).is_some_and(|a| a == "polling");
        return run_standins(origins, kind, Path::new(dir), polling);
    }
    // The daemon's own log subscriber: without one, the spans its libraries open (h2
    // opens some for every poll of a connection) cost what they never cost the daemon.
    mailpushd::logs::init(mailpushd::logs::LogFormat::Text).expect("MAILPUSHD_LOG");
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rounds = numbers.first().copied().unwrap_or(5);
    let n = numbers.get(1).copied().unwrap_or(10_000);
    let origins = numbers.get(2).copied().unwrap_or(50);
    let per_origin = numbers.get(3).copied();
    let has = |word: &str| args.iter().any(|a| a == word);
    // Each kind of stand-in asked for, or plain HTTP/1.1 and HTTP/2 over TLS.
    let mut kinds: Vec<&str> = ["http1", "h2", "sink"]
        .into_iter()
        .filter(|k| has(k))
        .collect();
    if kinds.is_empty() {
        kinds = vec!["http1", "h2"];
    }
    let pool = if has("inline") { 0 } else { n };
    let agreements = if has("inline") || has("keys") { 0 } else { n };
    // PostgreSQL first, so that its processes keep every CPU.
    let pg = support::Postgres::try_start();
    let polling = has("polling");
    assert!(
        !polling || has("pinned"),
        "`polling` needs `pinned`: stand-ins that never sleep would take the daemon's CPU"
    );
    // With `pinned`, the first CPU this process may use is the daemon's, the second
    // the stand-ins'.
    let pinned = if has("pinned") {
        let cpus = allowed_cpus();
        let (Some(&daemon), Some(&standins)) = (cpus.first(), cpus.get(1)) else {
            panic!("`pinned` needs two CPUs, this process may use {cpus:?}");
        };
        pin_to(daemon);
        Some(standins)
    } else {
        None
    };
    // With `pinned`, one worker: the runtime sizes itself to the CPUs it may use.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for kind in kinds {
        let label = match kind {
            "h2" => "HTTP/2 over TLS",
            "sink" => "HTTP/1.1 sinks",
            _ => "HTTP/1.1",
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let standins = Standins::spawn(origins, kind, dir.path(), pinned, polling);
        println!(
            "{label}: {origins} stand-ins, {}, in a process of their own{}",
            match kind {
                "h2" => "HTTP/2 over TLS (hyper's server)",
                "sink" => "plain HTTP/1.1, lean sinks",
                _ => "plain HTTP/1.1, hyper servers",
            },
            match (pinned.is_some(), polling) {
                (true, true) =>
                    " on a CPU of their own, polling rather than sleeping, the daemon on another",
                (true, false) => " on a CPU of their own, the daemon on another",
                _ => "",
            }
        );
        let mut load = Load {
            standins,
            ca_file: (kind == "h2").then(|| dir.path().join("stand-ins.pem")),
            ua: UaKeys::generate(&mut rand_core::OsRng).expect("keys"),
            rounds,
            n,
            per_origin,
            pool,
            agreements,
            profile: has("profile"),
            pinned: pinned.is_some(),
        };
        runtime.block_on(async {
            let sqlite_file = dir.path().join("fanout.sqlite");
            let name = format!("SQLite, {label}");
            run(
                &name,
                Database::Sqlite(sqlite_file.clone()),
                dir.path(),
                &mut load,
            )
            .await;
            let size = std::fs::metadata(&sqlite_file).map_or(0, |m| m.len())
                + std::fs::metadata(dir.path().join("fanout.sqlite-wal")).map_or(0, |m| m.len());
            println!(
                "{name}: {:.0} octets on disk per stored subscription",
                size as f64 / n as f64
            );

            let Some(pg) = &pg else {
                println!("PostgreSQL: not installed here, skipped");
                return;
            };
            let url = pg.database(&format!("fanout_{kind}")).await;
            let name = format!("PostgreSQL, {label}");
            run(
                &name,
                Database::Postgres(PostgresUrl::new(&url, 10).expect("url")),
                dir.path(),
                &mut load,
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
                "{name}: {:.0} octets per stored subscription (table, indexes and TOAST)",
                size as f64 / n as f64
            );
        });
    }
}
