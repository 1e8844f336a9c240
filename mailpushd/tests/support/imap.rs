//! IMAP clients for the front's tests: a line client over any stream, TLS to the
//! front with a certificate of the test's own CA, and the front's settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailpushd::config::{Front, FrontCertificate, UserMap};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

pub const SERVER_NAME: &str = "imap.example.test";

/// A CA, and a certificate for [`SERVER_NAME`] it signed, written into `dir`
/// (`imap.pem`, `imap.key`, and the CA as `ca.pem`): the front's pair, and the CA for
/// the client to trust.
pub fn certificates(dir: &std::path::Path) -> (FrontCertificate, rustls::RootCertStore) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: a leaf named as its issuer reads as self-signed to OpenSSL.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mailpushd test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SERVER_NAME);
    let cert = params.signed_by(&key, &ca).unwrap();
    let (cert_file, key_file) = (dir.join("imap.pem"), dir.join("imap.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    mailpushd::files::write_private(&key_file, key.serialize_pem().as_bytes()).unwrap();
    // For clients that read a CA from a file.
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.der().to_vec()))
        .unwrap();
    (
        FrontCertificate {
            names: vec![SERVER_NAME.to_owned()],
            cert_file,
            key_file,
        },
        roots,
    )
}

/// An IMAP client over any stream: lines out, lines in, a transcript of both.
pub struct Client<S> {
    /// The stream, buffered for reading.
    pub stream: BufReader<S>,
    /// The last tag used.
    pub tag: u32,
    /// Every line sent and received.
    pub transcript: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream: BufReader::new(stream),
            tag: 0,
            transcript: String::new(),
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.transcript.push_str(&format!("C: {line}\n"));
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    pub async fn read(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), self.stream.read_line(&mut line))
            .await
            .expect("an answer")
            .unwrap();
        self.transcript
            .push_str(&format!("S: {}\n", line.trim_end_matches("\r\n")));
        line
    }

    /// Sends `command` with the next tag; the lines up to its tagged answer.
    pub async fn run(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = self.tag.to_string();
        self.send(&format!("{tag} {command}")).await;
        let mut lines = Vec::new();
        loop {
            let line = self.read().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

/// A TLS connection to the front's implicit-TLS listener, from `source` (a loopback
/// address of the test's choosing, which Dovecot must then log).
pub async fn connect_tls(
    front: SocketAddr,
    roots: &rustls::RootCertStore,
    source: std::net::IpAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(front).await.unwrap();
    tls_over(tcp, roots).await
}

pub async fn tls_over(
    tcp: TcpStream,
    roots: &rustls::RootCertStore,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .unwrap()
}

/// The front's settings for the tests: `pair`, relaying to `backend` with a PROXY
/// header, on the listeners given.
pub fn front_config(
    pair: FrontCertificate,
    backend: SocketAddr,
    implicit_tls: bool,
    starttls: bool,
) -> Front {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    Front {
        implicit_tls: implicit_tls.then_some(any),
        starttls: starttls.then_some(any),
        plain: None,
        certificates: vec![pair],
        backend: backend.to_string(),
        backend_tls: None,
        proxy_protocol: true,
        user_map: UserMap::AsIs,
        hide_unreadable_mechanisms: false,
        max_sessions: 100,
        max_connects_per_address_per_minute: 100,
        max_unauthenticated_per_address: 100,
        max_line: 64 * 1024,
        login_timeout: Duration::from_secs(180),
    }
}
