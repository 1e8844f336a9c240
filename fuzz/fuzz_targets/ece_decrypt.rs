//! Generic RFC 8188 decryption of arbitrary bodies: never panics; whatever decrypts
//! re-encrypts under the same header and decrypts to the same plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webpush_crypto::{Provider, ece};

// The RFC 8188 §3.2 key, so the multi-record seed decrypts.
const IKM: [u8; 16] = [
    0x04, 0xed, 0xd9, 0x54, 0xfc, 0x54, 0x96, 0x72, 0xce, 0x45, 0xb5, 0x46, 0x32, 0x96, 0xd3, 0xd5,
];

fuzz_target!(|body: &[u8]| {
    let p = Provider::default();
    let Ok((header, plaintext)) = ece::decrypt(p, &IKM, body) else {
        return;
    };
    let again = ece::encrypt(
        p,
        &IKM,
        &header.salt,
        header.keyid,
        header.rs,
        &plaintext,
        0,
    )
    .expect("a decrypted message re-encrypts");
    let (header2, plaintext2) = ece::decrypt(p, &IKM, &again).expect("our own output decrypts");
    assert_eq!(header, header2);
    assert_eq!(plaintext, plaintext2);
});
