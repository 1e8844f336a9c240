//! Parsers for commands (server side) and responses (client side).
//!
//! ```text
//! command      = tag SP ( getvapid / webpush / ackwebpush / lwebpush / silwebpush ) CRLF
//! getvapid     = "GETVAPID"
//! webpush      = "WEBPUSH" SP sub-id SP ( endpoint SP p256dh SP auth / "NIL" )
//! ackwebpush   = "ACKWEBPUSH" SP ack-token
//! lwebpush     = "LWEBPUSH" SP ( "*" / sub-id )
//! silwebpush   = "SILWEBPUSH" SP sub-id SP number
//! sub-id, endpoint, p256dh, auth, ack-token = astring
//!
//! response     = continue-req / resp-vapid / resp-webpush / resp-status
//! continue-req = "+" [SP text] CRLF
//! resp-vapid   = "*" SP "VAPID" SP astring CRLF
//! resp-webpush = "*" SP "WEBPUSH" SP sub-id SP endpoint SP ( "NIL" / number ) CRLF
//! resp-status  = ( tag / "*" ) SP ( "OK" / "NO" / "BAD" ) [SP resp-text] CRLF
//! resp-text    = [ "[" atom [SP 1*<TEXT-CHAR except "]">] "]" [SP] ] *TEXT-CHAR
//! ```
//!
//! Command and status keywords are case-insensitive. Keys are base64url with or
//! without `=` padding.

use std::borrow::Cow;

use imap_syntax::nom::{Err, Needed};
use imap_syntax::{AString, IString, Limits, SyntaxError, SyntaxErrorKind, Tag, parse};
use webpush_crypto::{AuthSecret, PublicKey};

use crate::command::{Command, CommandBody, Config, SubscriptionArgs};
use crate::error::{ArgumentError, DecodeError};
use crate::response::{Code, OtherCode, Response, Status, StatusKind, Text};
use crate::types::{AckToken, EndpointText, ListSelector, SilenceState, SubId};

/// Why a body parser stopped.
enum Stop {
    Nom(Err<SyntaxError>),
    Argument(ArgumentError),
    NotWebPush,
}

impl From<Err<SyntaxError>> for Stop {
    fn from(e: Err<SyntaxError>) -> Self {
        Stop::Nom(e)
    }
}

type Step<'a, T> = Result<(&'a [u8], T), Stop>;

/// Turns a parser's stop into the decoder's error, with the tag when it was read.
fn decode_error(stop: Stop, tag: Option<&Tag<'_>>, input: &[u8], config: &Config) -> DecodeError {
    let tag = tag.map(|t| t.clone().into_owned());
    match stop {
        Stop::Nom(Err::Incomplete(_)) if input.len() >= config.max_message => {
            DecodeError::TooLong {
                tag,
                max: config.max_message,
            }
        }
        Stop::Nom(Err::Incomplete(_)) => DecodeError::Incomplete,
        Stop::Nom(Err::Error(e) | Err::Failure(e)) => match (e.kind, tag) {
            (SyntaxErrorKind::LiteralAnnounced { length, mode }, Some(tag)) => {
                DecodeError::LiteralFound { tag, length, mode }
            }
            (kind, tag) => DecodeError::Syntax { tag, kind },
        },
        Stop::Argument(error) => DecodeError::Argument { tag, error },
        Stop::NotWebPush => DecodeError::NotWebPush { tag },
    }
}

/// The part of `input` a decoder may look at: a message that has not ended within
/// `max_message` octets is refused as too long, not waited for or half-parsed.
fn window<'a>(input: &'a [u8], config: &Config) -> &'a [u8] {
    match input.split_at_checked(config.max_message) {
        Some((view, _)) => view,
        // Shorter than the limit: all of it.
        None => input,
    }
}

/// `rest` of the window, as the rest of the whole input.
fn bounded<'a, T>(
    input: &'a [u8],
    view: &'a [u8],
    rest: &'a [u8],
    value: T,
) -> Result<(&'a [u8], T), DecodeError> {
    let consumed = view.len() - rest.len();
    match input.split_at_checked(consumed) {
        Some((_, rest)) => Ok((rest, value)),
        // `view` is a prefix of `input`, `rest` a suffix of `view`: never so.
        None => Err(DecodeError::Syntax {
            tag: None,
            kind: SyntaxErrorKind::Nom(imap_syntax::nom::error::ErrorKind::Eof),
        }),
    }
}

