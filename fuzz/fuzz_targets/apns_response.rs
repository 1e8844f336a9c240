//! APNs responses from arbitrary status, headers and body: never panic; every answer
//! has an action, delivered exactly when its status is 200, dropping a token exactly
//! when it is 410; a reason reads back to itself. Payload JSON that reads writes back to the same payload.
#![no_main]

use apns_proto::{Action, Outcome, Payload, Reason};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, Option<&str>, Option<&str>, &[u8])| {
    let (status, apns_id, unique_id, body) = input;
    let outcome = Outcome::from_parts(status, apns_id, unique_id, body);
    let action = outcome.action();
    assert_eq!(action == Action::Delivered, status == 200);
    assert_eq!(matches!(action, Action::DropToken { .. }), status == 410);
    if let Some(reason) = &outcome.reason {
        assert_eq!(&Reason::parse(reason.as_str()), reason);
    }
    if let Ok(payload) = serde_json::from_slice::<Payload>(body)
        && let Ok(json) = payload.to_vec()
    {
        let again: Payload = serde_json::from_slice(&json).expect("our JSON reads");
        assert_eq!(again.to_vec().ok(), Some(json));
    }
});
