//! The command line as an administrator uses it: import and export of an xapsd
//! database, check-config with each kind of credentials, the topic taken from a client
//! certificate (PEM and PKCS#12), a graceful stop on SIGTERM, and the demo's log
//! written to a file as plain text.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::free_port;

use mailpushd::demo::{demo_p8, http};

const TOPIC: &str = "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6";

/// Registers alice's device `token` for `account` and the `mailboxes` (a JSON list).
async fn register(address: std::net::SocketAddr, account: &str, token: &str, mailboxes: &str) {
    let register = format!(
        r#"{{"ApsAccountId":"{account}","ApsDeviceToken":"{token}","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes":{mailboxes}}}"#
    );
    let (status, _) = http(
        address,
        "POST",
        "/register",
        &support::JSON,
        register.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

fn mailpushd(config: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mailpushd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("MAILPUSHD_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A certificate as Apple issues them for mail: the topic in the subject's UID, with
/// the production push extension; and its key.
fn apns_certificate() -> (String, String, rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 1]),
        TOPIC,
    );
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Apple Push Services: mail");
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &[1, 2, 840, 113_635, 100, 6, 3, 2],
            vec![0x05, 0x00],
        ));
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert, key)
}

#[test]
fn xapsd_databases_import_and_export_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailpushd.toml");
    std::fs::write(&config, "database = \"sqlite:store.sqlite\"\n").unwrap();
    // xapsd's test data with real (hex) tokens, written as xapsd writes it.
    let database = format!(
        r#"{{
  "Users": {{
    "alice": {{
      "Accounts": {{
        "aliceaccountid1": {{
          "DeviceToken": "{}",
          "RegistrationTime": "2022-03-02T09:47:54.855456616+01:00",
          "Mailboxes": [
            "Inbox"
          ]
        }}
      }}
    }},
    "stefan": {{
      "Accounts": {{
        "stefanaccountid1": {{
          "DeviceToken": "{}",
          "Mailboxes": [
            "Inbox",
            "Ham"
          ]
        }}
      }}
    }}
  }}
}}"#,
        // Upper case as some devices send it: kept as received, as xapsd keeps it.
        "A1".repeat(32),
        "51".repeat(32)
    );
    let input = dir.path().join("database.json");
    std::fs::write(&input, &database).unwrap();
    let (ok, out) = mailpushd(&config, &["import-xapsd", input.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("imported 2 registrations"), "{out}");
    // Imported again: nothing newer, nothing written. A time where there was none,
    // or a later one, is newer.
    let (ok, out) = mailpushd(&config, &["import-xapsd", input.to_str().unwrap()]);
    assert!(ok && out.contains("imported 0 registrations"), "{out}");
    let newer = dir.path().join("newer.json");
    let dated = database
        .replace("2022-03-02T09:47:54", "2023-03-02T09:47:54")
        .replace(
            r#""DeviceToken": "5151"#,
            r#""RegistrationTime": "2022-01-01T00:00:00Z",
          "DeviceToken": "5151"#,
        );
    std::fs::write(&newer, &dated).unwrap();
    let (ok, out) = mailpushd(&config, &["import-xapsd", newer.to_str().unwrap()]);
    assert!(ok && out.contains("imported 2 registrations"), "{out}");
    let (ok, out) = mailpushd(&config, &["import-xapsd", input.to_str().unwrap()]);
    assert!(ok && out.contains("imported 0 registrations"), "{out}");
    // Back as it was, for the export below.
    for file in ["store.sqlite", "store.sqlite-wal", "store.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let (ok, out) = mailpushd(&config, &["import-xapsd", input.to_str().unwrap()]);
    assert!(ok && out.contains("imported 2 registrations"), "{out}");
    let output = dir.path().join("export.json");
    let (ok, out) = mailpushd(&config, &["export-xapsd", output.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), database);
    // A database with an entry that cannot be pushed to says so, and exits 2.
    std::fs::write(
        &input,
        database.replace(&"51".repeat(32), "stefandevicetoken1"),
    )
    .unwrap();
    let (ok, out) = mailpushd(&config, &["import-xapsd", input.to_str().unwrap()]);
    assert!(!ok && out.contains("device token is not hex"), "{out}");
}

/// The export holds every device token: it is written for its owner only, and a file or
/// a symbolic link already where it is first written is neither followed nor replaced.
#[test]
fn an_export_is_the_owners_only_and_follows_no_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailpushd.toml");
    std::fs::write(&config, "database = \"sqlite:store.sqlite\"\n").unwrap();
    let output = dir.path().join("export.json");
    // Without a store (a mistyped path, say): said, and none made.
    let (ok, out) = mailpushd(&config, &["export-xapsd", output.to_str().unwrap()]);
    assert!(!ok && out.contains("no store at"), "{out}");
    assert!(!dir.path().join("store.sqlite").exists());
    let (ok, out) = mailpushd(&config, &["status", "alice"]);
    assert!(!ok && out.contains("no store at"), "{out}");
    let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(out.contains("registrations: none yet"), "{ok} {out}");
    assert!(!dir.path().join("store.sqlite").exists());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = mailpushd::store::Store::open_sqlite(&dir.path().join("store.sqlite"))
            .await
            .unwrap();
        store.close().await;
    });
    let (ok, out) = mailpushd(&config, &["export-xapsd", output.to_str().unwrap()]);
    assert!(ok, "{out}");
    let mode = std::fs::metadata(&output).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Another user's link at the file written first, pointing at a file of theirs.
    let theirs = dir.path().join("theirs");
    std::fs::write(&theirs, "untouched").unwrap();
    std::os::unix::fs::symlink(&theirs, dir.path().join("export.json.new")).unwrap();
    let (ok, out) = mailpushd(&config, &["export-xapsd", output.to_str().unwrap()]);
    assert!(!ok && out.contains("export.json.new"), "{out}");
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "untouched");
}

