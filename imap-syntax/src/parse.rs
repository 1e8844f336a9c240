//! Streaming parsers for the RFC 9051 lexical rules.
//!
//! Every parser is a nom-compatible function over `&[u8]`. Input that stops before a
//! value is complete yields `nom::Err::Incomplete`, never a shorter value: an atom
//! running to the end of the input might continue, so it is incomplete too. Input
//! that cannot become valid yields a [`SyntaxError`] (`Err::Error` when another
//! alternative may still match, `Err::Failure` once the rule is committed).

use std::borrow::Cow;
use std::num::NonZeroU32;

use nom::{Err, Needed};

use crate::chars::{ASTRING, ATOM, TAG, is_astring_char, run_length};
use crate::types::{
    AString, AStringAtom, Atom, IString, Mailbox, SeqNumber, Sequence, SequenceSet, Tag,
};
use crate::{IResult, Limits, LiteralMode, SyntaxError, SyntaxErrorKind};

/// The longest run of digits read for a number: more cannot fit 64 bits, so longer
/// input is refused without scanning on.
const MAX_DIGITS: usize = 20;

/// Takes `1*pred`; incomplete if every octet of the input matches.
fn take_while1<'a>(
    input: &'a [u8],
    pred: impl Fn(u8) -> bool,
    what: &'static str,
) -> IResult<'a, &'a [u8]> {
    split_run(input, input.iter().position(|&b| !pred(b)), what)
}

/// Takes `1*` octets of a character class (a bit of [`chars`](crate::chars)' table).
fn take_class1<'a, const CLASS: u8>(input: &'a [u8], what: &'static str) -> IResult<'a, &'a [u8]> {
    split_run(input, run_length::<CLASS>(input), what)
}

/// Splits off a run of `end` octets (`None`: the whole input, which may go on).
fn split_run<'a>(input: &'a [u8], end: Option<usize>, what: &'static str) -> IResult<'a, &'a [u8]> {
    match end {
        Some(0) => Err(SyntaxError::expected(input, what)),
        Some(n) => match input.split_at_checked(n) {
            Some((run, rest)) => Ok((rest, run)),
            None => Err(SyntaxError::expected(input, what)),
        },
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// Matches one octet; `what` names it in the error.
pub fn byte<'a>(input: &'a [u8], expected: u8, what: &'static str) -> IResult<'a, ()> {
    match input.split_first() {
        Some((&b, rest)) if b == expected => Ok((rest, ())),
        Some(_) => Err(SyntaxError::expected(input, what)),
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// Matches a keyword, ASCII case-insensitively; incomplete on a matching prefix.
///
/// The keyword must not run on into more atom characters: `NILX` is not `NIL`.
pub fn keyword<'a>(input: &'a [u8], word: &'static str) -> IResult<'a, ()> {
    let w = word.as_bytes();
    if !input.iter().zip(w).all(|(a, b)| a.eq_ignore_ascii_case(b)) {
        return Err(SyntaxError::expected(input, word));
    }
    let Some((_, rest)) = input.split_at_checked(w.len()) else {
        return Err(Err::Incomplete(Needed::new(w.len() - input.len())));
    };
    match rest.first() {
        Some(&b) if is_astring_char(b) => Err(SyntaxError::expected(input, word)),
        Some(_) => Ok((rest, ())),
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// `SP`.
pub fn sp(input: &[u8]) -> IResult<'_, ()> {
    byte(input, b' ', "a space")
}

/// `CRLF`.
pub fn crlf(input: &[u8]) -> IResult<'_, ()> {
    let (rest, ()) = byte(input, b'\r', "CRLF")?;
    byte(rest, b'\n', "CRLF")
}

/// `atom = 1*ATOM-CHAR`.
pub fn atom(input: &[u8]) -> IResult<'_, Atom<'_>> {
    let (rest, raw) = take_class1::<ATOM>(input, "an atom")?;
    // ATOM-CHARs are ASCII.
    let text = std::str::from_utf8(raw)
        .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::InvalidUtf8))?;
    Ok((rest, Atom::unchecked(text)))
}

/// `tag = 1*<any ASTRING-CHAR except "+">`.
pub fn tag(input: &[u8]) -> IResult<'_, Tag<'_>> {
    let (rest, raw) = take_class1::<TAG>(input, "a tag")?;
    let text = std::str::from_utf8(raw)
        .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::InvalidUtf8))?;
    Ok((rest, Tag::unchecked(text)))
}

