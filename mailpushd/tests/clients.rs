//! Real IMAP clients through the IMAP front, to a real Dovecot 2.3: Python's `imaplib`
//! (implicit TLS and STARTTLS, APPEND with a synchronizing literal, FETCH, IDLE), and
//! `mbsync` mirroring a mailbox of 1,000 messages (some over 1 MB, 8-bit bodies)
//! through the front and directly, the two copies identical.
//!
//! Needs Dovecot, python3, mbsync (Debian `isync`) and root: ignored unless asked for
//! with `--include-ignored`, as `.ci/run` does, and then a missing peer is a failure.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;
use support::imap::{SERVER_NAME, certificates, front_config};
use support::{Dovecot, Driver, Release};

use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;

/// A daemon with the APNs stand-in and a front on both listeners, relaying to
/// `dovecot`'s proxied listener.
async fn daemon_in_front_of(dir: &Path, dovecot: &Dovecot) -> (Standin, Daemon) {
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir).unwrap();
    support::open_api(&mut config);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let (pair, _) = certificates(dir);
    config.front = Some(front_config(pair, dovecot.imap_proxied, true, true));
    let daemon = Daemon::start(config).await.unwrap();
    (standin, daemon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3, python3 and root; .ci/run installs them and runs --include-ignored"]
async fn imaplib_through_the_front() {
    let dovecot = Dovecot::start(&Release::v2_3(), &Driver::Text(String::new())).await;
    let dir = tempfile::tempdir().unwrap();
    let (_standin, daemon) = daemon_in_front_of(dir.path(), &dovecot).await;
    let [tls, starttls] = daemon.front_addresses() else {
        panic!("two listeners");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/imap_front.py");
    let args: Vec<String> = vec![
        script.display().to_string(),
        "127.0.0.1".into(),
        tls.port().to_string(),
        starttls.port().to_string(),
        dir.path().join("ca.pem").display().to_string(),
        SERVER_NAME.into(),
        "alice".into(),
        "secret".into(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .output()
            .expect("needs python3")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("all checks held"), "{said}");
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// How many messages the mirrored mailbox holds, and which of them are large.
const MESSAGES: usize = 1000;
const LARGE_EVERY: usize = 200;

/// Message `i`: 8-bit text; every [`LARGE_EVERY`]th over 1 MB.
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Nachricht {i}\r\n\
         Message-ID: <m{i}@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    let line = format!("Grüße {i}: ÄÖÜ äöü ß € {{12}} * OK ~{{3}}\r\n");
    let lines = if i.is_multiple_of(LARGE_EVERY) {
        24_000
    } else {
        20
    };
    for _ in 0..lines {
        m.extend_from_slice(line.as_bytes());
    }
    m
}

/// A message as mbsync stores it in a Maildir, less what it adds: lines end in LF,
/// and its `X-TUID` header (a random id of its own) is left out.
fn normal(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"X-TUID: ") {
            continue;
        }
        match line.strip_suffix(b"\r\n") {
            Some(text) => {
                out.extend_from_slice(text);
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// Every message file under a Maildir folder, as [`normal`] has it, sorted.
fn contents(folder: &Path) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            all.push(normal(&std::fs::read(entry.unwrap().path()).unwrap()));
        }
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Dovecot 2.3, mbsync (isync) and root; .ci/run installs them and runs --include-ignored"]
async fn mbsync_mirrors_the_same_mailbox_through_the_front_as_directly() {
    let dovecot = Dovecot::start(&Release::v2_3(), &Driver::Text(String::new())).await;
    // The mailbox, written as Maildir files.
    let maildir = dovecot.maildir("alice");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let messages: Vec<Vec<u8>> = (0..MESSAGES).map(message).collect();
    for (i, m) in messages.iter().enumerate() {
        std::fs::write(
            maildir.join("new").join(format!("1796400000.M{i}P1.test")),
            m,
        )
        .unwrap();
    }
    dovecot.own_mail();
    let large: usize = messages.iter().filter(|m| m.len() > 1 << 20).count();
    assert_eq!(large, MESSAGES / LARGE_EVERY);
    let total: usize = messages.iter().map(Vec::len).sum();
    let mut expected: Vec<Vec<u8>> = messages.iter().map(|m| normal(m)).collect();
    expected.sort();

    let dir = tempfile::tempdir().unwrap();
    let (_standin, daemon) = daemon_in_front_of(dir.path(), &dovecot).await;
    let front = daemon.front_addresses()[0];
    let d = dir.path().display();
    let config = format!(
        "IMAPAccount front\nHost 127.0.0.1\nPort {front_port}\nUser alice\nPass secret\n\
         SSLType IMAPS\nCertificateFile {d}/imap.pem\n\n\
         IMAPStore front-far\nAccount front\n\n\
         MaildirStore front-near\nPath {d}/via-front/\nInbox {d}/via-front/INBOX\n\n\
         Channel front\nFar :front-far:\nNear :front-near:\nPatterns INBOX\nCreate Near\n\
         Sync Pull\nSyncState *\n\n\
         IMAPAccount direct\nHost 127.0.0.1\nPort {direct_port}\nUser alice\nPass secret\n\
         SSLType None\n\n\
         IMAPStore direct-far\nAccount direct\n\n\
         MaildirStore direct-near\nPath {d}/direct/\nInbox {d}/direct/INBOX\n\n\
         Channel direct\nFar :direct-far:\nNear :direct-near:\nPatterns INBOX\nCreate Near\n\
         Sync Pull\nSyncState *\n",
        front_port = front.port(),
        direct_port = dovecot.imap.port(),
    );
    for near in ["via-front", "direct"] {
        std::fs::create_dir_all(dir.path().join(near)).unwrap();
    }
    let file = dir.path().join("mbsyncrc");
    std::fs::write(&file, config).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("mbsync")
            .arg("-c")
            .arg(&file)
            .arg("-a")
            .output()
            .expect("needs mbsync (Debian: isync)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let via_front = contents(&dir.path().join("via-front/INBOX"));
    let direct = contents(&dir.path().join("direct/INBOX"));
    assert_eq!(via_front.len(), MESSAGES);
    assert_eq!(direct.len(), MESSAGES);
    if let Some((a, b)) = via_front.iter().zip(&direct).find(|(a, b)| a != b) {
        let at = a
            .iter()
            .zip(b.iter())
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "the two copies differ: {} and {} octets, first at {at}: {:?} / {:?}",
            a.len(),
            b.len(),
            String::from_utf8_lossy(&a[at.saturating_sub(40)..(at + 40).min(a.len())]),
            String::from_utf8_lossy(&b[at.saturating_sub(40)..(at + 40).min(b.len())]),
        );
    }
    assert!(via_front == expected, "the copies differ from the mailbox");
    let page = support::metrics(daemon.local_addr().unwrap()).await;
    let relayed = support::metric_value(
        &page,
        "mailpushd_front_relayed_octets_total{direction=\"to_client\"}",
    )
    .unwrap_or(0.0);
    assert!(
        relayed >= total as f64,
        "{relayed} octets relayed for {total}"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}
