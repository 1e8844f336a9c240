//! Responses: every documented reason to its variant and action, unknown reasons,
//! malformed bodies.

use std::time::{Duration, SystemTime};

use apns_proto::{Action, ApnsId, Outcome, Reason};
use proptest::prelude::*;

/// Apple's table: status, reason, and what a sender does.
const TABLE: [(u16, &str, Action); 31] = [
    (400, "BadCollapseId", Action::FixRequest),
    (400, "BadDeviceToken", Action::TokenRejected),
    (400, "BadExpirationDate", Action::FixRequest),
    (400, "BadMessageId", Action::FixRequest),
    (400, "BadPriority", Action::FixRequest),
    (400, "BadTopic", Action::FixConfiguration),
    (400, "DeviceTokenNotForTopic", Action::TokenRejected),
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
        let outcome = Outcome::from_parts(status, None, None, body.as_bytes());
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
    );
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
    let outcome = Outcome::from_parts(200, Some("nope"), Some("x\u{1}"), b"");
    assert_eq!((outcome.apns_id, outcome.unique_id), (None, None));

    let response = http::Response::builder()
        .status(410)
        .header("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E7A9B")
        .body(br#"{"reason":"Unregistered","timestamp":1700000000123}"#.to_vec())
        .unwrap();
    let outcome = Outcome::from_response(&response);
    let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    assert_eq!(outcome.timestamp, Some(since));
    assert_eq!(outcome.action(), Action::DropToken { since: Some(since) });
}

#[test]
fn unknown_reasons_fall_back_on_the_status() {
    let action = |status: u16| {
        let outcome = Outcome::from_parts(status, None, None, br#"{"reason":"SomethingNew"}"#);
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
    );
    assert_eq!(outcome.reason, Some(Reason::BadTopic));
}

/// Bodies that are not APNs JSON (a proxy's page, nothing, a wrong shape) leave the
/// reason empty, and the status decides (a 4xx then reads as something else
/// answering): every answer has an action.
#[test]
fn unreadable_bodies_fall_back_on_the_status() {
    let unreadable: [&[u8]; 7] = [
        b"",
        b"{}",
        b"not json",
        br#"{"reason":5}"#,
        b"<html>502 Bad Gateway</html>",
        br#"{"timestamp":1700000000000}"#,
        &[b' '; 5000],
    ];
    for body in unreadable {
        for (status, action) in [
            (410, Action::DropToken { since: None }),
            (502, Action::Retry),
            (503, Action::Retry),
            (500, Action::Retry),
            (429, Action::Retry),
            (403, Action::FixConfiguration),
            // Not APNs' words: not the request's fault, and a push waiting on it is
            // not given up as one.
            (400, Action::FixConfiguration),
            (404, Action::FixConfiguration),
            (413, Action::FixConfiguration),
        ] {
            let outcome = Outcome::from_parts(status, None, None, body);
            assert_eq!(
                outcome.reason,
                None,
                "{status} {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                outcome.action(),
                action,
                "{status} {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
    // A timestamp that is not milliseconds is left out; the 410 still drops.
    for body in [
        &br#"{"reason":"Unregistered","timestamp":-1}"#[..],
        br#"{"reason":"Unregistered","timestamp":1.5}"#,
    ] {
        let outcome = Outcome::from_parts(410, None, None, body);
        assert_eq!(outcome.action(), Action::DropToken { since: None });
    }
    // Statuses APNs never sends: something else answered.
    for status in [0, 100, 204, 302, 600, 999] {
        let outcome = Outcome::from_parts(status, None, None, b"");
        assert_eq!(outcome.action(), Action::FixConfiguration, "{status}");
    }
}

/// A token APNs refuses with 400 is never a reason to delete: only a 410 is.
#[test]
fn only_410_drops_a_token() {
    for reason in [
        "BadDeviceToken",
        "DeviceTokenNotForTopic",
        "Unregistered",
        "ExpiredToken",
    ] {
        for status in [400, 403, 404, 500] {
            let body = format!(r#"{{"reason":"{reason}","timestamp":1700000000000}}"#);
            let action = Outcome::from_parts(status, None, None, body.as_bytes()).action();
            assert!(
                !matches!(action, Action::DropToken { .. }),
                "{status} {reason}"
            );
        }
    }
}

proptest! {
    #[test]
    fn every_response_has_an_action(
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
        let outcome = Outcome::from_parts(status, id.as_deref(), None, &body);
        let action = outcome.action();
        // Only a 200 is delivered, only a 410 drops; every other answer says what to
        // do instead.
        prop_assert_eq!(action == Action::Delivered, status == 200);
        prop_assert_eq!(matches!(action, Action::DropToken { .. }), status == 410);
        prop_assert_eq!(outcome.status, status);
    }

    #[test]
    fn reasons_round_trip(name in "[A-Za-z]{1,30}") {
        let reason = Reason::parse(&name);
        prop_assert_eq!(reason.as_str(), name.as_str());
    }
}
