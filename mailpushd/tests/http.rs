//! Bad input: a clear status each, nothing stored, and the daemon goes on serving the
//! other connections.

use std::time::Duration;

use base64::Engine as _;
use mailpushd::config::BasicAuth;
use mailpushd::daemon::Daemon;
use mailpushd::demo::{http, standin_config};
use mailpushd::standin::Standin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::JSON;

const REGISTER: &str = r#"{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": ["INBOX"]}"#;

async fn start(auth: bool) -> (Standin, Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    config.http.header_timeout = Duration::from_millis(500);
    config.http.idle_timeout = Duration::from_secs(2);
    config.http.body_timeout = Duration::from_millis(500);
    config.http.max_body = 4096;
    if auth {
        config.basic_auth = Some(BasicAuth {
            user: "dovecot".into(),
            password: zeroize::Zeroizing::new("s3cret".into()),
        });
    } else {
        support::open_api(&mut config);
    }
    let daemon = Daemon::start(config).await.unwrap();
    (standin, daemon, dir)
}

/// Sends raw octets and reads the status line of the answer.
async fn raw(daemon: &Daemon, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn bad_requests_get_a_clear_status_and_change_nothing() {
    let (_standin, daemon, _dir) = start(false).await;
    let a = daemon.local_addr().unwrap();
    for (body, why) in [
        (&b"not json"[..], "not JSON"),
        (b"{}", "no fields"),
        (br#"{"ApsAccountId":"A","ApsDeviceToken":"xyz","ApsSubtopic":"com.apple.mobilemail","Username":"alice"}"#, "token not hex"),
        (br#"{"ApsAccountId":"A","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.notes","Username":"alice"}"#, "subtopic"),
        (br#"[1,2,3]"#, "an array"),
    ] {
        let (status, body) = http(a, "POST", "/register", &JSON, body).await.unwrap();
        assert_eq!(status, 400, "{why}");
        assert!(!body.is_empty(), "{why}: the status says why");
    }
    let (status, _) = http(a, "POST", "/notify", &JSON, br#"{"Username":""}"#)
        .await
        .unwrap();
    assert_eq!(status, 400);
    // Over the limit: 413, by the header or by the body.
    let big = vec![b' '; 5000];
    assert_eq!(
        http(a, "POST", "/register", &JSON, &big).await.unwrap().0,
        413
    );
    let chunked = format!(
        "POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n{}\r\n0\r\n\r\n",
        " ".repeat(5000)
    );
    assert!(raw(&daemon, chunked.as_bytes()).await.contains("413"));
    // Unknown paths and wrong methods.
    assert_eq!(http(a, "GET", "/nothing", &[], b"").await.unwrap().0, 404);
    assert_eq!(http(a, "GET", "/register", &[], b"").await.unwrap().0, 405);
    assert_eq!(http(a, "POST", "/healthz", &[], b"").await.unwrap().0, 405);
    assert_eq!(http(a, "POST", "/ox", &JSON, b"{}").await.unwrap().0, 405);
    // An OX event is checked as a notify is: no folder, no push.
    let no_folder = br#"{"user":"alice","event":"messageNew","folder":""}"#;
    let (status, said) = http(a, "PUT", "/ox", &JSON, no_folder).await.unwrap();
    let said = String::from_utf8_lossy(&said);
    assert_eq!(status, 400, "{said}");
    assert!(said.contains("Mailbox"), "{said}");
    // Garbage that is not HTTP.
    assert!(
        raw(&daemon, b"\x00\x01\x02 garbage\r\n\r\n")
            .await
            .contains("400")
    );
    assert_eq!(daemon.store().count().await.unwrap(), 0, "nothing stored");
    // And the daemon still serves.
    let (status, _) = http(a, "POST", "/register", &JSON, REGISTER.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        http(a, "GET", "/healthz", &[], b"").await.unwrap(),
        (200, b"ok\n".to_vec())
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let (_standin, daemon, _dir) = start(false).await;
    // Headers trickled slower than the limit: the connection is closed (408 or EOF).
    let mut slow = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    slow.write_all(b"POST /register HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // Meanwhile another client is served.
    let (status, _) = http(daemon.local_addr().unwrap(), "GET", "/healthz", &[], b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the slow connection was closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // A body that never comes in full: 408.
    let request = b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Aps";
    assert!(raw(&daemon, request).await.contains("408"));
}

/// Reads one whole answer to a `GET /healthz` from a kept-alive connection.
async fn healthz_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\nok") {
        let mut chunk = [0; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn an_idle_kept_alive_connection_waits_the_idle_timeout_not_the_header_one() {
    let (_standin, daemon, _dir) = start(false).await;
    // The header timeout is half a second here, the idle one two seconds.
    let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    assert!(healthz_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        healthz_on(&mut stream).await.starts_with("HTTP/1.1 200"),
        "served again after idling longer than the header timeout"
    );
    // Idle past the idle timeout: closed by the daemon.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

#[tokio::test]
async fn basic_auth_when_configured() {
    let (_standin, daemon, _dir) = start(true).await;
    let a = daemon.local_addr().unwrap();
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    for header in [
        None,
        Some(basic("dovecot", "wrong")),
        Some(basic("other", "s3cret")),
        Some("Bearer x".to_owned()),
    ] {
        let mut headers = JSON.to_vec();
        if let Some(h) = &header {
            headers.push(("authorization", h.as_str()));
        }
        let (status, _) = http(a, "POST", "/register", &headers, REGISTER.as_bytes())
            .await
            .unwrap();
        assert_eq!(status, 401, "{header:?}");
    }
    assert_eq!(daemon.store().count().await.unwrap(), 0);
    let good = basic("dovecot", "s3cret");
    let mut headers = JSON.to_vec();
    headers.push(("authorization", good.as_str()));
    let (status, _) = http(a, "POST", "/register", &headers, REGISTER.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 200);
    // Monitoring stays open on the private address.
    assert_eq!(http(a, "GET", "/healthz", &[], b"").await.unwrap().0, 200);
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    config.http.max_connections = 3;
    let daemon = Daemon::start(config).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(daemon.local_addr().unwrap())
            .await
            .unwrap();
        healthz_on(&mut stream).await;
        open.push(stream);
    }
    // A fourth connection is not served while three are open...
    let mut fourth = TcpStream::connect(daemon.local_addr().unwrap())
        .await
        .unwrap();
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut chunk = [0; 256];
    let early = tokio::time::timeout(Duration::from_millis(500), fourth.read(&mut chunk)).await;
    assert!(early.is_err(), "served past the limit");
    // ...and is, once one of them ends.
    drop(open.pop());
    let mut answer = Vec::new();
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\nok") {
        let n = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut chunk))
            .await
            .expect("served once a connection ended")
            .unwrap();
        assert!(n > 0);
        answer.extend_from_slice(&chunk[..n]);
    }
    daemon.shutdown(Duration::from_secs(5)).await;
}