fn digits(input: &[u8]) -> IResult<'_, u64> {
    // More digits than any number holds is out of range now, not a prefix to wait on:
    // a peer sending digits without end must not keep the caller buffering.
    if input
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .nth(MAX_DIGITS)
        .is_some()
    {
        return Err(SyntaxError::failure(input, SyntaxErrorKind::NumberRange));
    }
    let (rest, raw) = take_while1(input, |b| b.is_ascii_digit(), "a number")?;
    if raw.len() > MAX_DIGITS {
        return Err(SyntaxError::failure(input, SyntaxErrorKind::NumberRange));
    }
    let mut value: u64 = 0;
    for &d in raw {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| SyntaxError::failure(input, SyntaxErrorKind::NumberRange))?;
    }
    Ok((rest, value))
}

/// `number = 1*DIGIT`, an unsigned 32-bit integer.
pub fn number(input: &[u8]) -> IResult<'_, u32> {
    let (rest, value) = digits(input)?;
    let value = u32::try_from(value)
        .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::NumberRange))?;
    Ok((rest, value))
}

/// `number64 = 1*DIGIT`, an unsigned 63-bit integer.
pub fn number64(input: &[u8]) -> IResult<'_, u64> {
    let (rest, value) = digits(input)?;
    if value > i64::MAX as u64 {
        return Err(SyntaxError::failure(input, SyntaxErrorKind::NumberRange));
    }
    Ok((rest, value))
}

/// `nz-number = digit-nz *DIGIT`, a non-zero unsigned 32-bit integer.
pub fn nz_number(input: &[u8]) -> IResult<'_, NonZeroU32> {
    let (rest, value) = number(input)?;
    let value = NonZeroU32::new(value)
        .ok_or_else(|| SyntaxError::failure(input, SyntaxErrorKind::NumberRange))?;
    Ok((rest, value))
}

/// `nil = "NIL"`, case-insensitive.
pub fn nil(input: &[u8]) -> IResult<'_, ()> {
    keyword(input, "NIL")
}

/// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`, where
/// `QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials /
/// UTF8-2 / UTF8-3 / UTF8-4`. The value is unescaped; it borrows from the input
/// unless it contained an escape.
pub fn quoted(input: &[u8]) -> IResult<'_, Cow<'_, str>> {
    let (body, ()) = byte(input, b'"', "a quoted string")?;
    let mut escapes = 0usize;
    let mut tail = body;
    // The input from the closing quote on.
    let closing = loop {
        match tail {
            [b'"', ..] => break tail,
            [b'\\', b'"' | b'\\', after @ ..] => {
                escapes += 1;
                tail = after;
            }
            [] | [b'\\'] => return Err(Err::Incomplete(Needed::new(1))),
            [b'\\', ..] => {
                return Err(SyntaxError::failure(tail, SyntaxErrorKind::InvalidEscape));
            }
            [0, ..] => return Err(SyntaxError::failure(tail, SyntaxErrorKind::Nul)),
            [b'\r' | b'\n', ..] => {
                return Err(SyntaxError::failure(
                    tail,
                    SyntaxErrorKind::Expected {
                        expected: "a closing quote before the line ends",
                    },
                ));
            }
            [_, after @ ..] => tail = after,
        }
    };
    // `closing` is a suffix of `body`: the text is what comes before it.
    let Some((raw, [b'"', rest @ ..])) = body.split_at_checked(body.len() - closing.len()) else {
        return Err(SyntaxError::failure(
            closing,
            SyntaxErrorKind::Expected {
                expected: "a quoted string",
            },
        ));
    };
    let utf8 = |_| SyntaxError::failure(body, SyntaxErrorKind::InvalidUtf8);
    let value = if escapes == 0 {
        Cow::Borrowed(std::str::from_utf8(raw).map_err(utf8)?)
    } else {
        let mut out = Vec::with_capacity(raw.len() - escapes);
        let mut tail = raw;
        // An escape's second octet is `"` or `\`, checked above.
        while let [b'\\', b, after @ ..] | [b, after @ ..] = tail {
            out.push(*b);
            tail = after;
        }
        Cow::Owned(String::from_utf8(out).map_err(|e| utf8(e.utf8_error()))?)
    };
    Ok((rest, value))
}

