//! Private Dovecot instances for the tests: Debian 12's 2.3.19 installed on the machine,
//! and Debian 13's 2.4.1 in a chroot (`debootstrap`), each started with its own
//! configuration, directories and listeners, and the push drivers as shipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{free_port, is_root};

/// The variable naming the Debian 13 chroot that holds Dovecot 2.4 (`.ci/run` makes it).
pub const DOVECOT_2_4_ROOT: &str = "MAILPUSHD_DOVECOT24_ROOT";

/// Which Dovecot a test runs.
#[derive(Debug, Clone)]
pub enum Release {
    /// 2.3 (Debian 12's 2.3.19), installed on this machine.
    V2_3,
    /// 2.4 (Debian 13's 2.4.1), in the chroot at `root`; it shares this machine's
    /// network, so its listeners and the daemon's are on the same loopback.
    V2_4 {
        /// The chroot's top directory.
        root: PathBuf,
    },
}

impl Release {
    /// Dovecot 2.3 on this machine. The tests that call it are ignored unless asked
    /// for (`--include-ignored`), and then a missing Dovecot is a failure.
    pub fn v2_3() -> Self {
        assert!(is_root(), "Dovecot's master must start as root");
        let version = Command::new("dovecot")
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("needs dovecot (Debian: dovecot-imapd dovecot-lmtpd): {e}"));
        let version = String::from_utf8_lossy(&version.stdout).into_owned();
        assert!(
            version.starts_with("2.3."),
            "needs Dovecot 2.3, found {version}"
        );
        Release::V2_3
    }

    /// Dovecot 2.4 in the chroot named by `MAILPUSHD_DOVECOT24_ROOT`. As for
    /// [`Release::v2_3`], missing is a failure.
    pub fn v2_4() -> Self {
        assert!(
            is_root(),
            "Dovecot's master must start as root (and chroot needs it)"
        );
        let root = std::env::var_os(DOVECOT_2_4_ROOT)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "needs a Debian 13 chroot with Dovecot 2.4 named by {DOVECOT_2_4_ROOT} \
                 (debootstrap --variant=minbase \
                 --include=dovecot-imapd,dovecot-lmtpd,dovecot-core trixie DIR)"
                )
            });
        let release = Release::V2_4 { root };
        let version = release
            .command("dovecot")
            .arg("--version")
            .output()
            .unwrap();
        let version = String::from_utf8_lossy(&version.stdout).into_owned();
        assert!(
            version.starts_with("2.4."),
            "needs Dovecot 2.4 in the chroot, found {version:?}"
        );
        release
    }

    /// The shipped files' folder for this release (`dovecot/2.3`, `dovecot/2.4`).
    pub fn name(&self) -> &'static str {
        match self {
            Release::V2_3 => "2.3",
            Release::V2_4 { .. } => "2.4",
        }
    }

    /// The shipped drop-in for this release.
    pub fn drop_in(&self) -> PathBuf {
        shipped(&format!("{}/90-mailpushd.conf", self.name()))
    }

    /// A command of this release's Dovecot.
    fn command(&self, program: &str) -> Command {
        match self {
            Release::V2_3 => Command::new(program),
            Release::V2_4 { root } => {
                let mut command = Command::new("chroot");
                command.arg(root).arg(program);
                command
            }
        }
    }

    /// A new directory that this release's Dovecot can reach.
    fn directory(&self) -> tempfile::TempDir {
        let builder = || {
            let mut b = tempfile::Builder::new();
            b.prefix("mailpushd-dovecot-");
            b
        };
        match self {
            Release::V2_3 => builder().tempdir().unwrap(),
            Release::V2_4 { root } => builder().tempdir_in(root.join("tmp")).unwrap(),
        }
    }

    /// `path` (on this machine) as this release's Dovecot sees it.
    fn seen(&self, path: &Path) -> PathBuf {
        match self {
            Release::V2_3 => path.to_owned(),
            Release::V2_4 { root } => Path::new("/").join(path.strip_prefix(root).unwrap()),
        }
    }

    /// The configuration around the push drivers: users, mailboxes, listeners.
    fn base(&self, d: &str, imap: u16, proxied: u16, lmtp: u16) -> String {
        match self {
            Release::V2_3 => format!(
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
haproxy_trusted_networks = 127.0.0.0/8
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imap_proxied {{
    address = 127.0.0.1
    port = {proxied}
    haproxy = yes
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
"#
            ),
            Release::V2_4 { .. } => format!(
                r#"dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_username_format = %{{user | username | lower}}
passdb passwd-file {{
  passwd_file_path = {d}/passwd
  default_password_scheme = PLAIN
}}
userdb static {{
  fields {{
    uid = nobody
    gid = nogroup
    home = {d}/mail/%{{user | username}}
  }}
}}
mail_driver = maildir
mail_path = ~/Maildir
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
mail_attribute {{
  dict file {{
    path = %{{home}}/dovecot-attributes
  }}
}}
protocol imap {{
  imap_metadata = yes
}}
haproxy_trusted_networks = 127.0.0.0/8
service imap-login {{
  inet_listener imap {{
    listen = 127.0.0.1
    port = {imap}
  }}
  inet_listener imap_proxied {{
    listen = 127.0.0.1
    port = {proxied}
    haproxy = yes
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    listen = 127.0.0.1
    port = {lmtp}
  }}
}}
"#
            ),
        }
    }
}

/// A file shipped in `mailpushd/dovecot/`.
pub fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dovecot")
        .join(name)
}

