//! Configuration: mailpushd's own TOML file, or an existing xapsd YAML file read as
//! it is, so an installation switches by pointing mailpushd at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use xaps_proto::registry::PushMailboxes;

/// A configuration that cannot be used, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is not valid, or has keys this version does not know.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's words, with the line.
        message: String,
    },
    /// Every user of the machine may change the file, or read it and it holds a
    /// password.
    #[error("{path}: {source}")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// What they may do, and what mends it.
        source: std::io::Error,
    },
    /// The xapsd YAML is not valid.
    #[error("{path} (xapsd YAML): {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's words.
        message: String,
    },
    /// A value outside the range its key allows.
    #[error("{key} = {value} is out of range: it must be {range}")]
    OutOfRange {
        /// The key, as the file names it.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed, in words.
        range: String,
    },
    /// A value is inconsistent with another, or not of the kind its key takes.
    #[error("{0}")]
    Invalid(String),
}

/// Names resolved by the test's own table instead of DNS.
pub type StaticNames = std::collections::HashMap<String, Vec<std::net::IpAddr>>;

/// `value` of `key`, if it lies in `range`; refused, with the key and the range named,
/// if not. Settings are never clamped: a value the operator did not mean is an error.
fn within<T>(
    key: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if range.contains(&value) {
        return Ok(value);
    }
    Err(ConfigError::OutOfRange {
        key,
        value: value.to_string(),
        range: format!("at least {} and at most {}", range.start(), range.end()),
    })
}

/// Seconds of `key`, within `range`.
fn secs(
    key: &'static str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    within(key, value, range).map(Duration::from_secs)
}

/// Milliseconds of `key`, within `range`.
fn millis(
    key: &'static str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    within(key, value, range).map(Duration::from_millis)
}

/// The ranges each key allows. Every duration has an upper bound, so no time
/// arithmetic with it can overflow.
mod ranges {
    use std::ops::RangeInclusive;

    pub(super) const DELAY_SECS: RangeInclusive<u64> = 0..=86_400;
    pub(super) const CHECK_INTERVAL_SECS: RangeInclusive<u64> = 1..=86_400;
    pub(super) const MAX_AGE_DAYS: RangeInclusive<u64> = 1..=3650;
    pub(super) const MAX_ACCOUNTS: RangeInclusive<usize> = 1..=100_000;
    pub(super) const TIMEOUT_SECS: RangeInclusive<u64> = 1..=300;
    pub(super) const IDLE_SECS: RangeInclusive<u64> = 1..=3600;
    pub(super) const HTTP_CONNECTIONS: RangeInclusive<usize> = 1..=100_000;
    pub(super) const FRONT_SESSIONS: RangeInclusive<usize> = 1..=1_000_000;
    pub(super) const CONNECTS_PER_MINUTE: RangeInclusive<u32> = 1..=100_000;
    pub(super) const UNAUTHENTICATED: RangeInclusive<u32> = 1..=1_000_000;
    pub(super) const FRONT_LINE: RangeInclusive<usize> = 1024..=1 << 20;
    pub(super) const LOGIN_TIMEOUT_SECS: RangeInclusive<u64> = 10..=3600;
    pub(super) const MAX_QUEUED: RangeInclusive<usize> = 100..=1_000_000;
    pub(super) const USER_RATE: RangeInclusive<u32> = 1..=6000;
    pub(super) const HOLD_SECS: RangeInclusive<u64> = 1..=3600;
    pub(super) const KEY_POOL: RangeInclusive<usize> = 0..=1_000_000;
    pub(super) const KEY_FILL: RangeInclusive<u32> = 1..=1_000_000;
    pub(super) const MAX_IN_FLIGHT: RangeInclusive<usize> = 1..=100_000;
    pub(super) const ATTEMPTS: RangeInclusive<u32> = 1..=100;
    pub(super) const RETRY_BASE_MILLIS: RangeInclusive<u64> = 1..=600_000;
    /// Push services keep a push four weeks at most.
    pub(super) const TTL_SECS: RangeInclusive<u32> = 0..=2_419_200;
    pub(super) const MAX_SUBSCRIPTIONS: RangeInclusive<usize> = 1..=1000;
    pub(super) const ACK_SECS: RangeInclusive<u64> = 1..=86_400;
    /// A minute to thirty days.
    pub(super) const FORWARDED_SILENCE_SECS: RangeInclusive<u64> = 60..=2_592_000;
    pub(super) const MAX_PER_ORIGIN: RangeInclusive<usize> = 1..=1000;
    pub(super) const MAX_BODY_BYTES: RangeInclusive<usize> = 1024..=16_777_216;
    pub(super) const MAX_CONNECTIONS: RangeInclusive<u32> = 1..=1000;
    /// A minute to 30 days.
    pub(super) const GIVE_UP_SECS: RangeInclusive<u64> = 60..=2_592_000;
    pub(super) const ROUND_SECS: RangeInclusive<u64> = 1..=86_400;
    pub(super) const LEASE_SECS: RangeInclusive<u64> = 10..=86_400;
}

/// The whole configuration, resolved: every default applied, paths absolute where they
/// came from a file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the mail server's plugin connects.
    pub listen: SocketAddr,
    /// Basic credentials the plugin must send (its URL's user info), when given in the
    /// file; otherwise [`Api::credential_file`]'s, made on first start.
    pub basic_auth: Option<BasicAuth>,
    /// Who may use the local API.
    pub api: Api,
    /// The store.
    pub database: Database,
    /// An xapsd JSON database to import on first start, when the store is new.
    pub import_xapsd: Option<PathBuf>,
    /// How mail events become pushes.
    pub push: Push,
    /// The APNs sender.
    pub apns: Apns,
    /// Limits on the HTTP API.
    pub http: Http,
    /// The path the Dovecot OX push driver's `PUT` goes to.
    pub ox_path: String,
    /// IMAP WEBPUSH and delivery to push services.
    pub webpush: WebPush,
    /// The IMAP front: listeners for IMAP clients, relayed to the IMAP server, with
    /// both push extensions answered by mailpushd. Off unless a listener is given.
    pub front: Option<Front>,
    /// What the operator should know of the file read (a key kept only for xapsd's
    /// files): logged at start and printed by `check-config`.
    pub notes: Vec<String>,
}

/// The API credential's file name, beside the SQLite store by default.
const DEFAULT_CREDENTIAL_FILE: &str = "api-credential";

/// The note on a `checkInterval` in a file.
const CHECK_INTERVAL_NOTE: &str =
    "the check interval is read but not needed: mailpushd sleeps until the next push is due";

/// IMAP WEBPUSH through the daemon, and delivery to push services.
#[derive(Debug, Clone)]
pub struct WebPush {
    /// The VAPID contact (`mailto:` or `https:`), sent to push services; WEBPUSH is off
    /// without one, since a contact is never invented.
    pub subject: Option<String>,
    /// A VAPID key to use (any format the crate reads) instead of one generated into
    /// the store on first start.
    pub key_file: Option<PathBuf>,
    /// How long push services keep a push for an offline device.
    pub ttl: webpush_crypto::Ttl,
    /// Subscriptions per account.
    pub max_subscriptions: usize,
    /// How long the ack token of a verification push is accepted; a subscription not
    /// acknowledged by then is deleted.
    pub ack_lifetime: Duration,
    /// How long a silence "until this connection ends" set through the HTTP API
    /// (`/imap/webpush`) lasts at most: an IMAP server that crashes never reports its
    /// connections' ends. The IMAP front's sessions need no such bound.
    pub forwarded_silence_max: Duration,
    /// How long one push request may take.
    pub request_timeout: Duration,
    /// Requests in flight per push service origin that speaks HTTP/2 (streams on one
    /// connection). While the cores are saturated, origins of either protocol share
    /// two requests in flight per core instead (at least one each; an HTTP/2 one at
    /// least 16, as this limit allows, so that its streams go through its connection
    /// together): more would only wait for the cores.
    pub max_per_origin: usize,
    /// Requests in flight per origin that speaks HTTP/1.1, or has not answered yet.
    /// HTTP/1.1 carries one request per connection, so this is also the number of
    /// connections to it (RFC 9112 §9.4 asks clients to keep that small).
    pub max_per_origin_http1: usize,
    /// Connections to push services open at once, in use or kept for the next burst,
    /// whatever the number of origins: at the bound, one kept idle is closed to make
    /// room, else a new one waits for one to close (within the request's time).
    pub max_connections: usize,
    /// Attempts per push (429, 5xx, transport errors).
    pub max_attempts: u32,
    /// The first retry's delay; doubled each time, with jitter.
    pub retry_base: Duration,
    /// Pushes waiting for one origin at most; beyond, a push stays owed in the store
    /// and goes in a later round.
    pub max_queued_per_origin: usize,
    /// Times a minute one user's events are pushed at most (a mail flood), each time to
    /// all of the user's subscriptions, counted by each daemon apart; beyond, the
    /// pushes stay owed and go in a later round.
    pub max_pushes_per_user_per_minute: u32,
    /// The longest a push service's "wait" (429, or 5xx with `Retry-After`) holds a
    /// push or its origin: a day asked is this long.
    pub max_hold: Duration,
    /// Ephemeral keys made ahead while the sender is idle, at most (0: none; every
    /// push makes its own).
    pub key_pool_size: usize,
    /// How many keys a second the filler makes at most, for this pool and the
    /// agreement pool together (agreements first).
    pub key_pool_fill_per_second: u32,
    /// Keys agreed ahead with the subscriptions pushed to before, each for its
    /// subscription's next push, at most (0: none).
    pub agreement_pool_size: usize,
    /// An extra CA certificate (PEM) to trust for push services, for a stand-in.
    pub ca_file: Option<PathBuf>,
    /// For tests against a local push service only: plain-http endpoints and
    /// addresses that are not globally reachable are allowed.
    pub allow_local_push_service: bool,
    /// For tests: names resolved from this table instead of DNS (the address rule
    /// still applies). Not read from files.
    pub names: Option<StaticNames>,
}

