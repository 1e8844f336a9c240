//! APNs responses from arbitrary status, headers and body: never panic; a response
//! that reads is delivered exactly when its status is 200, and its reason reads back
//! to itself. Payload JSON that reads writes back to the same payload.
#![no_main]

use apns_proto::{Action, Outcome, Payload, Reason};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, Option<&str>, Option<&str>, &[u8])| {
    let (status, apns_id, unique_id, body) = input;
    if let Ok(outcome) = Outcome::from_parts(status, apns_id, unique_id, body) {
        assert_eq!(outcome.action() == Action::Delivered, outcome.status == 200);
        if let Some(reason) = &outcome.reason {
            assert_eq!(&Reason::parse(reason.as_str()), reason);
        }
    }
    if let Ok(payload) = serde_json::from_slice::<Payload>(body)
        && let Ok(json) = payload.to_vec()
    {
        let again: Payload = serde_json::from_slice(&json).expect("our JSON reads");
        assert_eq!(again.to_vec().ok(), Some(json));
    }
});
