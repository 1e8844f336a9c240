//! xapsd's legacy socket lines and answers from arbitrary bytes: never panic; a line
//! that reads is written and read back to the same value, and so is a request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaps_proto::legacy::{Answer, Line, Request};

fuzz_target!(|input: &[u8]| {
    if let Ok((used, line)) = Line::decode(input) {
        assert!(used <= input.len());
        let bytes = line
            .encode()
            .expect("a parsed line re-encodes");
        assert_eq!(Line::decode(&bytes).map(|(_, l)| l).as_ref(), Ok(&line));
        if let Ok(request) = Request::try_from(&line) {
            let bytes = request.encode().expect("a parsed request re-encodes");
            assert_eq!(Request::decode(&bytes).map(|(_, r)| r), Ok(request));
        }
    }
    if let Ok((_, answer)) = Answer::decode(input) {
        assert_eq!(Answer::decode(&answer.encode()).map(|(_, a)| a), Ok(answer));
    }
});
