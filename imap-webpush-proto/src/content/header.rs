//! Envelopes from the header values an event source reports: the address lists of
//! RFC 5322 §3.4 read into IMAP's address structures, and unstructured text (a subject
//! an event source decoded to UTF-8) written back as RFC 2047 encoded-words, so that a
//! client reads what it would read in the server's own `ENVELOPE`.

use std::borrow::Cow;

use base64::Engine as _;

use super::{Address, Envelope};

/// What an event source tells of a new message, each value as the message's header
/// has it; an empty value is a missing header.
///
/// `subject` may be the header as written (ASCII, with encoded-words) or already
/// decoded to UTF-8 (Dovecot's Lua driver decodes it): non-ASCII text is encoded again
/// by [`Envelope::from_header_values`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderValues<'a> {
    /// `Date:`, as text (`Tue, 1 Dec 2026 21:39:06 +0100`).
    pub date: &'a str,
    /// `Subject:`.
    pub subject: &'a str,
    /// `From:`, an RFC 5322 address list (`Bob <bob@example.org>`).
    pub from: &'a str,
    /// `Message-ID:` (`<id@example.org>`).
    pub message_id: &'a str,
}

/// What the envelope has for an address without a domain, as Dovecot's `ENVELOPE`
/// has it: a NIL host would read as the start of a group (RFC 9051 §7.5.2).
pub const MISSING_DOMAIN: &str = "MISSING_DOMAIN";
/// What the envelope has for an address without a local part, as Dovecot's.
pub const MISSING_MAILBOX: &str = "MISSING_MAILBOX";

/// The longest encoded-word RFC 2047 §2 allows.
const MAX_ENCODED_WORD: usize = 75;
/// `=?UTF-8?B?` and `?=` around each word's base64.
const ENCODED_WORD_OVERHEAD: usize = "=?UTF-8?B?".len() + "?=".len();
/// The octets of UTF-8 one word carries: three per four base64 characters.
const OCTETS_PER_WORD: usize = (MAX_ENCODED_WORD - ENCODED_WORD_OVERHEAD) / 4 * 3;

impl<'a> Envelope<'a> {
    /// The envelope a server's `ENVELOPE` gives for a message with these header values:
    /// date, subject and message-id as written, `From:` read into addresses (also the
    /// sender and reply-to, which an IMAP server sets to the `From:` when the message
    /// has none), the rest NIL.
    ///
    /// ```
    /// use imap_webpush_proto::content::{Envelope, HeaderValues};
    ///
    /// let envelope = Envelope::from_header_values(&HeaderValues {
    ///     date: "Tue, 1 Dec 2026 21:39:06 +0100",
    ///     subject: "Hällo",
    ///     from: "\"Bob, the builder\" <bob@example.org>",
    ///     message_id: "<1@example.org>",
    /// });
    /// assert_eq!(envelope.subject.as_deref(), Some(&b"=?UTF-8?B?SMOkbGxv?="[..]));
    /// assert_eq!(envelope.from[0].name.as_deref(), Some(&b"Bob, the builder"[..]));
    /// assert_eq!(envelope.from[0].host.as_deref(), Some(&b"example.org"[..]));
    /// ```
    pub fn from_header_values(values: &HeaderValues<'a>) -> Self {
        let text = |s: &'a str| (!s.is_empty()).then_some(Cow::Borrowed(s.as_bytes()));
        let from = Address::parse_list(values.from);
        Envelope {
            date: text(values.date.trim()),
            subject: (!values.subject.is_empty()).then(|| encode_unstructured(values.subject)),
            sender: from.clone(),
            reply_to: from.clone(),
            from,
            message_id: text(values.message_id.trim()),
            ..Envelope::default()
        }
    }
}