/// The push driver a Dovecot instance reports events with.
#[derive(Debug, Clone)]
pub enum Driver {
    /// The shipped Lua script through the release's shipped drop-in, included as it is;
    /// after it, what an administrator sets: the URL of `/notify`, the credential, and
    /// any other of the script's settings.
    Lua {
        /// `mailpushd_url`.
        url: String,
        /// `mailpushd_authorization`.
        authorization: Option<String>,
        /// Other settings of the script (`mailpushd_timeout_secs`, ...).
        settings: Vec<(String, String)>,
    },
    /// The OX driver reporting to `url` (user info for Basic credentials).
    Ox {
        /// Its URL.
        url: String,
    },
    /// Configuration text of the test's own (`{dir}` is the instance's directory).
    Text(String),
}

impl Driver {
    /// The Lua driver reporting to the daemon at `daemon`.
    pub fn lua(daemon: SocketAddr, authorization: Option<&str>) -> Self {
        Driver::Lua {
            url: format!("http://{daemon}/notify"),
            authorization: authorization.map(str::to_owned),
            settings: Vec::new(),
        }
    }

    /// The configuration text for `release`, in the instance's directory `dir` (as its
    /// Dovecot sees it; the shipped files copied there).
    fn config(&self, release: &Release, host_dir: &Path, dir: &str) -> String {
        match self {
            Driver::Lua {
                url,
                authorization,
                settings,
            } => {
                // The shipped files, copied where a chrooted Dovecot reaches them too.
                std::fs::copy(shipped("mailpushd.lua"), host_dir.join("mailpushd.lua")).unwrap();
                std::fs::copy(release.drop_in(), host_dir.join("90-mailpushd.conf")).unwrap();
                if let Release::V2_4 { root } = release {
                    // 2.4 opens lua_file when it reads the configuration, so the
                    // script is where the drop-in names it, as the README says to put
                    // it (renamed into place: tests running at once write it too).
                    let place = root.join("etc/dovecot/mailpushd.lua");
                    let next = host_dir.join("mailpushd.lua.next");
                    std::fs::copy(shipped("mailpushd.lua"), &next).unwrap();
                    std::fs::rename(&next, place).unwrap();
                }
                let mut values = vec![("mailpushd_url".to_owned(), url.clone())];
                values.extend(settings.iter().cloned());
                let mut values: String = values
                    .iter()
                    .map(|(k, v)| format!("    {k} = {v}\n"))
                    .collect();
                // The credential in a file of its own that only root reads, pulled into
                // the section with !include_try, as the README says to keep it.
                if let Some(a) = authorization {
                    use std::os::unix::fs::PermissionsExt;
                    let file = host_dir.join("mailpushd-credential.conf.ext");
                    std::fs::write(&file, format!("mailpushd_authorization = {a}\n")).unwrap();
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                    values.push_str(&format!(
                        "    !include_try {dir}/mailpushd-credential.conf.ext\n"
                    ));
                }
                match release {
                    Release::V2_3 => format!(
                        "!include {dir}/90-mailpushd.conf\nplugin {{\n  push_notification_driver = lua:file={dir}/mailpushd.lua\n{values}}}\n"
                    ),
                    Release::V2_4 { .. } => format!(
                        "!include {dir}/90-mailpushd.conf\npush_notification mailpushd {{\n  lua_settings {{\n{values}  }}\n}}\n"
                    ),
                }
            }
            Driver::Ox { url } => match release {
                Release::V2_3 => format!(
                    "mail_plugins = $mail_plugins notify push_notification\nplugin {{\n  push_notification_driver = ox:url={url}\n}}\n"
                ),
                Release::V2_4 { .. } => format!(
                    "mail_plugins {{\n  notify = yes\n  push_notification = yes\n}}\npush_notification ox {{\n  url = {url}\n}}\n"
                ),
            },
            Driver::Text(text) => text.replace("{dir}", dir),
        }
    }
}