/// Who may use the local API's routes that change state or push (`/register`,
/// `/notify`, the OX route, the forwarded WEBPUSH routes). `/metrics` and `/healthz`
/// are read-only and always open.
#[derive(Debug, Clone)]
pub struct Api {
    /// Where the credential lives when `basic_auth` does not give one: made on first
    /// start (random, readable by the daemon's user only) and read at every start.
    pub credential_file: PathBuf,
    /// Routes open to any local process without the credential, as the operator said.
    pub open: OpenRoutes,
    /// A Unix socket serving the same API, and the xaps plugin's legacy line protocol:
    /// who may open it (its mode and group) may use every route, no credential asked.
    pub socket: Option<UnixSocket>,
    /// Whether the API listens on TCP at `listen` (`listen = "off"`: not, as for a
    /// process that runs only the IMAP front, or serves the API on its socket only).
    pub tcp: bool,
}

/// Routes answered without the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenRoutes {
    /// None: every route that changes state needs the credential. The default.
    None,
    /// `/register`, `/notify` and the OX route, as xapsd has them: any local process
    /// can register devices for any user and have any user's devices pushed. What an
    /// xapsd YAML file means (its plugin sends no credential); the Web Push routes,
    /// which xapsd never had, still need the credential.
    Xapsd,
    /// Every route: any local process can act as any mail user.
    All,
}

impl OpenRoutes {
    /// What `api.open` must say, word for word, for each choice.
    pub const XAPSD_WORDS: &'static str = "register and notify, to any local user";
    /// See [`OpenRoutes::XAPSD_WORDS`].
    pub const ALL_WORDS: &'static str = "every route, to any local user";

    fn from_words(words: &str) -> Result<Self, ConfigError> {
        match words {
            Self::XAPSD_WORDS => Ok(OpenRoutes::Xapsd),
            Self::ALL_WORDS => Ok(OpenRoutes::All),
            other => Err(ConfigError::Invalid(format!(
                "api.open must be {:?} or {:?} (anyone on this machine may then act as any mail user), not {other:?}",
                Self::XAPSD_WORDS,
                Self::ALL_WORDS
            ))),
        }
    }
}

/// A Unix socket for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Its path (its folder must exist: systemd's `RuntimeDirectory`).
    pub path: PathBuf,
    /// The group that may use it (Dovecot's), if not the daemon's own.
    pub group: Option<String>,
    /// Its permission bits (0660 by default: owner and group read and write).
    pub mode: u32,
}

impl UnixSocket {
    /// The longest path a socket can have here: Linux's 107 octets, less the `.d/s`
    /// of the name it is made under ([`UnixSocket::staging_dir`]).
    pub const MAX_PATH_LEN: usize = 107 - ".d/s".len();

    /// The folder, readable by the daemon's user only, where the socket is made and
    /// given its group and mode before it is renamed to its path: beside it, its name
    /// with `.d` after it. No other user can connect to the socket while it is there.
    pub fn staging_dir(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".d");
        name.into()
    }
}

/// Basic credentials, compared in constant time.
#[derive(Clone)]
pub struct BasicAuth {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: zeroize::Zeroizing<String>,
}