impl<'a> Command<'a> {
    /// Decodes one command from the start of `input`, returning the rest.
    ///
    /// ```
    /// use imap_webpush_proto::{Command, CommandBody, Config};
    /// let (rest, command) = Command::decode(b"a1 getvapid\r\n", &Config::SERVER)?;
    /// assert_eq!((command.tag.as_str(), command.body, rest), ("a1", CommandBody::GetVapid, &b""[..]));
    /// # Ok::<(), imap_webpush_proto::DecodeError>(())
    /// ```
    pub fn decode(input: &'a [u8], config: &Config) -> Result<(&'a [u8], Self), DecodeError> {
        let view = window(input, config);
        let (rest, tag) =
            parse::tag(view).map_err(|e| decode_error(Stop::Nom(e), None, view, config))?;
        let (rest, body) = command_body(rest, &config.syntax)
            .map_err(|stop| decode_error(stop, Some(&tag), view, config))?;
        bounded(input, view, rest, Command { tag, body })
    }
}

fn command_body<'a>(input: &'a [u8], limits: &Limits) -> Step<'a, CommandBody<'a>> {
    let (rest, ()) = parse::sp(input)?;
    let (rest, name) = parse::atom(rest)?;
    let name = name.as_str();
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let (rest, body) = if is("GETVAPID") {
        (rest, CommandBody::GetVapid)
    } else if is("WEBPUSH") {
        let (rest, ()) = parse::sp(rest)?;
        let (rest, sub_id) = sub_id(rest, limits)?;
        let (rest, ()) = parse::sp(rest)?;
        if let Ok((rest, ())) = parse::nil(rest) {
            (
                rest,
                CommandBody::WebPush {
                    sub_id,
                    subscription: None,
                },
            )
        } else {
            let (rest, endpoint) = endpoint(rest, limits)?;
            let (rest, ()) = parse::sp(rest)?;
            let (rest, p256dh) = parse::astring_bytes(rest, limits)?;
            let p256dh = PublicKey::from_base64url(p256dh)
                .map_err(|e| Stop::Argument(ArgumentError::P256dh(e)))?;
            let (rest, ()) = parse::sp(rest)?;
            let (rest, auth) = parse::astring_bytes(rest, limits)?;
            let auth = AuthSecret::from_base64url(auth)
                .map_err(|e| Stop::Argument(ArgumentError::Auth(e)))?;
            let subscription = Some(SubscriptionArgs {
                endpoint,
                p256dh,
                auth,
            });
            (
                rest,
                CommandBody::WebPush {
                    sub_id,
                    subscription,
                },
            )
        }
    } else if is("ACKWEBPUSH") {
        let (rest, ()) = parse::sp(rest)?;
        let (rest, token) = text(rest, limits)?;
        let token = AckToken::new(token).map_err(Stop::Argument)?;
        (rest, CommandBody::AckWebPush { token })
    } else if is("LWEBPUSH") {
        let (rest, ()) = parse::sp(rest)?;
        match rest {
            [b'*', rest @ ..] => (
                rest,
                CommandBody::LWebPush {
                    selector: ListSelector::All,
                },
            ),
            _ => {
                let (rest, id) = sub_id(rest, limits)?;
                (
                    rest,
                    CommandBody::LWebPush {
                        selector: ListSelector::One(id),
                    },
                )
            }
        }
    } else if is("SILWEBPUSH") {
        let (rest, ()) = parse::sp(rest)?;
        let (rest, sub_id) = sub_id(rest, limits)?;
        let (rest, ()) = parse::sp(rest)?;
        let (rest, seconds) = parse::number(rest)?;
        (rest, CommandBody::SilWebPush { sub_id, seconds })
    } else {
        return Err(Stop::NotWebPush);
    };
    let (rest, ()) = parse::crlf(rest)?;
    Ok((rest, body))
}