/// A mistyped MAILPUSHD_LOG is said and refused, not taken as `info` without a word.
#[test]
fn a_log_filter_that_does_not_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailpushd.toml");
    std::fs::write(&config, "database = \"sqlite:store.sqlite\"\n").unwrap();
    let run = |filter: &str| {
        Command::new(env!("CARGO_BIN_EXE_mailpushd"))
            .arg("--config")
            .arg(&config)
            .args(["check-config", "--offline"])
            .env("MAILPUSHD_LOG", filter)
            .output()
            .unwrap()
    };
    let refused = run("mailpushd=debgu");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("MAILPUSHD_LOG=\"mailpushd=debgu\" is not a log filter"),
        "{said}"
    );
    assert!(run("mailpushd=debug").status.success());
}

#[test]
fn check_config_reports_what_it_found() {
    // In the system's temporary folder, which lets everyone through.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let p8 = dir.path().join("AuthKey_ABCDE12345.p8");
    mailpushd::files::write_private(&p8, demo_p8().unwrap().as_bytes()).unwrap();
    let config = dir.path().join("token.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"sqlite:store.sqlite\"\n[apns]\nkey_file_p8 = \"{}\"\nkey_id = \"ABCDE12345\"\nteam_id = \"TEAM123456\"\ntopic = \"{TOPIC}\"\n",
            p8.display()
        ),
    )
    .unwrap();
    let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(ok, "{out}");
    assert!(out.contains("provider token: signs"), "{out}");
    // The API credential is only read: a check run as another user than the daemon's
    // would leave a file the daemon cannot read.
    assert!(out.contains("API credential: none yet"), "{out}");
    assert!(!dir.path().join("api-credential").exists());
    assert!(
        out.contains(&format!("topic: {TOPIC} (59 octets)")),
        "{out}"
    );

    // A short topic is warned about; a key that is not one is an error.
    std::fs::write(
        &config,
        format!(
            "database = \"sqlite:store.sqlite\"\n[apns]\nkey_file_p8 = \"{}\"\nkey_id = \"ABCDE12345\"\nteam_id = \"TEAM123456\"\ntopic = \"com.apple.mail.short\"\n",
            p8.display()
        ),
    )
    .unwrap();
    let (_, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(out.contains("WARNING 50 octets or shorter"), "{out}");
    // A key every user of the machine may read is refused, with what to do.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode(dir.path(), 0o755);
        mode(&p8, 0o644);
        let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
        assert!(
            !ok && out.contains("mode 644") && out.contains("chmod o-rwx"),
            "{out}"
        );
        mode(&p8, 0o600);
    }
    mailpushd::files::write_private(&p8, b"not a key").unwrap();
    let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(!ok && out.contains("ERROR"), "{out}");

    // A certificate: its topic and validity.
    let (cert, key, _, _) = apns_certificate();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    mailpushd::files::write_private(&dir.path().join("key.pem"), key.as_bytes()).unwrap();
    std::fs::write(
        &config,
        "database = \"sqlite:store.sqlite\"\n[apns]\ncertificate_pem = \"cert.pem\"\ncertificate_key_pem = \"key.pem\"\n",
    )
    .unwrap();
    let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "certificate: topic {TOPIC}, production true, sandbox false, valid until"
        )),
        "{out}"
    );
    // A topic beside it: the certificate's own is accepted, another refused.
    let with_topic = |topic: &str| {
        format!(
            "database = \"sqlite:store.sqlite\"\n[apns]\ncertificate_pem = \"cert.pem\"\ncertificate_key_pem = \"key.pem\"\ntopic = \"{topic}\"\n"
        )
    };
    std::fs::write(&config, with_topic(TOPIC)).unwrap();
    let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(ok, "{out}");
    std::fs::write(&config, with_topic("com.apple.mail.XServer.another")).unwrap();
    let (ok, out) = mailpushd(&config, &["check-config", "--offline"]);
    assert!(!ok, "{out}");
    assert!(out.contains("is not the certificate's topic"), "{out}");
}

