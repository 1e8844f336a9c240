//! Responses: `* VAPID`, `* WEBPUSH`, status responses and continuation requests.

use std::borrow::Cow;

use imap_syntax::{Atom, Tag};
use webpush_crypto::PublicKey;

use crate::error::ArgumentError;
use crate::types::{EndpointText, SilenceState, SubId};

/// The capability a server advertises after authentication.
pub const CAPABILITY: &str = "WEBPUSH";

/// A server response this crate encodes (server) and parses (client).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response<'a> {
    /// `* VAPID <key>`: the server's VAPID public key, base64url without padding.
    Vapid(PublicKey),
    /// `* WEBPUSH <sub-id> <endpoint> <silence-state>`.
    WebPush {
        /// The subscription.
        sub_id: SubId<'a>,
        /// Its endpoint.
        endpoint: EndpointText<'a>,
        /// Whether and how long it is silenced.
        silence: SilenceState,
    },
    /// A tagged or untagged `OK`, `NO` or `BAD`.
    Status(Status<'a>),
    /// `+ <text>`: send the literal's data.
    Continuation(Text<'a>),
}

/// A status response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status<'a> {
    /// The command's tag; `None` for an untagged (`*`) status.
    pub tag: Option<Tag<'a>>,
    /// OK, NO or BAD.
    pub kind: StatusKind,
    /// The bracketed response code, if any.
    pub code: Option<Code<'a>>,
    /// The human-readable text.
    pub text: Text<'a>,
}

impl<'a> Status<'a> {
    /// A tagged `OK <text>`.
    pub fn ok(tag: Tag<'a>, text: Text<'a>) -> Self {
        Self {
            tag: Some(tag),
            kind: StatusKind::Ok,
            code: None,
            text,
        }
    }
}

/// `OK`, `NO` or `BAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// The command completed.
    Ok,
    /// The command was refused.
    No,
    /// The command was not understood.
    Bad,
}

impl StatusKind {
    /// The keyword.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusKind::Ok => "OK",
            StatusKind::No => "NO",
            StatusKind::Bad => "BAD",
        }
    }
}

/// A response code, `"[" atom [SP text] "]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code<'a> {
    /// `[LIMIT]` (RFC 5530): a limit was reached, here the subscriptions per account.
    Limit,
    /// `[CANNOT]` (RFC 5530): the server will not do this.
    Cannot,
    /// Any other code, with its optional argument.
    Other(OtherCode<'a>),
}

/// A response code other than `[LIMIT]` and `[CANNOT]`: an atom and an optional
/// argument, validated so that it cannot end the code or the line early.
///
/// ```text
/// resp-text-code = atom [SP 1*<any TEXT-CHAR except "]">]   ; RFC 9051
/// ```
///
/// ```
/// use imap_syntax::Atom;
/// use imap_webpush_proto::OtherCode;
/// assert!(OtherCode::new(Atom::new("UIDNEXT")?, Some("4392")).is_ok());
/// // What would close the code and start a second response line is refused.
/// assert!(OtherCode::new(Atom::new("X")?, Some("a]\r\n* BYE injected")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherCode<'a> {
    name: Atom<'a>,
    argument: Option<Cow<'a, str>>,
}

impl<'a> OtherCode<'a> {
    /// Validates the argument: non-empty, without `]`, CR, LF or NUL.
    pub fn new(
        name: Atom<'a>,
        argument: Option<impl Into<Cow<'a, str>>>,
    ) -> Result<Self, ArgumentError> {
        let argument = argument.map(Into::into);
        if let Some(text) = &argument
            && (text.is_empty() || text.contains([']', '\r', '\n', '\0']))
        {
            return Err(ArgumentError::CodeArgument);
        }
        Ok(Self { name, argument })
    }

    /// The code's name.
    pub fn name(&self) -> &Atom<'a> {
        &self.name
    }

    /// Its argument.
    pub fn argument(&self) -> Option<&str> {
        self.argument.as_deref()
    }
}

/// Human-readable response text: no CR, LF or NUL, not starting with `[`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    /// Validates response text.
    pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Self, ArgumentError> {
        let text = text.into();
        if text.starts_with('[') || text.contains(['\r', '\n', '\0']) {
            return Err(ArgumentError::Text);
        }
        Ok(Self(text))
    }

    /// Text from a message that may contain anything: line breaks and NULs become
    /// spaces, a leading `[` is dropped.
    pub fn sanitized(text: String) -> Text<'static> {
        let cleaned: String = text
            .trim_start_matches('[')
            .chars()
            .map(|c| {
                if matches!(c, '\r' | '\n' | '\0') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        Text(Cow::Owned(cleaned))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn unchecked(text: Cow<'a, str>) -> Self {
        Self(text)
    }
}
