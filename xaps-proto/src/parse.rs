//! Parsing the registration command (server side) and its responses (client side).
//!
//! ```text
//! command   = tag SP "XAPPLEPUSHSERVICE" *(SP key SP value) CRLF
//! key       = astring                        ; case-insensitive, any order
//! value     = astring / "(" [mailbox *(SP mailbox)] ")"
//! response  = "*" SP "XAPPLEPUSHSERVICE" 1*(SP astring) CRLF
//! ```
//!
//! Version 1 quotes keys and values; version 2 sends atoms and adds
//! `mailboxes (...)`. Both parse the same way here, which also accepts `mailboxes`
//! anywhere and keys in any case.

use std::borrow::Cow;

use imap_syntax::nom::Err;
use imap_syntax::{AString, IString, Limits, SyntaxErrorKind, Tag, parse};

use crate::error::CommandError;
use crate::types::{
    AccountId, DeviceToken, ExtraValue, MAIL_SUBTOPIC, MAX_MAILBOX_LEN, MAX_MAILBOXES, MAX_PAIRS,
    RegistrationRequest, Version, is_known_key,
};

/// The longest command accepted, literals included.
pub const MAX_COMMAND_LEN: usize = 64 * 1024;
const LIMITS: Limits = Limits {
    max_literal: MAX_MAILBOX_LEN as u32,
    max_depth: 2,
    literal_handshake: true,
};

/// A decoded command: its tag and the registration it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The tag.
    pub tag: Tag<'a>,
    /// The registration.
    pub request: RegistrationRequest,
}

/// A command that could not be decoded, with its tag when it was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DecodeFailure {
    /// The tag, for the BAD response.
    pub tag: Option<Tag<'static>>,
    /// What is wrong.
    pub error: CommandError,
}

impl DecodeFailure {
    /// The line to send back, if any: `<tag> BAD ...` (or `* BAD` without a tag), or
    /// `+` for an announced literal.
    pub fn response(&self) -> Option<String> {
        if let CommandError::LiteralAnnounced { .. } = self.error {
            return Some("+ Ready for literal data\r\n".to_owned());
        }
        self.error.bad_response(self.tag.as_ref())
    }
}