/// `check-config` contacts APNs as configured and says what failed: nothing listening,
/// a certificate the daemon does not trust, or all well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_contacts_apns_and_says_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let standin = mailpushd::standin::Standin::start().await.unwrap();
    let other = mailpushd::standin::Standin::start().await.unwrap();
    mailpushd::demo::standin_config(&standin, dir.path()).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), other.ca_pem()).unwrap();
    let check = |base_url: String, ca: &str| {
        let config = dir.path().join("apns.toml");
        std::fs::write(
            &config,
            format!(
                "database = \"sqlite:store.sqlite\"\n[apns]\nbase_url = \"{base_url}\"\nca_file = \"{ca}\"\nkey_file_p8 = \"AuthKey_DEMO123456.p8\"\nkey_id = \"DEMO123456\"\nteam_id = \"TEAM123456\"\ntopic = \"{TOPIC}\"\nrequest_timeout_secs = 5\n"
            ),
        )
        .unwrap();
        tokio::task::spawn_blocking(move || mailpushd(&config, &["check-config"]))
    };
    let (ok, out) = check(format!("https://{}", standin.address()), "standin-ca.pem")
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("takes the credentials: a push for a made-up device was answered 200"),
        "{out}"
    );
    let asked = standin.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].path, format!("/3/device/{}", "0".repeat(64)));
    // Credentials APNs refuses: said, and a failure.
    standin.script([mailpushd::standin::Reply::Status(
        403,
        r#"{"reason":"InvalidProviderToken"}"#,
    )]);
    let (ok, out) = check(format!("https://{}", standin.address()), "standin-ca.pem")
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.contains("refuses the credentials or topic: a push for a made-up device was answered 403 InvalidProviderToken"),
        "{out}"
    );
    // Busy: said, not a failure of the configuration.
    standin.script([mailpushd::standin::Reply::Status(
        503,
        r#"{"reason":"ServiceUnavailable"}"#,
    )]);
    let (ok, out) = check(format!("https://{}", standin.address()), "standin-ca.pem")
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("WARNING"), "{out}");
    let (ok, out) = check(format!("https://{}", standin.address()), "other-ca.pem")
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("certificate refused"), "{out}");
    assert!(out.contains("look at the configuration"), "{out}");
    let (ok, out) = check(
        format!("https://127.0.0.1:{}", free_port()),
        "standin-ca.pem",
    )
    .await
    .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("APNs: ERROR cannot connect"), "{out}");
}

