//! The IMAP front beside HAProxy in TCP mode (the relay floor) and a direct connection,
//! all on loopback and in one run, each path to the same light IMAP server stand-in
//! (in a process of its own, as are the front and HAProxy):
//!
//! * a bulk `FETCH` (200 MB by default) directly, through HAProxy and through the
//!   front, in plain text, then with TLS on the client's side (HAProxy and the front
//!   terminating it), in interleaved rounds: MB/s, and the front's ratio to HAProxy's;
//! * a `NOOP` round trip's p50 and p99 through each;
//! * resident memory per idle authenticated connection (`IDLE`), 10,000 of them
//!   through the front and through HAProxy, with TLS and in plain text.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench front [-- MEGABYTES CONNECTIONS ROUNDS]
//! ```
//!
//! Needs `haproxy` (Debian: haproxy). A relay holds two descriptors per connection:
//! the idle connections are 10,000, or as many as the hard limit on open files allows
//! (said in the output).

use mailpush_benches::{median, percentile, resident_kib_of};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SERVER_NAME: &str = "imap.example.test";

// ---- The IMAP server stand-in (`--backend`) ----

/// Serves one connection: an optional PROXY v2 header, a greeting, then `LOGIN`,
/// `NOOP`, `FETCH <octets>`, `IDLE` … `DONE` and `LOGOUT`.
async fn serve_backend(stream: TcpStream, proxied: bool) -> std::io::Result<()> {
    let (mut read, mut write) = stream.into_split();
    if proxied {
        let mut header = [0u8; 16];
        read.read_exact(&mut header).await?;
        let mut rest = vec![0; usize::from(u16::from_be_bytes([header[14], header[15]]))];
        read.read_exact(&mut rest).await?;
    }
    write
        .write_all(b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n")
        .await?;
    let data = vec![b'x'; 256 * 1024];
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut reader = tokio::io::BufReader::new(read);
    loop {
        line.clear();
        loop {
            if reader.read(&mut byte).await? == 0 {
                return Ok(());
            }
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let words: Vec<&str> = text.trim_end().split(' ').collect();
        match words.as_slice() {
            [tag, "LOGIN", ..] => {
                write
                    .write_all(format!("{tag} OK Logged in\r\n").as_bytes())
                    .await?
            }
            [tag, "NOOP"] => {
                write
                    .write_all(format!("{tag} OK NOOP\r\n").as_bytes())
                    .await?
            }
            [tag, "FETCH", n] => {
                let n: usize = n.parse().unwrap_or(0);
                write
                    .write_all(format!("* 1 FETCH (BODY[] {{{n}}}\r\n").as_bytes())
                    .await?;
                let mut sent = 0;
                while sent < n {
                    let k = data.len().min(n - sent);
                    write.write_all(&data[..k]).await?;
                    sent += k;
                }
                write
                    .write_all(format!(")\r\n{tag} OK FETCH\r\n").as_bytes())
                    .await?;
            }
            [tag, "IDLE"] => {
                write.write_all(b"+ idling\r\n").await?;
                let mut done = String::new();
                loop {
                    if reader.read(&mut byte).await? == 0 {
                        return Ok(());
                    }
                    done.push(char::from(byte[0]));
                    if byte[0] == b'\n' {
                        break;
                    }
                }
                write
                    .write_all(format!("{tag} OK IDLE\r\n").as_bytes())
                    .await?;
            }
            [tag, "LOGOUT"] => {
                write
                    .write_all(format!("* BYE\r\n{tag} OK LOGOUT\r\n").as_bytes())
                    .await?;
                return Ok(());
            }
            [tag, ..] => write.write_all(format!("{tag} BAD\r\n").as_bytes()).await?,
            [] => {}
        }
    }
}

fn run_backend() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxied = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!(
            "BACKEND {} {}",
            plain.local_addr().expect("address"),
            proxied.local_addr().expect("address")
        );
        std::io::stdout().flush().expect("stdout");
        for (listener, with_header) in [(plain, false), (proxied, true)] {
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_backend(stream, with_header));
                }
            });
        }
        wait_for_stdin_to_close().await;
    });
}

async fn wait_for_stdin_to_close() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await;
}

// ---- The front (`--front BACKEND DIR`) ----