impl BasicAuth {
    /// Credentials whose user has no `:` (the user info of a URL ends it there).
    pub fn new(
        user: &str,
        password: impl Into<zeroize::Zeroizing<String>>,
    ) -> Result<Self, ConfigError> {
        if user.is_empty() || user.contains(':') {
            return Err(ConfigError::Invalid(format!(
                "basic_auth.user must be non-empty and without ':', not {user:?}"
            )));
        }
        Ok(Self {
            user: user.to_owned(),
            password: password.into(),
        })
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where registrations are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (WAL), the embedded default.
    Sqlite(PathBuf),
    /// A PostgreSQL database, which several daemons can share.
    Postgres(PostgresUrl),
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database?sslmode=…`)
/// and the pool size. The URL may carry a password: it is wiped on drop and left out of
/// `Debug` and [`PostgresUrl::redacted`].
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: zeroize::Zeroizing<String>,
    max_connections: u32,
}

impl PostgresUrl {
    /// Connections a daemon opens by default.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

    /// Checks `url` the way the driver will read it.
    pub fn new(url: &str, max_connections: u32) -> Result<Self, ConfigError> {
        let url = zeroize::Zeroizing::new(url.to_owned());
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid(
                "a PostgreSQL database URL starts with postgres:// or postgresql://".into(),
            ));
        }
        if url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
            // Neither the URL nor the driver's words, which may quote it: a URL that
            // does not read may hide its password where redaction does not look.
            return Err(ConfigError::Invalid(
                "database: not a PostgreSQL URL the driver reads (postgres://user:password@host:port/database?parameters, special characters percent-encoded)".into(),
            ));
        }
        within(
            "database_max_connections",
            max_connections,
            ranges::MAX_CONNECTIONS,
        )?;
        Ok(Self {
            url,
            max_connections,
        })
    }

    /// The URL itself, password included, for the driver.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced, for logs.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The most connections the daemon opens.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresUrl")
            .field("url", &self.redacted())
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `url` with the password of its user info (and any `password=` parameter) replaced.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // The user info ends at the last `@` before the query, wherever a `/` is: a
    // password may hold one unencoded in a URL the driver refuses, and is hidden then
    // too.
    let query_start = rest.find('?').unwrap_or(rest.len());
    let (userinfo, rest) = match rest.get(..query_start).and_then(|r| r.rfind('@')) {
        Some(at) => rest.split_at(at),
        None => ("", rest),
    };
    let userinfo = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:<redacted>"),
        None => userinfo.to_owned(),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(authority_end);
    let authority = format!("{userinfo}{host}");
    let path = match path.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=<redacted>")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

/// How mail events become pushes.
#[derive(Debug, Clone)]
pub struct Push {
    /// Quiet period after the last event other than new mail (xapsd's `delay`).
    pub delay: Duration,
    /// xapsd's `checkInterval`, read so that its files keep working. mailpushd needs
    /// none: it sleeps until the next push is due. Set in a file, it is said at start.
    pub check_interval: Duration,
    /// Which mailboxes push, to devices and to Web Push subscriptions alike (which
    /// list none: "listed" pushes them INBOX).
    pub mailboxes: PushMailboxes,
    /// How long a registration lives without a refresh.
    pub max_age: Duration,
    /// Accounts (devices) one user may register.
    pub max_accounts_per_user: usize,
    /// How long a push acknowledged to the mail server is retried before it is given
    /// up (hours: an outage delays pushes, it does not lose them).
    pub give_up_after: Duration,
    /// The wait after the first round of attempts failed; doubled per round.
    pub retry_first: Duration,
    /// The longest wait between rounds.
    pub retry_max: Duration,
    /// How long a daemon holds a push it is sending before another may take it up (it
    /// died, say). A round of attempts ends with it: an attempt that could not end
    /// within it is left to the next round.
    pub lease: Duration,
}

/// The APNs sender's settings.
#[derive(Debug, Clone)]
pub struct Apns {
    /// `host[:port]` to send to: Apple's production or sandbox service, or another
    /// (a stand-in in tests).
    pub server: apns_proto::Server,
    /// An extra CA certificate (PEM) to trust for `server`, for a stand-in.
    pub ca_file: Option<PathBuf>,
    /// How the daemon authenticates, if it can.
    pub credentials: Option<Credentials>,
    /// The topic, when not taken from a certificate.
    pub topic: Option<String>,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Requests in flight at most, over the connection.
    pub max_in_flight: usize,
    /// Attempts per push before it is given up (429, 5xx, transport errors).
    pub max_attempts: u32,
    /// The first retry's delay; doubled each time, with jitter.
    pub retry_base: Duration,
}

/// How the daemon proves it may push.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// A provider token signed with the team's `.p8` key.
    Token {
        /// The `.p8` file.
        key_file: PathBuf,
        /// Its 10-character key id.
        key_id: String,
        /// The 10-character team id.
        team_id: String,
    },
    /// A client certificate and its key, PEM.
    Pem {
        /// The certificate (or chain) file.
        certificate: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// A PKCS#12 file holding both (xapsd's `certificateFileP12`, empty password).
    Pkcs12 {
        /// The file.
        file: PathBuf,
        /// Its password.
        password: zeroize::Zeroizing<String>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token {
                key_file,
                key_id,
                team_id,
            } => f
                .debug_struct("Token")
                .field("key_file", key_file)
                .field("key_id", key_id)
                .field("team_id", team_id)
                .finish(),
            Self::Pem { certificate, key } => f
                .debug_struct("Pem")
                .field("certificate", certificate)
                .field("key", key)
                .finish(),
            Self::Pkcs12 { file, password: _ } => f
                .debug_struct("Pkcs12")
                .field("file", file)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Limits on the HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    /// The largest request body read (413 beyond it).
    pub max_body: usize,
    /// How long a client may take to send its request headers, from their first octet,
    /// and to take an answer that waits for it.
    pub header_timeout: Duration,
    /// How long a connection may wait for its next request (mail servers keep theirs
    /// open between events).
    pub idle_timeout: Duration,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
    /// Connections open at once per listener at most; beyond, the next waits to be
    /// accepted until one ends.
    pub max_connections: usize,
}

/// The production and sandbox hosts, by name in the file.
fn environment_server(name: &str) -> Result<apns_proto::Server, ConfigError> {
    match name {
        "production" => Ok(apns_proto::Environment::Production.into()),
        "sandbox" => Ok(apns_proto::Environment::Sandbox.into()),
        other => Err(ConfigError::Invalid(format!(
            "apns.environment must be \"production\" or \"sandbox\", not {other:?}"
        ))),
    }
}

/// `https://host[:port]` (a path is not allowed: requests go to `/3/device/...`).
fn base_url_server(url: &str) -> Result<apns_proto::Server, ConfigError> {
    let invalid = || {
        ConfigError::Invalid(format!(
            "apns.base_url must be https://host[:port], not {url:?}"
        ))
    };
    let rest = url.strip_prefix("https://").ok_or_else(invalid)?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    apns_proto::Server::new(authority).map_err(|_| invalid())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    listen: Option<String>,
    basic_auth: Option<TomlAuth>,
    #[serde(default)]
    api: TomlApi,
    // Zeroized: a PostgreSQL URL may carry its password.
    database: Option<zeroize::Zeroizing<String>>,
    database_max_connections: Option<u32>,
    import_xapsd: Option<PathBuf>,
    #[serde(default)]
    push: TomlPush,
    #[serde(default)]
    apns: TomlApns,
    #[serde(default)]
    http: TomlHttp,
    ox_path: Option<String>,
    #[serde(default)]
    webpush: TomlWebPush,
    front: Option<TomlFront>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlWebPush {
    subject: Option<String>,
    key_file: Option<PathBuf>,
    ttl_secs: Option<u64>,
    max_subscriptions: Option<usize>,
    ack_lifetime_secs: Option<u64>,
    forwarded_silence_max_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_per_origin: Option<usize>,
    max_per_origin_http1: Option<usize>,
    max_connections: Option<usize>,
    max_attempts: Option<u32>,
    retry_base_millis: Option<u64>,
    max_queued_per_origin: Option<usize>,
    max_pushes_per_user_per_minute: Option<u32>,
    max_hold_secs: Option<u64>,
    key_pool_size: Option<usize>,
    key_pool_fill_per_second: Option<u32>,
    agreement_pool_size: Option<usize>,
    ca_file: Option<PathBuf>,
    allow_local_push_service: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlApi {
    credential_file: Option<PathBuf>,
    open: Option<String>,
    socket: Option<PathBuf>,
    socket_group: Option<String>,
    socket_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlAuth {
    user: String,
    password: zeroize::Zeroizing<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlPush {
    delay_secs: Option<u64>,
    check_interval_secs: Option<u64>,
    mailboxes: Option<TomlMailboxes>,
    max_age_days: Option<u64>,
    max_accounts_per_user: Option<usize>,
    give_up_after_secs: Option<u64>,
    retry_first_secs: Option<u64>,
    retry_max_secs: Option<u64>,
    lease_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TomlMailboxes {
    Policy(String),
    Names(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlApns {
    environment: Option<String>,
    base_url: Option<String>,
    ca_file: Option<PathBuf>,
    topic: Option<String>,
    key_file_p8: Option<PathBuf>,
    key_id: Option<String>,
    team_id: Option<String>,
    certificate_pem: Option<PathBuf>,
    certificate_key_pem: Option<PathBuf>,
    certificate_p12: Option<PathBuf>,
    certificate_p12_password: Option<zeroize::Zeroizing<String>>,
    request_timeout_secs: Option<u64>,
    max_in_flight: Option<usize>,
    max_attempts: Option<u32>,
    retry_base_millis: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlHttp {
    max_body_bytes: Option<usize>,
    header_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
}

/// xapsd's YAML keys (freswa's `configs/xapsd/xapsd.yaml`); others are ignored, as
/// xapsd ignores them.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct XapsdFile {
    listen_addr: Option<String>,
    port: Option<u16>,
    database_file: Option<PathBuf>,
    delay: Option<u64>,
    check_interval: Option<u64>,
    key_file_p8: Option<PathBuf>,
    key_file_key_id: Option<String>,
    key_file_team_id: Option<String>,
    key_file_topic: Option<String>,
    certificate_file_p12: Option<PathBuf>,
    certificate_file_pem: Option<PathBuf>,
    certificate_file_pem_key: Option<PathBuf>,
}

impl Config {
    /// The embedded default: everything on its default, the store in `database`, the
    /// API's credential beside it.
    pub fn with_database(database: PathBuf) -> Self {
        let credential_file = database
            .parent()
            .unwrap_or(Path::new("."))
            .join(DEFAULT_CREDENTIAL_FILE);
        Self {
            listen: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 11619)),
            basic_auth: None,
            api: Api {
                credential_file,
                open: OpenRoutes::None,
                socket: None,
                tcp: true,
            },
            database: Database::Sqlite(database),
            import_xapsd: None,
            push: Push {
                delay: xaps_proto::DEFAULT_DELAY,
                check_interval: Duration::from_secs(20),
                mailboxes: PushMailboxes::InboxOnly,
                max_age: xaps_proto::registry::DEFAULT_MAX_AGE,
                max_accounts_per_user: xaps_proto::registry::DEFAULT_MAX_ACCOUNTS_PER_USER,
                give_up_after: Duration::from_secs(24 * 3600),
                retry_first: Duration::from_secs(30),
                retry_max: Duration::from_secs(600),
                lease: Duration::from_secs(300),
            },
            apns: Apns {
                server: apns_proto::Environment::Production.into(),
                ca_file: None,
                credentials: None,
                topic: None,
                request_timeout: Duration::from_secs(10),
                max_in_flight: 1000,
                max_attempts: 5,
                retry_base: Duration::from_millis(500),
            },
            http: Http {
                max_body: xaps_proto::daemon::MAX_BODY_LEN,
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(120),
                body_timeout: Duration::from_secs(10),
                max_connections: 1024,
            },
            ox_path: "/ox".to_owned(),
            front: None,
            notes: Vec::new(),
            webpush: WebPush {
                subject: None,
                key_file: None,
                ttl: webpush_crypto::Ttl::from_secs(24 * 3600),
                max_subscriptions: 16,
                ack_lifetime: Duration::from_secs(300),
                forwarded_silence_max: Duration::from_secs(86_400),
                request_timeout: Duration::from_secs(10),
                max_per_origin: 64,
                max_per_origin_http1: 8,
                max_connections: 4096,
                max_attempts: 5,
                retry_base: Duration::from_millis(500),
                max_queued_per_origin: 10_000,
                max_pushes_per_user_per_minute: 60,
                max_hold: Duration::from_secs(300),
                key_pool_size: 4096,
                key_pool_fill_per_second: 2000,
                agreement_pool_size: 10_000,
                ca_file: None,
                allow_local_push_service: false,
                names: None,
            },
        }
    }

    /// Reads a configuration file: xapsd YAML when it ends in `.yaml` or `.yml`,
    /// mailpushd TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // Zeroized: the file may hold passwords (basic_auth, a PostgreSQL URL's).
        let text =
            crate::files::read_secret_text(path, crate::files::CONFIG_MAX).map_err(|source| {
                ConfigError::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Self::from_xapsd_yaml(&text, base).map_err(|e| match e {
                ConfigError::Yaml { message, .. } => ConfigError::Yaml {
                    path: path.to_owned(),
                    message,
                },
                other => other,
            }),
            _ => Self::from_toml(&text, base).map_err(|e| match e {
                ConfigError::Toml { message, .. } => ConfigError::Toml {
                    path: path.to_owned(),
                    message,
                },
                other => other,
            }),
        }?;
        // Whoever may change the file chooses the daemon's keys and routes; whoever may
        // read it, its passwords.
        let exposure = std::fs::metadata(path)
            .and_then(|metadata| crate::files::exposure(path, &metadata))
            .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        let why = if exposure.write {
            Some("with it, the daemon's keys and routes")
        } else if exposure.read && config.holds_passwords() {
            Some("it holds a password (basic_auth, the database URL's or the PKCS#12 file's)")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ConfigError::Exposed {
                path: path.to_owned(),
                source: exposure.error(why),
            });
        }
        Ok(config)
    }

    /// Whether the settings hold a password: `basic_auth`, the database URL's, the
    /// PKCS#12 file's.
    fn holds_passwords(&self) -> bool {
        let database = match &self.database {
            Database::Postgres(url) => url.redacted() != url.expose(),
            Database::Sqlite(_) => false,
        };
        let pkcs12 = matches!(
            &self.apns.credentials,
            Some(Credentials::Pkcs12 { password, .. }) if !password.is_empty()
        );
        self.basic_auth.is_some() || database || pkcs12
    }

    /// Reads mailpushd's TOML; relative paths are taken from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: TomlFile = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: PathBuf::new(),
            message: toml_message(text, &e),
        })?;
        let at = |p: Option<PathBuf>| resolve(p, base);
        let max_connections = file
            .database_max_connections
            .unwrap_or(PostgresUrl::DEFAULT_MAX_CONNECTIONS);
        let mut config = Self::with_database(base.join("mailpushd.sqlite"));
        config.database = match file.database {
            None => config.database,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(PostgresUrl::new(&url, max_connections)?)
            }
            Some(url) => Database::Sqlite(sqlite_path(&url, base)?),
        };
        match file.listen.as_deref() {
            None => {}
            Some("off") => config.api.tcp = false,
            Some(listen) => config.listen = parse_listen(listen)?,
        }
        config.basic_auth = file
            .basic_auth
            .map(|a| BasicAuth::new(&a.user, a.password))
            .transpose()?;
        let api = file.api;
        config.api.credential_file = match (at(api.credential_file), &config.database) {
            (Some(file), _) => file,
            (None, Database::Sqlite(_)) => config.api.credential_file,
            // No store file to put it beside: systemd's StateDirectory.
            (None, Database::Postgres(_)) => {
                PathBuf::from("/var/lib/mailpushd").join(DEFAULT_CREDENTIAL_FILE)
            }
        };
        if let Some(words) = api.open {
            config.api.open = OpenRoutes::from_words(&words)?;
        }
        config.api.socket = match (at(api.socket), api.socket_group, api.socket_mode) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(ConfigError::Invalid(
                    "api.socket_group and api.socket_mode need api.socket".into(),
                ));
            }
            (Some(_), Some(group), _) if group.is_empty() => {
                return Err(ConfigError::Invalid(
                    "api.socket_group is empty: leave it out for the daemon's own group".into(),
                ));
            }
            (Some(path), _, _) if path.as_os_str().len() > UnixSocket::MAX_PATH_LEN => {
                return Err(ConfigError::Invalid(format!(
                    "api.socket is {} octets long: a socket's path may have {} at most",
                    path.as_os_str().len(),
                    UnixSocket::MAX_PATH_LEN
                )));
            }
            (Some(path), group, mode) => Some(UnixSocket {
                path,
                group,
                mode: match mode {
                    None => 0o660,
                    Some(text) => u32::from_str_radix(&text, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| {
                            ConfigError::Invalid(format!(
                                "api.socket_mode must be octal permission bits such as \"0660\", not {text:?}"
                            ))
                        })?,
                },
            }),
        };
        if let Some(socket) = &config.api.socket
            && socket.mode & 0o002 != 0
            && config.api.open != OpenRoutes::All
        {
            return Err(ConfigError::Invalid(format!(
                "api.socket_mode {:04o} lets every local user connect, and the socket asks no credential, so every route would be open to any local user: give the socket a group (api.socket_group) and mode 0660, or say so with api.open = {:?}",
                socket.mode,
                OpenRoutes::ALL_WORDS
            )));
        }
        config.import_xapsd = at(file.import_xapsd);
        if let Some(path) = file.ox_path {
            if !path.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "ox_path must start with '/', not {path:?}"
                )));
            }
            if crate::http::is_fixed_path(&path) {
                return Err(ConfigError::Invalid(format!(
                    "ox_path {path:?} is another route's: choose a path of its own, such as \"/ox\""
                )));
            }
            config.ox_path = path;
        }
        let push = file.push;
        if let Some(s) = push.delay_secs {
            config.push.delay = secs("push.delay_secs", s, ranges::DELAY_SECS)?;
        }
        if let Some(s) = push.check_interval_secs {
            config.push.check_interval =
                secs("push.check_interval_secs", s, ranges::CHECK_INTERVAL_SECS)?;
            config.notes.push(CHECK_INTERVAL_NOTE.into());
        }
        if let Some(days) = push.max_age_days {
            let days = within("push.max_age_days", days, ranges::MAX_AGE_DAYS)?;
            config.push.max_age = Duration::from_secs(days * 86_400);
        }
        if let Some(n) = push.max_accounts_per_user {
            config.push.max_accounts_per_user =
                within("push.max_accounts_per_user", n, ranges::MAX_ACCOUNTS)?;
        }
        if let Some(s) = push.give_up_after_secs {
            config.push.give_up_after = secs("push.give_up_after_secs", s, ranges::GIVE_UP_SECS)?;
        }
        if let Some(s) = push.retry_first_secs {
            config.push.retry_first = secs("push.retry_first_secs", s, ranges::ROUND_SECS)?;
        }
        if let Some(s) = push.retry_max_secs {
            config.push.retry_max = secs("push.retry_max_secs", s, ranges::ROUND_SECS)?;
        }
        if config.push.retry_first > config.push.retry_max {
            return Err(ConfigError::Invalid(format!(
                "push.retry_first_secs ({}) must not exceed push.retry_max_secs ({})",
                config.push.retry_first.as_secs(),
                config.push.retry_max.as_secs()
            )));
        }
        if let Some(s) = push.lease_secs {
            config.push.lease = secs("push.lease_secs", s, ranges::LEASE_SECS)?;
        }
        config.push.mailboxes = match push.mailboxes {
            None => PushMailboxes::InboxOnly,
            Some(TomlMailboxes::Policy(p)) if p == "inbox" => PushMailboxes::InboxOnly,
            Some(TomlMailboxes::Policy(p)) if p == "listed" => PushMailboxes::Listed,
            Some(TomlMailboxes::Policy(p)) => {
                return Err(ConfigError::Invalid(format!(
                    "push.mailboxes must be \"inbox\", \"listed\" or a list of names, not {p:?}"
                )));
            }
            Some(TomlMailboxes::Names(names)) => PushMailboxes::Only(names),
        };
        let apns = file.apns;
        config.apns.server = match (&apns.environment, &apns.base_url) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "set apns.environment or apns.base_url, not both".into(),
                ));
            }
            (Some(env), None) => environment_server(env)?,
            (None, Some(url)) => base_url_server(url)?,
            (None, None) => apns_proto::Environment::Production.into(),
        };
        config.apns.ca_file = at(apns.ca_file);
        config.apns.topic = apns.topic;
        config.apns.credentials = credentials(
            at(apns.key_file_p8),
            apns.key_id,
            apns.team_id,
            at(apns.certificate_pem),
            at(apns.certificate_key_pem),
            at(apns.certificate_p12),
            apns.certificate_p12_password,
        )?;
        if let Some(s) = apns.request_timeout_secs {
            config.apns.request_timeout =
                secs("apns.request_timeout_secs", s, ranges::TIMEOUT_SECS)?;
        }
        if let Some(n) = apns.max_in_flight {
            config.apns.max_in_flight = within("apns.max_in_flight", n, ranges::MAX_IN_FLIGHT)?;
        }
        if let Some(n) = apns.max_attempts {
            config.apns.max_attempts = within("apns.max_attempts", n, ranges::ATTEMPTS)?;
        }
        if let Some(ms) = apns.retry_base_millis {
            config.apns.retry_base =
                millis("apns.retry_base_millis", ms, ranges::RETRY_BASE_MILLIS)?;
        }
        let webpush = file.webpush;
        if let Some(subject) = webpush.subject {
            webpush_crypto::Subject::new(&subject)
                .map_err(|e| ConfigError::Invalid(format!("webpush.subject {subject:?}: {e}")))?;
            config.webpush.subject = Some(subject);
        }
        config.webpush.key_file = at(webpush.key_file);
        config.webpush.ca_file = at(webpush.ca_file);
        if let Some(s) = webpush.ttl_secs {
            let s = u32::try_from(s).map_err(|_| ConfigError::OutOfRange {
                key: "webpush.ttl_secs",
                value: s.to_string(),
                range: format!(
                    "at least {} and at most {}",
                    ranges::TTL_SECS.start(),
                    ranges::TTL_SECS.end()
                ),
            })?;
            config.webpush.ttl =
                webpush_crypto::Ttl::from_secs(within("webpush.ttl_secs", s, ranges::TTL_SECS)?);
        }
        if let Some(n) = webpush.max_subscriptions {
            config.webpush.max_subscriptions =
                within("webpush.max_subscriptions", n, ranges::MAX_SUBSCRIPTIONS)?;
        }
        if let Some(s) = webpush.ack_lifetime_secs {
            config.webpush.ack_lifetime = secs("webpush.ack_lifetime_secs", s, ranges::ACK_SECS)?;
        }
        if let Some(s) = webpush.forwarded_silence_max_secs {
            config.webpush.forwarded_silence_max = secs(
                "webpush.forwarded_silence_max_secs",
                s,
                ranges::FORWARDED_SILENCE_SECS,
            )?;
        }
        if let Some(s) = webpush.request_timeout_secs {
            config.webpush.request_timeout =
                secs("webpush.request_timeout_secs", s, ranges::TIMEOUT_SECS)?;
        }
        if let Some(n) = webpush.max_per_origin {
            config.webpush.max_per_origin =
                within("webpush.max_per_origin", n, ranges::MAX_PER_ORIGIN)?;
        }
        if let Some(n) = webpush.max_queued_per_origin {
            config.webpush.max_queued_per_origin =
                within("webpush.max_queued_per_origin", n, ranges::MAX_QUEUED)?;
        }
        if let Some(n) = webpush.max_pushes_per_user_per_minute {
            config.webpush.max_pushes_per_user_per_minute = within(
                "webpush.max_pushes_per_user_per_minute",
                n,
                ranges::USER_RATE,
            )?;
        }
        if let Some(s) = webpush.max_hold_secs {
            config.webpush.max_hold = secs("webpush.max_hold_secs", s, ranges::HOLD_SECS)?;
        }
        if let Some(n) = webpush.key_pool_size {
            config.webpush.key_pool_size = within("webpush.key_pool_size", n, ranges::KEY_POOL)?;
        }
        if let Some(n) = webpush.key_pool_fill_per_second {
            config.webpush.key_pool_fill_per_second =
                within("webpush.key_pool_fill_per_second", n, ranges::KEY_FILL)?;
        }
        if let Some(n) = webpush.agreement_pool_size {
            config.webpush.agreement_pool_size =
                within("webpush.agreement_pool_size", n, ranges::KEY_POOL)?;
        }
        if let Some(n) = webpush.max_per_origin_http1 {
            config.webpush.max_per_origin_http1 =
                within("webpush.max_per_origin_http1", n, ranges::MAX_PER_ORIGIN)?;
        }
        if let Some(n) = webpush.max_connections {
            config.webpush.max_connections =
                within("webpush.max_connections", n, ranges::HTTP_CONNECTIONS)?;
        }
        if config.webpush.max_per_origin_http1 > config.webpush.max_per_origin {
            return Err(ConfigError::Invalid(format!(
                "webpush.max_per_origin_http1 ({}) must not exceed webpush.max_per_origin ({})",
                config.webpush.max_per_origin_http1, config.webpush.max_per_origin
            )));
        }
        if let Some(n) = webpush.max_attempts {
            config.webpush.max_attempts = within("webpush.max_attempts", n, ranges::ATTEMPTS)?;
        }
        if let Some(ms) = webpush.retry_base_millis {
            config.webpush.retry_base =
                millis("webpush.retry_base_millis", ms, ranges::RETRY_BASE_MILLIS)?;
        }
        config.webpush.allow_local_push_service = webpush.allow_local_push_service.unwrap_or(false);
        config.front = file.front.map(|f| front(f, base)).transpose()?;
        let http = file.http;
        if let Some(n) = http.max_body_bytes {
            config.http.max_body = within("http.max_body_bytes", n, ranges::MAX_BODY_BYTES)?;
        }
        if let Some(s) = http.header_timeout_secs {
            config.http.header_timeout = secs("http.header_timeout_secs", s, ranges::TIMEOUT_SECS)?;
        }
        if let Some(s) = http.idle_timeout_secs {
            config.http.idle_timeout = secs("http.idle_timeout_secs", s, ranges::IDLE_SECS)?;
        }
        if let Some(s) = http.body_timeout_secs {
            config.http.body_timeout = secs("http.body_timeout_secs", s, ranges::TIMEOUT_SECS)?;
        }
        if let Some(n) = http.max_connections {
            config.http.max_connections =
                within("http.max_connections", n, ranges::HTTP_CONNECTIONS)?;
        }
        config.check_lease()?;
        config.check_open_reach()?;
        Ok(config)
    }

    /// A round of attempts ends with its lease ([`crate::retry::Deadline`]): the lease
    /// must hold at least one request and the time to report its end, or no push is
    /// ever sent.
    fn check_lease(&self) -> Result<(), ConfigError> {
        let lease = self.push.lease;
        let apns = ("apns.request_timeout_secs", self.apns.request_timeout);
        // Web Push sends only with a subject.
        let webpush = self
            .webpush
            .subject
            .is_some()
            .then_some(("webpush.request_timeout_secs", self.webpush.request_timeout));
        for (key, timeout) in std::iter::once(apns).chain(webpush) {
            let least = timeout.saturating_add(crate::retry::LEASE_MARGIN);
            if lease < least {
                return Err(ConfigError::Invalid(format!(
                    "push.lease_secs ({}) must be at least {key} ({}) plus {} s to report a push's end: no push could be sent in it",
                    lease.as_secs(),
                    timeout.as_secs(),
                    crate::retry::LEASE_MARGIN.as_secs()
                )));
            }
        }
        Ok(())
    }

    /// Reads an xapsd YAML configuration. Its `databaseFile` (xapsd's JSON database) is
    /// imported into an SQLite store beside it on first start; the JSON file itself is
    /// left as it is, so going back to xapsd stays possible.
    pub fn from_xapsd_yaml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: XapsdFile = serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let at = |p: Option<PathBuf>| resolve(p, base);
        let json =
            at(file.database_file).unwrap_or_else(|| PathBuf::from("/var/lib/xapsd/database.json"));
        let mut sqlite = json.clone().into_os_string();
        sqlite.push(".mailpushd.sqlite");
        let mut config = Self::with_database(PathBuf::from(sqlite));
        config.import_xapsd = Some(json);
        // xapsd's plugin sends no credential: its routes stay as open as xapsd had them.
        config.api.open = OpenRoutes::Xapsd;
        let host = file.listen_addr.unwrap_or_else(|| "[::1]".to_owned());
        let port = file.port.unwrap_or(11619);
        config.listen = parse_listen(&format!("{host}:{port}"))?;
        if let Some(s) = file.delay {
            config.push.delay = secs("delay", s, ranges::DELAY_SECS)?;
        }
        if let Some(s) = file.check_interval {
            config.push.check_interval = secs("checkInterval", s, ranges::CHECK_INTERVAL_SECS)?;
            config.notes.push(CHECK_INTERVAL_NOTE.into());
        }
        config.apns.topic = file.key_file_topic.filter(|t| !t.is_empty());
        config.apns.credentials = credentials(
            at(file.key_file_p8),
            file.key_file_key_id,
            file.key_file_team_id,
            at(file.certificate_file_pem),
            at(file.certificate_file_pem_key),
            at(file.certificate_file_p12),
            None,
        )?;
        config.check_open_reach()?;
        Ok(config)
    }

    /// Routes open without the credential are open "to any local user": refused when
    /// the API listens where other machines reach it.
    fn check_open_reach(&self) -> Result<(), ConfigError> {
        let loopback = self.listen.ip().to_canonical().is_loopback();
        if self.api.open != OpenRoutes::None && self.api.tcp && !loopback {
            return Err(ConfigError::Invalid(format!(
                "routes are open without the credential (api.open, or an xapsd file, whose plugin sends none), and the API listens on {}, which other machines can reach: listen on loopback (127.0.0.1 or [::1]), or leave the routes closed",
                self.listen
            )));
        }
        Ok(())
    }
}

