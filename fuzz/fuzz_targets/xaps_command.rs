//! XAPPLEPUSHSERVICE command and response decoding of arbitrary bytes: never panics;
//! every decoded registration encodes, and decodes again to the same value; every
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
            command
                .request
                .encode(&tag, &mut out)
                .expect("a decoded registration encodes");
            // The whole line, literal data included: nothing waits for "+".
            let again = Command::decode(&out).map(|(_, c)| c.request);
            assert_eq!(again, Ok(command.request));
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