/// Unstructured header text as a header carries it: ASCII text without line breaks
/// as it is, anything else as RFC 2047 `B` encoded-words in UTF-8, each at most 75
/// characters and split between characters, never inside one.
///
/// ```
/// use imap_webpush_proto::content::encode_unstructured;
///
/// assert_eq!(encode_unstructured("Hello"), &b"Hello"[..]);
/// assert_eq!(encode_unstructured("Grüße"), &b"=?UTF-8?B?R3LDvMOfZQ==?="[..]);
/// ```
pub fn encode_unstructured(text: &str) -> Cow<'_, [u8]> {
    if text
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Cow::Borrowed(text.as_bytes());
    }
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut rest = text;
    while !rest.is_empty() {
        // The longest run of whole characters that fits one word.
        let mut end = rest.len().min(OCTETS_PER_WORD);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (word, tail) = rest.split_at(end);
        if !out.is_empty() {
            // Decoders drop the space between adjacent encoded-words (RFC 2047 §6.2).
            out.push(b' ');
        }
        out.extend_from_slice(b"=?UTF-8?B?");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(word)
                .as_bytes(),
        );
        out.extend_from_slice(b"?=");
        rest = tail;
    }
    Cow::Owned(out)
}

/// A lexical item of an address list (RFC 5322 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    /// An atom or dot-atom, or a domain literal (`[…]`) kept with its brackets.
    Atom(&'a str),
    /// A quoted string's content, unescaped.
    Quoted(Cow<'a, str>),
    /// One of `< > : ; , @`.
    Special(u8),
}

/// Splits an address list into tokens, dropping white space and comments; the text of
/// the last comment is kept, for an address that has no display name otherwise
/// (`bob@example.org (Bob)`).
fn tokens(text: &str) -> (Vec<Token<'_>>, Vec<Cow<'_, str>>) {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut comments = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                let (comment, next) = comment(text, i);
                comments.push(comment);
                i = next;
            }
            b'"' => {
                let (quoted, next) = quoted(text, i);
                out.push(Token::Quoted(quoted));
                i = next;
            }
            b'<' | b'>' | b':' | b';' | b',' | b'@' => {
                out.push(Token::Special(b));
                i += 1;
            }
            b'[' => {
                let end = bytes
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&c| c == b']'))
                    .map_or(bytes.len(), |n| i + n + 1);
                out.push(Token::Atom(text.get(i..end).unwrap_or_default()));
                i = end;
            }
            _ => {
                let start = i;
                while bytes.get(i).is_some_and(|&c| !is_delimiter(c)) {
                    i += 1;
                }
                // A delimiter is ASCII, so `start..i` lies on character boundaries.
                if let Some(atom) = text.get(start..i) {
                    out.push(Token::Atom(atom));
                }
            }
        }
    }
    (out, comments)
}

fn is_delimiter(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b'"' | b'<' | b'>' | b':' | b';' | b',' | b'@' | b'['
    )
}

/// A quoted string starting at `start` (its `"`): its content unescaped, and where the
/// text goes on. An unterminated one runs to the end.
fn quoted(text: &str, start: usize) -> (Cow<'_, str>, usize) {
    let body_start = start + 1;
    let body = text.get(body_start..).unwrap_or_default();
    let mut escaped = false;
    let mut owned: Option<String> = None;
    for (n, c) in body.char_indices() {
        if escaped {
            escaped = false;
            if let Some(s) = owned.as_mut() {
                s.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                owned.get_or_insert_with(|| body.get(..n).unwrap_or_default().to_owned());
            }
            '"' => {
                let content = match owned {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(body.get(..n).unwrap_or_default()),
                };
                return (content, body_start + n + 1);
            }
            '\r' | '\n' => {
                // Folding inside a quoted string is white space (RFC 5322 §3.2.4).
                owned.get_or_insert_with(|| body.get(..n).unwrap_or_default().to_owned());
            }
            _ => {
                if let Some(s) = owned.as_mut() {
                    s.push(c);
                }
            }
        }
    }
    let content = owned.map_or(Cow::Borrowed(body), Cow::Owned);
    (content, text.len())
}

