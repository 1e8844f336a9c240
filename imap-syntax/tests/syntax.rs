//! Known answers, refusals, the prefix property and encode/parse round trips for every
//! lexical rule.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_syntax::nom::Err;
use imap_syntax::{
    AString, AStringAtom, IString, Limits, LiteralMode, Mailbox, SeqNumber, Sequence,
    SyntaxErrorKind, encode, parse,
};
use proptest::prelude::*;

const L: Limits = Limits::SERVER;
const C: Limits = Limits::CLIENT;

fn kind<T: std::fmt::Debug>(r: imap_syntax::IResult<'_, T>) -> SyntaxErrorKind {
    match r {
        Err(Err::Error(e) | Err::Failure(e)) => e.kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn incomplete<T: std::fmt::Debug>(r: imap_syntax::IResult<'_, T>) -> bool {
    matches!(r, Err(Err::Incomplete(_)))
}

#[test]
fn known_answers() {
    assert_eq!(parse::atom(b"GETVAPID\r\n").unwrap().1.as_str(), "GETVAPID");
    assert_eq!(
        parse::tag(b"a1 GETVAPID").unwrap(),
        (&b" GETVAPID"[..], imap_syntax::Tag::new("a1").unwrap())
    );
    assert_eq!(parse::number(b"4294967295 ").unwrap().1, u32::MAX);
    assert_eq!(
        parse::number64(b"9223372036854775807)").unwrap().1,
        i64::MAX as u64
    );
    assert_eq!(parse::nz_number(b"7,").unwrap().1.get(), 7);
    assert_eq!(parse::quoted(b"\"a\\\"b\\\\c\" ").unwrap().1, "a\"b\\c");
    assert!(matches!(
        parse::quoted(b"\"plain\" ").unwrap().1,
        Cow::Borrowed("plain")
    ));
    assert_eq!(parse::quoted("\"Grüße\" ".as_bytes()).unwrap().1, "Grüße");
    assert_eq!(
        parse::literal(b"{5}\r\nhello ", &L).unwrap().1,
        (Cow::Borrowed(&b"hello"[..]), LiteralMode::Sync)
    );
    assert_eq!(
        parse::literal(b"{5+}\r\nhe\xffo! ", &L).unwrap().1,
        (Cow::Borrowed(&b"he\xffo!"[..]), LiteralMode::NonSync)
    );
    assert_eq!(
        parse::astring(b"abc]def ", &L).unwrap().1,
        AString::Atom(AStringAtom::new("abc]def").unwrap())
    );
    assert_eq!(parse::nstring(b"nil)", &L).unwrap().1, None);
    assert_eq!(
        parse::nstring(b"\"x\")", &L).unwrap().1,
        Some(IString::Quoted(Cow::Borrowed("x")))
    );
    assert_eq!(parse::mailbox(b"iNbOx ", &L).unwrap().1, Mailbox::Inbox);
    assert_eq!(parse::mailbox(b"\"INBOX\" ", &L).unwrap().1, Mailbox::Inbox);
    assert_eq!(
        parse::mailbox(b"\"New Messages\"\r\n", &L).unwrap().1,
        Mailbox::from_bytes(b"New Messages".as_slice())
    );
    let set = parse::sequence_set(b"1:3,7,9:*,* ").unwrap().1;
    let n = |v| SeqNumber::Value(NonZeroU32::new(v).unwrap());
    assert_eq!(
        set.members(),
        &[
            Sequence::Range(n(1), n(3)),
            Sequence::Single(n(7)),
            Sequence::Range(n(9), SeqNumber::Largest),
            Sequence::Single(SeqNumber::Largest),
        ]
    );
    let (rest, list) = parse::paren_list(b"(1 22 333) ", &L, 0, parse::number).unwrap();
    assert_eq!((rest, list), (&b" "[..], vec![1, 22, 333]));
    assert_eq!(
        parse::paren_list(b"()\r\n", &L, 0, parse::number)
            .unwrap()
            .1,
        Vec::<u32>::new()
    );
    assert!(parse::nil(b"NIL ").is_ok());
    assert!(parse::nil(b"NILS ").is_err());
}

#[test]
fn refusals() {
    assert_eq!(kind(parse::quoted(b"\"a\0b\" ")), SyntaxErrorKind::Nul);
    assert_eq!(
        kind(parse::quoted(b"\"a\\nb\" ")),
        SyntaxErrorKind::InvalidEscape
    );
    assert_eq!(
        kind(parse::quoted(b"\"\xff\xfe\" ")),
        SyntaxErrorKind::InvalidUtf8
    );
    assert!(matches!(
        kind(parse::quoted(b"\"ab\r\n")),
        SyntaxErrorKind::Expected { .. }
    ));
    assert_eq!(
        kind(parse::literal(b"{3}\r\na\0b ", &L)),
        SyntaxErrorKind::Nul
    );
    assert_eq!(
        kind(parse::literal(b"{65537}\r\n", &L)),
        SyntaxErrorKind::LiteralTooLarge {
            length: 65537,
            max: 65536
        }
    );
    assert_eq!(
        kind(parse::literal(b"{99999999999999999}\r\n", &L)),
        SyntaxErrorKind::LiteralTooLarge {
            length: 99_999_999_999_999_999,
            max: 65536
        }
    );
    assert_eq!(
        kind(parse::literal(b"{999999999999999999999}", &L)),
        SyntaxErrorKind::NumberRange
    );
    assert_eq!(
        kind(parse::literal(b"{12}\r\n", &L)),
        SyntaxErrorKind::LiteralAnnounced {
            length: 12,
            mode: LiteralMode::Sync
        }
    );
    // A client reading a server does not wait for a handshake; non-sync never does.
    assert!(incomplete(parse::literal(b"{12}\r\n", &C)));
    assert!(incomplete(parse::literal(b"{12+}\r\n", &L)));
    assert!(matches!(
        kind(parse::literal(b"{12x}\r\n", &L)),
        SyntaxErrorKind::Expected { .. }
    ));
    assert_eq!(
        kind(parse::number(b"4294967296 ")),
        SyntaxErrorKind::NumberRange
    );
    assert_eq!(kind(parse::nz_number(b"0 ")), SyntaxErrorKind::NumberRange);
    // Twenty digits may still end; twenty-one never fit, ended or not.
    assert!(incomplete(parse::number64(&[b'1'; 20])));
    assert_eq!(
        kind(parse::number(&[b'1'; 21])),
        SyntaxErrorKind::NumberRange
    );
    let endless_length = [b"{".as_slice(), &[b'9'; 21]].concat();
    assert_eq!(
        kind(parse::literal(&endless_length, &L)),
        SyntaxErrorKind::NumberRange
    );
    assert_eq!(
        kind(parse::number64(b"9223372036854775808 ")),
        SyntaxErrorKind::NumberRange
    );
    assert!(matches!(
        kind(parse::atom(b"(x")),
        SyntaxErrorKind::Expected { .. }
    ));
    assert!(matches!(
        kind(parse::tag(b"+x ")),
        SyntaxErrorKind::Expected { .. }
    ));
    assert!(matches!(
        kind(parse::astring(b"\xc3\xa9x ", &L)),
        SyntaxErrorKind::Expected { .. }
    ));
    assert!(matches!(
        kind(parse::sequence_set(b"1:x")),
        SyntaxErrorKind::Expected { .. }
    ));
    assert!(matches!(
        kind(parse::paren_list(b"(1,2)", &L, 0, parse::number)),
        SyntaxErrorKind::Expected { .. }
    ));
}

/// A list of lists of ... `depth` deep.
fn nested(input: &[u8], limits: &Limits, depth: usize) -> imap_syntax::IResult<'static, usize> {
    // Returns the nesting reached; the lifetime is static because nothing is borrowed.
    let input: &'static [u8] = Box::leak(input.to_vec().into_boxed_slice());
    fn element(
        input: &'static [u8],
        limits: Limits,
        depth: usize,
    ) -> imap_syntax::IResult<'static, usize> {
        if input.first() == Some(&b'(') {
            let (rest, inner) =
                parse::paren_list(input, &limits, depth, |i| element(i, limits, depth + 1))?;
            Ok((rest, inner.into_iter().max().unwrap_or(0) + 1))
        } else {
            parse::number(input).map(|(rest, _)| (rest, 0))
        }
    }
    element(input, *limits, depth)
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}1{} ", "(".repeat(8), ")".repeat(8));
    assert_eq!(nested(ok.as_bytes(), &L, 0).unwrap().1, 8);
    let deep = format!("{}1{} ", "(".repeat(9), ")".repeat(9));
    assert_eq!(
        kind(nested(deep.as_bytes(), &L, 0)),
        SyntaxErrorKind::TooDeep { max: 8 }
    );
    // Hostile depth fails fast, without recursing through the whole input.
    let hostile = "(".repeat(100_000);
    assert_eq!(
        kind(nested(hostile.as_bytes(), &C, 0)),
        SyntaxErrorKind::TooDeep { max: 32 }
    );
}

