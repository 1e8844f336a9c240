//! `webpush`: generate VAPID keys, sign and check VAPID headers, and encrypt or decrypt
//! Web Push messages from the shell, to set up and debug a mail server's push.
//!
//! Exit codes: 0 success, 1 invalid input (a key, URL, subscription or message that
//! cannot be used), 2 bad command line, 3 a file could not be read or written.

// Code that serves never panics on its input: a failed unwrap or index is for tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use webpush_crypto::{
    Encryptor, Endpoint, Error, PrivateKey, PushRequest, Subject, Subscription, Topic, Ttl, UaKeys,
    Urgency, VapidKey, VapidSigner, VapidVerifier, base64url, decrypt,
};

/// Web Push from the command line: VAPID keys and headers, message encryption and
/// decryption (RFC 8291, RFC 8292). Nothing is sent: `encrypt --curl` prints a command
/// that sends the request.
#[derive(Parser)]
#[command(
    name = "webpush",
    version,
    after_help = "Exit codes: 0 success, 1 invalid input, 2 bad command line, 3 file error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a VAPID key pair; print the private key (PKCS#8 PEM and raw base64url)
    /// and the public key (for applicationServerKey and the IMAP `* VAPID` response).
    GenerateVapidKeys {
        /// Write the private key as PKCS#8 PEM to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the public key of a VAPID private key file.
    PublicKey {
        /// The private key: PEM (SEC1 or PKCS#8), DER, or raw base64url.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Sign a VAPID token for an endpoint and print the Authorization header.
    VapidHeader {
        /// The private key: PEM (SEC1 or PKCS#8), DER, or raw base64url.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The push endpoint (its origin becomes `aud`).
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// How push services reach you: mailto:… or https:….
        #[arg(long, value_name = "CONTACT")]
        sub: String,
        /// Token lifetime in seconds, at most 86400.
        #[arg(long, value_name = "SECONDS", default_value_t = 43200)]
        validity: u64,
    },
    /// Check an Authorization header (`vapid t=…, k=…`) for an endpoint, now.
    VerifyVapidHeader {
        /// The push endpoint the token must be for.
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// The header value, with or without the leading `Authorization: `.
        header: String,
    },
    /// Encrypt a message for a subscription and print the push request.
    Encrypt {
        /// The browser's PushSubscription JSON (endpoint, keys.p256dh, keys.auth).
        #[arg(long, value_name = "FILE")]
        subscription: PathBuf,
        /// The VAPID private key; without it the request carries no Authorization.
        #[arg(long, value_name = "FILE", requires = "sub")]
        vapid_key: Option<PathBuf>,
        /// The VAPID contact, mailto:… or https:….
        #[arg(long, value_name = "CONTACT")]
        sub: Option<String>,
        /// The message; read from standard input when absent.
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// How long the push service keeps the message, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        ttl: u32,
        /// very-low, low, normal or high.
        #[arg(long)]
        urgency: Option<String>,
        /// Replace an undelivered message with the same topic (≤ 32 base64url chars).
        #[arg(long)]
        topic: Option<String>,
        /// Print a curl command that sends the request, instead of the request.
        #[arg(long)]
        curl: bool,
    },
    /// Decrypt a push message body as the user agent would.
    Decrypt {
        /// The user agent's private key, raw base64url.
        #[arg(long, value_name = "BASE64URL")]
        ua_key: String,
        /// The subscription's auth secret, base64url.
        #[arg(long, value_name = "BASE64URL")]
        auth: String,
        /// The body as base64url; otherwise the raw body is read from standard input.
        #[arg(long, value_name = "BASE64URL")]
        body: Option<String>,
    },
}

/// A failure, with the exit code it maps to.
enum Failure {
    Input(Error),
    File(PathBuf, std::io::Error),
    Io(std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Input(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("webpush: {e}");
            ExitCode::from(1)
        }
        Err(Failure::File(path, e)) => {
            eprintln!("webpush: {}: {e}", path.display());
            ExitCode::from(3)
        }
        Err(Failure::Io(e)) => {
            eprintln!("webpush: {e}");
            ExitCode::from(3)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    let mut rng = webpush_crypto::rand_core::OsRng;
    let mut out = std::io::stdout().lock();
    match command {
        Command::GenerateVapidKeys { out: file } => {
            let key = VapidKey::generate(&mut rng)?;
            let pem = key.to_pkcs8_pem()?;
            match file {
                Some(path) => {
                    write_private(&path, pem.as_bytes())?;
                    writeln!(out, "private key written to {}", path.display())
                        .map_err(Failure::Io)?;
                }
                None => {
                    write!(out, "{}", pem.as_str()).map_err(Failure::Io)?;
                    writeln!(
                        out,
                        "private key (raw base64url): {}",
                        key.to_base64url().as_str()
                    )
                    .map_err(Failure::Io)?;
                }
            }
            writeln!(
                out,
                "public key (applicationServerKey): {}",
                key.public_key()
            )
            .map_err(Failure::Io)?;
        }
        Command::PublicKey { key } => {
            let key = read_key(&key)?;
            writeln!(out, "{}", key.public_key()).map_err(Failure::Io)?;
        }
        Command::VapidHeader {
            key,
            endpoint,
            sub,
            validity,
        } => {
            let signer = VapidSigner::new(read_key(&key)?, Subject::new(&sub)?)
                .with_validity(Duration::from_secs(validity))?;
            let endpoint = Endpoint::new(&endpoint)?;
            let token = signer.sign(endpoint.origin(), SystemTime::now())?;
            writeln!(out, "Authorization: {}", token.authorization()).map_err(Failure::Io)?;
        }
        Command::VerifyVapidHeader { endpoint, header } => {
            let endpoint = Endpoint::new(&endpoint)?;
            let value = header
                .strip_prefix("Authorization:")
                .or_else(|| header.strip_prefix("authorization:"))
                .unwrap_or(&header);
            let verified = VapidVerifier::new(endpoint.origin().clone())
                .verify(value.trim(), SystemTime::now())?;
            writeln!(
                out,
                "valid: key {}, audience {}, expires at {} (Unix time), sub {}",
                verified.public_key(),
                verified.audience(),
                verified.expires_at(),
                verified.subject().unwrap_or("(none)")
            )
            .map_err(Failure::Io)?;
        }
        Command::Encrypt {
            subscription,
            vapid_key,
            sub,
            message,
            ttl,
            urgency,
            topic,
            curl,
        } => {
            let json = read_file(&subscription)?;
            let json = String::from_utf8(json).map_err(|_| Error::InvalidSubscription {
                reason: "the file is not UTF-8 text".into(),
            })?;
            let subscription = Subscription::from_json(&json)?;
            let message = match message {
                Some(text) => text.into_bytes(),
                None => read_stdin()?,
            };
            let signer = match (vapid_key, sub) {
                (Some(key), Some(sub)) => {
                    Some(VapidSigner::new(read_key(&key)?, Subject::new(&sub)?))
                }
                _ => None,
            };
            let token = signer
                .as_ref()
                .map(|s| s.sign(subscription.endpoint.origin(), SystemTime::now()))
                .transpose()?;
            let mut request = PushRequest::new(&subscription, Ttl::from_secs(ttl));
            if let Some(urgency) = urgency {
                request = request.urgency(urgency.parse::<Urgency>()?);
            }
            if let Some(topic) = topic {
                request = request.topic(Topic::new(&topic)?);
            }
            if let Some(token) = &token {
                request = request.vapid(token.clone());
            }
            let request = request.build(&Encryptor::new(), &message, &mut rng)?;
            let text = if curl {
                as_curl(&request)
            } else {
                as_http(&request)
            };
            write!(out, "{text}").map_err(Failure::Io)?;
        }
        Command::Decrypt { ua_key, auth, body } => {
            let ua = UaKeys::new(
                PrivateKey::from_base64url(&ua_key)?,
                webpush_crypto::AuthSecret::from_base64url(&auth)?,
            )?;
            let body = match body {
                Some(text) => base64url::decode(text.trim(), "body")?,
                None => read_stdin()?,
            };
            let plaintext = decrypt(&ua, &body)?;
            out.write_all(&plaintext).map_err(Failure::Io)?;
        }
    }
    out.flush().map_err(Failure::Io)
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::File(path.to_owned(), e))
}

fn read_key(path: &Path) -> Result<VapidKey, Failure> {
    let bytes = zeroize::Zeroizing::new(read_file(path)?);
    Ok(VapidKey::import(&bytes)?)
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(Failure::Io)?;
    Ok(buf)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|e| Failure::File(path.to_owned(), e))
}

/// The request as HTTP/1.1 text, with the binary body shown as base64url.
fn as_http(request: &http::Request<Vec<u8>>) -> String {
    let uri = request.uri();
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        request.method(),
        uri.path_and_query().map_or("/", |p| p.as_str()),
        uri.authority().map_or("", |a| a.as_str())
    );
    for (name, value) in request.headers() {
        text.push_str(&format!(
            "{}: {}\r\n",
            name,
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str(&format!(
        "\r\n[{} octets of aes128gcm body, shown as base64url]\n{}\n",
        request.body().len(),
        base64url::encode(request.body())
    ));
    text
}

/// A shell command that sends the request with curl.
fn as_curl(request: &http::Request<Vec<u8>>) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(request.body());
    let mut text = format!("printf '%s' '{body}' | base64 -d | curl -sS -i -X POST");
    for (name, value) in request.headers() {
        if name == http::header::CONTENT_LENGTH {
            continue; // curl computes it from the body.
        }
        let header = format!("{}: {}", name, String::from_utf8_lossy(value.as_bytes()));
        text.push_str(&format!(" -H {}", shell_quote(&header)));
    }
    text.push_str(&format!(
        " --data-binary @- {}\n",
        shell_quote(&request.uri().to_string())
    ));
    text
}

/// Single-quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
