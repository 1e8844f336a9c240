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
enum Token {
    /// An atom or dot-atom, or a domain literal (`[…]`) kept with its brackets.
    Word(String),
    /// A quoted string's content, unescaped and unfolded.
    Quoted(String),
    /// A comment's text, trimmed.
    Comment(String),
    /// One of `< > : ; , @`.
    Special(char),
}

/// Whether `c` ends an atom.
fn is_delimiter(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | '(' | '"' | '<' | '>' | ':' | ';' | ',' | '@' | '['
    )
}

/// Splits an address list into tokens, dropping white space and folding. An
/// unterminated quoted string, comment or domain literal runs to the end.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '(' => out.push(Token::Comment(comment(&mut chars))),
            '"' => out.push(Token::Quoted(quoted(&mut chars))),
            '<' | '>' | ':' | ';' | ',' | '@' => out.push(Token::Special(c)),
            '[' => {
                let mut literal = String::from('[');
                for c in chars.by_ref() {
                    literal.push(c);
                    if c == ']' {
                        break;
                    }
                }
                out.push(Token::Word(literal));
            }
            _ => {
                let mut word = String::from(c);
                while let Some(c) = chars.next_if(|&c| !is_delimiter(c)) {
                    word.push(c);
                }
                out.push(Token::Word(word));
            }
        }
    }
    out
}

/// The rest of a quoted string after its opening `"`: its content, unescaped, with
/// folding line breaks dropped (RFC 5322 §3.2.4).
fn quoted(chars: &mut impl Iterator<Item = char>) -> String {
    let mut content = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => content.extend(chars.next()),
            '"' => break,
            '\r' | '\n' => {}
            _ => content.push(c),
        }
    }
    content
}

/// The rest of a comment after its opening `(`, nested comments included: its text,
/// trimmed.
fn comment(chars: &mut impl Iterator<Item = char>) -> String {
    let mut text = String::new();
    let mut depth = 1_usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            '(' => {
                depth += 1;
                text.push(c);
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                text.push(c);
            }
            _ => text.push(c),
        }
    }
    text.trim().to_owned()
}

/// The words of a phrase (comments left out) joined by single spaces, or `None` when
/// there are none.
fn phrase(tokens: &[Token]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut any = false;
    for token in tokens {
        let mut buf = [0; 4];
        let word = match token {
            Token::Word(w) | Token::Quoted(w) => w.as_bytes(),
            Token::Special(c) => c.encode_utf8(&mut buf).as_bytes(),
            Token::Comment(_) => continue,
        };
        if any {
            out.push(b' ');
        }
        out.extend_from_slice(word);
        any = true;
    }
    any.then_some(out)
}

/// An address from the tokens of its `addr-spec` (`local-part "@" domain`, split at the
/// last `@`; an obsolete route before a `:` dropped), named `name`; the placeholders
/// Dovecot uses for a missing local part or domain.
fn mailbox(name: Option<Vec<u8>>, spec: &[Token]) -> Address<'static> {
    let (mut local, mut domain) = (Vec::new(), Vec::new());
    let mut in_domain = false;
    for token in spec {
        let mut buf = [0; 4];
        let octets = match token {
            Token::Comment(_) => continue,
            Token::Special(':') => {
                // The route ends: what came before was not the address.
                local.clear();
                domain.clear();
                in_domain = false;
                continue;
            }
            Token::Special('@') => {
                if in_domain {
                    // Not the last `@`: it and the domain so far are the local part's.
                    local.push(b'@');
                    local.append(&mut domain);
                }
                in_domain = true;
                continue;
            }
            Token::Word(w) | Token::Quoted(w) => w.as_bytes(),
            Token::Special(c) => c.encode_utf8(&mut buf).as_bytes(),
        };
        if in_domain {
            domain.extend_from_slice(octets);
        } else {
            local.extend_from_slice(octets);
        }
    }
    let or = |part: Vec<u8>, missing: &'static str| {
        if part.is_empty() {
            Cow::Borrowed(missing.as_bytes())
        } else {
            Cow::Owned(part)
        }
    };
    Address {
        name: name.map(Cow::Owned),
        adl: None,
        mailbox: Some(or(local, MISSING_MAILBOX)),
        host: Some(or(domain, MISSING_DOMAIN)),
    }
}

impl Address<'static> {
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
    /// comments are white space, except that a comment names an `addr-spec` that has
    /// no display name (`bob@example.org (Bob)`); a display name keeps its
    /// encoded-words as written; an address without a domain or a local part gets
    /// [`MISSING_DOMAIN`] or [`MISSING_MAILBOX`]; empty entries are skipped; an
    /// unterminated quote, comment, angle address or group runs to the end. The time
    /// taken is linear in the text's length.
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
    pub fn parse_list(text: &str) -> Vec<Address<'static>> {
        let mut out = Vec::new();
        let mut in_group = false;
        let mut pending: Vec<Token> = Vec::new();
        let mut tokens = tokens(text).into_iter();
        while let Some(token) = tokens.next() {
            match token {
                Token::Special('<') => {
                    let spec: Vec<Token> = tokens
                        .by_ref()
                        .take_while(|t| *t != Token::Special('>'))
                        .collect();
                    let name = phrase(&pending);
                    pending.clear();
                    if spec.is_empty() && name.is_none() {
                        continue;
                    }
                    out.push(mailbox(name, &spec));
                }
                Token::Special(':') if !in_group => {
                    in_group = true;
                    // A group without a name has an empty one.
                    let name = phrase(&pending).unwrap_or_default();
                    out.push(Address {
                        name: None,
                        adl: None,
                        mailbox: Some(Cow::Owned(name)),
                        host: None,
                    });
                    pending.clear();
                }
                Token::Special(';') if in_group => {
                    finish_bare(&mut pending, &mut out);
                    in_group = false;
                    out.push(Address::default());
                }
                Token::Special(',') => finish_bare(&mut pending, &mut out),
                other => pending.push(other),
            }
        }
        finish_bare(&mut pending, &mut out);
        if in_group {
            out.push(Address::default());
        }
        out
    }
}

/// Ends an `addr-spec` written without angle brackets: named by its comment, if any.
fn finish_bare(pending: &mut Vec<Token>, out: &mut Vec<Address<'static>>) {
    if pending.iter().all(|t| matches!(t, Token::Comment(_))) {
        pending.clear();
        return;
    }
    let name = pending.iter().rev().find_map(|t| match t {
        Token::Comment(c) if !c.is_empty() => Some(c.clone().into_bytes()),
        _ => None,
    });
    out.push(mailbox(name, pending));
    pending.clear();
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
