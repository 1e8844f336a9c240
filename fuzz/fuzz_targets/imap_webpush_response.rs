//! WEBPUSH response decoding of arbitrary bytes: never panics; a decoded response
//! encodes and decodes again to the same value.
#![no_main]

use imap_webpush_proto::{Config, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok((_, response)) = Response::decode(input, &Config::CLIENT) {
        let mut out = Vec::new();
        response
            .encode(&mut out)
            .expect("a decoded response encodes");
        let again = Response::decode(&out, &Config::CLIENT).map(|(rest, r)| (rest.len(), r));
        assert_eq!(again, Ok((0, response)));
    }
});
