//! Framing: known lines, literals, refusals, and that the frames do not depend on how
//! the input is cut into reads.

use imap_syntax::framing::{End, Frame, Framer, Piece, Stream};
use proptest::prelude::*;

#[test]
fn lines_and_literals() {
    let mut f = Framer::new(1000);
    assert_eq!(f.frame(b""), Frame::Incomplete { continuation: None });
    assert_eq!(f.frame(b"a1 NOOP\r\n"), Frame::Line(9));
    assert_eq!(
        f.frame(b"a1 NOOP\n"),
        Frame::Line(8),
        "a bare LF ends a line"
    );
    // Literal octets may hold anything, CRLF and "{1}" included.
    let line = b"a2 LOGIN {6+}\r\n{1}\r\n\n {3}\r\nabc\r\n";
    assert_eq!(f.frame(line), Frame::Line(line.len()));
    // Not announcements: a quoted string, a brace not at the end, bad digits.
    for text in [
        &b"a3 X \"{5}\"\r\n"[..],
        b"a3 X {5} y\r\n",
        b"a3 X {5a}\r\n",
        b"a3 X {+5}\r\n",
        b"a3 X {5}\r\r\n",
    ] {
        assert_eq!(
            f.frame(text),
            Frame::Line(text.len()),
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
    // A synchronizing literal waits for "+", then goes on.
    let mut f = Framer::new(1000);
    let line = b"a4 LOGIN {5}\r\nalice {6}\r\nsecret\r\n";
    assert_eq!(
        f.frame(&line[..14]),
        Frame::Incomplete {
            continuation: Some(5)
        }
    );
    assert_eq!(
        f.frame(&line[..20]),
        Frame::Incomplete { continuation: None }
    );
    assert_eq!(
        f.frame(&line[..25]),
        Frame::Incomplete {
            continuation: Some(6)
        }
    );
    assert_eq!(f.frame(line), Frame::Line(line.len()));
    // Refused instead of "+": the line so far is dropped, and the next one frames.
    let mut f = Framer::new(1000);
    assert_eq!(
        f.frame(b"a5 LOGIN {5}\r\n"),
        Frame::Incomplete {
            continuation: Some(5)
        }
    );
    assert_eq!(f.refuse_literal(), 14);
    assert_eq!(f.frame(b"a6 NOOP\r\n"), Frame::Line(9));
}

#[test]
fn too_long_lines_are_refused_and_skipped() {
    // Whole and too long: refused at once.
    let mut f = Framer::new(10);
    assert_eq!(
        f.frame(b"a1 SELECT INBOX\r\na2 NOOP\r\n"),
        Frame::TooLong { discard: 17 }
    );
    assert_eq!(f.frame(b"a2 NOOP\r\n"), Frame::Line(9));
    // Arriving in pieces: refused when it crosses the limit, then dropped as it comes,
    // never handed out, and the next line frames.
    let mut f = Framer::new(10);
    assert_eq!(f.frame(b"a1 SEL"), Frame::Incomplete { continuation: None });
    let Frame::TooLong { discard } = f.frame(b"a1 SELECT INBOX") else {
        panic!()
    };
    let mut rest = b"a1 SELECT INBOX"[discard..].to_vec();
    rest.extend_from_slice(b" more\r\na2 NOOP\r\n");
    let Frame::Discard(n) = f.frame(&rest) else {
        panic!()
    };
    assert_eq!(&rest[n..], b"a2 NOOP\r\n");
    assert_eq!(f.frame(&rest[n..]), Frame::Line(9));
    // A synchronizing literal over the limit: refused before "+", its octets never
    // come, the next line frames.
    let mut f = Framer::new(100);
    assert_eq!(
        f.frame(b"a3 APPEND INBOX {500}\r\n"),
        Frame::TooLong { discard: 23 }
    );
    assert_eq!(f.frame(b"a4 NOOP\r\n"), Frame::Line(9));
    // A non-synchronizing one: its octets come anyway and are dropped, CRLFs and all.
    let mut f = Framer::new(100);
    assert_eq!(
        f.frame(b"a3 APPEND INBOX {200+}\r\n"),
        Frame::TooLong { discard: 24 }
    );
    let data = [b"x\r\n".repeat(66), b"xx)\r\na4 NOOP\r\n".to_vec()].concat();
    let Frame::Discard(n) = f.frame(&data) else {
        panic!()
    };
    assert_eq!(&data[n..], b"a4 NOOP\r\n");
}

/// A line of text pieces and literals, as a client sends it: its quoted strings
/// closed (with escapes), so that every announcement is one.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let quoted = r#""([a-z {}+]|\\\\|\\"){0,6}""#;
    let text = ("[a-zA-Z0-9 (){}+]{0,8}", prop::option::of(quoted))
        .prop_map(|(t, q)| [t, q.unwrap_or_default()].concat().into_bytes());
    lines_of(text, prop::collection::vec(any::<u8>(), 0..40))
}

/// A line whose text holds quotes anywhere, closed or not, and whose literals hold
/// nothing like an announcement or a line end.
fn rough_line() -> impl Strategy<Value = Vec<u8>> {
    let text = "[a-z (){}+\"\\\\]{0,12}".prop_map(String::into_bytes);
    lines_of(text, "[a-z \"]{0,40}".prop_map(String::into_bytes))
}

/// Lines of `text` with literals of `data` between.
fn lines_of(
    text: impl Strategy<Value = Vec<u8>> + Clone,
    data: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = Vec<u8>> {
    // Leading zeros, as many as a client likes: a server reads them.
    let literal = (data, any::<bool>(), 0usize..40).prop_map(|(data, sync, zeros)| {
        let mut out = format!(
            " {{{}{}{}}}\r\n",
            "0".repeat(zeros),
            data.len(),
            if sync { "" } else { "+" }
        )
        .into_bytes();
        out.extend_from_slice(&data);
        out
    });
    (text.clone(), prop::collection::vec((literal, text), 0..3)).prop_map(|(head, parts)| {
        let mut out = b"a1 X ".to_vec();
        out.extend_from_slice(&head);
        for (literal, text) in parts {
            out.extend_from_slice(&literal);
            out.extend_from_slice(&text);
        }
        // A final text ending in an announcement would make a literal of the next line.
        if out.ends_with(b"}") {
            out.push(b'.');
        }
        out.extend_from_slice(b"\r\n");
        out
    })
}

/// Feeds `stream` to a framer in reads of the given sizes, as a server does, and
/// returns what it handed out: whole lines, and one mark per refused line.
fn feed(stream: &[u8], reads: &[usize], max: usize) -> Vec<Result<Vec<u8>, ()>> {
    let mut framer = Framer::new(max);
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut read = 0;
    let mut sizes = reads.iter().cycle();
    loop {
        match framer.frame(&buffer) {
            Frame::Line(n) => {
                out.push(Ok(buffer[..n].to_vec()));
                buffer.drain(..n);
            }
            Frame::TooLong { discard } => {
                out.push(Err(()));
                buffer.drain(..discard);
            }
            Frame::Discard(n) if n > 0 || read < stream.len() => {
                buffer.drain(..n);
                if n == 0 {
                    let take = (*sizes.next().unwrap()).min(stream.len() - read);
                    buffer.extend_from_slice(&stream[read..read + take]);
                    read += take;
                }
            }
            // The "+" a server sends is implied: the client's octets are in the stream.
            Frame::Incomplete { .. } | Frame::Discard(_) if read < stream.len() => {
                let take = (*sizes.next().unwrap()).min(stream.len() - read);
                buffer.extend_from_slice(&stream[read..read + take]);
                read += take;
            }
            _ => return out,
        }
    }
}

proptest! {
    #[test]
    fn frames_do_not_depend_on_the_reads(
        lines in prop::collection::vec(line(), 1..6),
        reads in prop::collection::vec(1usize..50, 1..8),
        max in prop_oneof![Just(usize::MAX), 20usize..200],
    ) {
        let stream = lines.concat();
        let whole = feed(&stream, &[stream.len()], max);
        let pieces = feed(&stream, &reads, max);
        let expected: Vec<Result<Vec<u8>, ()>> = lines
            .iter()
            .map(|l| if l.len() <= max { Ok(l.clone()) } else { Err(()) })
            .collect();
        // Refusing a synchronizing literal drops the line at its announcement, and the
        // client then sends no literal; a stream that still holds one is another
        // client's, so only the lines that fit are compared there.
        if lines.iter().all(|l| l.len() <= max) {
            prop_assert_eq!(&whole, &expected);
        }
        prop_assert_eq!(pieces, whole);
    }
}

/// An announcement inside a quoted string is none: the line ends at its CRLF, as a
/// server's parser ends it there (a quoted string holds no line end). A quote in a
/// literal's octets, or an escaped one, opens or closes nothing.
#[test]
fn an_announcement_in_a_quoted_string_is_none() {
    for line in [
        &b"a1 NOOP \"{5}\r\n"[..],
        b"a1 LOGIN bob \"{46+}\r\n",
        b"a1 X \"a\\\"{5}\r\n",
        b"a1 X {3}\r\n\"\"\" \"{5}\r\n",
    ] {
        let mut f = Framer::new(1000);
        assert_eq!(
            f.frame(line),
            Frame::Line(line.len()),
            "{}",
            line.escape_ascii()
        );
        let mut s = Stream::new(1000);
        let mut at = 0;
        let last = loop {
            match s.next(&line[at..]) {
                Piece::Text { len, end, .. } => {
                    at += len;
                    if at == line.len() {
                        break end;
                    }
                }
                Piece::Literal { len, .. } => at += len,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(last, End::Line, "{}", line.escape_ascii());
    }
    // Closed, or after an escaped backslash: a literal.
    for line in [&b"a1 X \"a\" {5}\r\n"[..], b"a1 X \"a\\\\\" {5}\r\n"] {
        let mut f = Framer::new(1000);
        assert_eq!(
            f.frame(line),
            Frame::Incomplete {
                continuation: Some(5)
            },
            "{}",
            line.escape_ascii()
        );
    }
    // A quote opened in an earlier piece of a long line.
    let mut s = Stream::new(64);
    let mut long = b"a1 X \"".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100));
    long.extend_from_slice(b"{4}\r\n");
    let Piece::Text {
        len,
        end: End::More,
        ..
    } = s.next(&long[..100])
    else {
        panic!()
    };
    assert_eq!(
        s.next(&long[len..]),
        Piece::Text {
            len: long.len() - len,
            start: false,
            end: End::Line
        }
    );
    // And in the part of a line too long that was dropped (a non-synchronizing
    // announcement, whose octets would otherwise be dropped too).
    let long = [&long[..long.len() - 3], b"+}\r\n"].concat();
    let mut f = Framer::new(10);
    let (Frame::Discard(n) | Frame::TooLong { discard: n }) = f.frame(&long[..60]) else {
        panic!()
    };
    let rest = [&long[n..], b"a2 NOOP\r\n"].concat();
    let Frame::Discard(m) = f.frame(&rest) else {
        panic!()
    };
    assert_eq!(&rest[m..], b"a2 NOOP\r\n");
}

/// Found by fuzzing: literal octets that end like an announcement (`a{5+}` before a
/// CRLF) announce nothing.
#[test]
fn literal_octets_announce_nothing() {
    let mut f = Framer::new(1000);
    let line = b"a1 X {6+}\r\na{5+}\r\n";
    assert_eq!(f.frame(line), Frame::Line(line.len()));
    let mut f = Framer::new(1);
    assert_eq!(f.frame(line), Frame::TooLong { discard: 11 });
    assert_eq!(f.frame(&line[11..]), Frame::Discard(7));
}

/// Feeds `stream` to a [`Stream`] in reads of the given sizes, into a buffer of at
/// most `buffer_max` octets (as a relay reads), and returns each whole line rebuilt
/// from its pieces, with the largest buffer it held.
fn relay(stream: &[u8], reads: &[usize], max: usize) -> (Vec<Vec<u8>>, usize) {
    let (lines, largest, _) = relay_long(stream, reads, max);
    (lines, largest)
}

/// [`relay`], and for each line whether a run of its text was handed out as too long
/// ([`End::More`]).
fn relay_long(stream: &[u8], reads: &[usize], max: usize) -> (Vec<Vec<u8>>, usize, Vec<bool>) {
    let mut framer = Stream::new(max);
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    let mut long = Vec::new();
    let mut too_long = false;
    let mut current = Vec::new();
    let mut read = 0;
    let mut largest = 0;
    let mut sizes = reads.iter().cycle();
    loop {
        match framer.next(&buffer) {
            Piece::Text { len, start, end } => {
                assert_eq!(start, current.is_empty(), "a line's start told wrong");
                current.extend_from_slice(&buffer[..len]);
                buffer.drain(..len);
                too_long |= end == End::More;
                if end == End::Line {
                    lines.push(std::mem::take(&mut current));
                    long.push(std::mem::take(&mut too_long));
                    assert!(framer.between_lines());
                } else {
                    assert!(!framer.between_lines());
                }
            }
            Piece::Literal { len, .. } => {
                assert!(len > 0);
                current.extend_from_slice(&buffer[..len]);
                buffer.drain(..len);
            }
            Piece::Incomplete if read < stream.len() => {
                // A relay reads only into the room its buffer has.
                let room = (max + 64).saturating_sub(buffer.len()).max(1);
                let take = (*sizes.next().unwrap()).min(stream.len() - read).min(room);
                buffer.extend_from_slice(&stream[read..read + take]);
                read += take;
                largest = largest.max(buffer.len());
            }
            Piece::Incomplete => {
                assert!(buffer.is_empty() && current.is_empty(), "octets left over");
                return (lines, largest, long);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_relay_hands_out_text_and_literal_data() {
    let mut s = Stream::new(64);
    assert_eq!(s.next(b""), Piece::Incomplete);
    assert!(s.between_lines());
    assert_eq!(
        s.next(b"a1 NOOP\r\n"),
        Piece::Text {
            len: 9,
            start: true,
            end: End::Line
        }
    );
    // literal8 and non-synchronizing literals.
    let input = b"a2 APPEND INBOX ~{3}\r\nab\n {2+}\r\nxy\r\n";
    assert_eq!(
        s.next(input),
        Piece::Text {
            len: 22,
            start: true,
            end: End::Literal {
                len: 3,
                synchronizing: true
            }
        }
    );
    assert_eq!(
        s.next(&input[22..24]),
        Piece::Literal {
            len: 2,
            last: false
        }
    );
    assert_eq!(s.next(&input[24..]), Piece::Literal { len: 1, last: true });
    assert_eq!(
        s.next(&input[25..]),
        Piece::Text {
            len: 7,
            start: false,
            end: End::Literal {
                len: 2,
                synchronizing: false
            }
        }
    );
    assert_eq!(s.next(&input[32..]), Piece::Literal { len: 2, last: true });
    assert_eq!(
        s.next(&input[34..]),
        Piece::Text {
            len: 2,
            start: false,
            end: End::Line
        }
    );
    // A refused synchronizing literal: the next text begins a line.
    assert!(matches!(
        s.next(b"a3 LOGIN {5}\r\n"),
        Piece::Text {
            end: End::Literal { .. },
            ..
        }
    ));
    s.refuse_literal();
    assert_eq!(
        s.next(b"a4 NOOP\r\n"),
        Piece::Text {
            len: 9,
            start: true,
            end: End::Line
        }
    );
    // A long text is handed out in pieces, an announcement split across them found.
    let mut s = Stream::new(64);
    let mut long = b"* 1 FETCH (X ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100));
    long.extend_from_slice(b" {4}\r\nabcd)\r\n");
    let Piece::Text {
        len,
        start: true,
        end: End::More,
    } = s.next(&long[..110])
    else {
        panic!()
    };
    assert_eq!(len, 110 - 23);
    assert_eq!(
        s.next(&long[len..]),
        Piece::Text {
            len: long.len() - len - 7,
            start: false,
            end: End::Literal {
                len: 4,
                synchronizing: true
            }
        }
    );
    // IMAP4rev2's lengths past 32 bits: a literal like any other.
    let mut big = Stream::new(64);
    assert_eq!(
        big.next(b"* 1 FETCH (BODY[] {5000000000}\r\nabc"),
        Piece::Text {
            len: 32,
            start: true,
            end: End::Literal {
                len: 5_000_000_000,
                synchronizing: true
            }
        }
    );
    assert_eq!(
        big.next(b"abc"),
        Piece::Literal {
            len: 3,
            last: false
        }
    );
    let mut f = Framer::new(usize::MAX);
    assert_eq!(
        f.frame(b"a1 APPEND INBOX {5000000000}\r\n"),
        Frame::Incomplete {
            continuation: Some(5_000_000_000)
        }
    );
}

/// A run longer than the limit is too long whether its LF comes in the read that
/// passes the limit or in a later one.
#[test]
fn a_long_run_is_too_long_however_it_arrives() {
    let line = [vec![b'a'; 150], b"\r\n".to_vec()].concat();
    let stream = [line.clone(), b"b NOOP\r\n".to_vec()].concat();
    for reads in [&[1][..], &[99, 60], &[160], &[151, 1]] {
        let (lines, _, long) = relay_long(&stream, reads, 100);
        assert_eq!(lines, [line.clone(), b"b NOOP\r\n".to_vec()], "{reads:?}");
        assert_eq!(long, [true, false], "{reads:?}");
    }
}

proptest! {
    /// Whatever the reads, the pieces rebuild every line, a relay's buffer stays within
    /// its limit, and the lines are those the whole-line framer finds.
    #[test]
    fn pieces_do_not_depend_on_the_reads(
        lines in prop::collection::vec(line(), 1..6),
        reads in prop::collection::vec(1usize..50, 1..8),
        max in 64usize..200,
    ) {
        let stream = lines.concat();
        let (rebuilt, largest) = relay(&stream, &reads, max);
        prop_assert_eq!(&rebuilt, &lines);
        prop_assert!(largest <= max + 64);
        let whole = feed(&stream, &[stream.len()], usize::MAX);
        let whole: Vec<Vec<u8>> = whole.into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(rebuilt, whole);
        // Which lines are too long does not depend on the reads either.
        let (_, _, long) = relay_long(&stream, &reads, max);
        let (_, _, long_in_ones) = relay_long(&stream, &[1], max);
        let (_, _, long_in_large) = relay_long(&stream, &[max + 64], max);
        prop_assert_eq!(&long, &long_in_ones);
        prop_assert_eq!(&long, &long_in_large);
    }

    /// Quotes anywhere: the whole-line framer and the relay's agree, however the
    /// octets are read.
    #[test]
    fn quotes_anywhere_frame_alike(
        lines in prop::collection::vec(rough_line(), 1..6),
        reads in prop::collection::vec(1usize..50, 1..8),
        max in 64usize..200,
    ) {
        let stream = lines.concat();
        let whole = feed(&stream, &[stream.len()], usize::MAX);
        prop_assert_eq!(&feed(&stream, &reads, usize::MAX), &whole);
        let whole: Vec<Vec<u8>> = whole.into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(whole.concat(), stream.clone());
        let (rebuilt, _) = relay(&stream, &reads, max);
        prop_assert_eq!(rebuilt, whole);
    }

    /// A proper prefix of a line never ends it.
    #[test]
    fn a_prefix_never_ends_a_line(line in line(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(line.len());
        let mut s = Stream::new(1 << 20);
        let mut at = 0;
        loop {
            match s.next(&line[at..cut]) {
                Piece::Text { len, end, .. } => {
                    prop_assert_ne!(end, End::Line);
                    at += len;
                }
                Piece::Literal { len, .. } => at += len,
                Piece::Incomplete => break,
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}

/// Announced lengths are read as a server reads them: leading zeros count for nothing,
/// however many; no digits announce an empty literal; a length past 64 bits is more
/// than any limit. Read as text, each would end a line where the server reads on.
#[test]
fn lengths_are_read_as_a_server_reads_them() {
    let zeros = "0".repeat(300);
    let cases = [
        (format!("a1 X {{{zeros}5}}\r\n"), 5, true),
        (
            format!("a1 X ~{{{zeros}12345678901234567890+}}\r\n"),
            12_345_678_901_234_567_890,
            false,
        ),
        ("a1 X {}\r\n".to_owned(), 0, true),
        ("a1 X {+}\n".to_owned(), 0, false),
        (
            "a1 X {99999999999999999999999}\r\n".to_owned(),
            u64::MAX,
            true,
        ),
    ];
    for (text, len, synchronizing) in cases {
        let mut s = Stream::new(1_000_000);
        assert_eq!(
            s.next(text.as_bytes()),
            Piece::Text {
                len: text.len(),
                start: true,
                end: End::Literal { len, synchronizing }
            },
            "{text}"
        );
        // The same when it arrives in reads of 50 octets and goes in pieces, its `{`
        // and digits in earlier ones than its end.
        let mut s = Stream::new(0);
        let (mut buffer, mut read, mut pieces) = (Vec::new(), 0, 0);
        let last = loop {
            match s.next(&buffer) {
                Piece::Text { len, end, .. } => {
                    buffer.drain(..len);
                    pieces += 1;
                    if end != End::More {
                        break end;
                    }
                }
                Piece::Incomplete => {
                    let more = text.as_bytes().get(read..).unwrap();
                    let more = more.get(..50).unwrap_or(more);
                    assert!(!more.is_empty(), "{text}");
                    buffer.extend_from_slice(more);
                    read += more.len();
                }
                other => panic!("{other:?} in {text}"),
            }
        };
        assert!(buffer.is_empty() && read == text.len());
        assert!(pieces > 1 || text.len() < 92, "{text}");
        assert_eq!(last, End::Literal { len, synchronizing }, "{text}");
        let mut f = Framer::new(1000);
        let expected = if len > 1000 {
            Frame::TooLong {
                discard: text.len(),
            }
        } else if synchronizing {
            Frame::Incomplete {
                continuation: Some(len),
            }
        } else {
            Frame::Incomplete { continuation: None }
        };
        assert_eq!(f.frame(text.as_bytes()), expected, "{text}");
    }
    // The literal of a line too long, announced with zeros split from its end, is
    // dropped with it; the next line frames.
    let mut f = Framer::new(100);
    let line = format!("a1 X {{{zeros}3+}}\r\nabc\r\na2 NOOP\r\n");
    let (Frame::TooLong { discard } | Frame::Discard(discard)) = f.frame(&line.as_bytes()[..200])
    else {
        panic!()
    };
    let rest = line.as_bytes().get(discard..).unwrap();
    let Frame::Discard(n) = f.frame(rest) else {
        panic!()
    };
    assert_eq!(rest.get(n..).unwrap(), b"a2 NOOP\r\n");
}
