//! `mailpushd demo`: the daemon's whole path on its embedded default, finishing by
//! itself. It starts the daemon on a temporary SQLite file with a local APNs stand-in,
//! sends the xaps plugin's `/register` and `/notify` requests over HTTP, and prints the
//! HTTP/2 requests that reached the stand-in.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use tokio::net::TcpStream;

use crate::config::{Config, Credentials};
use crate::daemon::Daemon;
use crate::standin::Standin;

/// A topic of the real form (`com.apple.mail.XServer.<uuid>`, 59 octets).
pub const DEMO_TOPIC: &str = "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6";

/// The demo failed.
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// A plain HTTP/1.1 exchange, as the mail server's plugin makes it: one request on a
/// fresh connection. Returns the status and body.
pub async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), DemoError> {
    let stream = TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

/// A provider key of the `.p8` form Apple issues, made for the demo and tests.
pub fn demo_p8() -> Result<String, DemoError> {
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

/// A configuration that sends to `standin`, with a provider key written into `dir`.
pub fn standin_config(standin: &Standin, dir: &std::path::Path) -> Result<Config, DemoError> {
    let ca = dir.join("standin-ca.pem");
    std::fs::write(&ca, standin.ca_pem())?;
    let p8 = dir.join("AuthKey_DEMO123456.p8");
    crate::files::write_private(&p8, demo_p8()?.as_bytes())?;
    let mut config = Config::with_database(dir.join("mailpushd.sqlite"));
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.apns.server = apns_proto::Server::new(&standin.address().to_string())?;
    config.apns.ca_file = Some(ca);
    config.apns.topic = Some(DEMO_TOPIC.to_owned());
    config.apns.credentials = Some(Credentials::Token {
        key_file: p8,
        key_id: "DEMO123456".to_owned(),
        team_id: "TEAM123456".to_owned(),
    });
    config.apns.request_timeout = Duration::from_secs(2);
    config.apns.retry_base = Duration::from_millis(50);
    Ok(config)
}

/// Sixteen random octets, for the demo's credential.
fn rand_bytes() -> Result<[u8; 16], DemoError> {
    let mut bytes = [0; 16];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut bytes)?;
    Ok(bytes)
}

/// Runs the demo, printing what happens.
pub async fn run() -> Result<(), DemoError> {
    let dir = tempfile::tempdir()?;
    let standin = Standin::start().await?;
    let mut config = standin_config(&standin, dir.path())?;
    // Flag changes are pushed after a quiet period: a short one, for the demo.
    config.push.delay = Duration::from_secs(1);
    config.push.check_interval = Duration::from_millis(250);
    println!(
        "mailpushd demo: store {}, APNs stand-in on https://{}\n",
        dir.path().join("mailpushd.sqlite").display(),
        standin.address()
    );
    // The plugin's credential, as `xaps_config = url=http://dovecot:...@[::1]:11619`
    // gives it: the API answers nothing that changes state without it.
    let password = webpush_crypto::base64url::encode(&rand_bytes()?);
    config.basic_auth = Some(crate::config::BasicAuth::new("dovecot", password.clone())?);
    let authorization = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("dovecot:{password}")
        )
    );
    let daemon = Daemon::start(config).await?;
    let address = daemon
        .local_addr()
        .ok_or("the demo's API does not listen on TCP")?;
    let json = [
        ("content-type", "application/json; charset=utf-8"),
        ("authorization", authorization.as_str()),
    ];

    // What the Dovecot xaps plugin sends after a device's XAPPLEPUSHSERVICE.
    let register = br#"{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX","Sent Messages"]}"#;
    println!(
        "plugin -> POST /register {}",
        String::from_utf8_lossy(register)
    );
    let (status, body) = http(address, "POST", "/register", &json, register).await?;
    println!("plugin <- {status} {}\n", String::from_utf8_lossy(&body));

    // An LMTP delivery to INBOX: pushed at once.
    let notify = br#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}"#;
    println!("plugin -> POST /notify {}", String::from_utf8_lossy(notify));
    let (status, _) = http(address, "POST", "/notify", &json, notify).await?;
    println!("plugin <- {status}");
    let requests = standin.wait_for(1, Duration::from_secs(10)).await;
    let first = requests.first().ok_or("the stand-in received no push")?;
    println!("\nAPNs stand-in received (HTTP/2):\n{first}\n");

    // STORE +FLAGS (\Seen): pushed once the burst is over.
    let seen = br#"{"Username":"alice","Mailbox":"INBOX","Events": ["FlagsClear","FlagsSet","MessageRead"]}"#;
    println!("plugin -> POST /notify {}", String::from_utf8_lossy(seen));
    let (status, _) = http(address, "POST", "/notify", &json, seen).await?;
    println!("plugin <- {status}   (flag changes wait for 1 s of quiet)");
    let requests = standin.wait_for(2, Duration::from_secs(10)).await;
    let second = requests.get(1).ok_or("the delayed push did not arrive")?;
    println!("\nAPNs stand-in received (HTTP/2, delayed):\n{second}\n");

    // Junk does not wake the phone; an unknown user is 404, as xapsd answers.
    for (label, body) in [
        (
            "Junk",
            &br#"{"Username":"alice","Mailbox":"Junk","Events": ["MessageNew"]}"#[..],
        ),
        (
            "unknown user",
            br#"{"Username":"bob","Mailbox":"INBOX","Events": ["MessageNew"]}"#,
        ),
    ] {
        let (status, _) = http(address, "POST", "/notify", &json, body).await?;
        println!("plugin -> POST /notify ({label}) <- {status}");
    }
    let left = daemon.shutdown(Duration::from_secs(5)).await;
    println!(
        "\ndone: {} pushes reached the stand-in over {} connection(s); {left} unsent at shutdown",
        standin.requests().len(),
        standin.connections()
    );
    Ok(())
}