/// Every proper prefix of a complete value is incomplete, never a shorter value.
/// (The last octet of `whole` is the terminator after the value.)
macro_rules! assert_prefixes_incomplete {
    ($whole:expr, $parser:expr) => {{
        let whole: &[u8] = $whole;
        assert!(
            ($parser)(whole).is_ok(),
            "{:?} must parse",
            String::from_utf8_lossy(whole)
        );
        for cut in 0..whole.len() - 1 {
            let prefix = &whole[..cut];
            let result = ($parser)(prefix);
            assert!(
                incomplete(result.clone()),
                "prefix {:?} gave {:?}",
                String::from_utf8_lossy(prefix),
                result
            );
        }
    }};
}

#[test]
fn prefixes_are_incomplete() {
    assert_prefixes_incomplete!(b"GETVAPID ", parse::atom);
    assert_prefixes_incomplete!(b"a1 ", parse::tag);
    assert_prefixes_incomplete!(b"12345 ", parse::number);
    assert_prefixes_incomplete!(b"\"a \\\"q\\\" b\" ", parse::quoted);
    assert_prefixes_incomplete!(b"{5}\r\nhello ", |i| parse::literal(i, &C));
    assert_prefixes_incomplete!(b"{5+}\r\nhello ", |i| parse::literal(i, &L));
    assert_prefixes_incomplete!(b"abc]d ", |i| parse::astring(i, &L));
    assert_prefixes_incomplete!(b"NIL ", |i| parse::nstring(i, &L));
    assert_prefixes_incomplete!(b"InBoX ", |i| parse::mailbox(i, &L));
    assert_prefixes_incomplete!(b"1:3,7,*:9 ", parse::sequence_set);
    assert_prefixes_incomplete!(b"(1 2 3) ", |i| parse::paren_list(i, &L, 0, parse::number));
}

