//! The values of a registration.

use std::fmt;

use crate::error::CommandError;

pub use apns_proto::DeviceToken;

/// The capability a server advertises, after authentication (Dovecot's plugin puts it
/// last in the post-login `* CAPABILITY`), for devices to send `XAPPLEPUSHSERVICE`.
pub const CAPABILITY: &str = "XAPPLEPUSHSERVICE";

/// The only subtopic iOS Mail sends, and the only one accepted.
pub const MAIL_SUBTOPIC: &str = "com.apple.mobilemail";
/// The longest account id accepted (UUIDs in practice: 36 characters).
pub const MAX_ACCOUNT_ID_LEN: usize = 256;
/// The most mailboxes one registration may list.
pub const MAX_MAILBOXES: usize = 1000;
/// The longest mailbox name accepted in a registration.
pub const MAX_MAILBOX_LEN: usize = 1024;
/// The most key-value pairs one command may carry.
pub(crate) const MAX_PAIRS: usize = 16;
/// The keys this crate reads, and writes (all but `mailboxes` for version 1); any
/// other is kept in [`RegistrationRequest::unknown`].
pub(crate) const KNOWN_KEYS: [&str; 5] = [
    "aps-version",
    "aps-account-id",
    "aps-device-token",
    "aps-subtopic",
    "mailboxes",
];

/// Whether `key` is one of [`KNOWN_KEYS`], ASCII case aside.
pub(crate) fn is_known_key(key: &[u8]) -> bool {
    KNOWN_KEYS
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k.as_bytes()))
}

/// The protocol version the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `1`: quoted keys, no mailbox list (OS X Server era); pushes for INBOX.
    V1,
    /// `2` (or a higher number, answered as 2): with a mailbox list.
    V2,
}

impl Version {
    /// The version as the response states it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "1",
            Version::V2 => "2",
        }
    }
}

/// The id the device gave this account (an upper-case UUID in practice), opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct AccountId(String);

impl AccountId {
    /// Validates: 1 to 256 printable ASCII characters.
    pub fn new(text: &str) -> Result<Self, CommandError> {
        if text.is_empty()
            || text.len() > MAX_ACCOUNT_ID_LEN
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(CommandError::AccountId);
        }
        Ok(Self(text.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = CommandError;
    fn try_from(text: String) -> Result<Self, CommandError> {
        Self::new(&text)?;
        Ok(Self(text))
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of a key this crate does not know, kept as it was sent so the command
/// re-encodes to the same registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraValue {
    /// An atom, quoted string or literal.
    Text(Vec<u8>),
    /// A parenthesised list of them.
    List(Vec<Vec<u8>>),
}

/// A registration as the device sends it with `XAPPLEPUSHSERVICE`. The user it belongs
/// to is not in it: that comes from the authenticated session, so nobody can register
/// pushes for another user's mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest {
    /// `aps-version`.
    pub version: Version,
    /// `aps-account-id`.
    pub account_id: AccountId,
    /// `aps-device-token`.
    pub device_token: DeviceToken,
    /// `mailboxes`: the mailbox names the device listed (UTF-8, or modified UTF-7,
    /// which is ASCII). `INBOX` alone for version 1, whose devices expect nothing
    /// else, and for a version 2 list that is missing or empty (`mailboxes ()`, which
    /// Dovecot accepts and forwards as `[]`).
    pub mailboxes: Vec<String>,
    /// Keys this crate does not know, with their values, kept for logging and
    /// re-encoded as they came. Each key once (ASCII case aside), none of the known
    /// ones, as a server takes them.
    pub unknown: Vec<(Vec<u8>, ExtraValue)>,
}
