//! `PushSubscription` JSON from arbitrary text: never panics; what is read is written
//! back and read again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webpush_crypto::Subscription;

fuzz_target!(|json: &str| {
    let Ok(subscription) = Subscription::from_json(json) else {
        return;
    };
    let again = Subscription::from_json(&subscription.to_json().expect("serializes"));
    assert_eq!(again.as_ref().ok(), Some(&subscription));
});
