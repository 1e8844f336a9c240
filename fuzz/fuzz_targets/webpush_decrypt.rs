//! RFC 8291 decryption of arbitrary bodies: never panics; anything accepted is smaller
//! than the body by at least the header and record overhead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use webpush_crypto::{AuthSecret, PrivateKey, UaKeys, decrypt};

// The RFC 8291 Appendix A user agent, so the seed body decrypts and mutations start deep.
static UA: LazyLock<Option<UaKeys>> = LazyLock::new(|| {
    let private = PrivateKey::from_base64url("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94").ok()?;
    let auth = AuthSecret::from_base64url("BTBZMqHH6r4Tts7J_aSIgg").ok()?;
    UaKeys::new(private, auth).ok()
});

fuzz_target!(|body: &[u8]| {
    let Some(ua) = UA.as_ref() else { return };
    if let Ok(plaintext) = decrypt(ua, body) {
        assert!(plaintext.len() + 86 + 17 <= body.len());
    }
});
