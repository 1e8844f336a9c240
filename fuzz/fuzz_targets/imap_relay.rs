//! What a relay reads of an arbitrary stream: never panics; where lines end and
//! literals begin does not depend on how the stream is cut into reads; the pieces add
//! up to the stream; a relay's buffer stays within its limit; and the line readers and
//! the capability editor take any text that begins a line (an edited line keeps
//! everything but its list).
#![no_main]

use imap_syntax::framing::{End, Piece, Stream, stray_brace, synchronizing};
use imap_syntax::relay::{
    Edit, capabilities, command, edit_capabilities, response, untagged_status,
};
use libfuzzer_sys::fuzz_target;

/// What a relay saw: the octets handed out, and where in the stream each line ended
/// and each literal was announced.
#[derive(Debug, PartialEq)]
struct Seen {
    octets: Vec<u8>,
    line_ends: Vec<usize>,
    literals: Vec<(usize, u64, bool)>,
}

/// Feeds `stream` in reads of the given sizes into a buffer of at most `max + 64`
/// octets, as a relay reads.
fn feed(stream: &[u8], reads: &[u8], max: usize) -> Seen {
    let mut framer = Stream::new(max);
    let room = max.max(64) + 64;
    let mut buffer = Vec::new();
    let mut seen = Seen {
        octets: Vec::new(),
        line_ends: Vec::new(),
        literals: Vec::new(),
    };
    let mut read = 0;
    let mut sizes = reads.iter().map(|&s| usize::from(s).max(1)).cycle();
    let mut whole_run = true;
    loop {
        match framer.next(&buffer) {
            Piece::Text { len, start, end } => {
                let text: Vec<u8> = buffer.drain(..len).collect();
                if start {
                    let _ = (command(&text), response(&text), untagged_status(&text));
                    if let Some(range) = capabilities(&text) {
                        let mut edited = Vec::new();
                        let edit = Edit {
                            remove: &["A", "B="],
                            add: &["C"],
                            keep: &["B=1"],
                        };
                        assert!(edit_capabilities(&text, &edit, &mut edited));
                        assert!(edited.starts_with(&text[..range.start]));
                        assert!(edited.ends_with(&text[range.end..]));
                    }
                }
                let _ = stray_brace(&text, end);
                // A whole run that ends in an announcement waiting for no "+" reads as
                // one that does, one octet shorter.
                if whole_run && let End::Literal { synchronizing: false, .. } = end {
                    let synchronized = synchronizing(&text);
                    assert_eq!(synchronized.map(|s| s.len() + 1), Some(text.len()));
                }
                whole_run = end != End::More;
                seen.octets.extend_from_slice(&text);
                match end {
                    End::Line => seen.line_ends.push(seen.octets.len()),
                    End::Literal { len, synchronizing } => {
                        seen.literals.push((seen.octets.len(), len, synchronizing))
                    }
                    _ => {}
                }
            }
            Piece::Literal { len, .. } => {
                assert!(len > 0);
                seen.octets.extend(buffer.drain(..len));
            }
            Piece::Incomplete if read < stream.len() => {
                let take = sizes
                    .next()
                    .unwrap_or(1)
                    .min(stream.len() - read)
                    .min(room.saturating_sub(buffer.len()))
                    .max(1);
                buffer.extend_from_slice(&stream[read..read + take]);
                read += take;
                assert!(buffer.len() <= room);
            }
            _ => {
                seen.octets.extend_from_slice(&buffer);
                return seen;
            }
        }
    }
}

fuzz_target!(|input: (u8, &[u8], &[u8])| {
    let (max, reads, stream) = input;
    let max = usize::from(max) * 4;
    let reads = if reads.is_empty() { &[1u8][..] } else { reads };
    let whole = feed(stream, &[u8::MAX], max);
    let pieces = feed(stream, reads, max);
    assert_eq!(whole.octets, stream);
    assert_eq!(pieces, whole);
});
