//! What the daemon's integration tests (and the fan-out bench) share: free ports, the
//! daemon's process, forwarded commands, metrics, stored subscriptions, and private
//! Dovecot and PostgreSQL instances.
// Each test binary uses a part of this.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod dovecot;
pub use dovecot::*;
pub mod imap;

/// The Content-Type the xaps plugin and the Lua script send.
pub const JSON: [(&str, &str); 1] = [("content-type", "application/json; charset=utf-8")];

/// The API's routes open to the test's own requests, as a test of anything but access
/// itself sends them without the credential (`api.open`, said in the file's words).
pub fn open_api(config: &mut mailpushd::config::Config) {
    config.api.open = mailpushd::config::OpenRoutes::All;
}

/// The same for a daemon started from a TOML file: its `[api]` section.
pub const OPEN_API_TOML: &str = "[api]\nopen = \"every route, to any local user\"\n";

/// `name` as a user name.
pub fn user_name(name: &str) -> xaps_proto::UserName {
    xaps_proto::UserName::new(name).unwrap()
}

/// A configuration file in `dir` for the daemon's binary, listening on `address`,
/// storing in `database`, sending to `standin` (its CA and the demo's APNs key written
/// beside it) in rounds of two attempts; `extra` adds sections (such as `[push]`).
pub fn standin_toml(
    dir: &Path,
    standin: &mailpushd::standin::Standin,
    address: SocketAddr,
    database: &str,
    extra: &str,
) -> PathBuf {
    mailpushd::demo::standin_config(standin, dir).unwrap();
    let file = dir.join("mailpushd.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"{address}\"\ndatabase = \"{database}\"\n{OPEN_API_TOML}{extra}\
             [apns]\nbase_url = \"https://{apns}\"\nca_file = \"standin-ca.pem\"\ntopic = \"{topic}\"\n\
             key_file_p8 = \"AuthKey_DEMO123456.p8\"\nkey_id = \"DEMO123456\"\nteam_id = \"TEAM123456\"\n\
             max_attempts = 2\nretry_base_millis = 50\nrequest_timeout_secs = 2\n",
            apns = standin.address(),
            topic = mailpushd::demo::DEMO_TOPIC,
        ),
    )
    .unwrap();
    file
}

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

/// Waits (up to ten seconds) until the daemon's metrics show `line`, and fails the
/// test if they never do; the page then.
pub async fn wait_metric(daemon: SocketAddr, line: &str) -> String {
    for _ in 0..200 {
        let page = metrics(daemon).await;
        if page.lines().any(|l| l == line) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never seen: {line}\n{}", metrics(daemon).await);
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
    store
        .update_webpush(&user_name(user), |_| ((), changes))
        .await
        .unwrap();
}

/// Where PostgreSQL's server programs are: Debian's versioned directory (the newest),
/// else `PATH`; `None` when they are not installed.
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
    debian.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()))
    })
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
    /// Makes and starts a cluster. The tests that call it are ignored unless asked for
    /// (`--include-ignored`), and then a missing PostgreSQL is a failure.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|| {
            panic!("needs PostgreSQL's server programs (initdb, pg_ctl; Debian: postgresql)")
        })
    }

    /// Makes and starts a cluster, or `None` where PostgreSQL is not installed (for the
    /// benches, which measure what they can).
    pub fn try_start() -> Option<Self> {
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

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}