/// A comment starting at `start` (its `(`), nested comments included: its text
/// trimmed, and where the text goes on. An unterminated one runs to the end.
fn comment(text: &str, start: usize) -> (Cow<'_, str>, usize) {
    let mut depth = 0_usize;
    let mut escaped = false;
    for (n, c) in text.get(start..).unwrap_or_default().char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let inner = text.get(start + 1..start + n).unwrap_or_default().trim();
                    return (Cow::Borrowed(inner), start + n + 1);
                }
            }
            _ => {}
        }
    }
    let inner = text.get(start + 1..).unwrap_or_default().trim();
    (Cow::Borrowed(inner), text.len())
}

/// The words of a phrase joined by single spaces, or `None` when there are none.
fn phrase<'a>(words: &[Token<'a>]) -> Option<Cow<'a, [u8]>> {
    match words {
        [] => None,
        [Token::Atom(a)] => Some(Cow::Borrowed(a.as_bytes())),
        [Token::Quoted(q)] => Some(match q {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.clone().into_bytes()),
        }),
        _ => {
            let mut out = Vec::new();
            for word in words {
                if !out.is_empty() {
                    out.push(b' ');
                }
                match word {
                    Token::Atom(a) => out.extend_from_slice(a.as_bytes()),
                    Token::Quoted(q) => out.extend_from_slice(q.as_bytes()),
                    Token::Special(c) => out.push(*c),
                }
            }
            Some(Cow::Owned(out))
        }
    }
}

/// `addr-spec = local-part "@" domain`, from its tokens (an obsolete route before a
/// `:` dropped): the local part and the domain, with the placeholders Dovecot uses for
/// a missing one.
fn addr_spec<'a>(tokens: &[Token<'a>]) -> (Cow<'a, [u8]>, Cow<'a, [u8]>) {
    let tokens = match tokens.iter().rposition(|t| *t == Token::Special(b':')) {
        Some(colon) => tokens.get(colon + 1..).unwrap_or_default(),
        None => tokens,
    };
    let (local, domain) = match tokens.iter().rposition(|t| *t == Token::Special(b'@')) {
        Some(at) => (
            tokens.get(..at).unwrap_or_default(),
            tokens.get(at + 1..).unwrap_or_default(),
        ),
        None => (tokens, &[][..]),
    };
    let joined = |part: &[Token<'a>], missing: &'static str| -> Cow<'a, [u8]> {
        match part {
            [] => Cow::Borrowed(missing.as_bytes()),
            [Token::Atom(a)] => Cow::Borrowed(a.as_bytes()),
            _ => {
                let mut out = Vec::new();
                for token in part {
                    match token {
                        Token::Atom(a) => out.extend_from_slice(a.as_bytes()),
                        Token::Quoted(q) => out.extend_from_slice(q.as_bytes()),
                        Token::Special(c) => out.push(*c),
                    }
                }
                Cow::Owned(out)
            }
        }
    };
    (
        joined(local, MISSING_MAILBOX),
        joined(domain, MISSING_DOMAIN),
    )
}