fn run_front(backend: &str, dir: &Path) {
    mailpushd::logs::init(mailpushd::logs::LogFormat::Text).expect("MAILPUSHD_LOG");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut config = mailpushd::config::Config::with_database(dir.join("store.sqlite"));
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.front = Some(mailpushd::config::Front {
            implicit_tls: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            starttls: None,
            plain: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            certificates: vec![mailpushd::config::FrontCertificate {
                names: vec![SERVER_NAME.into()],
                cert_file: dir.join("imap.pem"),
                key_file: dir.join("imap.key"),
            }],
            backend: backend.to_owned(),
            backend_tls: None,
            proxy_protocol: true,
            user_map: mailpushd::config::UserMap::AsIs,
            hide_unreadable_mechanisms: false,
            max_sessions: 50_000,
            max_connects_per_address_per_minute: 100_000,
            max_unauthenticated_per_address: 50_000,
            max_line: 64 * 1024,
            login_timeout: Duration::from_secs(180),
        });
        let daemon = mailpushd::daemon::Daemon::start(config)
            .await
            .expect("front");
        let addresses = daemon.front_addresses();
        println!("FRONT {} {}", addresses[0], addresses[1]);
        std::io::stdout().flush().expect("stdout");
        wait_for_stdin_to_close().await;
        daemon.shutdown(Duration::from_secs(5)).await;
    });
}

// ---- The bench ----

/// A child process of this bench (or a program) with its open-files limit raised;
/// its first line on stdout.
fn spawn(program: &Path, args: &[&str]) -> (Child, ChildStdout, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" && exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(&mut stdout);
    reader.read_line(&mut line).expect("first line");
    (child, stdout, line)
}

fn certificates(dir: &Path) -> rustls::RootCertStore {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SERVER_NAME);
    let cert = params.signed_by(&key, &ca).expect("cert");
    std::fs::write(dir.join("imap.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("imap.key"), key.serialize_pem()).expect("write");
    std::fs::write(dir.join("haproxy.pem"), cert.pem() + &key.serialize_pem()).expect("write");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.der().to_vec()))
        .expect("root");
    roots
}

/// A front in a process of its own, relaying to `proxied`: it, and where it listens
/// with TLS and in plain text.
fn spawn_front(me: &Path, proxied: SocketAddr, dir: &Path) -> (Child, SocketAddr, SocketAddr) {
    let (child, _, addresses) = spawn(
        me,
        &["--front", &proxied.to_string(), &dir.display().to_string()],
    );
    let addresses: Vec<SocketAddr> = addresses
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().expect("address"))
        .collect();
    (child, addresses[0], addresses[1])
}

