//! IMAP line framing of arbitrary streams: never panics; the frames do not depend on how
//! the stream is cut into reads; every line handed out is within the limit and ends in
//! LF; nothing is handed out twice or lost (lines and dropped octets add up).
#![no_main]

use imap_syntax::framing::{Frame, Framer};
use libfuzzer_sys::fuzz_target;

/// Feeds `stream` in reads of the given sizes; returns the lines and the refusals.
fn feed(stream: &[u8], reads: &[u8], max: usize) -> (Vec<Result<Vec<u8>, ()>>, usize) {
    let mut framer = Framer::new(max);
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let (mut read, mut dropped) = (0, 0);
    let mut sizes = reads.iter().map(|&s| usize::from(s).max(1)).cycle();
    loop {
        let more = read < stream.len();
        match framer.frame(&buffer) {
            Frame::Line(n) => {
                let line = buffer.drain(..n).collect::<Vec<u8>>();
                assert!(line.len() <= max && line.ends_with(b"\n"));
                out.push(Ok(line));
            }
            Frame::TooLong { discard } => {
                out.push(Err(()));
                dropped += discard;
                buffer.drain(..discard);
            }
            Frame::Discard(n) if n > 0 => {
                dropped += n;
                buffer.drain(..n);
            }
            _ if more => {
                let take = sizes.next().unwrap_or(1).min(stream.len() - read);
                buffer.extend_from_slice(&stream[read..read + take]);
                read += take;
            }
            _ => return (out, dropped + buffer.len()),
        }
    }
}

fuzz_target!(|input: (u8, &[u8], &[u8])| {
    let (max, reads, stream) = input;
    let max = usize::from(max) * 4 + 1;
    let reads = if reads.is_empty() { &[1u8][..] } else { reads };
    let (whole, whole_rest) = feed(stream, &[u8::MAX], max);
    let (pieces, pieces_rest) = feed(stream, reads, max);
    assert_eq!(pieces, whole);
    let handed_out: usize = whole.iter().flatten().map(Vec::len).sum();
    assert_eq!(handed_out + whole_rest, stream.len());
    assert_eq!(whole_rest, pieces_rest);
});
