//! Responses: every documented reason to its variant and action, unknown reasons,
//! malformed bodies.

// A failing unwrap or index here is a failing test, not a crashing server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, SystemTime};

use apns_proto::{Action, ApnsId, Outcome, Reason, ResponseError};
use proptest::prelude::*;

/// Apple's table: status, reason, and what a sender does.
const TABLE: [(u16, &str, Action); 31] = [
    (400, "BadCollapseId", Action::FixRequest),
    (400, "BadDeviceToken", Action::DropToken { since: None }),
    (400, "BadExpirationDate", Action::FixRequest),
    (400, "BadMessageId", Action::FixRequest),
    (400, "BadPriority", Action::FixRequest),
    (400, "BadTopic", Action::FixConfiguration),
    (
        400,
        "DeviceTokenNotForTopic",
        Action::DropToken { since: None },
    ),
    (400, "DuplicateHeaders", Action::FixRequest),
    (400, "IdleTimeout", Action::Retry),
    (400, "InvalidPushType", Action::FixRequest),
    (400, "MissingDeviceToken", Action::FixRequest),
    (400, "MissingTopic", Action::FixRequest),
    (400, "PayloadEmpty", Action::FixRequest),
    (400, "TopicDisallowed", Action::FixConfiguration),
    (403, "BadCertificate", Action::FixConfiguration),
    (403, "BadCertificateEnvironment", Action::FixConfiguration),
    (403, "ExpiredProviderToken", Action::RenewProviderToken),
    (403, "Forbidden", Action::FixConfiguration),
    (403, "InvalidProviderToken", Action::FixConfiguration),
    (403, "MissingProviderToken", Action::FixConfiguration),
    (403, "UnrelatedKeyIdInToken", Action::FixConfiguration),
    (404, "BadPath", Action::FixRequest),
    (405, "MethodNotAllowed", Action::FixRequest),
    (410, "ExpiredToken", Action::DropToken { since: None }),
    (410, "Unregistered", Action::DropToken { since: None }),
    (413, "PayloadTooLarge", Action::FixRequest),
    (429, "TooManyProviderTokenUpdates", Action::Retry),
    (429, "TooManyRequests", Action::Retry),
    (500, "InternalServerError", Action::Retry),
    (503, "ServiceUnavailable", Action::Retry),
    (503, "Shutdown", Action::Retry),
];

#[test]
fn every_documented_reason() {
    let documented: Vec<_> = Reason::documented().map(|(name, _)| name).collect();
    assert_eq!(documented, TABLE.map(|(_, name, _)| name));
    for (status, name, action) in TABLE {
        let body = format!(r#"{{"reason":"{name}"}}"#);
        let outcome = Outcome::from_parts(status, None, None, body.as_bytes()).unwrap();
        let reason = outcome.reason.clone().unwrap();
        assert!(!matches!(reason, Reason::Other(_)), "{name}");
        assert_eq!(reason.as_str(), name);
        assert_eq!(Reason::parse(name), reason);
        assert_eq!(outcome.action(), action, "{name}");
    }
}

#[test]
fn success_and_ids() {
    let outcome = Outcome::from_parts(
        200,
        Some("ec1bf194-b3b2-424a-89a9-5a918a6e7a9b"),
        Some("a8f2e1d0-0000-4000-8000-000000000001"),
        b"",
    )
    .unwrap();
    assert_eq!(outcome.action(), Action::Delivered);
    assert_eq!(
        outcome.apns_id,
        Some(ApnsId::try_from("EC1BF194-B3B2-424A-89A9-5A918A6E7A9B").unwrap())
    );
    assert_eq!(
        outcome.unique_id.as_deref(),
        Some("a8f2e1d0-0000-4000-8000-000000000001")
    );
    // A bad id header is dropped, not fatal.
    let outcome = Outcome::from_parts(200, Some("nope"), Some("x\u{1}"), b"").unwrap();
    assert_eq!((outcome.apns_id, outcome.unique_id), (None, None));

    let response = http::Response::builder()
        .status(410)
        .header("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E7A9B")
        .body(br#"{"reason":"Unregistered","timestamp":1700000000123}"#.to_vec())
        .unwrap();
    let outcome = Outcome::from_response(&response).unwrap();
    let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    assert_eq!(outcome.timestamp, Some(since));
    assert_eq!(outcome.action(), Action::DropToken { since: Some(since) });
}

#[test]
fn unknown_reasons_fall_back_on_the_status() {
    let action = |status: u16| {
        let outcome =
            Outcome::from_parts(status, None, None, br#"{"reason":"SomethingNew"}"#).unwrap();
        assert_eq!(outcome.reason, Some(Reason::Other("SomethingNew".into())));
        outcome.action()
    };
    assert_eq!(action(400), Action::FixRequest);
    assert_eq!(action(403), Action::FixConfiguration);
    assert_eq!(action(410), Action::DropToken { since: None });
    assert_eq!(action(429), Action::Retry);
    assert_eq!(action(502), Action::Retry);
    // Extra fields are ignored; escapes are undone.
    let outcome = Outcome::from_parts(
        400,
        None,
        None,
        br#"{"reason":"Bad\u0054opic","extra":[1]}"#,
    )
    .unwrap();
    assert_eq!(outcome.reason, Some(Reason::BadTopic));
}

#[test]
fn malformed_responses_are_errors() {
    for body in [
        &b""[..],
        b"{}",
        b"not json",
        br#"{"reason":5}"#,
        br#"{"reason":"Unregistered","timestamp":-1}"#,
        br#"{"reason":"Unregistered","timestamp":1.5}"#,
        b"<html>502 Bad Gateway</html>",
    ] {
        assert!(
            matches!(
                Outcome::from_parts(410, None, None, body),
                Err(ResponseError::Body(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        Outcome::from_parts(400, None, None, &vec![b' '; 5000]),
        Err(ResponseError::BodyTooLarge(4096))
    );
    for status in [0, 100, 204, 302, 600, 999] {
        assert_eq!(
            Outcome::from_parts(status, None, None, b""),
            Err(ResponseError::Status(status))
        );
    }
}

proptest! {
    #[test]
    fn any_response_is_read_or_refused(
        status in prop_oneof![0u16..700, 195u16..215, prop::sample::select(vec![400u16, 403, 404, 405, 410, 413, 429, 500, 503])],
        id in proptest::option::of("\\PC{0,40}"),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            // Bodies APNs could send, so most error statuses are read, not refused.
            ("[A-Za-z]{1,30}", proptest::option::of(any::<u32>())).prop_map(|(reason, ms)| {
                match ms {
                    Some(ms) => format!(r#"{{"reason":"{reason}","timestamp":{ms}}}"#),
                    None => format!(r#"{{"reason":"{reason}"}}"#),
                }
                .into_bytes()
            }),
        ],
    ) {
        if let Ok(outcome) = Outcome::from_parts(status, id.as_deref(), None, &body) {
            // Only a 200 is delivered; every other answer says what to do instead.
            prop_assert_eq!(outcome.action() == Action::Delivered, status == 200);
            prop_assert_eq!(outcome.status, status);
        }
    }

    #[test]
    fn reasons_round_trip(name in "[A-Za-z]{1,30}") {
        let reason = Reason::parse(&name);
        prop_assert_eq!(reason.as_str(), name.as_str());
    }
}