/// The parser's words and the line they are about, without the line itself: the
/// parser's own text quotes it, and a password may be on it.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    // serde names the value it did not expect: `invalid type: integer `123456`,
    // expected a string`. Its kind stays, the value goes.
    let message = match ["invalid type: ", "invalid value: "]
        .into_iter()
        .find(|prefix| message.starts_with(prefix))
    {
        Some(prefix) => {
            let rest = message.get(prefix.len()..).unwrap_or_default();
            let kind = rest.split(' ').next().unwrap_or_default();
            let expected = rest.find(", expected").and_then(|i| rest.get(i..));
            format!("{prefix}{kind} (not shown){}", expected.unwrap_or_default())
        }
        None => message.to_owned(),
    };
    match error.span() {
        Some(span) => {
            // An error at the end of a file that ends in a line feed is on its last line.
            let at = span.start.min(text.len().saturating_sub(1));
            let line = text.bytes().take(at).filter(|b| *b == b'\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// A path from a file, relative to the file's folder; an empty value (xapsd's template
/// leaves unused ones `''`) is no path.
fn resolve(path: Option<PathBuf>, base: &Path) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
        .map(|p| if p.is_absolute() { p } else { base.join(p) })
}

/// The credentials the keys name, at most one kind. Empty ids count as absent.
#[allow(clippy::too_many_arguments)] // one per key of both file formats
fn credentials(
    p8: Option<PathBuf>,
    key_id: Option<String>,
    team_id: Option<String>,
    pem: Option<PathBuf>,
    pem_key: Option<PathBuf>,
    p12: Option<PathBuf>,
    p12_password: Option<zeroize::Zeroizing<String>>,
) -> Result<Option<Credentials>, ConfigError> {
    let text = |t: Option<String>| t.filter(|t| !t.is_empty());
    let (key_id, team_id) = (text(key_id), text(team_id));
    let kinds = [p8.is_some(), pem.is_some(), p12.is_some()]
        .iter()
        .filter(|&&k| k)
        .count();
    if kinds > 1 {
        return Err(ConfigError::Invalid(
            "give one kind of APNs credentials: a .p8 key, a PEM certificate, or a PKCS#12 file"
                .into(),
        ));
    }
    if let Some(key_file) = p8 {
        let (Some(key_id), Some(team_id)) = (key_id, team_id) else {
            return Err(ConfigError::Invalid(
                "a .p8 key needs its key id and team id".into(),
            ));
        };
        return Ok(Some(Credentials::Token {
            key_file,
            key_id,
            team_id,
        }));
    }
    if let Some(certificate) = pem {
        let key = pem_key.ok_or_else(|| {
            ConfigError::Invalid("a PEM certificate needs its private key file".into())
        })?;
        return Ok(Some(Credentials::Pem { certificate, key }));
    }
    if let Some(file) = p12 {
        return Ok(Some(Credentials::Pkcs12 {
            file,
            password: p12_password.unwrap_or_default(),
        }));
    }
    Ok(None)
}

/// `host:port`, `[v6]:port`, or a bare `[v6]`/host with the default port.
fn parse_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse::<SocketAddr>().map_err(|_| {
        ConfigError::Invalid(format!(
            "listen must be an address and port such as [::1]:11619 or 127.0.0.1:11619, or \"off\", not {text:?}"
        ))
    })
}

/// `sqlite:PATH`, `sqlite://PATH` or a plain path.
fn sqlite_path(url: &str, base: &Path) -> Result<PathBuf, ConfigError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
        return Err(ConfigError::Invalid(format!(
            "database must be an SQLite file (sqlite:PATH) or a PostgreSQL URL (postgres://…), not {}",
            redact(url)
        )));
    }
    let path = PathBuf::from(path);
    Ok(if path.is_absolute() {
        path
    } else {
        base.join(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// freswa's xapsd.yaml, with a token configured.
    const XAPSD_YAML: &str = "\
loglevel: info
listenAddr: '127.0.0.1'
port: 11619
databaseFile: /var/lib/xapsd/database.json
delay: 30
checkInterval: 20
keyFileP8: 'AuthKey_ABCDE12345.p8'
keyFileKeyId: 'ABCDE12345'
keyFileTeamId: 'TEAM123456'
keyFileTopic: 'com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6'
certificateFileP12: ''
certificateFilePem: ''
certificateFilePemKey: ''
tlsCertfile: ''
tlsKeyfile: ''
tlsListenAddr: ''
tlsPort: 11620
";

    #[test]
    fn xapsd_yaml() {
        let config = Config::from_xapsd_yaml(XAPSD_YAML, Path::new("/etc/xapsd")).unwrap();
        // Its routes open, as xapsd had them: refused where other machines reach them.
        let open = XAPSD_YAML.replace("listenAddr: '127.0.0.1'", "listenAddr: '0.0.0.0'");
        let refused = Config::from_xapsd_yaml(&open, Path::new("/etc/xapsd"));
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("listen on loopback")),
            "an xapsd file listening on 0.0.0.0 was taken"
        );
        assert_eq!(config.listen, "127.0.0.1:11619".parse().unwrap());
        assert_eq!(
            config.database,
            Database::Sqlite("/var/lib/xapsd/database.json.mailpushd.sqlite".into())
        );
        assert_eq!(
            config.import_xapsd,
            Some(PathBuf::from("/var/lib/xapsd/database.json"))
        );
        assert_eq!(config.push.delay, Duration::from_secs(30));
        assert_eq!(config.push.check_interval, Duration::from_secs(20));
        let Some(Credentials::Token {
            key_file,
            key_id,
            team_id,
        }) = config.apns.credentials
        else {
            panic!("{:?}", config.apns.credentials)
        };
        assert_eq!(key_file, PathBuf::from("/etc/xapsd/AuthKey_ABCDE12345.p8"));
        assert_eq!(
            (key_id.as_str(), team_id.as_str()),
            ("ABCDE12345", "TEAM123456")
        );
        assert!(
            config
                .apns
                .topic
                .unwrap()
                .starts_with("com.apple.mail.XServer.")
        );
        // Its defaults: [::1], port 11619.
        let config = Config::from_xapsd_yaml("delay: 5\n", Path::new("/")).unwrap();
        assert_eq!(config.listen, "[::1]:11619".parse().unwrap());
        assert!(config.apns.credentials.is_none());
    }

    #[test]
    fn toml() {
        let config = Config::from_toml(
            r#"
listen = "127.0.0.1:11700"
database = "sqlite:data/push.sqlite"
basic_auth = { user = "dovecot", password = "s3cret" }
[push]
delay_secs = 5
mailboxes = ["INBOX", "Work"]
[apns]
base_url = "https://127.0.0.1:8443"
certificate_pem = "cert.pem"
certificate_key_pem = "key.pem"
"#,
            Path::new("/etc/mailpushd"),
        )
        .unwrap();
        assert_eq!(config.listen.port(), 11700);
        assert_eq!(
            config.database,
            Database::Sqlite("/etc/mailpushd/data/push.sqlite".into())
        );
        assert_eq!(config.apns.server.authority(), "127.0.0.1:8443");
        assert!(matches!(
            config.apns.credentials,
            Some(Credentials::Pem { .. })
        ));
        assert!(!format!("{:?}", config.basic_auth).contains("s3cret"));
        assert_eq!(
            config.push.mailboxes,
            PushMailboxes::Only(vec!["INBOX".into(), "Work".into()])
        );
        // The embedded default.
        let config = Config::from_toml("", Path::new("/var/lib/mailpushd")).unwrap();
        assert_eq!(config.listen, "[::1]:11619".parse().unwrap());
        assert_eq!(config.push.mailboxes, PushMailboxes::InboxOnly);
    }

    /// The example shipped beside the daemon is a valid configuration.
    #[test]
    fn the_shipped_example_reads() {
        let text = include_str!("../contrib/mailpushd.toml");
        let config = Config::from_toml(text, Path::new("/etc/mailpushd")).unwrap();
        assert_eq!(
            config.database,
            Database::Sqlite("/var/lib/mailpushd/mailpushd.sqlite".into())
        );
        assert!(config.apns.credentials.is_none());
        assert!(config.notes.is_empty(), "{:?}", config.notes);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let refuse = |text: &str| match Config::from_toml(text, Path::new("/")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text} was accepted"),
        };
        assert!(refuse("lisen = \"x\"").contains("unknown field"));
        assert!(refuse("listen = \"localhost\"").contains("listen must be"));
        assert!(refuse("[apns]\nenvironment = \"test\"").contains("production"));
        assert!(refuse("[apns]\nbase_url = \"http://x\"").contains("https://host"));
        assert!(refuse("[apns]\nkey_file_p8 = \"k.p8\"").contains("key id"));
        assert!(
            refuse("[apns]\nkey_file_p8 = \"k.p8\"\nkey_id=\"a\"\nteam_id=\"b\"\ncertificate_p12 = \"c.p12\"")
                .contains("one kind")
        );
        assert!(refuse("[push]\nmailboxes = \"junk\"").contains("inbox"));
        assert!(refuse("database = \"mysql://x/y\"").contains("PostgreSQL URL"));
        assert!(refuse("database = \"postgres://x:y:z/\"").contains("database"));
        assert!(
            refuse("database = \"postgres://x/y\"\ndatabase_max_connections = 0")
                .contains("at least 1")
        );
    }

    #[test]
    fn a_configuration_path_naming_an_endless_file_is_refused_not_read_whole() {
        let refused = Config::load(Path::new("/dev/zero"))
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("larger than 1048576 octets")),
            "{refused:?}"
        );
    }

    /// A file with a password in it that every user may read is refused; one without
    /// a password, or in a folder only its owner enters, is read.
    #[test]
    fn a_password_every_user_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        // In the system's temporary folder, which lets everyone through.
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        mode(dir.path(), 0o755);
        let file = dir.path().join("mailpushd.toml");
        for (text, secret) in [
            (
                "basic_auth = { user = \"dovecot\", password = \"s3cret\" }\n",
                true,
            ),
            ("database = \"postgres://u:pw@db/mail\"\n", true),
            ("database = \"postgres://u@db/mail?password=pw\"\n", true),
            ("database = \"postgres://u@db/mail\"\n", false),
            ("[push]\nmailboxes = \"inbox\"\n", false),
        ] {
            std::fs::write(&file, text).unwrap();
            mode(&file, 0o644);
            let loaded = Config::load(&file);
            if secret {
                let error = loaded.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(
                    error.contains("mode 644") && error.contains("chmod o-rwx"),
                    "{text}: {error}"
                );
                mode(&file, 0o640);
                assert!(Config::load(&file).is_ok(), "{text}");
                mode(&file, 0o644);
                mode(dir.path(), 0o750);
                assert!(Config::load(&file).is_ok(), "{text}");
                mode(dir.path(), 0o755);
            } else {
                assert!(loaded.is_ok(), "{text}");
            }
        }
        // One every user may change, password or not: its keys and routes are theirs.
        std::fs::write(&file, "[push]\nmailboxes = \"inbox\"\n").unwrap();
        mode(&file, 0o646);
        let error = Config::load(&file)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("change it (mode 646"), "{error}");
    }

    #[test]
    fn a_toml_mistake_is_told_by_its_line_without_quoting_it() {
        let listen = "listen = \"[::1]:11619\"\n";
        for (text, said) in [
            (
                "basic_auth = { user = \"d\", password = \"s3cret\" x }\n",
                "line 2: ",
            ),
            ("database = \"postgres://m:s3cret@db/m\" x\n", "line 2: "),
            (
                "basic_auth = { user = \"d\", password = 3123456 }\n",
                "line 2: invalid type: integer (not shown), expected a string",
            ),
            (
                "basic_auth = \"d:s3cret\"\n",
                "line 2: invalid type: string (not shown), expected struct",
            ),
        ] {
            let message = Config::from_toml(&format!("{listen}{text}"), Path::new("/"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains(said), "{text}: {message}");
            assert!(
                !message.contains("s3cret") && !message.contains("123456"),
                "{message}"
            );
        }
    }

    /// The `[front]` section: every setting read, paths beside the file, and each
    /// mistake refused with its key.
    #[test]
    fn the_front_section() {
        let config = Config::from_toml(
            "[front]\nimplicit_tls = \"[::]:993\"\nstarttls = \"0.0.0.0:143\"\n\
             backend = \"127.0.0.1:10143\"\nuser_map = \"add-domain Example.org\"\n\
             unreadable_mechanisms = \"hide\"\nmax_sessions = 5\nlogin_timeout_secs = 30\n\
             max_unauthenticated_per_address = 3\n\
             [[front.certificates]]\nnames = [\"IMAP.example.org\"]\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n",
            Path::new("/etc/mailpushd"),
        )
        .unwrap();
        let front = config.front.unwrap();
        assert_eq!(front.implicit_tls, Some("[::]:993".parse().unwrap()));
        assert_eq!(front.backend, "127.0.0.1:10143");
        assert_eq!(front.user_map, UserMap::AddDomain("example.org".into()));
        assert!(front.hide_unreadable_mechanisms && front.proxy_protocol);
        assert_eq!(front.max_sessions, 5);
        assert_eq!(front.max_unauthenticated_per_address, 3);
        assert_eq!(front.login_timeout, Duration::from_secs(30));
        assert_eq!(front.certificates[0].names, ["imap.example.org"]);
        assert_eq!(
            front.certificates[0].cert_file,
            Path::new("/etc/mailpushd/c.pem")
        );
        assert_eq!(front.certificates[0].key_file, Path::new("/k.pem"));
        let default = Config::from_toml("", Path::new("/")).unwrap();
        assert!(default.front.is_none() && default.api.tcp);
        // A process that runs only the front: no API on TCP.
        let off = Config::from_toml("listen = \"off\"", Path::new("/")).unwrap();
        assert!(!off.api.tcp);
        let cert = "[[front.certificates]]\ncert_file = \"c\"\nkey_file = \"k\"\n";
        for (text, said) in [
            ("[front]\nbackend = \"h:1\"\n".to_owned() + cert, "needs a listener"),
            ("[front]\nimplicit_tls = \"[::]:993\"\nbackend = \"h:1\"\n".to_owned(), "needs a certificate"),
            ("[front]\nplain = \"127.0.0.1:1143\"\nbackend = \"h\"\n".to_owned(), "front.backend must be host:port"),
            ("[front]\nplain = \"x\"\nbackend = \"h:1\"\n".to_owned(), "front.plain must be"),
            ("[front]\nplain = \"127.0.0.1:1\"\nbackend = \"h:1\"\nuser_map = \"upper\"\n".to_owned(), "front.user_map"),
            ("[front]\nplain = \"127.0.0.1:1\"\nbackend = \"h:1\"\nunreadable_mechanisms = \"drop\"\n".to_owned(), "front.unreadable_mechanisms"),
            ("[front]\nplain = \"127.0.0.1:1\"\nbackend = \"h:1\"\nbackend_ca_file = \"ca.pem\"\n".to_owned(), "backend_tls_name"),
            ("[front]\nplain = \"127.0.0.1:1\"\nbackend = \"h:1\"\nmax_line_bytes = 10\n".to_owned(), "front.max_line_bytes = 10"),
            ("[front]\nplain = \"127.0.0.1:1\"\nbackend = \"h:1\"\nlogin_timeout_secs = 0\n".to_owned(), "front.login_timeout_secs = 0"),
            ("[front]\nplain = \"127.0.0.1:1\"\nbackend = \"h:1\"\nmax_unauthenticated_per_address = 0\n".to_owned(), "front.max_unauthenticated_per_address = 0"),
            ("[api]\nsocket = \"/run/m.sock\"\nsocket_group = \"\"\n".to_owned(), "api.socket_group is empty"),
            (format!("[api]\nsocket = \"/run/{}.sock\"\n", "m".repeat(94)), "api.socket is 104 octets long: a socket's path may have 103 at most"),
            // A socket every local user may open, routes opened to the network, and an
            // OX path that is another route's.
            ("[api]\nsocket = \"/run/m.sock\"\nsocket_mode = \"0666\"\n".to_owned(), "api.socket_mode 0666 lets every local user connect"),
            ("listen = \"0.0.0.0:11619\"\n[api]\nopen = \"every route, to any local user\"\n".to_owned(), "listens on 0.0.0.0:11619, which other machines can reach"),
            ("ox_path = \"/register\"\n".to_owned(), "ox_path \"/register\" is another route's"),
        ] {
            let refused = Config::from_toml(&text, Path::new("/"));
            let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(said), "{text}: {message}");
        }
    }

    /// A value out of range is refused with its key, never clamped into range.
    #[test]
    fn values_out_of_range_are_refused_by_key() {
        let refuse = |text: &str| match Config::from_toml(text, Path::new("/")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text} was accepted"),
        };
        for (text, key) in [
            (
                "[apns]\nrequest_timeout_secs = 0",
                "apns.request_timeout_secs = 0",
            ),
            ("[apns]\nmax_attempts = 0", "apns.max_attempts = 0"),
            ("[apns]\nmax_in_flight = 0", "apns.max_in_flight = 0"),
            (
                "[apns]\nretry_base_millis = 0",
                "apns.retry_base_millis = 0",
            ),
            (
                "[push]\ndelay_secs = 99999999999",
                "push.delay_secs = 99999999999",
            ),
            (
                "[push]\nmax_age_days = 18446744073709551615",
                "push.max_age_days",
            ),
            (
                "[push]\ncheck_interval_secs = 0",
                "push.check_interval_secs = 0",
            ),
            (
                "[webpush]\nttl_secs = 99999999999",
                "webpush.ttl_secs = 99999999999",
            ),
            (
                "[webpush]\nmax_per_origin = 0",
                "webpush.max_per_origin = 0",
            ),
            (
                "[webpush]\nmax_per_origin_http1 = 0",
                "webpush.max_per_origin_http1 = 0",
            ),
            (
                "[webpush]\nmax_subscriptions = 0",
                "webpush.max_subscriptions = 0",
            ),
            (
                "[webpush]\nmax_queued_per_origin = 99",
                "webpush.max_queued_per_origin = 99",
            ),
            (
                "[webpush]\nmax_pushes_per_user_per_minute = 0",
                "webpush.max_pushes_per_user_per_minute = 0",
            ),
            (
                "[webpush]\nmax_hold_secs = 86400",
                "webpush.max_hold_secs = 86400",
            ),
            (
                "[webpush]\nforwarded_silence_max_secs = 0",
                "webpush.forwarded_silence_max_secs = 0",
            ),
            (
                "[webpush]\nkey_pool_size = 2000000",
                "webpush.key_pool_size = 2000000",
            ),
            (
                "[webpush]\nagreement_pool_size = 1000001",
                "webpush.agreement_pool_size = 1000001",
            ),
            (
                "[webpush]\nkey_pool_fill_per_second = 0",
                "webpush.key_pool_fill_per_second = 0",
            ),
            (
                "[http]\nheader_timeout_secs = 0",
                "http.header_timeout_secs = 0",
            ),
            ("[http]\nmax_body_bytes = 10", "http.max_body_bytes = 10"),
            ("[http]\nmax_connections = 0", "http.max_connections = 0"),
        ] {
            let said = refuse(text);
            assert!(
                said.contains(key) && said.contains("out of range"),
                "{text}: {said}"
            );
        }
        assert!(
            refuse("[webpush]\nmax_per_origin = 4\nmax_per_origin_http1 = 8")
                .contains("must not exceed")
        );
        // A first wait above the longest would be cut to it, not doubled from it.
        assert!(
            refuse("[push]\nretry_first_secs = 700")
                .contains("push.retry_first_secs (700) must not exceed push.retry_max_secs (600)")
        );
        let both = "[push]\nretry_first_secs = 700\nretry_max_secs = 700";
        assert!(Config::from_toml(both, Path::new("/")).is_ok());
        // An xapsd file too.
        let e = Config::from_xapsd_yaml("delay: 99999999999\n", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("delay = 99999999999"), "{e}");
        // In range: taken as given.
        let config = Config::from_toml(
            "[apns]\nrequest_timeout_secs = 300\n[push]\nlease_secs = 305",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(config.apns.request_timeout, Duration::from_secs(300));
        // A lease too short for one request and its report.
        let e = Config::from_toml(
            "[webpush]\nsubject = \"mailto:postmaster@mail.example\"\nrequest_timeout_secs = 300\n[push]\nlease_secs = 304",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "push.lease_secs (304) must be at least webpush.request_timeout_secs (300) plus 5 s"
            ),
            "{e}"
        );
        // Without a subject, Web Push sends nothing: its timeout is not held to the lease.
        assert!(Config::from_toml("[webpush]\nrequest_timeout_secs = 300", Path::new("/")).is_ok());
        let e =
            Config::from_toml("[apns]\nrequest_timeout_secs = 300", Path::new("/")).unwrap_err();
        assert!(
            e.to_string().contains("apns.request_timeout_secs (300)"),
            "{e}"
        );
        assert!(config.notes.is_empty());
        let config = Config::from_toml("[push]\ncheck_interval_secs = 5", Path::new("/")).unwrap();
        assert_eq!(config.notes.len(), 1, "said at start, not silently ignored");
    }

    #[test]
    fn the_pkcs12_password_is_never_shown() {
        let config = Config::from_toml(
            "[apns]\ncertificate_p12 = \"c.p12\"\ncertificate_p12_password = \"s3cret\"",
            Path::new("/etc/mailpushd"),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            debug.contains("c.p12") && debug.contains("<redacted>") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn postgres_url_is_read_and_its_password_never_shown() {
        let config = Config::from_toml(
            "database = \"postgres://push:s3cret@db.example:5433/mail?sslmode=require&password=other\"\ndatabase_max_connections = 4",
            Path::new("/etc/mailpushd"),
        )
        .unwrap();
        let Database::Postgres(url) = &config.database else {
            panic!("not PostgreSQL: {:?}", config.database);
        };
        assert_eq!(url.max_connections(), 4);
        assert!(url.expose().contains("s3cret"));
        assert_eq!(
            url.redacted(),
            "postgres://push:<redacted>@db.example:5433/mail?sslmode=require&password=<redacted>"
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("other"),
            "{debug}"
        );
        assert_eq!(
            redact("postgresql://push@/mail?host=/run/postgresql"),
            "postgresql://push@/mail?host=/run/postgresql"
        );
        // A password with an unencoded `/` or `@`: hidden all the same.
        assert_eq!(
            redact("postgres://u:pa/ss@h/db"),
            "postgres://u:<redacted>@h/db"
        );
        assert_eq!(
            redact("postgres://u:p@ss@h:5/db?x=1"),
            "postgres://u:<redacted>@h:5/db?x=1"
        );
        assert_eq!(redact("postgres://h/db?x=a@b"), "postgres://h/db?x=a@b");
        // Refused, without the URL in the message (before, it went through the
        // redaction above, which took `ss@h` for the host).
        let e = PostgresUrl::new("postgres://u:pa/ss@h/db", 4)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pa/ss"), "{e}");
    }
}

/// The IMAP front.
#[derive(Debug, Clone)]
pub struct Front {
    /// Where IMAP clients connect with TLS from the first octet (port 993).
    pub implicit_tls: Option<SocketAddr>,
    /// Where they connect in plain text and must say `STARTTLS` (port 143).
    pub starttls: Option<SocketAddr>,
    /// Where they connect in plain text and stay so: for loopback and trusted
    /// networks only (a webmail on the same host, a TLS terminator in front).
    pub plain: Option<SocketAddr>,
    /// The certificates and keys, by the server names they serve (SNI); the first
    /// without names serves a client that names none or another.
    pub certificates: Vec<FrontCertificate>,
    /// The IMAP server, `host:port`.
    pub backend: String,
    /// TLS to the IMAP server, with the name to verify and an extra CA to trust;
    /// `None` for plain text (on loopback).
    pub backend_tls: Option<BackendTls>,
    /// Whether the IMAP server is sent a PROXY protocol v2 header first (Dovecot:
    /// `haproxy = yes` on its listener).
    pub proxy_protocol: bool,
    /// How the name a client logs in with becomes the name the event source uses.
    pub user_map: UserMap,
    /// Whether SASL mechanisms whose user name the front cannot read are offered
    /// (without the push extensions), or taken out of the capability list.
    pub hide_unreadable_mechanisms: bool,
    /// Sessions at once at most; beyond, the next waits to be accepted.
    pub max_sessions: usize,
    /// Connections one client address (an IPv6 one's /64) may open a minute.
    pub max_connects_per_address_per_minute: u32,
    /// Sessions one client address (an IPv6 one's /64) may have open at once before
    /// the server accepted a login on them; beyond, the next is closed.
    pub max_unauthenticated_per_address: u32,
    /// The longest text of a line (literals aside) a client may send, and the most
    /// held of a server's line.
    pub max_line: usize,
    /// How long a session may go on before the server accepted a login: then the
    /// front ends it.
    pub login_timeout: Duration,
}

/// A certificate chain and its key, for some server names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontCertificate {
    /// The names (SNI) it serves; none: the default.
    pub names: Vec<String>,
    /// The chain, PEM.
    pub cert_file: PathBuf,
    /// The private key, PEM.
    pub key_file: PathBuf,
}

