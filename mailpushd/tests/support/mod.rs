//! What the daemon's integration tests (and the fan-out bench) share: free ports, the
//! daemon's process, forwarded commands, metrics, stored subscriptions, and private
//! Dovecot and PostgreSQL instances.
// Each test binary uses a part of this.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A port free on 127.0.0.1 a moment ago, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Starts the daemon's binary on `config`, its logs quiet, for a test that kills it.
pub fn spawn_daemon(config: &Path) -> Child {
    // Cargo names the binary to the daemon's own tests; elsewhere it is the one on PATH.
    let binary = option_env!("CARGO_BIN_EXE_mailpushd").unwrap_or("mailpushd");
    Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("MAILPUSHD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the daemon at `address` answers `/healthz`.
pub async fn wait_healthy(address: SocketAddr) {
    for _ in 0..200 {
        if let Ok((200, _)) = mailpushd::demo::http(address, "GET", "/healthz", &[], b"").await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon at {address} did not start");
}

/// Forwards one IMAP command line to the daemon at `daemon` as an IMAP server does,
/// for `user` on `connection`; the status and the lines to send back.
pub async fn forward(
    daemon: SocketAddr,
    user: &str,
    connection: &str,
    line: &str,
) -> (u16, String) {
    let headers = [
        ("x-mailpush-user", user),
        ("x-mailpush-connection", connection),
    ];
    let (status, body) =
        mailpushd::demo::http(daemon, "POST", "/imap/webpush", &headers, line.as_bytes())
            .await
            .unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// The key in the `* VAPID <key>` line a forwarded GETVAPID answers with first.
pub fn vapid_key(answer: &str) -> String {
    answer
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("* VAPID "))
        .unwrap_or_else(|| panic!("no * VAPID line first: {answer}"))
        .to_owned()
}

/// The daemon's `/metrics` page.
pub async fn metrics(daemon: SocketAddr) -> String {
    let (_, body) = mailpushd::demo::http(daemon, "GET", "/metrics", &[], b"")
        .await
        .unwrap();
    String::from_utf8(body).unwrap()
}

/// The value of the metric `name` (without labels) on the metrics `page`.
pub fn metric_value(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Waits (up to ten seconds) until the daemon's metrics show `line`; the page then, or
/// the last one read, for the caller's assertion.
pub async fn wait_metric(daemon: SocketAddr, line: &str) -> String {
    for _ in 0..200 {
        let page = metrics(daemon).await;
        if page.lines().any(|l| l == line) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    metrics(daemon).await
}

/// Stores `endpoints` in `store` as `user`'s active subscriptions (ids `sub-00000`, ...)
/// under VAPID key `key`, all with `ua`'s keys, in one transaction: the state a fan-out
/// starts from, without a verification round trip for each.
pub async fn store_active_subscriptions(
    store: &mailpushd::store::Store,
    user: &str,
    endpoints: impl IntoIterator<Item = String>,
    ua: &webpush_crypto::UaKeys,
    key: imap_webpush_proto::state::VapidKeyId,
) {
    use imap_webpush_proto::state::{Activation, Change, Record, Silence};
    let keys = ua.subscription_keys();
    let changes: Vec<Change> = endpoints
        .into_iter()
        .enumerate()
        .map(|(i, endpoint)| {
            Change::Store(Box::new(Record {
                sub_id: imap_webpush_proto::SubId::new(format!("sub-{i:05}")).unwrap(),
                endpoint: webpush_crypto::Endpoint::new_allowing_plain_http(&endpoint).unwrap(),
                keys: keys.clone(),
                activation: Activation::Active { vapid_key: key },
                silence: Silence::None,
            }))
        })
        .collect();
    store.update_webpush(user, |_| ((), changes)).await.unwrap();
}

/// Whether Dovecot can run here (installed, and root for its master); a failure when
/// `MAILPUSHD_REQUIRE_DOVECOT` is set.
pub fn dovecot_available() -> bool {
    let found = Command::new("dovecot").arg("--version").output().is_ok();
    let root = is_root();
    if found && root {
        return true;
    }
    if std::env::var_os("MAILPUSHD_REQUIRE_DOVECOT").is_some() {
        panic!("Dovecot is required (found: {found}, root: {root})");
    }
    eprintln!("skipped: needs dovecot installed and root");
    false
}

/// A private Dovecot instance in `dir`.
pub struct Dovecot {
    child: Child,
    config: PathBuf,
    /// Its IMAP listener.
    pub imap: SocketAddr,
    /// Its LMTP listener.
    pub lmtp: SocketAddr,
}

impl Dovecot {
    /// The configuration that loads the shipped Lua script (`dovecot/mailpushd.lua`)
    /// as the push driver, reporting to the daemon at `daemon`, with the
    /// `Authorization` value `authorization` when there is one.
    pub fn lua_driver(daemon: SocketAddr, authorization: Option<&str>) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dovecot/mailpushd.lua");
        let authorization = authorization
            .map(|value| format!("\n  mailpushd_authorization = {value}"))
            .unwrap_or_default();
        format!(
            "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua
plugin {{
  push_notification_driver = lua:file={}
  mailpushd_url = http://{daemon}/notify{authorization}
}}",
            script.display()
        )
    }

    /// Starts an instance in `dir` with the push `drivers` configuration.
    pub async fn start(dir: &Path, drivers: &str) -> Self {
        // Dovecot's processes run as other users: they need to reach its files.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (imap, lmtp) = (free_port(), free_port());
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("passwd"), "alice:{PLAIN}secret\n").unwrap();
        let d = dir.display();
        let config = dir.join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%n
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    auto = create
  }}
  mailbox Archive {{
    auto = create
  }}
}}
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
mail_attribute_dict = file:%h/dovecot-attributes
protocol imap {{
  imap_metadata = yes
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
{drivers}
"#
            ),
        )
        .unwrap();
        // Mail is served as nobody: the folders it touches are its own.
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir.join("mail"))
            .status()
            .unwrap();
        assert!(status.success());
        let child = Command::new("dovecot")
            .arg("-c")
            .arg(&config)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let dovecot = Self {
            child,
            config,
            imap: SocketAddr::from(([127, 0, 0, 1], imap)),
            lmtp: SocketAddr::from(([127, 0, 0, 1], lmtp)),
        };
        for address in [dovecot.imap, dovecot.lmtp] {
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect(address).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "Dovecot did not listen on {address}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        dovecot
    }

    /// Stops it.
    pub fn stop(mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Delivers one message over LMTP.
    pub async fn deliver(&self, to: &str, subject: &str) {
        let stream = TcpStream::connect(self.lmtp).await.unwrap();
        let mut lmtp = Line::new(stream);
        assert!(lmtp.read().await.starts_with("220"));
        lmtp.send("LHLO test.example").await;
        while lmtp.read().await.starts_with("250-") {}
        for (command, expect) in [
            ("MAIL FROM:<bob@example.org>".to_owned(), "250"),
            (format!("RCPT TO:<{to}>"), "250"),
            ("DATA".to_owned(), "354"),
        ] {
            lmtp.send(&command).await;
            let answer = lmtp.read().await;
            assert!(answer.starts_with(expect), "{command}: {answer}");
        }
        lmtp.send(&format!(
            "From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nHello.\r\n."
        ))
        .await;
        let answer = lmtp.read().await;
        assert!(answer.starts_with("250"), "delivery: {answer}");
        lmtp.send("QUIT").await;
    }

    /// A logged-in IMAP session for alice.
    pub async fn imap(&self) -> Imap {
        let stream = TcpStream::connect(self.imap).await.unwrap();
        let mut imap = Imap {
            line: Line::new(stream),
            tag: 0,
        };
        assert!(imap.line.read().await.starts_with("* OK"));
        imap.run("LOGIN alice secret").await;
        imap
    }
}

