//! Reading a push plaintext back into events, as a client does.

use std::borrow::Cow;

use imap_syntax::nom::Err;
use imap_syntax::{IResult, IString, Limits, Mailbox, SyntaxError, SyntaxErrorKind, parse};

use super::{Address, Envelope, Event, Flag, MailboxEvents, PushItem};
use crate::types::AckToken;

/// Limits for push content: an envelope nests three lists deep, and a push is at most
/// one record.
const LIMITS: Limits = Limits {
    max_literal: 4096,
    max_depth: 4,
    literal_handshake: false,
};

/// One line of a push.
enum Line<'a> {
    Select(Mailbox<'a>),
    Ack(AckToken<'a>),
    Event(Event<'a>),
}

/// Reads a push plaintext. It never fails: a line this crate cannot read is kept as
/// [`PushItem::Unknown`] (up to its CRLF), and the events after it still count for the
/// last `* SELECT` mailbox.
///
/// ```
/// use imap_syntax::Mailbox;
/// use imap_webpush_proto::content::{Event, PushItem, parse_push};
/// let items = parse_push(b"* SELECT INBOX\r\n* 7 EXISTS\r\n* NEWTHING x\r\n");
/// let PushItem::Mailbox(group) = &items[0] else { unreachable!() };
/// assert_eq!((&group.mailbox, &group.events[..]), (&Mailbox::Inbox, &[Event::Exists(7)][..]));
/// assert_eq!(items[1], PushItem::Unknown(b"* NEWTHING x"[..].into()));
/// ```
pub fn parse_push(plaintext: &[u8]) -> Vec<PushItem<'_>> {
    let mut items = Vec::new();
    let mut current: Option<MailboxEvents<'_>> = None;
    let mut last_mailbox: Option<Mailbox<'_>> = None;
    let mut rest = plaintext;
    while !rest.is_empty() {
        match line(rest) {
            Ok((after, Line::Select(mailbox))) => {
                items.extend(current.take().map(PushItem::Mailbox));
                last_mailbox = Some(mailbox.clone());
                current = Some(MailboxEvents {
                    mailbox,
                    events: Vec::new(),
                });
                rest = after;
            }
            Ok((after, Line::Ack(token))) => {
                items.extend(current.take().map(PushItem::Mailbox));
                items.push(PushItem::Ack(token));
                rest = after;
            }
            Ok((after, Line::Event(event))) => {
                match (&mut current, &last_mailbox) {
                    (Some(group), _) => group.events.push(event),
                    (None, Some(mailbox)) => {
                        current = Some(MailboxEvents {
                            mailbox: mailbox.clone(),
                            events: vec![event],
                        });
                    }
                    (None, None) => items.push(PushItem::Unknown(Cow::Borrowed(raw_line(rest).0))),
                }
                rest = after;
            }
            Err(_) => {
                items.extend(current.take().map(PushItem::Mailbox));
                let (raw, after) = raw_line(rest);
                items.push(PushItem::Unknown(Cow::Borrowed(raw)));
                rest = after;
            }
        }
    }
    items.extend(current.take().map(PushItem::Mailbox));
    items
}

/// The line up to its CRLF, and what follows it. The line is framed as IMAP frames
/// it: a CRLF inside a literal does not end it.
fn raw_line(input: &[u8]) -> (&[u8], &[u8]) {
    let Some((line, rest)) =
        imap_syntax::framing::line_len(input).and_then(|len| input.split_at_checked(len))
    else {
        return (input, &[]);
    };
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    (line.strip_suffix(b"\r").unwrap_or(line), rest)
}

/// `"*" SP ( "SELECT" SP mailbox / "ACKWEBPUSH" SP astring / "VANISHED" SP
/// sequence-set / nz-number SP "UIDFETCH" SP att-list / number SP "EXISTS" ) CRLF`.
fn line(input: &[u8]) -> IResult<'_, Line<'_>> {
    let (rest, ()) = star(input)?;
    let (rest, line) = if rest.first().is_some_and(u8::is_ascii_digit) {
        let (after, n) = parse::number(rest)?;
        let (after, ()) = parse::sp(after)?;
        if let Ok((after, ())) = parse::keyword(after, "EXISTS") {
            (after, Line::Event(Event::Exists(n)))
        } else {
            let (after, ()) = parse::keyword(after, "UIDFETCH")?;
            let (after, ()) = parse::sp(after)?;
            let uid = std::num::NonZeroU32::new(n)
                .ok_or_else(|| SyntaxError::failure(rest, SyntaxErrorKind::NumberRange))?;
            let (after, event) = uidfetch(after, uid)?;
            (after, Line::Event(event))
        }
    } else {
        let (after, name) = parse::atom(rest)?;
        let (after, ()) = parse::sp(after)?;
        match name.as_str() {
            n if n.eq_ignore_ascii_case("SELECT") => {
                let (after, mailbox) = parse::mailbox(after, &LIMITS)?;
                (after, Line::Select(mailbox))
            }
            n if n.eq_ignore_ascii_case("ACKWEBPUSH") => {
                // `ack-token = astring`: whatever form carries it, then the token's own
                // rule (ASTRING-CHARs).
                let (after, token) = parse::astring(after, &LIMITS)?;
                let text = std::str::from_utf8(token.as_bytes())
                    .map_err(|_| SyntaxError::failure(after, SyntaxErrorKind::InvalidUtf8))?;
                let token = AckToken::new(text.to_owned()).map_err(|_| {
                    SyntaxError::failure(
                        after,
                        SyntaxErrorKind::Expected {
                            expected: "an ack token",
                        },
                    )
                })?;
                (after, Line::Ack(token))
            }
            n if n.eq_ignore_ascii_case("VANISHED") => {
                let (after, set) = parse::sequence_set(after)?;
                (after, Line::Event(Event::Vanished(set)))
            }
            _ => return Err(SyntaxError::expected(rest, "a push response")),
        }
    };
    let (rest, ()) = parse::crlf(rest)?;
    Ok((rest, line))
}

fn star(input: &[u8]) -> IResult<'_, ()> {
    match input {
        [b'*', b' ', rest @ ..] => Ok((rest, ())),
        _ => Err(SyntaxError::expected(input, "an untagged response")),
    }
}

