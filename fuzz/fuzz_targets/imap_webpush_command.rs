//! WEBPUSH command decoding of arbitrary bytes: never panics; a decoded command
//! encodes and decodes again to the same value; every error has a response or is
//! incomplete / not ours.
#![no_main]

use imap_webpush_proto::{Command, Config, DecodeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    match Command::decode(input, &Config::SERVER) {
        Ok((_, command)) => {
            let mut out = Vec::new();
            command.encode(&mut out).expect("a decoded command encodes");
            let again = Command::decode(&out, &Config::SERVER).map(|(rest, c)| (rest.len(), c));
            assert_eq!(again, Ok((0, command)));
        }
        Err(DecodeError::Incomplete | DecodeError::NotWebPush { .. }) => {}
        Err(e) => assert!(e.response().is_some()),
    }
});
