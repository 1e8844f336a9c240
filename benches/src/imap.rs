//! IMAP WEBPUSH grammar workloads: decode and encode each command and response, and
//! `imap-codec`'s decode of a standard command of similar length.

use std::hint::black_box;

use imap_webpush_proto::{Command, Config, Response};

use crate::Op;

/// The slide commands, joined.
pub const COMMANDS: [(&str, &[u8]); 5] = [
    ("GETVAPID", b"a1 GETVAPID\r\n"),
    (
        "WEBPUSH",
        b"a2 WEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 https://push.example.net/push/random1 BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4 BTBZMqHH6r4Tts7J_aSIgg\r\n",
    ),
    ("ACKWEBPUSH", b"a3 ACKWEBPUSH 585078c5-fb8b-4ed0-8e77-474ab08f0a30\r\n"),
    ("LWEBPUSH", b"a4 LWEBPUSH *\r\n"),
    ("SILWEBPUSH", b"a7 SILWEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 300\r\n"),
];

/// The slide responses, joined.
pub const RESPONSES: [(&str, &[u8]); 3] = [
    (
        "* VAPID",
        b"* VAPID BOniQ9xHBPNY9gnQW4o-16vHqOb40pEIMifyUdFsxAgyzVkFMguxw0QrdbZcq8hRjN2zpeInRvKVPlkzABvuTnI\r\n",
    ),
    (
        "* WEBPUSH",
        b"* WEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV 0\r\n",
    ),
    ("tagged OK", b"a2 OK WEBPUSH completed\r\n"),
];

/// The p256dh key of the WEBPUSH command in [`COMMANDS`].
const WEBPUSH_P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";

/// A standard IMAP command with two astrings, shorter than the WEBPUSH command (145
/// octets to its 198), for `imap-codec`.
pub const RENAME: &[u8] = b"a2 RENAME \"Archive/2024/Projects/Mailpush/Push notifications/very long name\" \"Archive/2025/Projects/Mailpush/Push notifications/very long name\"\r\n";

/// The same command with longer names, of exactly the WEBPUSH command's length.
pub const RENAME_SAME_LENGTH: &[u8] = b"a2 RENAME \"Archive/2024/Projects/Mailpush/Push notifications/Web Push for IMAP/the first long name, 1\" \"Archive/2025/Projects/Mailpush/Push notifications/Web Push for IMAP/the second long name, 2\"\r\n";

/// An ACKWEBPUSH with a 130-octet token: a command of RENAME's length with no key to
/// validate, to separate the grammar's cost from the P-256 point check.
pub const LONG_ACK: &[u8] = b"a3 ACKWEBPUSH 585078c5-fb8b-4ed0-8e77-474ab08f0a30-585078c5-fb8b-4ed0-8e77-474ab08f0a30-585078c5-fb8b-4ed0-8e77-474ab08f0a30-585078c5-fb8b\r\n";

/// Our WEBPUSH command decode beside imap-codec's decode of RENAME (their lengths are
/// printed by the bench).
pub fn decode_ops() -> Vec<Op<'static>> {
    let webpush = COMMANDS[1].1;
    let mut ops: Vec<Op<'static>> = vec![
        (
            "ours WEBPUSH decode",
            Box::new(move || {
                black_box(Command::decode(black_box(webpush), &Config::SERVER).expect("decode"));
                Vec::new()
            }),
        ),
        (
            "ours GETVAPID decode",
            Box::new(|| {
                black_box(
                    Command::decode(black_box(COMMANDS[0].1), &Config::SERVER).expect("decode"),
                );
                Vec::new()
            }),
        ),
    ];
    ops.push((
        "ours ACKWEBPUSH decode, long",
        Box::new(|| {
            black_box(Command::decode(black_box(LONG_ACK), &Config::SERVER).expect("decode"));
            Vec::new()
        }),
    ));
    // The WEBPUSH command's p256dh, as its decode checks it: on the curve.
    let point = *webpush_crypto::PublicKey::from_base64url(WEBPUSH_P256DH)
        .expect("key")
        .as_bytes();
    ops.push((
        "P-256 point check alone",
        Box::new(move || {
            black_box(webpush_crypto::PublicKey::from_sec1(black_box(&point)).expect("point"));
            Vec::new()
        }),
    ));
    ops.extend(imap_codec_ops());
    ops
}

#[cfg(feature = "compare")]
fn imap_codec_ops() -> Vec<Op<'static>> {
    use imap_codec::decode::Decoder as _;
    let rename = |line: &'static [u8]| {
        Box::new(move || {
            let codec = imap_codec::CommandCodec::default();
            black_box(codec.decode(black_box(line)).expect("imap-codec"));
            Vec::new()
        }) as Box<dyn Fn() -> Vec<u8>>
    };
    vec![
        ("imap-codec RENAME decode", rename(RENAME)),
        ("imap-codec RENAME, same length", rename(RENAME_SAME_LENGTH)),
    ]
}

#[cfg(not(feature = "compare"))]
fn imap_codec_ops() -> Vec<Op<'static>> {
    Vec::new()
}

/// Decodes and re-encodes `line` as a command, or as a response.
pub fn round_trip(line: &[u8], command: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    if command {
        let (_, c) = Command::decode(line, &Config::SERVER).expect("decode");
        c.encode(&mut out).expect("encode");
    } else {
        let (_, r) = Response::decode(line, &Config::CLIENT).expect("decode");
        r.encode(&mut out).expect("encode");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_valid() {
        assert_eq!(RENAME_SAME_LENGTH.len(), COMMANDS[1].1.len());
        for (_, line) in COMMANDS {
            assert_eq!(round_trip(line, true), line);
        }
        for (_, line) in RESPONSES {
            assert_eq!(round_trip(line, false), line);
        }
        for (_, op) in decode_ops() {
            op();
        }
    }
}
