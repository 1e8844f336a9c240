//! XAPPLEPUSHSERVICE: the registration command as iOS sends it (version 2) and as OS X
//! Server era devices did (version 1), beside `imap-codec`'s decode of a standard
//! command as the reference.

use std::hint::black_box;

use xaps_proto::Command;

use crate::Op;

/// A version 2 registration, as iOS Mail sends it.
pub const V2: &[u8] = b"a2 XAPPLEPUSHSERVICE aps-version 2 aps-account-id 0715A26B-CA09-4730-A419-793000CA982E aps-device-token 2918390218931890821908309283098109381029309829018310983092892829 aps-subtopic com.apple.mobilemail mailboxes (INBOX Notes)\r\n";

/// A version 1 registration, quoted keys and values.
pub const V1: &[u8] = b"tag1 XAPPLEPUSHSERVICE \"aps-version\" \"1\" \"aps-account-id\" \"E8CD34AD-98D3-4489-A6BB-86B1D082FECE\" \"aps-device-token\" \"a66216ad1683d48b9933cdcc3b98a833ee1a968143f41ea494187da54715da66\" \"aps-subtopic\" \"com.apple.mobilemail\"\r\n";

fn decode(line: &'static [u8]) -> Box<dyn Fn() -> Vec<u8>> {
    Box::new(move || {
        black_box(Command::decode(black_box(line)).is_ok());
        Vec::new()
    })
}

/// The two registrations, then imap-codec's RENAME decode (with feature `compare`).
pub fn registration_ops() -> Vec<Op<'static>> {
    let mut ops: Vec<Op<'static>> = vec![
        ("ours v2 registration", decode(V2)),
        ("ours v1 registration", decode(V1)),
    ];
    ops.extend(
        crate::imap::decode_ops()
            .into_iter()
            .filter(|(name, _)| name.starts_with("imap-codec")),
    );
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_valid() {
        assert!(Command::decode(V2).is_ok());
        assert!(Command::decode(V1).is_ok());
    }
}