#[test]
fn the_topic_comes_from_the_certificate_pem_or_pkcs12() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem, cert, key) = apns_certificate();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    mailpushd::files::write_private(&dir.path().join("key.pem"), key_pem.as_bytes()).unwrap();
    let chain = p12_keystore::Certificate::from_der(cert.der()).unwrap();
    let entry = p12_keystore::PrivateKeyChain::new(key.serialize_der(), [1u8; 20], vec![chain]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("mail", p12_keystore::KeyStoreEntry::PrivateKeyChain(entry));
    mailpushd::files::write_private(
        &dir.path().join("PushEmail.p12"),
        &store.writer("").write().unwrap(),
    )
    .unwrap();
    for credentials in [
        "certificate_pem = \"cert.pem\"\ncertificate_key_pem = \"key.pem\"",
        "certificate_p12 = \"PushEmail.p12\"",
    ] {
        let mut config =
            mailpushd::config::Config::from_toml(&format!("[apns]\n{credentials}\n"), dir.path())
                .unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        support::open_api(&mut config);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let daemon = mailpushd::daemon::Daemon::start(config).await.unwrap();
            assert_eq!(daemon.apns().topic().as_str(), TOPIC, "{credentials}");
            let register = br#"{"ApsAccountId":"A1","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX"]}"#;
            let (status, body) = http(daemon.local_addr().unwrap(), "POST", "/register", &[], register)
                .await
                .unwrap();
            assert_eq!((status, body.as_slice()), (200, TOPIC.as_bytes()));
            daemon.shutdown(Duration::from_secs(1)).await;
        });
    }
    // A DER certificate reads, but TLS needs PEM: refused at start, saying so.
    std::fs::write(dir.path().join("cert.der"), cert.der()).unwrap();
    let mut config = mailpushd::config::Config::from_toml(
        "[apns]\ncertificate_pem = \"cert.der\"\ncertificate_key_pem = \"key.pem\"\n",
        dir.path(),
    )
    .unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime
        .block_on(mailpushd::daemon::Daemon::start(config))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("no PEM certificate in it"), "{refused}");
}

#[test]
fn sigterm_stops_it_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("mailpushd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{address}\"\ndatabase = \"sqlite:store.sqlite\"\n{}[apns]\ntopic = \"{TOPIC}\"\n",
            support::OPEN_API_TOML
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailpushd"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let address = address.parse().unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(address, "GET", "/healthz", &[], b"").await.is_err() {
            assert!(Instant::now() < deadline, "did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let register = br#"{"ApsAccountId":"A1","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX"]}"#;
        assert_eq!(http(address, "POST", "/register", &[], register).await.unwrap().0, 200);
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(exit.success(), "{exit:?}: {log}");
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    // The store was closed cleanly and holds the registration.
    let (ok, out) = mailpushd(&config, &["export-xapsd"]);
    assert!(ok && out.contains("\"A1\""), "{out}");
}

#[test]
fn the_demos_log_in_a_file_is_plain_text() {
    let output = Command::new(env!("CARGO_BIN_EXE_mailpushd"))
        .arg("demo")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("2 pushes reached the stand-in"), "{text}");
    assert!(text.contains(" INFO "), "{text}");
    assert!(!text.contains('\u{1b}'), "terminal escapes in: {text:?}");
}