/// An astring's content as UTF-8 text.
fn text<'a>(input: &'a [u8], limits: &Limits) -> Step<'a, Cow<'a, str>> {
    let (rest, value) = parse::astring(input, limits)?;
    let text = match value {
        AString::Atom(atom) => atom.into_inner(),
        AString::String(IString::Quoted(text)) => text,
        AString::String(IString::Literal { data, .. }) => match data {
            Cow::Borrowed(bytes) => Cow::Borrowed(
                std::str::from_utf8(bytes)
                    .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::InvalidUtf8))?,
            ),
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::InvalidUtf8))?,
            ),
        },
    };
    Ok((rest, text))
}

fn sub_id<'a>(input: &'a [u8], limits: &Limits) -> Step<'a, SubId<'a>> {
    let (rest, value) = text(input, limits)?;
    Ok((rest, SubId::new(value).map_err(Stop::Argument)?))
}

fn endpoint<'a>(input: &'a [u8], limits: &Limits) -> Step<'a, EndpointText<'a>> {
    let (rest, value) = text(input, limits)?;
    Ok((rest, EndpointText::new(value).map_err(Stop::Argument)?))
}

impl<'a> Response<'a> {
    /// Decodes one response from the start of `input`, returning the rest. Responses
    /// of other extensions give [`DecodeError::NotWebPush`].
    ///
    /// ```
    /// use imap_webpush_proto::{Config, Response, SilenceState};
    /// let line = b"* WEBPUSH a8282bf9 https://push.example.net/push/random1 NIL\r\n";
    /// let (_, response) = Response::decode(line, &Config::CLIENT)?;
    /// let Response::WebPush { silence, .. } = response else { unreachable!() };
    /// assert_eq!(silence, SilenceState::NotSilenced);
    /// # Ok::<(), imap_webpush_proto::DecodeError>(())
    /// ```
    pub fn decode(input: &'a [u8], config: &Config) -> Result<(&'a [u8], Self), DecodeError> {
        let limits = &config.syntax;
        let view = window(input, config);
        let (rest, response) = match view {
            [] => return Err(DecodeError::Incomplete),
            [b'+', after @ ..] => {
                continuation(after).map_err(|s| decode_error(s, None, view, config))?
            }
            [b'*', after @ ..] => {
                untagged(after, limits).map_err(|s| decode_error(s, None, view, config))?
            }
            [_, ..] => {
                let (rest, tag) =
                    parse::tag(view).map_err(|e| decode_error(Stop::Nom(e), None, view, config))?;
                tagged_status(rest, tag.clone())
                    .map_err(|s| decode_error(s, Some(&tag), view, config))?
            }
        };
        bounded(input, view, rest, response)
    }
}

/// `[SP text] CRLF` after the `+`.
fn continuation(input: &[u8]) -> Step<'_, Response<'_>> {
    let rest = input.strip_prefix(b" ").unwrap_or(input);
    let (rest, text) = line_text(rest)?;
    let (rest, ()) = parse::crlf(rest)?;
    Ok((rest, Response::Continuation(Text::unchecked(text))))
}

fn untagged<'a>(input: &'a [u8], limits: &Limits) -> Step<'a, Response<'a>> {
    let (rest, ()) = parse::sp(input)?;
    let (rest, name) = parse::atom(rest)?;
    let name = name.as_str();
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("VAPID") {
        let (rest, ()) = parse::sp(rest)?;
        let (rest, key) = parse::astring_bytes(rest, limits)?;
        let key = PublicKey::from_base64url(key)
            .map_err(|e| Stop::Argument(ArgumentError::VapidKey(e)))?;
        let (rest, ()) = parse::crlf(rest)?;
        Ok((rest, Response::Vapid(key)))
    } else if is("WEBPUSH") {
        let (rest, ()) = parse::sp(rest)?;
        let (rest, sub_id) = sub_id(rest, limits)?;
        let (rest, ()) = parse::sp(rest)?;
        let (rest, endpoint) = endpoint(rest, limits)?;
        let (rest, ()) = parse::sp(rest)?;
        let (rest, silence) = match parse::nil(rest) {
            Ok((rest, ())) => (rest, SilenceState::NotSilenced),
            Err(Err::Incomplete(n)) => return Err(Stop::Nom(Err::Incomplete(n))),
            Err(_) => {
                let (rest, seconds) = parse::number(rest)?;
                (rest, SilenceState::from_secs(seconds))
            }
        };
        let (rest, ()) = parse::crlf(rest)?;
        Ok((
            rest,
            Response::WebPush {
                sub_id,
                endpoint,
                silence,
            },
        ))
    } else if let Some(kind) = status_kind(name) {
        status_rest(rest, None, kind)
    } else {
        Err(Stop::NotWebPush)
    }
}

