//! `Authorization: vapid …` parsing and full verification of arbitrary text: never
//! panics; parsed parameters are non-empty slices of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};
use webpush_crypto::{Origin, VapidCredentials, VapidVerifier};

static VERIFIER: LazyLock<Option<VapidVerifier>> = LazyLock::new(|| {
    Origin::new("https://push.example.net")
        .ok()
        .map(VapidVerifier::new)
});

fuzz_target!(|value: &str| {
    if let Ok(credentials) = VapidCredentials::parse(value) {
        assert!(!credentials.token.is_empty() && value.contains(credentials.token));
        assert!(!credentials.key.is_empty() && value.contains(credentials.key));
    }
    if let Some(verifier) = VERIFIER.as_ref() {
        // The RFC 8292 §2.4 example is valid an hour before this.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_453_520_168);
        if let Ok(verified) = verifier.verify(value, now) {
            assert_eq!(verified.audience().as_str(), "https://push.example.net");
        }
    }
});