enum Value<'a> {
    Text(Cow<'a, [u8]>),
    List(Vec<Cow<'a, [u8]>>),
}

/// The octets of a value, whichever form carried it. Every form is held to the same
/// length, so whatever decodes also fits the literal its re-encoding may need.
fn bounded(value: AString<'_>) -> Result<Cow<'_, [u8]>, CommandError> {
    let octets = bytes(value);
    if octets.len() > MAX_MAILBOX_LEN {
        return Err(CommandError::Syntax);
    }
    Ok(octets)
}

fn bytes(value: AString<'_>) -> Cow<'_, [u8]> {
    let text = match value {
        AString::Atom(atom) => atom.into_inner(),
        AString::String(IString::Quoted(text)) => text,
        AString::String(IString::Literal { data, .. }) => return data,
    };
    match text {
        Cow::Borrowed(t) => Cow::Borrowed(t.as_bytes()),
        Cow::Owned(t) => Cow::Owned(t.into_bytes()),
    }
}

/// Maps a lexer stop to the command error.
fn lexical(e: Err<imap_syntax::SyntaxError>) -> CommandError {
    match e {
        Err::Incomplete(_) => CommandError::Incomplete,
        Err::Error(e) | Err::Failure(e) => match e.kind {
            SyntaxErrorKind::LiteralAnnounced { length, .. } => {
                CommandError::LiteralAnnounced { length }
            }
            _ => CommandError::Syntax,
        },
    }
}

impl<'a> Command<'a> {
    /// Decodes one command from the start of `input`, returning the rest.
    ///
    /// ```
    /// use xaps_proto::{Command, Version};
    /// let line = b"a2 XAPPLEPUSHSERVICE aps-version 2 aps-account-id 0715A26B-CA09-4730-A419-793000CA982E aps-device-token 2918390218931890821908309283098109381029309829018310983092892829 aps-subtopic com.apple.mobilemail mailboxes (INBOX Notes)\r\n";
    /// let (_, command) = Command::decode(line)?;
    /// assert_eq!(command.request.version, Version::V2);
    /// assert_eq!(command.request.mailboxes, ["INBOX", "Notes"]);
    /// # Ok::<(), xaps_proto::DecodeFailure>(())
    /// ```
    pub fn decode(input: &'a [u8]) -> Result<(&'a [u8], Self), DecodeFailure> {
        let view = match input.split_at_checked(MAX_COMMAND_LEN) {
            Some((view, _)) => view,
            // Shorter than the limit: all of it.
            None => input,
        };
        let fail = |tag: Option<&Tag<'_>>, error| DecodeFailure {
            tag: tag.map(|t| t.clone().into_owned()),
            error,
        };
        let (rest, tag) = parse::tag(view).map_err(|e| fail(None, lexical(e)))?;
        let (rest, request) = body(rest).map_err(|e| {
            let e = if e == CommandError::Incomplete && view.len() >= MAX_COMMAND_LEN {
                CommandError::Syntax
            } else {
                e
            };
            fail(Some(&tag), e)
        })?;
        let consumed = view.len() - rest.len();
        // `view` is a prefix of `input` and `rest` a suffix of `view`: never `None`.
        let (_, rest) = input
            .split_at_checked(consumed)
            .ok_or_else(|| fail(Some(&tag), CommandError::Syntax))?;
        Ok((rest, Command { tag, request }))
    }
}

fn body(input: &[u8]) -> Result<(&[u8], RegistrationRequest), CommandError> {
    let (rest, ()) = parse::sp(input).map_err(lexical)?;
    let (mut rest, name) = parse::atom(rest).map_err(lexical)?;
    if !name.as_str().eq_ignore_ascii_case("XAPPLEPUSHSERVICE") {
        return Err(CommandError::NotXaps);
    }
    let mut pairs: Vec<(Cow<'_, [u8]>, Value<'_>)> = Vec::new();
    loop {
        if let Ok((after, ())) = parse::crlf(rest) {
            rest = after;
            break;
        }
        if rest.len() < 2 && b"\r\n".starts_with(rest) {
            return Err(CommandError::Incomplete);
        }
        let (after, ()) = parse::sp(rest).map_err(lexical)?;
        let (after, key) = parse::astring(after, &LIMITS).map_err(lexical)?;
        let key = bounded(key)?;
        let (after, ()) = parse::sp(after).map_err(lexical)?;
        let (after, value) = if after.first() == Some(&b'(') {
            let (after, list) =
                parse::paren_list(after, &LIMITS, 0, |i| parse::astring(i, &LIMITS))
                    .map_err(lexical)?;
            let list = list
                .into_iter()
                .map(bounded)
                .collect::<Result<Vec<_>, _>>()?;
            (after, Value::List(list))
        } else {
            let (after, value) = parse::astring(after, &LIMITS).map_err(lexical)?;
            (after, Value::Text(bounded(value)?))
        };
        if pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) || pairs.len() >= MAX_PAIRS {
            return Err(CommandError::Syntax);
        }
        pairs.push((key, value));
        rest = after;
    }
    Ok((rest, request(pairs)?))
}

/// Checks the pairs in a fixed order, so the first missing field is the one reported.
fn request(pairs: Vec<(Cow<'_, [u8]>, Value<'_>)>) -> Result<RegistrationRequest, CommandError> {
    // Borrowed: the typed values below make their own copies, once.
    let text = |name: &str, error: CommandError| -> Result<&str, CommandError> {
        match pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        {
            Some((_, Value::Text(v))) => std::str::from_utf8(v).map_err(|_| error),
            _ => Err(error),
        }
    };
    let version = match text("aps-version", CommandError::Version)?.parse::<u32>() {
        Ok(1) => Version::V1,
        Ok(n) if n >= 2 => Version::V2,
        _ => return Err(CommandError::Version),
    };
    let account_id = AccountId::new(text("aps-account-id", CommandError::AccountId)?)?;
    let device_token = DeviceToken::new(text("aps-device-token", CommandError::DeviceToken)?)
        .map_err(|_| CommandError::DeviceToken)?;
    if text("aps-subtopic", CommandError::Subtopic)? != MAIL_SUBTOPIC {
        return Err(CommandError::Subtopic);
    }
    let listed = pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"mailboxes"));
    // Version 2 always writes a mailbox list back: a command without one must leave
    // room for it, or its re-encoding would be refused (found by fuzzing).
    if version == Version::V2 && listed.is_none() && pairs.len() >= MAX_PAIRS {
        return Err(CommandError::Syntax);
    }
    let inbox = || vec!["INBOX".to_owned()];
    let mailboxes = match (version, listed) {
        // Version 1 pushes for INBOX only, as on OS X Server and Cyrus; a list is ignored.
        (Version::V1, _) => inbox(),
        // No list, or `mailboxes ()`: Dovecot accepts both, and INBOX is what a
        // device that names nothing gets.
        (Version::V2, None) => inbox(),
        (Version::V2, Some((_, Value::List(list)))) if list.is_empty() => inbox(),
        (Version::V2, Some((_, Value::List(list)))) if list.len() <= MAX_MAILBOXES => list
            .iter()
            .map(|m| String::from_utf8(m.to_vec()).map_err(|_| CommandError::Mailboxes))
            .collect::<Result<_, _>>()?,
        (Version::V2, Some(_)) => return Err(CommandError::Mailboxes),
    };
    let unknown = pairs
        .iter()
        .filter(|(k, _)| !is_known_key(k))
        .map(|(k, v)| {
            let value = match v {
                Value::Text(t) => ExtraValue::Text(t.to_vec()),
                Value::List(items) => ExtraValue::List(items.iter().map(|i| i.to_vec()).collect()),
            };
            (k.to_vec(), value)
        })
        .collect();
    Ok(RegistrationRequest {
        version,
        account_id,
        device_token,
        mailboxes,
        unknown,
    })
}