fn status_kind(name: &str) -> Option<StatusKind> {
    [StatusKind::Ok, StatusKind::No, StatusKind::Bad]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(name))
}

fn tagged_status<'a>(input: &'a [u8], tag: Tag<'a>) -> Step<'a, Response<'a>> {
    let (rest, ()) = parse::sp(input)?;
    let (rest, name) = parse::atom(rest)?;
    let kind = status_kind(name.as_str()).ok_or(Stop::NotWebPush)?;
    status_rest(rest, Some(tag), kind)
}

/// `[SP resp-text] CRLF` after the status keyword.
fn status_rest<'a>(
    input: &'a [u8],
    tag: Option<Tag<'a>>,
    kind: StatusKind,
) -> Step<'a, Response<'a>> {
    let rest = input.strip_prefix(b" ").unwrap_or(input);
    let (rest, code) = match rest {
        [b'[', after @ ..] => {
            let (rest, code) = code(after)?;
            (rest.strip_prefix(b" ").unwrap_or(rest), Some(code))
        }
        [] => return Err(Stop::Nom(Err::Incomplete(Needed::new(1)))),
        [_, ..] => (rest, None),
    };
    let (rest, text) = line_text(rest)?;
    let (rest, ()) = parse::crlf(rest)?;
    Ok((
        rest,
        Response::Status(Status {
            tag,
            kind,
            code,
            text: Text::unchecked(text),
        }),
    ))
}

/// `atom [SP 1*<TEXT-CHAR except "]">] "]"`, after the `[`.
fn code(input: &[u8]) -> Step<'_, Code<'_>> {
    let (rest, name) = parse::atom(input)?;
    let (rest, argument) = match rest {
        [b' ', arg @ ..] => {
            let (value, rest) = arg
                .iter()
                .position(|&b| matches!(b, b']' | b'\r' | b'\n' | 0))
                .and_then(|end| arg.split_at_checked(end))
                .ok_or(Stop::Nom(Err::Incomplete(Needed::new(1))))?;
            let value = std::str::from_utf8(value)
                .map_err(|_| SyntaxError::failure(arg, SyntaxErrorKind::InvalidUtf8))?;
            (rest, Some(Cow::Borrowed(value)))
        }
        [_, ..] => (rest, None),
        [] => return Err(Stop::Nom(Err::Incomplete(Needed::new(1)))),
    };
    let rest = rest.strip_prefix(b"]").ok_or_else(|| {
        Stop::Nom(SyntaxError::failure(
            rest,
            SyntaxErrorKind::Expected { expected: "]" },
        ))
    })?;
    let code = match name.as_str() {
        n if n.eq_ignore_ascii_case("LIMIT") => Code::Limit,
        n if n.eq_ignore_ascii_case("CANNOT") => Code::Cannot,
        // The scan above stopped at the first `]`, CR, LF or NUL.
        _ => Code::Other(OtherCode::new(name, argument).map_err(|_| {
            Stop::Nom(SyntaxError::failure(
                input,
                SyntaxErrorKind::Expected { expected: "]" },
            ))
        })?),
    };
    Ok((rest, code))
}

/// `*TEXT-CHAR` up to the CR, as UTF-8; a bare LF or NUL is an error.
fn line_text(input: &[u8]) -> Step<'_, Cow<'_, str>> {
    let (text, rest) = input
        .iter()
        .position(|&b| matches!(b, b'\r' | b'\n' | 0))
        .and_then(|end| input.split_at_checked(end))
        .ok_or(Stop::Nom(Err::Incomplete(Needed::new(1))))?;
    if rest.first() != Some(&b'\r') {
        return Err(Stop::Nom(SyntaxError::failure(
            rest,
            SyntaxErrorKind::Expected { expected: "CRLF" },
        )));
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::InvalidUtf8))?;
    Ok((rest, Cow::Borrowed(text)))
}
