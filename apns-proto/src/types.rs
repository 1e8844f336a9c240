//! The validated values of a request: device token, topic, ids, push type, priority,
//! expiration.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::error::RequestError;

/// A device token: even-length hex (64 digits today), kept as received (xapsd keeps
/// the case the device sent, and an exported database must read back the same) and
/// compared, hashed and ordered without regard to case. The one type for a token, from
/// the device's `XAPPLEPUSHSERVICE` (in `xaps-proto`) to the request path here.
#[derive(Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// The shortest and longest tokens accepted, in hex digits. Apple's tokens are 32
    /// octets, but Apple says their length may change, so a range is accepted.
    pub const LEN: std::ops::RangeInclusive<usize> = 16..=200;

    /// Validates hex in either case, kept as it is.
    ///
    /// ```
    /// use apns_proto::DeviceToken;
    /// let upper = DeviceToken::new("73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF")?;
    /// assert!(upper.as_str().starts_with("73B23C63"));
    /// let lower = DeviceToken::new("73b23c63c18344d1bbbab10887fd540ba4b00741987ca28cbb7c0c607f0667ff")?;
    /// assert_eq!(upper, lower);
    /// assert_eq!(upper.to_lowercase(), lower.as_str());
    /// assert!(DeviceToken::new("BBB").is_err());
    /// # Ok::<(), apns_proto::RequestError>(())
    /// ```
    pub fn new(text: &str) -> Result<Self, RequestError> {
        Self::check(text)?;
        Ok(Self(text.to_owned()))
    }

    fn check(text: &str) -> Result<(), RequestError> {
        if !Self::LEN.contains(&text.len())
            || !text.len().is_multiple_of(2)
            || !text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(RequestError::DeviceToken);
        }
        Ok(())
    }

    /// The token as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token in lower-case hex: what tells two tokens apart (a store's key).
    pub fn to_lowercase(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The digits in lower case, for comparing and hashing.
    fn folded(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| b.to_ascii_lowercase())
    }
}

impl PartialEq for DeviceToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for DeviceToken {}

impl std::hash::Hash for DeviceToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for b in self.folded() {
            state.write_u8(b);
        }
    }
}

impl PartialOrd for DeviceToken {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DeviceToken {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.folded().cmp(other.folded())
    }
}

impl TryFrom<&str> for DeviceToken {
    type Error = RequestError;

    /// As [`DeviceToken::new`].
    fn try_from(text: &str) -> Result<Self, RequestError> {
        Self::new(text)
    }
}

impl TryFrom<String> for DeviceToken {
    type Error = RequestError;

    /// As [`DeviceToken::new`], reusing the text.
    fn try_from(text: String) -> Result<Self, RequestError> {
        Self::check(&text)?;
        Ok(Self(text))
    }
}

impl From<DeviceToken> for String {
    fn from(token: DeviceToken) -> String {
        token.0
    }
}

impl fmt::Display for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token addresses one device; enough to tell tokens apart in logs: its first
        // eight digits (the precision truncates).
        write!(f, "DeviceToken({:.8}…)", self.0)
    }
}

/// An `apns-topic`: the app's bundle id, or for mail the certificate's subject UID
/// (`com.apple.mail.XServer.<uuid>`). Held as text and as the header value it becomes,
/// made once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct Topic {
    text: Box<str>,
    header: HeaderValue,
}

impl Topic {
    /// The longest topic accepted.
    pub const MAX_LEN: usize = 255;

    /// The shortest topic Dovecot's xaps plugin takes back in a `/register` answer: it
    /// asserts that the answer is longer than 50 octets, and its imap process aborts
    /// on a shorter one (Apple's mail topics are 59).
    pub const XAPS_PLUGIN_MIN_LEN: usize = 51;

    /// The topic.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `apns-topic` header value (a cheap clone: the bytes are shared).
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// Whether iOS Mail accepts pushes on this topic: it must begin `com.apple.mail`
    /// (a certificate for another service is accepted by APNs, but Mail ignores the
    /// pushes).
    pub fn is_mail(&self) -> bool {
        self.text.starts_with("com.apple.mail")
    }

    /// Whether Dovecot's xaps plugin can take this topic as a `/register` answer: at
    /// least [`XAPS_PLUGIN_MIN_LEN`](Self::XAPS_PLUGIN_MIN_LEN) octets. A daemon
    /// warns about one that is not.
    ///
    /// ```
    /// use apns_proto::Topic;
    /// let apple = Topic::try_from("com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6")?;
    /// assert!(apple.suits_xaps_plugin());
    /// assert!(!Topic::try_from("com.example.mail")?.suits_xaps_plugin());
    /// # Ok::<(), apns_proto::RequestError>(())
    /// ```
    pub fn suits_xaps_plugin(&self) -> bool {
        self.text.len() >= Self::XAPS_PLUGIN_MIN_LEN
    }
}