pub struct Line {
    stream: BufReader<TcpStream>,
}

impl Line {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream: BufReader::new(stream),
        }
    }

    async fn send(&mut self, line: &str) {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    async fn read(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut line))
            .await
            .expect("an answer")
            .unwrap();
        line
    }
}

/// An IMAP session.
pub struct Imap {
    line: Line,
    tag: u32,
}

impl Imap {
    /// Runs a command; returns its tagged answer, asserting OK.
    pub async fn run(&mut self, command: &str) -> String {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.line.send(&format!("{tag} {command}")).await;
        loop {
            let answer = self.line.read().await;
            if let Some(rest) = answer.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{command}: {answer}");
                return answer;
            }
        }
    }
}

/// Prints Dovecot's log when the test fails, which says why far better than a count.
pub struct ShowLogOnFailure(pub PathBuf);

impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("--- dovecot.log ---\n{log}");
        }
    }
}

/// Where PostgreSQL's server programs are: Debian's versioned directory (the newest),
/// else `PATH`. `None` (a failure when `MAILPUSHD_REQUIRE_PEERS` is set) when absent.
pub fn postgres_bin() -> Option<PathBuf> {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    debian.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    let found = debian.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()))
    });
    if found.is_none() {
        if std::env::var_os("MAILPUSHD_REQUIRE_PEERS").is_some() {
            panic!("PostgreSQL is required: no initdb in /usr/lib/postgresql/*/bin or PATH");
        }
        eprintln!("skipped: needs PostgreSQL's server programs (initdb, pg_ctl)");
    }
    found
}

/// A private PostgreSQL cluster in a directory of its own, on a free port, reachable
/// over TCP on 127.0.0.1 by the `mailpushd` role without a password. Stopped when
/// dropped.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    /// Its port.
    pub port: u16,
    // Kept for as long as the cluster runs.
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Makes and starts a cluster, or `None` where PostgreSQL is not installed.
    pub fn start() -> Option<Self> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // PostgreSQL refuses to run as root: the cluster is the postgres user's then.
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let id = |flag: &str| -> u32 {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "no postgres user to run the cluster as"
                );
                String::from_utf8(out.stdout)
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            };
            std::os::unix::fs::chown(&data, Some(id("-u")), Some(id("-g"))).unwrap();
        }
        let port = free_port();
        let pg = Self {
            bin,
            data,
            port,
            _dir: dir,
        };
        let d = pg.data.display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &d,
                "-A",
                "trust",
                "-U",
                "mailpushd",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let options = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1");
        let log = pg.data.join("server.log").display().to_string();
        pg.run(
            "pg_ctl",
            &[
                "-D", &d, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        );
        Some(pg)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command.args(args).output().unwrap();
        let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{} {args:?}: {}{}\n{log}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new empty database; its URL.
    pub async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        self.url(name)
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://mailpushd@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.data.display().to_string();
        let program = self.bin.join("pg_ctl");
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(["-D", &d, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}