#[test]
fn encoders_pick_the_shortest_form() {
    let enc = |v: &[u8]| {
        let mut out = Vec::new();
        encode::astring(&mut out, v).unwrap();
        out
    };
    assert_eq!(
        enc(b"https://push.example.net/push/random1"),
        b"https://push.example.net/push/random1"
    );
    assert_eq!(enc(b"a]b"), b"a]b");
    assert_eq!(enc(b"100%"), b"\"100%\"");
    assert_eq!(enc(b""), b"\"\"");
    assert_eq!(enc(b"say \"hi\""), b"\"say \\\"hi\\\"\"");
    assert_eq!(enc(b"two\r\nlines"), b"{10}\r\ntwo\r\nlines");
    assert_eq!(enc("Grüße".as_bytes()), "{7}\r\nGrüße".as_bytes());
    // 40 quotes: escaping doubles them, a literal is shorter.
    assert_eq!(enc(&[b'"'; 40]), [&b"{40}\r\n"[..], &[b'"'; 40]].concat());
    let mut out = Vec::new();
    assert!(encode::astring(&mut out, b"a\0b").is_err());
    let mut out = Vec::new();
    encode::nstring(&mut out, None).unwrap();
    assert_eq!(out, b"NIL");
}

fn astring_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9:/._~\\-]{1,40}".prop_map(String::into_bytes),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(1u8..=255, 0..60),
    ]
}