impl TryFrom<String> for Topic {
    type Error = RequestError;

    /// As for `&str`.
    fn try_from(text: String) -> Result<Self, RequestError> {
        Self::try_from(text.as_str())
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> String {
        topic.as_str().to_owned()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for Topic {
    type Error = RequestError;

    /// Validates: 1 to 255 printable ASCII characters.
    fn try_from(text: &str) -> Result<Self, RequestError> {
        if text.is_empty()
            || text.len() > Self::MAX_LEN
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(RequestError::Topic);
        }
        let header = HeaderValue::from_str(text).map_err(|_| RequestError::Topic)?;
        Ok(Self {
            text: text.into(),
            header,
        })
    }
}

/// An `apns-collapse-id`: at most 64 octets; notifications with the same id replace
/// each other on the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollapseId(String);

impl CollapseId {
    /// The longest id APNs accepts, in octets.
    pub const MAX_LEN: usize = 64;

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for CollapseId {
    type Error = RequestError;

    /// Validates: 1 to 64 octets that are valid in an HTTP header value.
    fn try_from(text: &str) -> Result<Self, RequestError> {
        if text.is_empty()
            || text.len() > Self::MAX_LEN
            || !text
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return Err(RequestError::CollapseId);
        }
        Ok(Self(text.to_owned()))
    }
}

/// An `apns-id`: a UUID in its canonical 8-4-4-4-12 form, upper case as APNs writes
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApnsId([u8; 36]);

impl ApnsId {
    /// The id.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever stored, so this is never empty;
        // a request takes the header from the octets themselves ([`ApnsId::as_bytes`]).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id's octets, for the header a request carries: checked there as a header
    /// value, so nothing but the id itself is ever sent.
    pub(crate) fn as_bytes(&self) -> &[u8; 36] {
        &self.0
    }

    /// A random (version 4) id from 16 caller-supplied random octets.
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        if let Some(b) = bytes.get_mut(6) {
            *b = (*b & 0x0f) | 0x40;
        }
        if let Some(b) = bytes.get_mut(8) {
            *b = (*b & 0x3f) | 0x80;
        }
        let mut out = [b'-'; 36];
        let mut at = 0;
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            for (slot, nibble) in out.iter_mut().skip(at).zip([b >> 4, b & 0x0f]) {
                *slot = hex_digit(nibble);
            }
            at += 2;
        }
        Self(out)
    }
}

/// The upper-case hex digit of the low four bits of `nibble`.
fn hex_digit(nibble: u8) -> u8 {
    match nibble & 0x0f {
        n @ 0..=9 => b'0' + n,
        n => b'A' + (n - 10),
    }
}

impl TryFrom<&str> for ApnsId {
    type Error = RequestError;

    /// Validates the canonical UUID form, in either case; stored upper case.
    fn try_from(text: &str) -> Result<Self, RequestError> {
        let bytes: &[u8; 36] = text
            .as_bytes()
            .try_into()
            .map_err(|_| RequestError::ApnsId)?;
        let mut out = [0u8; 36];
        for (i, (slot, &b)) in out.iter_mut().zip(bytes).enumerate() {
            let dash = matches!(i, 8 | 13 | 18 | 23);
            if dash != (b == b'-') || (!dash && !b.is_ascii_hexdigit()) {
                return Err(RequestError::ApnsId);
            }
            *slot = b.to_ascii_uppercase();
        }
        Ok(Self(out))
    }
}

/// `apns-push-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushType {
    /// `alert`: shown to the user.
    Alert,
    /// `background`: wakes the app (and iOS Mail) silently; priority 5 only.
    Background,
    /// `location`: a location query; priority 5 or 10.
    Location,
    /// `voip`: an incoming call (payload up to 5120 octets).
    Voip,
    /// `complication`: a watchOS complication update.
    Complication,
    /// `fileprovider`: a File Provider extension change; priority 5.
    FileProvider,
    /// `mdm`: a device-management wake-up; priority 5.
    Mdm,
    /// `liveactivity`: a Live Activity update.
    LiveActivity,
    /// `pushtotalk`: a Push to Talk update; priority 10.
    PushToTalk,
    /// `widgets`: a widget reload.
    Widgets,
    /// `controls`: a control reload.
    Controls,
}

