//! Errors: syntax (answered with BAD), bad arguments (BAD), and refusals (NO).

use imap_syntax::{LiteralMode, SyntaxErrorKind, Tag};

use crate::response::{Code, Response, Status, StatusKind, Text};

/// An argument that is well-formed IMAP but not a valid value for WEBPUSH: the server
/// answers BAD ("arguments invalid").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// A subscription id that is empty or longer than 64 octets.
    #[error("subscription id must be 1 to 64 characters, got {len}")]
    SubIdLength {
        /// Its length.
        len: usize,
    },
    /// A subscription id with characters outside `A-Z a-z 0-9 - _ .`.
    #[error("subscription id may contain only letters, digits, '-', '_' and '.'")]
    SubIdCharacters,
    /// An ack token that is empty or longer than 256 octets.
    #[error("ack token must be 1 to 256 characters, got {len}")]
    AckTokenLength {
        /// Its length.
        len: usize,
    },
    /// An ack token with characters an IMAP atom cannot carry.
    #[error("ack token contains characters outside the IMAP atom set")]
    AckTokenCharacters,
    /// An endpoint that is empty or longer than 2048 octets.
    #[error("endpoint must be 1 to 2048 octets, got {len}")]
    EndpointLength {
        /// Its length.
        len: usize,
    },
    /// An endpoint with control characters or invalid UTF-8.
    #[error("endpoint contains control characters or is not UTF-8")]
    EndpointCharacters,
    /// A p256dh key that is not base64url of an uncompressed P-256 point on the curve.
    #[error("p256dh key is invalid: {0}")]
    P256dh(webpush_crypto::Error),
    /// An auth secret that is not base64url of 16 octets.
    #[error("auth secret is invalid: {0}")]
    Auth(webpush_crypto::Error),
    /// A VAPID key in a `* VAPID` response that is not a P-256 point.
    #[error("VAPID key is invalid: {0}")]
    VapidKey(webpush_crypto::Error),
    /// Response text with CR, LF or NUL, or starting with `[`.
    #[error("response text may not contain CR, LF or NUL, nor start with '['")]
    Text,
    /// A response code argument that is empty or holds `]`, CR, LF or NUL.
    #[error("a response code argument must be non-empty, without ']', CR, LF or NUL")]
    CodeArgument,
}

/// Why a command or response could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// More input is needed; nothing was consumed.
    #[error("incomplete: more input is needed")]
    Incomplete,
    /// A synchronizing literal was announced: answer `+` to receive its data (see
    /// [`DecodeError::response`]), or refuse the command.
    #[error("literal of {length} octets announced by command {tag:?}")]
    LiteralFound {
        /// The command's tag.
        tag: Tag<'static>,
        /// The announced length.
        length: u32,
        /// Always [`LiteralMode::Sync`]; non-synchronizing literals need no answer.
        mode: LiteralMode,
    },
    /// A well-formed line of another IMAP command or response: not this crate's to
    /// handle.
    #[error("not a WEBPUSH command or response")]
    NotWebPush {
        /// The tag, when one was read.
        tag: Option<Tag<'static>>,
    },
    /// The input breaks the grammar.
    #[error("{kind}")]
    Syntax {
        /// The tag, when one was read.
        tag: Option<Tag<'static>>,
        /// What is wrong.
        kind: SyntaxErrorKind,
    },
    /// An argument is well-formed but invalid.
    #[error("{error}")]
    Argument {
        /// The tag, when one was read.
        tag: Option<Tag<'static>>,
        /// What is wrong.
        error: ArgumentError,
    },
    /// The line grew beyond the configured maximum without ending.
    #[error("command longer than {max} octets")]
    TooLong {
        /// The tag, when one was read: the answer carries it, so that the client
        /// sees its command end.
        tag: Option<Tag<'static>>,
        /// The limit.
        max: usize,
    },
}

