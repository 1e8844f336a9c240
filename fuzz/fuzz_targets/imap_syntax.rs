//! The IMAP lexical parsers on arbitrary bytes: never panic; every value parsed is
//! encoded and parsed again to the same content.
#![no_main]

use imap_syntax::{Limits, encode, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    for limits in [Limits::SERVER, Limits::CLIENT] {
        // The octet form reads the same value, or fails the same way.
        let text = parse::astring(input, &limits).map(|(rest, v)| (rest, v.as_bytes().to_vec()));
        let octets = parse::astring_bytes(input, &limits).map(|(rest, v)| (rest, v.into_owned()));
        assert_eq!(format!("{text:?}"), format!("{octets:?}"));
        if let Ok((_, value)) = parse::astring(input, &limits) {
            let mut out = Vec::new();
            if encode::astring_value(&mut out, &value).is_ok() {
                out.extend_from_slice(b"\r\n");
                let again = parse::astring(&out, &Limits::CLIENT).map(|(_, v)| v.into_owned());
                assert_eq!(
                    again.ok().as_ref().map(|v| v.as_bytes()),
                    Some(value.as_bytes())
                );
            }
        }
        if let Ok((_, value)) = parse::nstring(input, &limits) {
            let mut out = Vec::new();
            if encode::nstring(&mut out, value.as_ref().map(|v| v.as_bytes())).is_ok() {
                out.push(b' ');
                let again =
                    parse::nstring(&out, &Limits::CLIENT).map(|(_, v)| v.map(|v| v.into_owned()));
                assert_eq!(
                    again.ok().map(|v| v.map(|v| v.as_bytes().to_vec())),
                    Some(value.map(|v| v.as_bytes().to_vec()))
                );
            }
        }
        if let Ok((_, value)) = parse::mailbox(input, &limits) {
            let mut out = Vec::new();
            if encode::mailbox(&mut out, &value).is_ok() {
                out.push(b' ');
                let again = parse::mailbox(&out, &Limits::CLIENT).map(|(_, v)| v.into_owned());
                assert_eq!(again.ok(), Some(value.into_owned()));
            }
        }
    }
    if let Ok((_, set)) = parse::sequence_set(input) {
        let mut out = Vec::new();
        encode::sequence_set(&mut out, &set);
        out.push(b' ');
        assert_eq!(parse::sequence_set(&out).ok().map(|(_, s)| s), Some(set));
    }
});
