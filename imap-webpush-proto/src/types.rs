//! The values the WEBPUSH commands and responses carry.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;

use crate::error::ArgumentError;

/// The longest subscription id accepted.
pub const MAX_SUB_ID_LEN: usize = 64;
/// The longest ack token accepted.
pub const MAX_ACK_TOKEN_LEN: usize = 256;
/// The longest endpoint accepted, as in `webpush-crypto`.
pub const MAX_ENDPOINT_LEN: usize = webpush_crypto::MAX_ENDPOINT_LEN;

/// `ALPHA / DIGIT / "-" / "_" / "."`, as a table: ids are checked on every command.
// A u8 indexes a 256-entry table; const evaluation fails the build if that were wrong.
#[allow(clippy::indexing_slicing)]
static SUB_ID_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0u8;
    loop {
        table[b as usize] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if b == u8::MAX {
            break table;
        }
        b += 1;
    }
};

#[allow(clippy::indexing_slicing)] // a u8 cannot index past 256 entries
fn is_sub_id_char(b: u8) -> bool {
    SUB_ID_CHARS[b as usize]
}

/// A subscription id: 1 to 64 octets of `ALPHA / DIGIT / "-" / "_" / "."`, chosen by
/// the client (a UUID in the draft's examples) and unique per account.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId<'a>(Cow<'a, str>);

impl<'a> SubId<'a> {
    /// Validates a subscription id.
    pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Self, ArgumentError> {
        let text = text.into();
        if text.is_empty() || text.len() > MAX_SUB_ID_LEN {
            return Err(ArgumentError::SubIdLength { len: text.len() });
        }
        if !text.bytes().fold(true, |all, b| all & is_sub_id_char(b)) {
            return Err(ArgumentError::SubIdCharacters);
        }
        Ok(Self(text))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same id, owning its text.
    pub fn into_owned(self) -> SubId<'static> {
        SubId(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for SubId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubId({:?})", self.0)
    }
}

impl<'a> TryFrom<&'a str> for SubId<'a> {
    type Error = ArgumentError;
    fn try_from(text: &'a str) -> Result<Self, ArgumentError> {
        Self::new(text)
    }
}

/// An ack token: opaque, server-generated, sent to the endpoint in the verification
/// push and returned by the client with ACKWEBPUSH. 1 to 256 octets of `ASTRING-CHAR`.
///
/// Compared in constant time, so a wrong guess tells nothing about how much of it
/// was right (ACKWEBPUSH names no subscription: the account's pending tokens are
/// compared one by one).
#[derive(Clone, Eq, Hash)]
pub struct AckToken<'a>(Cow<'a, str>);

impl<'a> AckToken<'a> {
    /// Validates a token.
    pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Self, ArgumentError> {
        let text = text.into();
        if text.is_empty() || text.len() > MAX_ACK_TOKEN_LEN {
            return Err(ArgumentError::AckTokenLength { len: text.len() });
        }
        if !text.bytes().all(imap_syntax::chars::is_astring_char) {
            return Err(ArgumentError::AckTokenCharacters);
        }
        Ok(Self(text))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same token, owning its text.
    pub fn into_owned(self) -> AckToken<'static> {
        AckToken(Cow::Owned(self.0.into_owned()))
    }
}

impl PartialEq for AckToken<'_> {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        // Length is not secret (tokens have a fixed length per server); the content
        // is, and `subtle` keeps its comparison from ending at the first difference.
        bool::from(self.0.as_bytes().ct_eq(other.0.as_bytes()))
    }
}

impl fmt::Debug for AckToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token proves control of an endpoint: keep it out of logs.
        f.write_str("AckToken(<redacted>)")
    }
}

/// Whether `text` has a control character (C0, DEL or C1), without decoding characters
/// when it is printable ASCII, as endpoints are.
fn has_control(text: &str) -> bool {
    // A fold, not `any`: no branch per octet, so the usual all-printable case runs in
    // SIMD lanes.
    let printable_ascii = text
        .bytes()
        .fold(true, |all, b| all & (b.wrapping_sub(0x20) < 0x5f));
    !printable_ascii && text.chars().any(char::is_control)
}

/// A push endpoint as the client sent it: text of at most 2048 octets. Whether the
/// server accepts it (https, no private addresses, ...) is policy, decided after
/// parsing and answered with NO, not BAD.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EndpointText<'a>(Cow<'a, str>);

impl<'a> EndpointText<'a> {
    /// Checks the length and that there are no control characters.
    pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Self, ArgumentError> {
        let text = text.into();
        if text.is_empty() || text.len() > MAX_ENDPOINT_LEN {
            return Err(ArgumentError::EndpointLength { len: text.len() });
        }
        if has_control(&text) {
            return Err(ArgumentError::EndpointCharacters);
        }
        Ok(Self(text))
    }

    /// The endpoint text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same endpoint, owning its text.
    pub fn into_owned(self) -> EndpointText<'static> {
        EndpointText(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for EndpointText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointText({:?})", self.0)
    }
}

/// The silence state of a subscription, the third field of `* WEBPUSH`.
///
/// The draft leaves this field's meaning open; this crate reads it as the silence
/// state: `NIL` not silenced, `0` silenced until the connection that asked ends, `n`
/// silenced for `n` more seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SilenceState {
    /// `NIL`: pushes flow.
    NotSilenced,
    /// `0`: silenced until the connection that silenced it ends.
    UntilDisconnect,
    /// `n`: silenced for `n` more seconds.
    For(NonZeroU32),
}

impl SilenceState {
    /// The state for a SILWEBPUSH argument of `seconds` (0: until disconnect).
    pub fn from_secs(seconds: u32) -> Self {
        NonZeroU32::new(seconds).map_or(Self::UntilDisconnect, Self::For)
    }
}

/// The argument of LWEBPUSH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListSelector<'a> {
    /// `*`: every subscription of the account.
    All,
    /// One subscription.
    One(SubId<'a>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_classes() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-_.".contains(&b);
            assert_eq!(is_sub_id_char(b), expected, "{b:#x}");
        }
    }

    #[test]
    fn endpoints_refuse_every_control_character() {
        // Every control character is below U+00A0; the rest stand for longer encodings.
        for c in (0..0x800u32)
            .chain([0x2028, 0xfeff, 0x1_0000, 0x10_ffff])
            .filter_map(char::from_u32)
        {
            let ascii = format!("https://push.example/{c}");
            let wide = format!("https://push.example/\u{e9}{c}");
            for text in [ascii, wide] {
                assert_eq!(has_control(&text), c.is_control(), "{c:?}");
            }
        }
        assert!(EndpointText::new("https://push.example/\u{85}").is_err());
        assert!(EndpointText::new("https://push.example/caf\u{e9}").is_ok());
    }
}

/// `serde` for stored ids and tokens: as their text, validated on the way in.
#[cfg(feature = "serde")]
mod serde_impls {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{AckToken, SubId};

    impl Serialize for SubId<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for SubId<'static> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            SubId::new(String::deserialize(deserializer)?).map_err(D::Error::custom)
        }
    }

    /// Written as it is: a server stores the tokens it has to compare.
    impl Serialize for AckToken<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for AckToken<'static> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            AckToken::new(String::deserialize(deserializer)?).map_err(D::Error::custom)
        }
    }
}