impl DecodeError {
    /// What a server sends back for this error, carrying the tag when it was read:
    /// `+` for an announced literal, `BAD` for syntax and argument errors (untagged
    /// `* BAD` without a tag), nothing for incomplete input or another command.
    ///
    /// ```
    /// use imap_webpush_proto::{Config, Command};
    /// let err = Command::decode(b"a7 WEBPUSH bad/id NIL\r\n", &Config::SERVER).unwrap_err();
    /// let mut out = Vec::new();
    /// err.response().unwrap().encode(&mut out)?;
    /// assert_eq!(out, b"a7 BAD subscription id may contain only letters, digits, '-', '_' and '.'\r\n");
    /// # Ok::<(), imap_syntax::ValueError>(())
    /// ```
    pub fn response(&self) -> Option<Response<'static>> {
        let bad = |tag: &Option<Tag<'static>>, text: String| {
            Response::Status(Status {
                tag: tag.clone(),
                kind: StatusKind::Bad,
                code: None,
                text: Text::sanitized(text),
            })
        };
        match self {
            DecodeError::Incomplete | DecodeError::NotWebPush { .. } => None,
            DecodeError::LiteralFound { .. } => Some(Response::Continuation(Text::sanitized(
                "Ready for literal data".into(),
            ))),
            DecodeError::Syntax { tag, kind } => Some(bad(tag, kind.to_string())),
            DecodeError::Argument { tag, error } => Some(bad(tag, error.to_string())),
            DecodeError::TooLong { tag, max } => {
                Some(bad(tag, format!("command longer than {max} octets")))
            }
        }
    }
}

/// A well-formed, valid command the server will not carry out: answered with NO.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The account has as many subscriptions as the server allows.
    #[error("too many push subscriptions for this account")]
    Limit,
    /// The endpoint fails the server's policy (not https, a private address, ...).
    #[error("push endpoint refused: {reason}")]
    Endpoint {
        /// Why, in words for the user.
        reason: String,
    },
    /// ACKWEBPUSH with a token the server never issued, or already used.
    #[error("unknown ack token")]
    UnknownAckToken,
    /// ACKWEBPUSH with a token past its lifetime.
    #[error("ack token expired; send WEBPUSH again for a new one")]
    ExpiredAckToken,
    /// ACKWEBPUSH with a token sent under a VAPID key the server no longer signs
    /// with: the client's push service knows the old one.
    #[error("the server's VAPID key changed since this token was sent; send WEBPUSH again")]
    VapidKeyChanged,
    /// SILWEBPUSH or LWEBPUSH for a subscription the account does not have.
    #[error("no such push subscription")]
    UnknownSubscription,
    /// SILWEBPUSH for a subscription that is not active yet.
    #[error("push subscription is not active; acknowledge it first")]
    NotActive,
    /// WEBPUSH with the server's own VAPID key as p256dh (RFC 8292 §3 forbids it).
    #[error("the subscription key is the server's VAPID key")]
    KeyIsVapidKey,
    /// The server has no VAPID key configured, or cannot draw random numbers or read
    /// a sane clock.
    #[error("push is not available on this server")]
    Unavailable,
    /// The account asked for more verification pushes than the server sends per
    /// window.
    #[error("too many verification pushes for this account; try again later")]
    TooManyVerifications,
}

impl Refusal {
    /// The tagged NO for `tag`, with `[LIMIT]` or `[CANNOT]` where they fit.
    pub fn response(&self, tag: Tag<'static>) -> Response<'static> {
        let code = match self {
            Refusal::Limit | Refusal::TooManyVerifications => Some(Code::Limit),
            Refusal::Endpoint { .. } | Refusal::KeyIsVapidKey | Refusal::Unavailable => {
                Some(Code::Cannot)
            }
            Refusal::UnknownAckToken
            | Refusal::ExpiredAckToken
            | Refusal::VapidKeyChanged
            | Refusal::UnknownSubscription
            | Refusal::NotActive => None,
        };
        Response::Status(Status {
            tag: Some(tag),
            kind: StatusKind::No,
            code,
            text: Text::sanitized(self.to_string()),
        })
    }
}