/// TLS to the IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTls {
    /// The name its certificate must carry.
    pub server_name: String,
    /// A CA to trust beside the platform's.
    pub ca_file: Option<PathBuf>,
}

/// How a login name becomes the name the event source (Dovecot's `%u`) uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMap {
    /// As it is (its ASCII letters in lower case, as in every user name).
    AsIs,
    /// The part before `@`.
    LocalPart,
    /// With `@domain` added when it has no domain.
    AddDomain(String),
}

impl UserMap {
    /// The user name `login` maps to; `None` for one that is not a user name.
    pub fn apply(&self, login: &str) -> Option<xaps_proto::UserName> {
        // No name is no user, whatever a domain would make of it.
        if login.is_empty() {
            return None;
        }
        let mapped = match self {
            UserMap::AsIs => std::borrow::Cow::Borrowed(login),
            UserMap::LocalPart => {
                std::borrow::Cow::Borrowed(login.split_once('@').map_or(login, |(local, _)| local))
            }
            UserMap::AddDomain(domain) if !login.contains('@') => {
                std::borrow::Cow::Owned(format!("{login}@{domain}"))
            }
            UserMap::AddDomain(_) => std::borrow::Cow::Borrowed(login),
        };
        xaps_proto::UserName::new(&mapped).ok()
    }

    fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "as-is" => Ok(Self::AsIs),
            "local-part" => Ok(Self::LocalPart),
            other => match other.strip_prefix("add-domain ") {
                Some(domain)
                    if !domain.is_empty() && !domain.contains(['@', ' ']) && domain.is_ascii() =>
                {
                    Ok(Self::AddDomain(domain.to_ascii_lowercase()))
                }
                _ => Err(ConfigError::Invalid(format!(
                    "front.user_map must be \"as-is\", \"local-part\" or \"add-domain example.org\", not {other:?}"
                ))),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFront {
    implicit_tls: Option<String>,
    starttls: Option<String>,
    plain: Option<String>,
    #[serde(default)]
    certificates: Vec<TomlCertificate>,
    backend: String,
    backend_tls_name: Option<String>,
    backend_ca_file: Option<PathBuf>,
    proxy_protocol: Option<bool>,
    user_map: Option<String>,
    unreadable_mechanisms: Option<String>,
    max_sessions: Option<usize>,
    max_connects_per_address_per_minute: Option<u32>,
    max_unauthenticated_per_address: Option<u32>,
    max_line_bytes: Option<usize>,
    login_timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlCertificate {
    #[serde(default)]
    names: Vec<String>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// The `[front]` section, checked.
fn front(file: TomlFront, base: &Path) -> Result<Front, ConfigError> {
    let address = |key: &str, text: &str| {
        text.parse::<SocketAddr>().map_err(|_| {
            ConfigError::Invalid(format!(
                "front.{key} must be an address and port such as [::]:993, not {text:?}"
            ))
        })
    };
    let implicit_tls = file
        .implicit_tls
        .as_deref()
        .map(|t| address("implicit_tls", t))
        .transpose()?;
    let starttls = file
        .starttls
        .as_deref()
        .map(|t| address("starttls", t))
        .transpose()?;
    let plain = file
        .plain
        .as_deref()
        .map(|t| address("plain", t))
        .transpose()?;
    if implicit_tls.is_none() && starttls.is_none() && plain.is_none() {
        return Err(ConfigError::Invalid(
            "[front] needs a listener: implicit_tls (993), starttls (143), or plain".into(),
        ));
    }
    if file.certificates.is_empty() && (implicit_tls.is_some() || starttls.is_some()) {
        return Err(ConfigError::Invalid(
            "[front] needs a certificate: [[front.certificates]] with cert_file and key_file"
                .into(),
        ));
    }
    let certificates = file
        .certificates
        .into_iter()
        .map(|c| FrontCertificate {
            names: c.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            cert_file: if c.cert_file.is_absolute() {
                c.cert_file
            } else {
                base.join(c.cert_file)
            },
            key_file: if c.key_file.is_absolute() {
                c.key_file
            } else {
                base.join(c.key_file)
            },
        })
        .collect();
    if file
        .backend
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(ConfigError::Invalid(format!(
            "front.backend must be host:port, such as 127.0.0.1:10143, not {:?}",
            file.backend
        )));
    }
    let backend_tls = match (file.backend_tls_name, file.backend_ca_file) {
        (Some(server_name), ca_file) => Some(BackendTls {
            server_name,
            ca_file: resolve(ca_file, base),
        }),
        (None, Some(_)) => {
            return Err(ConfigError::Invalid(
                "front.backend_ca_file needs front.backend_tls_name, the name to verify".into(),
            ));
        }
        (None, None) => None,
    };
    let hide_unreadable_mechanisms = match file.unreadable_mechanisms.as_deref() {
        None | Some("offer") => false,
        Some("hide") => true,
        Some(other) => {
            return Err(ConfigError::Invalid(format!(
                "front.unreadable_mechanisms must be \"offer\" or \"hide\", not {other:?}"
            )));
        }
    };
    Ok(Front {
        implicit_tls,
        starttls,
        plain,
        certificates,
        backend: file.backend,
        backend_tls,
        proxy_protocol: file.proxy_protocol.unwrap_or(true),
        user_map: file
            .user_map
            .as_deref()
            .map_or(Ok(UserMap::AsIs), UserMap::parse)?,
        hide_unreadable_mechanisms,
        max_sessions: file.max_sessions.map_or(Ok(10_000), |n| {
            within("front.max_sessions", n, ranges::FRONT_SESSIONS)
        })?,
        max_connects_per_address_per_minute: file.max_connects_per_address_per_minute.map_or(
            Ok(120),
            |n| {
                within(
                    "front.max_connects_per_address_per_minute",
                    n,
                    ranges::CONNECTS_PER_MINUTE,
                )
            },
        )?,
        max_unauthenticated_per_address: file.max_unauthenticated_per_address.map_or(
            Ok(32),
            |n| {
                within(
                    "front.max_unauthenticated_per_address",
                    n,
                    ranges::UNAUTHENTICATED,
                )
            },
        )?,
        max_line: file.max_line_bytes.map_or(Ok(64 * 1024), |n| {
            within("front.max_line_bytes", n, ranges::FRONT_LINE)
        })?,
        login_timeout: Duration::from_secs(file.login_timeout_secs.map_or(Ok(180), |n| {
            within("front.login_timeout_secs", n, ranges::LOGIN_TIMEOUT_SECS)
        })?),
    })
}