/// A private Dovecot instance, stopped when dropped; its log is printed when the test
/// fails, which says why far better than a count.
pub struct Dovecot {
    child: Option<Child>,
    release: Release,
    config: PathBuf,
    dir: tempfile::TempDir,
    /// Its IMAP listener.
    pub imap: SocketAddr,
    /// Its IMAP listener for a proxy: a PROXY v2 header first (`haproxy = yes`).
    pub imap_proxied: SocketAddr,
    /// Its LMTP listener.
    pub lmtp: SocketAddr,
}

/// An instance's files, before it starts.
struct Prepared {
    dir: tempfile::TempDir,
    config: PathBuf,
    imap: u16,
    proxied: u16,
    lmtp: u16,
}

fn prepare(release: &Release, driver: &Driver) -> Prepared {
    let dir = release.directory();
    // Dovecot's processes run as other users: they need to reach its files.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for sub in ["run", "state", "mail"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::write(dir.path().join("passwd"), "alice:{PLAIN}secret\n").unwrap();
    let (imap, proxied, lmtp) = (free_port(), free_port(), free_port());
    let seen = release.seen(dir.path()).display().to_string();
    let text =
        release.base(&seen, imap, proxied, lmtp) + &driver.config(release, dir.path(), &seen);
    std::fs::write(dir.path().join("dovecot.conf"), text).unwrap();
    // Mail is served as nobody: the folders it touches are its own.
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(dir.path().join("mail"))
        .status()
        .unwrap();
    assert!(status.success());
    Prepared {
        config: release.seen(&dir.path().join("dovecot.conf")),
        dir,
        imap,
        proxied,
        lmtp,
    }
}

impl Dovecot {
    /// What `doveconf -n` says of the configuration with `driver`: the settings in
    /// effect, or the error that refuses them.
    pub fn check(release: &Release, driver: &Driver) -> Result<String, String> {
        let prepared = prepare(release, driver);
        let out = release
            .command("doveconf")
            .arg("-c")
            .arg(&prepared.config)
            .arg("-n")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(stderr)
        }
    }

    /// Starts an instance of `release` with `driver`.
    pub async fn start(release: &Release, driver: &Driver) -> Self {
        let prepared = prepare(release, driver);
        let child = release
            .command("dovecot")
            .arg("-c")
            .arg(&prepared.config)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let dovecot = Self {
            child: Some(child),
            release: release.clone(),
            config: prepared.config,
            dir: prepared.dir,
            imap: SocketAddr::from(([127, 0, 0, 1], prepared.imap)),
            imap_proxied: SocketAddr::from(([127, 0, 0, 1], prepared.proxied)),
            lmtp: SocketAddr::from(([127, 0, 0, 1], prepared.lmtp)),
        };
        for address in [dovecot.imap, dovecot.imap_proxied, dovecot.lmtp] {
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect(address).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "Dovecot {} did not listen on {address}:\n{}",
                    dovecot.release.name(),
                    dovecot.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        dovecot
    }

    /// The Maildir of `user` (not there until written or logged into): mail written
    /// there must be `nobody`'s ([`Dovecot::own_mail`]).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// Gives the mail written into the Maildirs to the user Dovecot serves it as.
    pub fn own_mail(&self) {
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(self.dir.path().join("mail"))
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Its log once it holds `text` (Dovecot's log process writes a little after the
    /// event), or after 10 s.
    pub async fn log_with(&self, text: &str) -> String {
        for _ in 0..200 {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.log()
    }

    /// Stops it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self
            .release
            .command("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Delivers one message from Bob over LMTP, with `subject` and a Message-ID made of it.
    pub async fn deliver(&self, to: &str, subject: &str) {
        self.deliver_message(
            to,
            &format!(
                "From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nHello.\r\n"
            ),
        )
        .await;
    }

    /// Delivers `message` (header and body, CRLF line ends) over LMTP.
    pub async fn deliver_message(&self, to: &str, message: &str) {
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
        // Test messages have no line starting with a dot to stuff.
        lmtp.send(&format!("{}\r\n.", message.trim_end_matches("\r\n")))
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

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.halt();
        if std::thread::panicking() {
            eprintln!(
                "--- Dovecot {} log ---\n{}",
                self.release.name(),
                self.log()
            );
        }
    }
}

/// A line-oriented connection (LMTP, IMAP).
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
        tokio::time::timeout(Duration::from_secs(20), self.stream.read_line(&mut line))
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