proptest! {
    #[test]
    fn astring_round_trip(value in astring_bytes()) {
        let mut out = Vec::new();
        encode::astring(&mut out, &value).unwrap();
        out.extend_from_slice(b"\r\n");
        let (rest, parsed) = parse::astring(&out, &C).unwrap();
        prop_assert_eq!(rest, b"\r\n");
        prop_assert_eq!(parsed.as_bytes(), &value[..]);
        let (rest, octets) = parse::astring_bytes(&out, &C).unwrap();
        prop_assert_eq!((rest, &*octets), (&b"\r\n"[..], &value[..]));
    }

    /// `astring_bytes` reads exactly what `astring` reads, with the same errors.
    #[test]
    fn astring_bytes_agrees_with_astring(input in proptest::collection::vec(any::<u8>(), 0..80)) {
        let text = parse::astring(&input, &C).map(|(rest, v)| (rest, v.as_bytes().to_vec()));
        let octets = parse::astring_bytes(&input, &C).map(|(rest, v)| (rest, v.into_owned()));
        prop_assert_eq!(format!("{text:?}"), format!("{octets:?}"));
    }

    #[test]
    fn nstring_round_trip(value in proptest::option::of(astring_bytes())) {
        let mut out = Vec::new();
        encode::nstring(&mut out, value.as_deref()).unwrap();
        out.push(b' ');
        let (_, parsed) = parse::nstring(&out, &C).unwrap();
        prop_assert_eq!(parsed.as_ref().map(IString::as_bytes), value.as_deref());
    }

    #[test]
    fn sequence_set_round_trip(members in proptest::collection::vec((0u32..50, proptest::option::of(0u32..50)), 1..10)) {
        let n = |v: u32| NonZeroU32::new(v).map_or(SeqNumber::Largest, SeqNumber::Value);
        let members: Vec<Sequence> = members
            .into_iter()
            .map(|(a, b)| match b { Some(b) => Sequence::Range(n(a), n(b)), None => Sequence::Single(n(a)) })
            .collect();
        let set = imap_syntax::SequenceSet::new(members).unwrap();
        let mut out = Vec::new();
        encode::sequence_set(&mut out, &set);
        out.push(b' ');
        prop_assert_eq!(parse::sequence_set(&out).unwrap().1, set);
    }

    #[test]
    fn parsers_are_total(input in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = parse::astring(&input, &L);
        let _ = parse::astring_bytes(&input, &L);
        let _ = parse::nstring(&input, &C);
        let _ = parse::sequence_set(&input);
        let _ = parse::mailbox(&input, &L);
        let _ = parse::paren_list(&input, &L, 0, parse::number);
    }
}

#[test]
fn atom_form_of_a_parsed_quoted_string_is_canonical() {
    // "abc" parses as a quoted string and re-encodes as the shorter atom: the value,
    // not the form, survives a round trip.
    let (_, parsed) = parse::astring(b"\"abc\" ", &L).unwrap();
    let mut out = Vec::new();
    encode::astring_value(&mut out, &parsed).unwrap();
    assert_eq!(out, b"abc");
    assert_eq!(
        AString::new("abc"),
        AString::Atom(AStringAtom::new("abc").unwrap())
    );
}