/// `"(" fetch-att *(SP fetch-att) ")"` with ENVELOPE and FLAGS.
fn uidfetch(input: &[u8], uid: std::num::NonZeroU32) -> IResult<'_, Event<'_>> {
    let mut envelope_seen = None;
    let mut flags_seen = None;
    let (rest, ()) = parse::byte(input, b'(', "(")?;
    let mut rest = rest;
    loop {
        let (after, name) = parse::atom(rest)?;
        let (after, ()) = parse::sp(after)?;
        let after = if name.as_str().eq_ignore_ascii_case("ENVELOPE") && envelope_seen.is_none() {
            let (after, env) = envelope(after)?;
            envelope_seen = Some(env);
            after
        } else if name.as_str().eq_ignore_ascii_case("FLAGS") && flags_seen.is_none() {
            let (after, flags) = flag_list(after)?;
            flags_seen = Some(flags);
            after
        } else {
            return Err(SyntaxError::expected(rest, "ENVELOPE or FLAGS"));
        };
        match after {
            [b' ', next @ ..] => rest = next,
            [b')', next @ ..] => {
                rest = next;
                break;
            }
            _ => return Err(SyntaxError::expected(after, "a space or )")),
        }
    }
    let event = match (envelope_seen, flags_seen) {
        (Some(envelope), flags) => Event::NewMessage {
            uid,
            envelope: Box::new(envelope),
            flags,
        },
        (None, Some(flags)) => Event::FlagsChanged { uid, flags },
        (None, None) => return Err(SyntaxError::expected(input, "ENVELOPE or FLAGS")),
    };
    Ok((rest, event))
}