impl PushType {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Location => "location",
            PushType::Voip => "voip",
            PushType::Complication => "complication",
            PushType::FileProvider => "fileprovider",
            PushType::Mdm => "mdm",
            PushType::LiveActivity => "liveactivity",
            PushType::PushToTalk => "pushtotalk",
            PushType::Widgets => "widgets",
            PushType::Controls => "controls",
        }
    }

    /// The largest payload APNs accepts for this push type, in octets.
    pub const fn max_payload(self) -> usize {
        match self {
            PushType::Voip => 5120,
            _ => 4096,
        }
    }

    /// Whether Apple accepts `priority` with this push type.
    pub const fn allows(self, priority: Priority) -> bool {
        match self {
            PushType::Background | PushType::FileProvider | PushType::Mdm => {
                matches!(priority, Priority::Normal)
            }
            PushType::PushToTalk => matches!(priority, Priority::High),
            PushType::Location => !matches!(priority, Priority::Low),
            _ => true,
        }
    }

    /// Whether the topic must carry a suffix for this push type (`.voip`,
    /// `.complication`, ...), which APNs checks; mail's `background` has none.
    pub const fn topic_suffix(self) -> Option<&'static str> {
        match self {
            PushType::Location => Some(".location-query"),
            PushType::Voip => Some(".voip"),
            PushType::Complication => Some(".complication"),
            PushType::FileProvider => Some(".pushkit.fileprovider"),
            PushType::LiveActivity => Some(".push-type.liveactivity"),
            PushType::PushToTalk => Some(".voip-ptt"),
            _ => None,
        }
    }
}

/// `apns-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// `1`: prioritize the device's power over all else.
    Low,
    /// `5`: delivered at a time that saves power; background pushes must use it.
    Normal,
    /// `10`: delivered at once (what APNs assumes without the header).
    High,
}

impl Priority {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "1",
            Priority::Normal => "5",
            Priority::High => "10",
        }
    }
}

/// `apns-expiration`: until when APNs keeps trying to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiration {
    /// `0`: deliver now or never.
    Immediately,
    /// Until this many seconds after the Unix epoch.
    At(u64),
}

impl Expiration {
    /// `ttl` after `now`, as mail pushes use (24 hours).
    pub fn after(now: SystemTime, ttl: Duration) -> Result<Self, RequestError> {
        Ok(Expiration::At(
            unix_secs(now)?.saturating_add(ttl.as_secs()),
        ))
    }

    /// The seconds the header carries.
    pub const fn as_secs(self) -> u64 {
        match self {
            Expiration::Immediately => 0,
            Expiration::At(secs) => secs,
        }
    }
}

/// Whole seconds since the Unix epoch, the unit of `apns-expiration` and of a provider
/// token's `iat`. A clock before 1970 is an error: any time made from it would be wrong.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// assert_eq!(apns_proto::unix_secs(SystemTime::UNIX_EPOCH + Duration::from_millis(1999)), Ok(1));
/// assert!(apns_proto::unix_secs(SystemTime::UNIX_EPOCH - Duration::from_secs(1)).is_err());
/// ```
pub fn unix_secs(time: SystemTime) -> Result<u64, RequestError> {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| RequestError::ClockBeforeEpoch)
}

/// Which APNs service a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Environment {
    /// `api.push.apple.com`: apps from the App Store and iOS Mail.
    Production,
    /// `api.sandbox.push.apple.com`: development builds.
    Sandbox,
}

impl Environment {
    /// The host name (port 443, or 2197 where 443 is blocked).
    pub const fn host(self) -> &'static str {
        match self {
            Environment::Production => "api.push.apple.com",
            Environment::Sandbox => "api.sandbox.push.apple.com",
        }
    }
}

/// Where requests go: one of Apple's services, or another host (a stand-in in tests,
/// a forwarding proxy). Always `https`.
///
/// ```
/// use apns_proto::{Environment, Server};
/// assert_eq!(Server::from(Environment::Sandbox).authority(), "api.sandbox.push.apple.com");
/// assert_eq!(Server::new("127.0.0.1:8443")?.authority(), "127.0.0.1:8443");
/// assert!(Server::new("https://x/").is_err());
/// # Ok::<(), apns_proto::RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server(http::uri::Authority);

impl Server {
    /// A server named by `host[:port]`.
    pub fn new(authority: &str) -> Result<Self, RequestError> {
        let parsed: http::uri::Authority = authority.parse().map_err(|_| RequestError::Server)?;
        if parsed.as_str().contains('@') || parsed.host().is_empty() {
            return Err(RequestError::Server);
        }
        Ok(Self(parsed))
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &http::uri::Authority {
        &self.0
    }
}

impl From<Environment> for Server {
    fn from(environment: Environment) -> Self {
        Self(http::uri::Authority::from_static(environment.host()))
    }
}