/// `literal = "{" number64 ["+"] "}" CRLF *CHAR8`, with `CHAR8 = %x01-ff`.
///
/// The announced length is checked against [`Limits::max_literal`] before any data
/// is awaited. With [`Limits::literal_handshake`], a synchronizing announcement with
/// no data after it yields [`SyntaxErrorKind::LiteralAnnounced`].
pub fn literal<'a>(input: &'a [u8], limits: &Limits) -> IResult<'a, (Cow<'a, [u8]>, LiteralMode)> {
    let (rest, ()) = byte(input, b'{', "a literal")?;
    let (rest, length) = number64(rest).map_err(|e| match e {
        Err::Error(e) => Err::Failure(e),
        other => other,
    })?;
    let (rest, mode) = match rest {
        [b'+', after @ ..] => (after, LiteralMode::NonSync),
        [_, ..] => (rest, LiteralMode::Sync),
        [] => return Err(Err::Incomplete(Needed::new(1))),
    };
    let committed = |e: Err<SyntaxError>| match e {
        Err::Error(e) => Err::Failure(e),
        other => other,
    };
    let (rest, ()) = byte(rest, b'}', "}").map_err(committed)?;
    let (rest, ()) = crlf(rest).map_err(committed)?;
    let length = match u32::try_from(length) {
        Ok(n) if n <= limits.max_literal => n,
        _ => {
            return Err(SyntaxError::failure(
                input,
                SyntaxErrorKind::LiteralTooLarge {
                    length,
                    max: limits.max_literal,
                },
            ));
        }
    };
    if rest.is_empty() && mode == LiteralMode::Sync && limits.literal_handshake {
        return Err(SyntaxError::failure(
            input,
            SyntaxErrorKind::LiteralAnnounced { length, mode },
        ));
    }
    let n = length as usize;
    let Some((data, rest)) = rest.split_at_checked(n) else {
        return Err(Err::Incomplete(Needed::new(n - rest.len())));
    };
    if let Some(at) = data.iter().position(|&b| b == 0) {
        // The error is at the NUL (at the literal, were `at` not within it).
        let from_nul = match data.split_at_checked(at) {
            Some((_, from_nul)) => from_nul,
            None => data,
        };
        return Err(SyntaxError::failure(from_nul, SyntaxErrorKind::Nul));
    }
    Ok((rest, (Cow::Borrowed(data), mode)))
}