/// `"(" [flag *(SP flag)] ")"`, `flag = ["\"] atom`.
fn flag_list(input: &[u8]) -> IResult<'_, Vec<Flag<'_>>> {
    parse::paren_list(input, &LIMITS, 1, |i| {
        let not_a_flag =
            || SyntaxError::failure(i, SyntaxErrorKind::Expected { expected: "a flag" });
        let (after, backslash) = match i {
            [b'\\', after @ ..] => (after, true),
            _ => (i, false),
        };
        let (after, atom) = parse::atom(after)?;
        let len = atom.as_str().len() + usize::from(backslash);
        let (raw, _) = i.split_at_checked(len).ok_or_else(not_a_flag)?;
        let text = std::str::from_utf8(raw)
            .map_err(|_| SyntaxError::failure(i, SyntaxErrorKind::InvalidUtf8))?;
        let flag = Flag::new(text).ok_or_else(not_a_flag)?;
        Ok((after, flag))
    })
}

fn nstring_bytes(input: &[u8]) -> IResult<'_, Option<Cow<'_, [u8]>>> {
    let (rest, value) = parse::nstring(input, &LIMITS)?;
    let value = value.map(|s| match s {
        IString::Quoted(Cow::Borrowed(text)) => Cow::Borrowed(text.as_bytes()),
        IString::Quoted(Cow::Owned(text)) => Cow::Owned(text.into_bytes()),
        IString::Literal { data, .. } => data,
    });
    Ok((rest, value))
}

/// `envelope = "(" env-date SP env-subject SP env-from SP env-sender SP env-reply-to SP
/// env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")"`.
fn envelope(input: &[u8]) -> IResult<'_, Envelope<'_>> {
    let (rest, ()) = parse::byte(input, b'(', "(")?;
    let (rest, date) = nstring_bytes(rest)?;
    let (rest, ()) = parse::sp(rest)?;
    let (rest, subject) = nstring_bytes(rest)?;
    let mut lists: [Vec<Address<'_>>; 6] = Default::default();
    let mut rest = rest;
    for list in &mut lists {
        let (after, ()) = parse::sp(rest)?;
        let (after, parsed) = addresses(after)?;
        *list = parsed;
        rest = after;
    }
    let (rest, ()) = parse::sp(rest)?;
    let (rest, in_reply_to) = nstring_bytes(rest)?;
    let (rest, ()) = parse::sp(rest)?;
    let (rest, message_id) = nstring_bytes(rest)?;
    let (rest, ()) = parse::byte(rest, b')', ")")?;
    let [from, sender, reply_to, to, cc, bcc] = lists;
    Ok((
        rest,
        Envelope {
            date,
            subject,
            from,
            sender,
            reply_to,
            to,
            cc,
            bcc,
            in_reply_to,
            message_id,
        },
    ))
}

/// `"(" 1*address ")" / nil`.
fn addresses(input: &[u8]) -> IResult<'_, Vec<Address<'_>>> {
    let [b'(', list @ ..] = input else {
        let (rest, ()) = parse::nil(input)?;
        return Ok((rest, Vec::new()));
    };
    let mut rest = list;
    let mut list = Vec::new();
    loop {
        let (after, address) = address(rest)?;
        list.push(address);
        match after {
            [b'(', ..] => rest = after,
            [b')', next @ ..] => return Ok((next, list)),
            [_, ..] => return Err(SyntaxError::expected(after, "an address or )")),
            [] => return Err(Err::Incomplete(imap_syntax::nom::Needed::new(1))),
        }
    }
}

/// `address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"`.
fn address(input: &[u8]) -> IResult<'_, Address<'_>> {
    let (rest, ()) = parse::byte(input, b'(', "(")?;
    let (rest, name) = nstring_bytes(rest)?;
    let (rest, ()) = parse::sp(rest)?;
    let (rest, adl) = nstring_bytes(rest)?;
    let (rest, ()) = parse::sp(rest)?;
    let (rest, mailbox) = nstring_bytes(rest)?;
    let (rest, ()) = parse::sp(rest)?;
    let (rest, host) = nstring_bytes(rest)?;
    let (rest, ()) = parse::byte(rest, b')', ")")?;
    Ok((
        rest,
        Address {
            name,
            adl,
            mailbox,
            host,
        },
    ))
}
