//! A real Dovecot (Debian's 2.3.19, stock: no C plugin) driving the daemon: its Lua push
//! driver with `mailpushd.lua`, then its OX driver. LMTP deliveries, STORE `\Seen`, a
//! MOVE and a delivery to Junk happen over real IMAP and LMTP connections; the APNs
//! stand-in shows one immediate push per delivery to INBOX, one push after a burst of
//! flag changes, nothing for Junk.
//!
//! Needs `dovecot` installed and root (its master starts as root). `.ci/run` installs it
//! and sets `MAILPUSHD_REQUIRE_DOVECOT=1`, which makes a missing Dovecot a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::free_port;

use mailpushd::config::BasicAuth;
use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "2918390218931890821908309283098109381029309829018310983092892829";
/// `dovecot:s3cret`, as the OX driver sends it from its URL's user info.
const AUTHORIZATION: &str = "Basic ZG92ZWNvdDpzM2NyZXQ=";
/// The quiet period after flag changes, in this test.
const DELAY: Duration = Duration::from_secs(2);

fn dovecot_available() -> bool {
    let found = Command::new("dovecot").arg("--version").output().is_ok();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
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
struct Dovecot {
    child: Child,
    config: PathBuf,
    imap: SocketAddr,
    lmtp: SocketAddr,
}

impl Dovecot {
    async fn start(dir: &Path, drivers: &str) -> Self {
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

    fn stop(mut self) {
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
    async fn deliver(&self, to: &str, subject: &str) {
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

    async fn imap(&self) -> Imap {
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

struct Line {
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

struct Imap {
    line: Line,
    tag: u32,
}

impl Imap {
    /// Runs a command; returns its tagged answer, asserting OK.
    async fn run(&mut self, command: &str) -> String {
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

/// The exact bytes of the xaps plugin's registration (Dovecot 2.3.19's HTTP client).
async fn register_as_the_plugin(daemon: SocketAddr) {
    let body = format!(
        r#"{{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"{TOKEN}","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX","Sent Messages"]}}"#
    );
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: {daemon}\r\nDate: Tue, 01 Dec 2026 20:39:06 GMT\r\nAuthorization: {AUTHORIZATION}\r\nContent-Length: {}\r\nConnection: Keep-Alive\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(daemon).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(mailpushd::demo::DEMO_TOPIC), "{answer}");
}

/// Waits until the stand-in holds `n` pushes, then that no more come for `quiet`.
async fn pushes(standin: &Standin, n: usize, quiet: Duration) -> usize {
    standin.wait_for(n, Duration::from_secs(15)).await;
    tokio::time::sleep(quiet).await;
    standin.requests().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_dovecot_drives_the_daemon() {
    if !dovecot_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _log = ShowLogOnFailure(dir.path().join("dovecot.log"));
    // Dovecot's processes run as other users: they need to reach the script and mail.
    let status = Command::new("chmod")
        .arg("755")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    config.push.delay = DELAY;
    config.push.check_interval = Duration::from_millis(200);
    config.basic_auth = Some(BasicAuth {
        user: "dovecot".into(),
        password: zeroize::Zeroizing::new("s3cret".into()),
    });
    let daemon = Daemon::start(config).await.unwrap();
    let address = daemon.local_addr();
    register_as_the_plugin(address).await;

    // The Lua push driver, with the script as shipped.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dovecot/mailpushd.lua");
    let lua = format!(
        "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua
plugin {{
  push_notification_driver = lua:file={}
  mailpushd_url = http://{address}/notify
  mailpushd_authorization = {AUTHORIZATION}
}}",
        script.display()
    );
    let dovecot = Dovecot::start(dir.path(), &lua).await;

    // Each delivery to INBOX: a push at once, well before the quiet period.
    let start = Instant::now();
    dovecot.deliver("alice@example.org", "first").await;
    assert_eq!(pushes(&standin, 1, Duration::ZERO).await, 1);
    assert!(start.elapsed() < DELAY, "immediate: {:?}", start.elapsed());
    dovecot.deliver("alice@example.org", "second").await;
    assert_eq!(pushes(&standin, 2, Duration::ZERO).await, 2);
    let request = &standin.requests()[0];
    assert_eq!(request.path, format!("/3/device/{TOKEN}"));
    assert_eq!(
        request.body,
        br#"{"aps":{"account-id":"0715A26B-CA09-4730-A419-793000CA982E"}}"#
    );

    // A burst of flag changes: nothing at once, one push after the quiet period.
    let mut imap = dovecot.imap().await;
    imap.run("SELECT INBOX").await;
    let burst = Instant::now();
    imap.run("STORE 1 +FLAGS (\\Seen)").await;
    imap.run("STORE 2 +FLAGS (\\Seen)").await;
    imap.run("STORE 1 -FLAGS (\\Seen)").await;
    tokio::time::sleep(DELAY / 2).await;
    assert_eq!(standin.requests().len(), 2, "flag changes wait");
    assert_eq!(pushes(&standin, 3, DELAY + Duration::from_secs(1)).await, 3);
    assert!(burst.elapsed() >= DELAY);

    // A MOVE to Archive: INBOX's expunge pushes after the quiet period (Archive's
    // append pushes nothing: INBOX only, as xapsd).
    imap.run("MOVE 2 Archive").await;
    assert_eq!(pushes(&standin, 4, DELAY + Duration::from_secs(1)).await, 4);

    // A delivery to Junk wakes no phone.
    dovecot.deliver("alice+Junk@example.org", "spam").await;
    tokio::time::sleep(DELAY + Duration::from_secs(1)).await;
    assert_eq!(standin.requests().len(), 4, "nothing for Junk");
    // The user for the OX driver, set as its METADATA needs it.
    imap.run("SETMETADATA \"\" (/private/vendor/vendor.dovecot/http-notify \"user=alice\")")
        .await;
    imap.run("LOGOUT").await;
    dovecot.stop();

    // The OX driver: a delivery to INBOX is a PUT, one push.
    let ox = format!(
        "mail_plugins = $mail_plugins notify push_notification
plugin {{
  push_notification_driver = ox:url=http://dovecot:s3cret@{address}/ox
}}"
    );
    let dovecot = Dovecot::start(dir.path(), &ox).await;
    dovecot.deliver("alice@example.org", "third").await;
    assert_eq!(pushes(&standin, 5, Duration::from_secs(1)).await, 5);
    dovecot.stop();
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// Prints Dovecot's log when the test fails, which says why far better than a count.
struct ShowLogOnFailure(PathBuf);

impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("--- dovecot.log ---\n{log}");
        }
    }
}