/// `mailpushd status USER`: each registration, and its last pushes with APNs's status
/// and apns-id, from the store a running daemon writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_registrations_and_their_last_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let standin = mailpushd::standin::Standin::start().await.unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = support::standin_toml(dir.path(), &standin, address, "sqlite:store.sqlite", "");
    let mut daemon = support::spawn_daemon(&config);
    support::wait_healthy(address).await;
    let account = "55FAD99D-748E-44DA-8A7F-91D3478CAABD";
    let token = "73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF";
    register(address, account, token, r#"["INBOX","Notes"]"#).await;
    standin.script([mailpushd::standin::Reply::Status(
        400,
        r#"{"reason":"BadDeviceToken"}"#,
    )]);
    let notify = br#"{"Username":"alice","Mailbox":"INBOX","Events":["MessageNew"]}"#;
    // One after the other: a second new mail while the first push is still owed would
    // take its place, and only one would be sent.
    for outcome in ["token_rejected", "delivered"] {
        http(address, "POST", "/notify", &support::JSON, notify)
            .await
            .unwrap();
        support::wait_metric(
            address,
            &format!("mailpushd_pushes_total{{service=\"apns\",outcome=\"{outcome}\"}} 1"),
        )
        .await;
    }
    // Logged in the transaction that settles the push: nothing owed, both logged.
    support::wait_metric(address, "mailpushd_owed_pushes 0").await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let (ok, out) = tokio::task::spawn_blocking(move || mailpushd(&config, &["status", "alice"]))
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("alice: 1 registrations"), "{out}");
    assert!(
        out.contains(&format!("account {account} on device {token}")),
        "{out}"
    );
    assert!(out.contains("mailboxes: INBOX, Notes"), "{out}");
    assert!(out.contains("first registered 20"), "{out}");
    assert!(
        out.contains("new mail: token_rejected, APNs 400, apns-id EC1BF194-B3B2-424A-89A9-5A918A6E7A9B, BadDeviceToken"),
        "{out}"
    );
    assert!(
        out.contains("new mail: delivered, APNs 200, apns-id EC1BF194-B3B2-424A-89A9-5A918A6E7A9B"),
        "{out}"
    );
    let config = dir.path().join("mailpushd.toml");
    let (ok, out) = tokio::task::spawn_blocking(move || mailpushd(&config, &["status", "bob"]))
        .await
        .unwrap();
    assert!(!ok && out.contains("bob: no registered device"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_test_says_whether_the_push_arrived_by_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let standin = mailpushd::standin::Standin::start().await.unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = support::standin_toml(dir.path(), &standin, address, "sqlite:store.sqlite", "");
    let mut daemon = support::spawn_daemon(&config);
    support::wait_healthy(address).await;
    register(
        address,
        "55FAD99D-748E-44DA-8A7F-91D3478CAABD",
        "73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF",
        r#"["INBOX"]"#,
    )
    .await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let send_test = |config: PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            let output = Command::new(env!("CARGO_BIN_EXE_mailpushd"))
                .arg("--config")
                .arg(&config)
                .args(["send-test", "alice"])
                .env("MAILPUSHD_LOG", "warn")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status.code(), text)
        })
        .await
        .unwrap()
    };
    // Delivered: 0.
    let (code, out) = send_test(config.clone()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("delivered"), "{out}");
    // APNs failing for both attempts: given up, said as such, and 1.
    standin.script([
        mailpushd::standin::Reply::Status(503, r#"{"reason":"ServiceUnavailable"}"#),
        mailpushd::standin::Reply::Status(503, r#"{"reason":"ServiceUnavailable"}"#),
    ]);
    let (code, out) = send_test(config.clone()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("given up"), "giving up not said: {out}");
    assert!(out.contains("1 of 1 pushes not delivered"), "{out}");
}

/// A server that takes TLS 1.3 with ALPN h2 and asks for a client certificate issued by
/// a CA of its own, which the daemon's is not: it refuses that certificate after the
/// handshake has ended on the daemon's side, as TLS 1.3 has it.
async fn refusing_server(dir: &Path) -> std::net::SocketAddr {
    let issuer = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (rcgen::Issuer::new(params, key), cert)
    };
    let (server_ca, server_ca_cert) = issuer("server CA");
    let (_, client_ca_cert) = issuer("client CA");
    std::fs::write(dir.join("server-ca.pem"), server_ca_cert.pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &server_ca).unwrap();
    let mut clients = rustls::RootCertStore::empty();
    clients.add(client_ca_cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        clients.into(),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Refused here, with an alert to the client; the connection is then kept
            // (what the client sends read and dropped) until the client closes it, so
            // that no reset overtakes the alert.
            if let Err((_, mut tcp)) = acceptor.accept(tcp).into_fallible().await {
                tokio::spawn(async move {
                    let mut sink = tokio::io::sink();
                    let drained = tokio::io::copy(&mut tcp, &mut sink);
                    let _ = tokio::time::timeout(Duration::from_secs(10), drained).await;
                });
            }
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_finds_a_client_certificate_refused_after_a_tls_1_3_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem, _, _) = apns_certificate();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    mailpushd::files::write_private(&dir.path().join("key.pem"), key_pem.as_bytes()).unwrap();
    let address = refusing_server(dir.path()).await;
    let config = dir.path().join("apns.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"sqlite:store.sqlite\"\n[apns]\nbase_url = \"https://{address}\"\nca_file = \"server-ca.pem\"\ncertificate_pem = \"cert.pem\"\ncertificate_key_pem = \"key.pem\"\nrequest_timeout_secs = 5\n"
        ),
    )
    .unwrap();
    let (ok, out) = tokio::task::spawn_blocking(move || mailpushd(&config, &["check-config"]))
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("certificate refused"), "{out}");
    assert!(out.contains("look at the configuration"), "{out}");
}
