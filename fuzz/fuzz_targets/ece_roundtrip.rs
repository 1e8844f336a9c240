//! Encrypt then decrypt, for arbitrary parameters, in both codings: encryption never
//! panics and everything it produces decrypts to the input.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webpush_crypto::ece::{self, RecordSize};
use webpush_crypto::padding::webpush_capacity;
use webpush_crypto::{AuthSecret, Encryptor, Padding, PrivateKey, Provider, Salt, UaKeys, decrypt};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    ikm: &'a [u8],
    salt: [u8; 16],
    keyid: &'a [u8],
    rs: u16,
    padding: u16,
    web_push: bool,
    ua_scalar: [u8; 32],
    ephemeral_scalar: [u8; 32],
    auth: [u8; 16],
    exact: Option<u16>,
    plaintext: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let p = Provider::default();
    let salt = Salt(input.salt);
    if input.web_push {
        let (Ok(ua), Ok(ephemeral)) = (
            PrivateKey::from_bytes(&input.ua_scalar),
            PrivateKey::from_bytes(&input.ephemeral_scalar),
        ) else {
            return;
        };
        let Ok(ua) = UaKeys::new(ua, AuthSecret::new(input.auth)) else {
            return;
        };
        let Ok(rs) = RecordSize::new(u32::from(input.rs)) else {
            return;
        };
        let Ok(enc) = Encryptor::new().with_record_size(rs) else {
            return;
        };
        let enc = enc.with_padding(
            input
                .exact
                .map_or(Padding::None, |n| Padding::Exact(n.into())),
        );
        match enc.encrypt_with(&ua.subscription_keys(), input.plaintext, &ephemeral, &salt) {
            Ok(body) => {
                assert!(body.len() <= usize::from(input.rs));
                assert_eq!(
                    decrypt(&ua, &body).expect("own output decrypts"),
                    input.plaintext
                );
            }
            Err(_) => assert!(
                input.plaintext.len() > enc.plaintext_limit()
                    || matches!(enc.padding(), Padding::Exact(n) if n > webpush_capacity(rs))
            ),
        }
    } else {
        let Ok(rs) = RecordSize::new(u32::from(input.rs)) else {
            return;
        };
        let keyid = input
            .keyid
            .get(..input.keyid.len().min(255))
            .unwrap_or_default();
        let body = ece::encrypt(
            p,
            input.ikm,
            &salt,
            keyid,
            rs,
            input.plaintext,
            input.padding.into(),
        )
        .expect("generic encryption accepts any size");
        let (header, plaintext) = ece::decrypt(p, input.ikm, &body).expect("own output decrypts");
        assert_eq!(header.keyid, keyid);
        assert_eq!(plaintext, input.plaintext);
    }
});
