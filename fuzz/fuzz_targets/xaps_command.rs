//! XAPPLEPUSHSERVICE command and response decoding of arbitrary bytes: never panics; a
//! decoded registration encodes and decodes again to the same value, and every
//! refusal has a response.
#![no_main]

use imap_syntax::Tag;
use libfuzzer_sys::fuzz_target;
use xaps_proto::{Command, CommandError, Response};

fuzz_target!(|input: &[u8]| {
    match Command::decode(input) {
        Ok((_, command)) => {
            let mut out = Vec::new();
            let tag = Tag::new("t").expect("tag");
            if command.request.encode(&tag, &mut out).is_ok() {
                match Command::decode(&out) {
                    Ok((_, again)) => assert_eq!(again.request, command.request),
                    // Re-encoded 8-bit names are literals, which wait for "+".
                    Err(f) => assert!(matches!(f.error, CommandError::LiteralAnnounced { .. })),
                }
            }
        }
        Err(failure) => {
            let silent = matches!(
                failure.error,
                CommandError::Incomplete | CommandError::NotXaps
            );
            assert_eq!(failure.response().is_none(), silent);
        }
    }
    let _ = Response::decode(input);
});
