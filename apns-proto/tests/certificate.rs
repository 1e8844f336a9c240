//! Certificate topics, from certificates made here with the `openssl` command.
#![cfg(feature = "certificate")]
use std::path::PathBuf;
use std::process::Command;

use apns_proto::{CertificateError, CertificateInfo};

const TOPIC: &str = "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6";
const PRODUCTION: &str = "1.2.840.113635.100.6.3.2";
const SANDBOX: &str = "1.2.840.113635.100.6.3.1";

/// A self-signed certificate with `subject` and empty extensions `oids`, in PEM.
fn make(name: &str, subject: &str, oids: &[&str], der: bool) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("apns-proto-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out: PathBuf = dir.join(name);
    let mut command = Command::new("openssl");
    command.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
    ]);
    command
        .args(["-nodes", "-keyout"])
        .arg(dir.join(format!("{name}.key")));
    command
        .args(["-days", "1", "-subj", subject, "-out"])
        .arg(&out);
    if der {
        command.args(["-outform", "DER"]);
    }
    for oid in oids {
        command.args(["-addext", &format!("{oid}=ASN1:NULL")]);
    }
    let status = command
        .output()
        .expect("the openssl command is needed for this test");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read(out).unwrap()
}

#[test]
fn topic_and_environments() {
    let subject =
        format!("/UID={TOPIC}/CN=APSP:d19011df-561b-444d-ac59-09459e74a5e6/OU=ABCDE12345/C=US");
    let pem = make("production.pem", &subject, &[PRODUCTION], false);
    let info = CertificateInfo::from_pem_or_der(&pem).unwrap();
    assert_eq!(info.topic.as_str(), TOPIC);
    assert!(info.topic.is_mail());
    assert!(info.production && !info.sandbox);

    let both = make("both.der", &subject, &[SANDBOX, PRODUCTION], true);
    let info = CertificateInfo::from_pem_or_der(&both).unwrap();
    assert!(info.production && info.sandbox);

    let sandbox = make("sandbox.pem", &subject, &[SANDBOX], false);
    let info = CertificateInfo::from_pem_or_der(&sandbox).unwrap();
    assert!(!info.production && info.sandbox);

    // The UID anywhere in the subject; text before the PEM block and a second
    // certificate after it (a chain file) are fine: the first one counts.
    let other = make(
        "other.pem",
        "/CN=Some CA/UID=com.apple.mail.XServer.second",
        &[],
        false,
    );
    let mut chain = b"Bag Attributes\n    friendlyName: APSP\n".to_vec();
    chain.extend_from_slice(&pem);
    chain.extend_from_slice(&other);
    assert_eq!(
        CertificateInfo::from_pem_or_der(&chain)
            .unwrap()
            .topic
            .as_str(),
        TOPIC
    );
    let info = CertificateInfo::from_pem_or_der(&other).unwrap();
    assert_eq!(info.topic.as_str(), "com.apple.mail.XServer.second");
    assert!(!info.production && !info.sandbox);
}

#[test]
fn certificates_without_a_topic() {
    let no_uid = make("no-uid.pem", "/CN=Not APNs/O=Example", &[PRODUCTION], false);
    assert_eq!(
        CertificateInfo::from_pem_or_der(&no_uid),
        Err(CertificateError::NoUid)
    );
    let bad_uid = make("bad-uid.pem", "/UID=has space/CN=x", &[], false);
    assert_eq!(
        CertificateInfo::from_pem_or_der(&bad_uid),
        Err(CertificateError::BadUid)
    );
    for garbage in [
        &b""[..],
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"\x30\x03\x02\x01\x00",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(
                CertificateInfo::from_pem_or_der(garbage),
                Err(CertificateError::Parse(_))
            ),
            "{garbage:?}"
        );
    }
}
