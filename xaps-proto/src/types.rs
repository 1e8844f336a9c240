//! The values of a registration.

use std::fmt;

use crate::error::CommandError;

/// The only subtopic iOS Mail sends, and the only one accepted.
pub const MAIL_SUBTOPIC: &str = "com.apple.mobilemail";
/// The longest account id accepted (UUIDs in practice: 36 characters).
pub const MAX_ACCOUNT_ID_LEN: usize = 256;
/// The most mailboxes one registration may list.
pub const MAX_MAILBOXES: usize = 1000;
/// The longest mailbox name accepted in a registration.
pub const MAX_MAILBOX_LEN: usize = 1024;

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

/// An APNs device token: even-length hex, normalized to lower case (64 digits today).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// The shortest and longest tokens accepted, in hex digits. APNs tokens are 32
    /// octets; Apple reserves the right to change the length, so a range is accepted.
    pub const LEN: std::ops::RangeInclusive<usize> = 16..=200;

    /// Validates hex in either case and lowercases it.
    pub fn new(text: &str) -> Result<Self, CommandError> {
        if !Self::LEN.contains(&text.len())
            || !text.len().is_multiple_of(2)
            || !text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(CommandError::DeviceToken);
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The token, lower-case hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens address a device; show enough to tell them apart in logs.
        let head = self.0.get(..8).unwrap_or_default();
        write!(f, "DeviceToken({head}…)")
    }
}

/// The id the device gave this account (an upper-case UUID in practice), opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// `mailboxes`: the mailbox names to push for, as sent; always INBOX alone for
    /// version 1, whose devices expect nothing else.
    pub mailboxes: Vec<Vec<u8>>,
    /// Keys this crate does not know, with their values, kept for logging.
    pub unknown: Vec<(String, Vec<u8>)>,
}
