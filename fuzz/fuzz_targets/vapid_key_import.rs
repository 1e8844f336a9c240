//! VAPID key import in every format from arbitrary bytes: never panics; an imported
//! key survives its own PKCS#8 and raw exports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webpush_crypto::VapidKey;

fuzz_target!(|bytes: &[u8]| {
    let Ok(key) = VapidKey::import(bytes) else {
        return;
    };
    let pem = key.to_pkcs8_pem().ok();
    let again = pem.and_then(|pem| VapidKey::import(pem.as_bytes()).ok());
    assert_eq!(
        again.as_ref().map(VapidKey::public_key),
        Some(key.public_key())
    );
    let raw = VapidKey::from_base64url(&key.to_base64url()).ok();
    assert_eq!(
        raw.as_ref().map(VapidKey::public_key),
        Some(key.public_key())
    );
});