impl<'a> Address<'a> {
    /// Reads an RFC 5322 `address-list` (a `From:` or `To:` value) into IMAP's address
    /// structures, as a server's `ENVELOPE` has them (RFC 9051 §7.5.2): a group is a
    /// start marker (its name as `mailbox`, host NIL), its members, and an end marker
    /// (all NIL).
    ///
    /// ```text
    /// address-list = address *("," address)
    /// address      = mailbox / group
    /// mailbox      = name-addr / addr-spec
    /// name-addr    = [display-name] angle-addr
    /// angle-addr   = [CFWS] "<" [obs-route] addr-spec ">" [CFWS]
    /// group        = display-name ":" [group-list] ";" [CFWS]
    /// ```
    ///
    /// Parsed liberally, as mail servers read headers: it never fails. Folding and
    /// comments are white space (a comment names an address that has no display name);
    /// a display name keeps its encoded-words as written; an address without a domain
    /// or a local part gets [`MISSING_DOMAIN`] or [`MISSING_MAILBOX`]; empty entries
    /// are skipped; an unterminated quote, comment, angle address or group runs to the
    /// end. The time taken is linear in the text's length.
    ///
    /// ```
    /// use imap_webpush_proto::content::Address;
    ///
    /// let list = Address::parse_list("Team: a@x, \"B\" <b@y>;, c@z (Carol)");
    /// let hosts: Vec<_> = list.iter().map(|a| a.host.as_deref()).collect();
    /// assert_eq!(hosts, [None, Some(&b"x"[..]), Some(&b"y"[..]), None, Some(&b"z"[..])]);
    /// assert_eq!(list[2].name.as_deref(), Some(&b"B"[..]));
    /// assert_eq!(list[4].name.as_deref(), Some(&b"Carol"[..]));
    /// ```
    pub fn parse_list(text: &'a str) -> Vec<Address<'a>> {
        let (tokens, comments) = tokens(text);
        // A comment names an address only when the list has one address.
        let comment_name = match comments.as_slice() {
            [one] if !one.is_empty() => Some(one.clone()),
            _ => None,
        };
        let mut out = Vec::new();
        let mut in_group = false;
        let mut pending: Vec<Token<'a>> = Vec::new();
        let mut iter = tokens.into_iter();
        let finish_bare = |pending: &mut Vec<Token<'a>>, out: &mut Vec<Address<'a>>| {
            if pending.is_empty() {
                return;
            }
            let (mailbox, host) = addr_spec(pending);
            out.push(Address {
                name: None,
                adl: None,
                mailbox: Some(mailbox),
                host: Some(host),
            });
            pending.clear();
        };
        while let Some(token) = iter.next() {
            match token {
                Token::Special(b'<') => {
                    let mut spec = Vec::new();
                    for t in iter.by_ref() {
                        if t == Token::Special(b'>') {
                            break;
                        }
                        spec.push(t);
                    }
                    let name = phrase(&pending);
                    pending.clear();
                    if spec.is_empty() && name.is_none() {
                        continue;
                    }
                    let (mailbox, host) = addr_spec(&spec);
                    out.push(Address {
                        name,
                        adl: None,
                        mailbox: Some(mailbox),
                        host: Some(host),
                    });
                }
                Token::Special(b':') if !in_group => {
                    in_group = true;
                    out.push(Address {
                        name: None,
                        adl: None,
                        mailbox: Some(phrase(&pending).unwrap_or(Cow::Borrowed(b""))),
                        host: None,
                    });
                    pending.clear();
                }
                Token::Special(b';') if in_group => {
                    finish_bare(&mut pending, &mut out);
                    in_group = false;
                    out.push(Address::default());
                }
                Token::Special(b',') => finish_bare(&mut pending, &mut out),
                other => pending.push(other),
            }
        }
        finish_bare(&mut pending, &mut out);
        if in_group {
            out.push(Address::default());
        }
        if let ([address], Some(name)) = (out.as_mut_slice(), comment_name)
            && address.name.is_none()
            && address.host.is_some()
        {
            address.name = Some(match name {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[Address<'_>]) -> Vec<[Option<String>; 3]> {
        let s = |p: &Option<Cow<'_, [u8]>>| {
            p.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        list.iter()
            .map(|a| [s(&a.name), s(&a.mailbox), s(&a.host)])
            .collect()
    }

    fn one(name: Option<&str>, mailbox: &str, host: &str) -> [Option<String>; 3] {
        [
            name.map(str::to_owned),
            Some(mailbox.to_owned()),
            Some(host.to_owned()),
        ]
    }

    /// Inputs and the addresses a server's ENVELOPE gives for them.
    #[test]
    fn address_lists() {
        let cases: &[(&str, Vec<[Option<String>; 3]>)] = &[
            ("", vec![]),
            ("bob@example.org", vec![one(None, "bob", "example.org")]),
            ("<bob@example.org>", vec![one(None, "bob", "example.org")]),
            (
                "Bob Example <bob@example.org>",
                vec![one(Some("Bob Example"), "bob", "example.org")],
            ),
            (
                "\"Example, Bob\" <bob@example.org>",
                vec![one(Some("Example, Bob"), "bob", "example.org")],
            ),
            (
                "\"a \\\"q\\\" b\" <x@y>",
                vec![one(Some("a \"q\" b"), "x", "y")],
            ),
            (
                "=?UTF-8?Q?Bob_Br=C3=A4un?= <bob@example.org>",
                vec![one(
                    Some("=?UTF-8?Q?Bob_Br=C3=A4un?="),
                    "bob",
                    "example.org",
                )],
            ),
            (
                "bob@example.org (Bob Example)",
                vec![one(Some("Bob Example"), "bob", "example.org")],
            ),
            (
                "Bob\r\n <bob@example.org>",
                vec![one(Some("Bob"), "bob", "example.org")],
            ),
            ("a@x, b@y", vec![one(None, "a", "x"), one(None, "b", "y")]),
            (
                "<@route,@r2:bob@example.org>",
                vec![one(None, "bob", "example.org")],
            ),
            ("bob", vec![one(None, "bob", MISSING_DOMAIN)]),
            (
                "<@example.org>",
                vec![one(None, MISSING_MAILBOX, "example.org")],
            ),
            ("\"x y\"@example.org", vec![one(None, "x y", "example.org")]),
            ("a@[192.0.2.1]", vec![one(None, "a", "[192.0.2.1]")]),
            (
                "Bob <bob@example.org",
                vec![one(Some("Bob"), "bob", "example.org")],
            ),
            (", ,a@x,", vec![one(None, "a", "x")]),
            ("Jörg <j@ex.de>", vec![one(Some("Jörg"), "j", "ex.de")]),
        ];
        for (input, expected) in cases {
            assert_eq!(&parts(&Address::parse_list(input)), expected, "{input:?}");
        }
    }

    #[test]
    fn groups() {
        let list = Address::parse_list("Undisclosed recipients:;");
        assert_eq!(
            parts(&list),
            vec![
                [None, Some("Undisclosed recipients".into()), None],
                [None, None, None]
            ]
        );
        // Unterminated: the group ends with the text.
        let list = Address::parse_list("G: a@x");
        assert_eq!(list.len(), 3);
        assert_eq!(list[2], Address::default());
    }

    #[test]
    fn unstructured_text() {
        assert_eq!(encode_unstructured("Re: hello"), &b"Re: hello"[..]);
        assert_eq!(
            encode_unstructured("=?UTF-8?B?SMOkbGxv?="),
            &b"=?UTF-8?B?SMOkbGxv?="[..]
        );
        assert_eq!(encode_unstructured("a\r\nb"), &b"=?UTF-8?B?YQ0KYg==?="[..]);
        // Long text: words of at most 75 characters, no character split.
        let long = "ä".repeat(100);
        let encoded = encode_unstructured(&long);
        let text = std::str::from_utf8(&encoded).unwrap();
        let mut decoded = Vec::new();
        for word in text.split(' ') {
            assert!(word.len() <= MAX_ENCODED_WORD, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            let octets = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            assert!(std::str::from_utf8(&octets).is_ok());
            decoded.extend(octets);
        }
        assert_eq!(decoded, long.as_bytes());
    }

    #[test]
    fn envelopes_from_header_values() {
        let envelope = Envelope::from_header_values(&HeaderValues {
            date: "Tue, 1 Dec 2026 21:39:06 +0100",
            subject: "Hi",
            from: "Bob <bob@example.org>",
            message_id: "<1@example.org>",
        });
        assert_eq!(
            envelope.date.as_deref(),
            Some(&b"Tue, 1 Dec 2026 21:39:06 +0100"[..])
        );
        assert_eq!(envelope.sender, envelope.from);
        assert_eq!(envelope.reply_to, envelope.from);
        assert!(envelope.to.is_empty());
        assert_eq!(
            envelope.message_id.as_deref(),
            Some(&b"<1@example.org>"[..])
        );
        let empty = Envelope::from_header_values(&HeaderValues::default());
        assert_eq!(empty, Envelope::default());
    }
}