/// `string = quoted / literal`.
pub fn string<'a>(input: &'a [u8], limits: &Limits) -> IResult<'a, IString<'a>> {
    match input.first() {
        Some(b'"') => quoted(input).map(|(rest, text)| (rest, IString::Quoted(text))),
        Some(b'{') => literal(input, limits)
            .map(|(rest, (data, mode))| (rest, IString::Literal { data, mode })),
        Some(_) => Err(SyntaxError::expected(input, "a quoted string or literal")),
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// `astring = 1*ASTRING-CHAR / string`.
pub fn astring<'a>(input: &'a [u8], limits: &Limits) -> IResult<'a, AString<'a>> {
    match input.first() {
        Some(b'"' | b'{') => string(input, limits).map(|(rest, s)| (rest, AString::String(s))),
        Some(_) => {
            let (rest, raw) = take_class1::<ASTRING>(input, "an atom or string")?;
            let text = std::str::from_utf8(raw)
                .map_err(|_| SyntaxError::failure(input, SyntaxErrorKind::InvalidUtf8))?;
            Ok((rest, AString::Atom(AStringAtom::unchecked(text))))
        }
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// `astring = 1*ASTRING-CHAR / string`, as octets, for values that are not text (base64
/// keys, mailbox names): an atom's octets are ASCII by the grammar, so they are not
/// checked again as UTF-8. A quoted string is unescaped and checked as in [`astring`],
/// a literal taken as it is.
///
/// ```
/// use imap_syntax::{Limits, parse::astring_bytes};
/// let (rest, key) = astring_bytes(b"BTBZMqHH6r4Tts7J_aSIgg\r\n", &Limits::default())?;
/// assert_eq!((&*key, rest), (&b"BTBZMqHH6r4Tts7J_aSIgg"[..], &b"\r\n"[..]));
/// # Ok::<(), imap_syntax::nom::Err<imap_syntax::SyntaxError>>(())
/// ```
pub fn astring_bytes<'a>(input: &'a [u8], limits: &Limits) -> IResult<'a, Cow<'a, [u8]>> {
    match input.first() {
        Some(b'"') => quoted(input).map(|(rest, text)| {
            let bytes = match text {
                Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                Cow::Owned(text) => Cow::Owned(text.into_bytes()),
            };
            (rest, bytes)
        }),
        Some(b'{') => literal(input, limits).map(|(rest, (data, _))| (rest, data)),
        Some(_) => take_class1::<ASTRING>(input, "an atom or string")
            .map(|(rest, raw)| (rest, Cow::Borrowed(raw))),
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// `nstring = string / nil`.
pub fn nstring<'a>(input: &'a [u8], limits: &Limits) -> IResult<'a, Option<IString<'a>>> {
    match input.first() {
        Some(b'"' | b'{') => string(input, limits).map(|(rest, s)| (rest, Some(s))),
        Some(_) => nil(input).map(|(rest, ())| (rest, None)),
        None => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// `mailbox = "INBOX" / astring`; INBOX is case-insensitive.
pub fn mailbox<'a>(input: &'a [u8], limits: &Limits) -> IResult<'a, Mailbox<'a>> {
    let (rest, name) = astring_bytes(input, limits)?;
    Ok((rest, Mailbox::from_bytes(name)))
}

/// `seq-number = nz-number / "*"`.
pub fn seq_number(input: &[u8]) -> IResult<'_, SeqNumber> {
    match input {
        [b'*', rest @ ..] => Ok((rest, SeqNumber::Largest)),
        [_, ..] => nz_number(input).map(|(rest, n)| (rest, SeqNumber::Value(n))),
        [] => Err(Err::Incomplete(Needed::new(1))),
    }
}

/// `sequence-set = (seq-number / seq-range) ["," sequence-set]`;
/// `seq-range = seq-number ":" seq-number`.
pub fn sequence_set(input: &[u8]) -> IResult<'_, SequenceSet> {
    let mut members = Vec::new();
    let mut rest = input;
    loop {
        let (after, first) = seq_number(rest)?;
        let (after, member) = match after {
            [b':', last @ ..] => {
                let (after, last) = seq_number(last).map_err(|e| match e {
                    Err::Error(e) => Err::Failure(e),
                    other => other,
                })?;
                (after, Sequence::Range(first, last))
            }
            [_, ..] => (after, Sequence::Single(first)),
            [] => return Err(Err::Incomplete(Needed::new(1))),
        };
        members.push(member);
        match after {
            [b',', next @ ..] => rest = next,
            [_, ..] => {
                // `members` holds at least the member just pushed.
                let set = SequenceSet::new(members).map_err(|_| {
                    SyntaxError::failure(
                        input,
                        SyntaxErrorKind::Nom(nom::error::ErrorKind::SeparatedList),
                    )
                })?;
                return Ok((after, set));
            }
            [] => return Err(Err::Incomplete(Needed::new(1))),
        }
    }
}

/// A parenthesised list, `"(" [element *(SP element)] ")"`, at nesting `depth`
/// (0 for the outermost list). An element that is itself a list passes `depth + 1`.
pub fn paren_list<'a, T>(
    input: &'a [u8],
    limits: &Limits,
    depth: usize,
    mut element: impl FnMut(&'a [u8]) -> IResult<'a, T>,
) -> IResult<'a, Vec<T>> {
    if depth >= limits.max_depth {
        return Err(SyntaxError::failure(
            input,
            SyntaxErrorKind::TooDeep {
                max: limits.max_depth,
            },
        ));
    }
    let (mut rest, ()) = byte(input, b'(', "(")?;
    let mut items = Vec::new();
    if let Some(after) = rest.strip_prefix(b")") {
        return Ok((after, items));
    }
    loop {
        let (after, item) = element(rest)?;
        items.push(item);
        match after {
            [b' ', next @ ..] => rest = next,
            [b')', next @ ..] => return Ok((next, items)),
            [_, ..] => {
                return Err(SyntaxError::failure(
                    after,
                    SyntaxErrorKind::Expected {
                        expected: "a space or )",
                    },
                ));
            }
            [] => return Err(Err::Incomplete(Needed::new(1))),
        }
    }
}