/// A server's untagged `XAPPLEPUSHSERVICE` line, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// `aps-version "2" aps-topic "<topic>"` (keys quoted or not).
    Registered {
        /// The version the server speaks.
        version: String,
        /// The APNs topic (the certificate's subject UID).
        topic: String,
    },
    /// Cyrus style: `"mailbox" "<name>"`, one per mailbox the server will push for.
    Mailbox(Vec<u8>),
}

impl Response {
    /// Decodes one untagged `XAPPLEPUSHSERVICE` response.
    ///
    /// ```
    /// use xaps_proto::Response;
    /// let (_, r) = Response::decode(b"* XAPPLEPUSHSERVICE aps-version \"2\" aps-topic \"custom-topic\"\r\n")?;
    /// assert_eq!(r, Response::Registered { version: "2".into(), topic: "custom-topic".into() });
    /// # Ok::<(), xaps_proto::CommandError>(())
    /// ```
    /// A response longer than [`MAX_COMMAND_LEN`] is [`CommandError::Syntax`], not
    /// [`CommandError::Incomplete`]: a peer cannot make the caller wait for more
    /// without end.
    pub fn decode(input: &[u8]) -> Result<(&[u8], Response), CommandError> {
        let view = match input.split_at_checked(MAX_COMMAND_LEN) {
            Some((view, _)) => view,
            // Shorter than the limit: all of it.
            None => input,
        };
        let (rest, response) = match Self::decode_within(view) {
            Err(CommandError::Incomplete) if view.len() >= MAX_COMMAND_LEN => {
                return Err(CommandError::Syntax);
            }
            other => other?,
        };
        let consumed = view.len() - rest.len();
        // `view` is a prefix of `input` and `rest` a suffix of `view`: never `None`.
        let (_, rest) = input
            .split_at_checked(consumed)
            .ok_or(CommandError::Syntax)?;
        Ok((rest, response))
    }

    fn decode_within(input: &[u8]) -> Result<(&[u8], Response), CommandError> {
        let rest = input.strip_prefix(b"*").ok_or(if input.is_empty() {
            CommandError::Incomplete
        } else {
            CommandError::NotXaps
        })?;
        let limits = Limits {
            literal_handshake: false,
            ..LIMITS
        };
        let (rest, ()) = parse::sp(rest).map_err(lexical)?;
        let (mut rest, name) = parse::atom(rest).map_err(lexical)?;
        if !name.as_str().eq_ignore_ascii_case("XAPPLEPUSHSERVICE") {
            return Err(CommandError::NotXaps);
        }
        let mut items = Vec::new();
        loop {
            if let Ok((after, ())) = parse::crlf(rest) {
                rest = after;
                break;
            }
            if rest.len() < 2 && b"\r\n".starts_with(rest) {
                return Err(CommandError::Incomplete);
            }
            let (after, ()) = parse::sp(rest).map_err(lexical)?;
            let (after, item) = parse::astring(after, &limits).map_err(lexical)?;
            if items.len() >= MAX_PAIRS * 2 {
                return Err(CommandError::Syntax);
            }
            items.push(bytes(item).into_owned());
            rest = after;
        }
        let find = |name: &[u8]| {
            items
                .chunks(2)
                .find(|pair| pair.first().is_some_and(|k| k.eq_ignore_ascii_case(name)))
                .and_then(|pair| pair.get(1))
        };
        if let Some(mailbox) = find(b"mailbox") {
            return Ok((rest, Response::Mailbox(mailbox.clone())));
        }
        let text = |v: Option<&Vec<u8>>| v.and_then(|v| String::from_utf8(v.clone()).ok());
        match (text(find(b"aps-version")), text(find(b"aps-topic"))) {
            (Some(version), Some(topic)) => Ok((rest, Response::Registered { version, topic })),
            _ => Err(CommandError::Syntax),
        }
    }
}