/// HAProxy in TCP mode relaying to `proxied` with a PROXY v2 header: it, and where it
/// listens in plain text and with TLS (once it does).
fn spawn_haproxy(
    dir: &Path,
    proxied: SocketAddr,
    maxconn: usize,
) -> (Child, SocketAddr, SocketAddr) {
    let (plain, tls) = (free_port(), free_port());
    let cfg = format!(
        "global\n  maxconn {maxconn}\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\
         listen plain\n  bind 127.0.0.1:{plain}\n  server s {proxied} send-proxy-v2\n\
         listen tls\n  bind 127.0.0.1:{tls} ssl crt {pem}\n  server s {proxied} send-proxy-v2-ssl\n",
        pem = dir.join("haproxy.pem").display()
    );
    std::fs::write(dir.join("haproxy.cfg"), cfg).expect("write");
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" && exec haproxy -db -f \"$0\"")
        .arg(dir.join("haproxy.cfg"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).expect("log"))
        .spawn()
        .expect("needs haproxy (Debian: haproxy)");
    let plain = SocketAddr::from(([127, 0, 0, 1], plain));
    for _ in 0..100 {
        if std::net::TcpStream::connect(plain).is_ok() {
            return (child, plain, SocketAddr::from(([127, 0, 0, 1], tls)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
    eprintln!("HAProxy did not start:\n{log}");
    std::process::exit(1);
}

/// The hard limit on open files a process here may raise its own to.
fn hard_open_files() -> usize {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -Hn")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(1024)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One way to the stand-in.
#[derive(Clone)]
struct Path_ {
    name: &'static str,
    address: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
}

async fn connect(path: &Path_) -> Box<dyn Io> {
    let tcp = TcpStream::connect(path.address).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    match &path.tls {
        None => Box::new(tcp),
        Some(connector) => Box::new(
            connector
                .connect(ServerName::try_from(SERVER_NAME).expect("name"), tcp)
                .await
                .expect("TLS"),
        ),
    }
}

/// Reads up to and including the next LF.
async fn line(stream: &mut Box<dyn Io>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte).await.expect("read") == 0 {
            return out;
        }
        out.push(byte[0]);
        if byte[0] == b'\n' {
            return out;
        }
    }
}

/// Connected, greeted and logged in.
async fn session(path: &Path_) -> Box<dyn Io> {
    let mut stream = connect(path).await;
    line(&mut stream).await;
    stream
        .write_all(b"a1 LOGIN alice secret\r\n")
        .await
        .expect("write");
    loop {
        if line(&mut stream).await.starts_with(b"a1 ") {
            return stream;
        }
    }
}

/// MB/s of one FETCH of `octets`.
async fn fetch(path: &Path_, octets: usize) -> f64 {
    let mut stream = session(path).await;
    let header = format!("* 1 FETCH (BODY[] {{{octets}}}\r\n");
    let total = header.len() + octets + ")\r\na2 OK FETCH\r\n".len();
    let mut buffer = vec![0u8; 256 * 1024];
    let start = Instant::now();
    stream
        .write_all(format!("a2 FETCH {octets}\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = 0;
    while got < total {
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(n > 0, "{}: ended after {got} of {total}", path.name);
        got += n;
    }
    let took = start.elapsed();
    octets as f64 / 1e6 / took.as_secs_f64()
}

/// Round trips of `n` NOOPs on one session: sorted.
async fn noops(path: &Path_, n: usize) -> Vec<Duration> {
    let mut stream = session(path).await;
    let mut times = Vec::with_capacity(n);
    let mut buffer = [0u8; 64];
    for i in 0..n {
        let command = format!("n{i} NOOP\r\n");
        let answer = command.len() + " OK NOOP".len() - " NOOP".len();
        let start = Instant::now();
        stream.write_all(command.as_bytes()).await.expect("write");
        let mut got = 0;
        while got < answer {
            got += stream.read(&mut buffer[got..]).await.expect("read");
        }
        times.push(start.elapsed());
    }
    times.sort();
    times
}

/// Resident memory per idle connection of `pid`, in KiB, with `n` sessions in IDLE
/// through `path`.
async fn idle_memory(path: &Path_, pid: u32, n: usize) -> f64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kib_of(&pid.to_string());
    assert!(before > 0, "the VmRSS of process {pid}");
    let path = Arc::new(path.clone());
    let mut sessions = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        if pending.len() >= 200 {
            sessions.push(pending.join_next().await.expect("task").expect("session"));
        }
        let path = path.clone();
        pending.spawn(async move {
            let mut stream = session(&path).await;
            stream.write_all(b"a2 IDLE\r\n").await.expect("write");
            let answer = line(&mut stream).await;
            assert!(
                answer.starts_with(b"+"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
            stream
        });
    }
    while let Some(done) = pending.join_next().await {
        sessions.push(done.expect("session"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_kib_of(&pid.to_string());
    drop(sessions);
    tokio::time::sleep(Duration::from_secs(2)).await;
    (after.saturating_sub(before)) as f64 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--backend") => return run_backend(),
        Some("--front") => return run_front(&args[2], Path::new(&args[3])),
        _ => {}
    }
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let megabytes = numbers.first().copied().unwrap_or(200);
    // A relay holds two descriptors per connection: as many as the hard limit on open
    // files lets the front and HAProxy hold, up to 10,000.
    let most = hard_open_files().saturating_sub(200) / 2;
    let connections = numbers.get(1).copied().unwrap_or(10_000.min(most));
    if connections > most {
        eprintln!(
            "{connections} connections need {} open files in a relay; the hard limit allows {most}",
            2 * connections + 200
        );
        std::process::exit(2);
    }
    let rounds = numbers.get(2).copied().unwrap_or(3);

    let dir = tempfile::tempdir().expect("temp dir");
    let roots = certificates(dir.path());
    let me = std::env::current_exe().expect("this bench");
    let (mut backend, _backend_out, ports) = spawn(&me, &["--backend"]);
    let ports: Vec<SocketAddr> = ports
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().expect("address"))
        .collect();
    let (direct, proxied) = (ports[0], ports[1]);
    let (mut front, front_tls, front_plain) = spawn_front(&me, proxied, dir.path());
    let (mut haproxy, haproxy_plain, haproxy_tls) = spawn_haproxy(dir.path(), proxied, most);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = Some(tokio_rustls::TlsConnector::from(Arc::new(client)));
    let tls_connector = tls.clone();
    let at = |name, address, tls: &Option<tokio_rustls::TlsConnector>| Path_ {
        name,
        address,
        tls: tls.clone(),
    };
    let paths = [
        at("direct", direct, &None),
        at("HAProxy", haproxy_plain, &None),
        at("front", front_plain, &None),
        at("HAProxy TLS", haproxy_tls, &tls),
        at("front TLS", front_tls, &tls),
    ];

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let octets = megabytes * 1_000_000;
        let mut speed: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
        let mut p50: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
        let mut p99: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
        for round in 0..rounds {
            for (i, path) in paths.iter().enumerate() {
                let mbs = fetch(path, octets).await;
                let times = noops(path, 10_000).await;
                let (a, b) = (percentile(&times, 0.5), percentile(&times, 0.99));
                println!(
                    "round {round}: {:<12} FETCH {mbs:>7.0} MB/s, NOOP p50 {:>5.1} µs p99 {:>5.1} µs",
                    path.name,
                    a.as_secs_f64() * 1e6,
                    b.as_secs_f64() * 1e6
                );
                speed[i].push(mbs);
                p50[i].push(a.as_secs_f64() * 1e6);
                p99[i].push(b.as_secs_f64() * 1e6);
            }
        }
        println!("\nmedians of {rounds} rounds, {megabytes} MB FETCH, 10,000 NOOPs:");
        let medians: Vec<(f64, f64, f64)> = (0..paths.len())
            .map(|i| {
                (
                    median(speed[i].clone()),
                    median(p50[i].clone()),
                    median(p99[i].clone()),
                )
            })
            .collect();
        for (path, (s, a, b)) in paths.iter().zip(&medians) {
            println!(
                "{:<12} {s:>7.0} MB/s   NOOP p50 {a:>5.1} µs   p99 {b:>5.1} µs",
                path.name
            );
        }
        println!(
            "front ÷ HAProxy throughput: plain {:.2}, TLS {:.2}; added NOOP p99 over HAProxy's: plain {:+.1} µs, TLS {:+.1} µs",
            medians[2].0 / medians[1].0,
            medians[4].0 / medians[3].0,
            medians[2].2 - medians[1].2,
            medians[4].2 - medians[3].2,
        );

        println!("\nresident memory per idle authenticated connection (IDLE), {connections} connections (open-files hard limit {}):", hard_open_files());
        // Each measured on a process of its own, started for it: memory a process
        // freed stays resident and would hide the next measurement's.
        let _ = front.kill();
        let _ = front.wait();
        let _ = haproxy.kill();
        let _ = haproxy.wait();
        let mut per = Vec::new();
        for (name, front_side, tls) in [
            ("front TLS", true, true),
            ("HAProxy TLS", false, true),
            ("front", true, false),
            ("HAProxy", false, false),
        ] {
            let (mut child, plain, secure) = if front_side {
                let (child, secure, plain) = spawn_front(&me, proxied, dir.path());
                (child, plain, secure)
            } else {
                let (child, plain, secure) = spawn_haproxy(dir.path(), proxied, most);
                (child, plain, secure)
            };
            let path = Path_ {
                name,
                address: if tls { secure } else { plain },
                tls: if tls { tls_connector.clone() } else { None },
            };
            let kib = idle_memory(&path, child.id(), connections).await;
            println!("{name:<12} {kib:>6.1} KiB");
            per.push(kib);
            let _ = child.kill();
            let _ = child.wait();
        }
        println!(
            "front ÷ HAProxy per idle connection: TLS {:.2}, plain {:.2}",
            per[0] / per[1],
            per[2] / per[3]
        );
    });
    drop(backend.stdin.take());
    let _ = backend.wait();
}
