//! Requests: the mail push byte for byte as xapsd sends it, the payload strings every
//! implementation used, Apple's rules, and round trips.

use std::time::{Duration, SystemTime};

use apns_proto::payload::{Alert, AlertFields, Aps, CriticalSound, InterruptionLevel, Sound};
use apns_proto::{
    ApnsId, CollapseId, DeviceToken, Environment, Expiration, MailPush, Notification, Payload,
    Priority, PushType, RequestError, Server, Topic,
};
use http::HeaderValue;
use proptest::prelude::*;

const TOKEN: &str = "73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF";
const TOPIC: &str = "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6";
const ACCOUNT: &str = "55FAD99D-748E-44DA-8A7F-91D3478CAABD";
const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn token() -> DeviceToken {
    DeviceToken::try_from(TOKEN).unwrap()
}

fn topic(text: &str) -> Topic {
    Topic::try_from(text).unwrap()
}

/// The request as a list of lines: pseudo-headers, headers in order, body.
fn render(request: &http::Request<Vec<u8>>) -> Vec<String> {
    let mut lines = vec![
        format!(":method = {}", request.method()),
        format!(":scheme = {}", request.uri().scheme_str().unwrap()),
        format!(":path = {}", request.uri().path()),
        format!("host = {}", request.uri().host().unwrap()),
    ];
    for (name, value) in request.headers() {
        lines.push(format!("{name} = {}", value.to_str().unwrap()));
    }
    lines.push(format!(
        "DATA {}",
        String::from_utf8(request.body().clone()).unwrap()
    ));
    lines
}

#[test]
fn the_mail_push_as_xapsd_sends_it() {
    // The assembled request of xapsd's HTTP/2 sender, plus the priority 5 Apple
    // requires with `background` (xapsd leaves it out, meaning 10). The token as the
    // device sent it, as xapsd passes it on (APNs reads hex in either case).
    let expected = [
        ":method = POST".to_owned(),
        ":scheme = https".to_owned(),
        format!(":path = /3/device/{TOKEN}"),
        "host = api.push.apple.com".to_owned(),
        "content-type = application/json; charset=utf-8".to_owned(),
        format!("apns-topic = {TOPIC}"),
        "apns-push-type = background".to_owned(),
        "apns-priority = 5".to_owned(),
        format!("apns-expiration = {}", NOW + 86_400),
        format!("DATA {{\"aps\":{{\"account-id\":\"{ACCOUNT}\"}}}}"),
    ];
    let request = Notification::mail(token(), topic(TOPIC), ACCOUNT, now())
        .unwrap()
        .into_request(Environment::Production, None)
        .unwrap();
    assert_eq!(render(&request), expected);

    // The fast path builds the same request.
    let mut push = MailPush::new(Environment::Production, &topic(TOPIC));
    let fast = push.request(&token(), ACCOUNT, now(), None).unwrap();
    assert_eq!(render(&fast), expected);
    // Again within the same second, and a second later.
    assert_eq!(
        render(&push.request(&token(), ACCOUNT, now(), None).unwrap()),
        expected
    );
    let later = push
        .request(&token(), ACCOUNT, now() + Duration::from_secs(1), None)
        .unwrap();
    assert_eq!(
        later.headers()["apns-expiration"],
        (NOW + 86_401).to_string().as_str()
    );

    // Token mode adds the authorization header; sandbox changes the host.
    let bearer = HeaderValue::from_static("bearer eyJ.eyJ.sig");
    let request = push
        .request(&token(), ACCOUNT, now(), Some(&bearer))
        .unwrap();
    assert_eq!(request.headers()["authorization"], "bearer eyJ.eyJ.sig");
    let mut sandbox = MailPush::new(Environment::Sandbox, &topic(TOPIC));
    let request = sandbox.request(&token(), ACCOUNT, now(), None).unwrap();
    assert_eq!(request.uri().host(), Some("api.sandbox.push.apple.com"));
    // Another server (a stand-in, a proxy) keeps the path and headers.
    let mut other = MailPush::new(Server::new("127.0.0.1:8443").unwrap(), &topic(TOPIC));
    let request = other.request(&token(), ACCOUNT, now(), None).unwrap();
    assert_eq!(request.uri().authority().unwrap(), "127.0.0.1:8443");
    assert_eq!(request.uri().path(), fast.uri().path());
    // A clock before 1970 makes no expiration.
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(
        other.request(&token(), ACCOUNT, before, None).unwrap_err(),
        RequestError::ClockBeforeEpoch
    );
    // A payload past APNs' 4 KiB is refused as Notification::validate refuses it.
    let long = "A".repeat(4_096);
    let refused = other.request(&token(), &long, now(), None).unwrap_err();
    assert_eq!(
        refused,
        Notification::mail(token(), topic(TOPIC), &long, now())
            .unwrap()
            .validate()
            .unwrap_err()
    );
    assert!(matches!(
        refused,
        RequestError::PayloadTooLarge { max: 4096, .. }
    ));
}

#[test]
fn the_payload_strings_of_every_implementation() {
    let mail = Payload::mail(ACCOUNT);
    // xapsd (string concatenation) and the Python daemon (compact json.dumps).
    let compact = format!(r#"{{"aps":{{"account-id":"{ACCOUNT}"}}}}"#);
    assert_eq!(mail.to_vec().unwrap(), compact.as_bytes());
    // Apple's own format string, with spaces, reads as the same payload.
    let apple = format!(r#"{{ "aps" : {{ "account-id" : "{ACCOUNT}" }} }}"#);
    assert_eq!(serde_json::from_str::<Payload>(&apple).unwrap(), mail);
    // An id that needs escaping is escaped, in the fast path too.
    let odd = "a\"b\\c";
    let request = Notification::mail(token(), topic(TOPIC), odd, now())
        .unwrap()
        .into_request(Environment::Production, None)
        .unwrap();
    let expected = br#"{"aps":{"account-id":"a\"b\\c"}}"#;
    assert_eq!(request.body(), expected);
    assert_eq!(Payload::mail(odd).to_vec().unwrap(), expected);
    let parsed: Payload = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(parsed.aps.account_id.as_deref(), Some(odd));
}

#[test]
fn the_aps_dictionary() {
    let mut payload = Payload::default();
    payload.aps.alert = Some(Alert::Fields(Box::new(AlertFields {
        title: Some("New mail".into()),
        loc_key: Some("MAIL_FROM".into()),
        loc_args: Some(vec!["Alice".into()]),
        ..AlertFields::default()
    })));
    payload.aps.badge = Some(0);
    payload.aps.sound = Some(Sound::Critical(CriticalSound {
        critical: true,
        name: "ping.aiff".into(),
        volume: Some(0.5),
    }));
    payload.aps.content_available = true;
    payload.aps.mutable_content = true;
    payload.aps.thread_id = Some("inbox".into());
    payload.aps.category = Some("MESSAGE".into());
    payload.aps.interruption_level = Some(InterruptionLevel::TimeSensitive);
    payload.aps.relevance_score = Some(0.75);
    payload.custom.insert("uid".into(), 42.into());
    let json = String::from_utf8(payload.to_vec().unwrap()).unwrap();
    assert_eq!(
        json,
        r#"{"aps":{"alert":{"title":"New mail","loc-key":"MAIL_FROM","loc-args":["Alice"]},"badge":0,"sound":{"critical":1,"name":"ping.aiff","volume":0.5},"thread-id":"inbox","category":"MESSAGE","content-available":1,"mutable-content":1,"interruption-level":"time-sensitive","relevance-score":0.75},"uid":42}"#
    );
    assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), payload);
    // Flags written as booleans by other senders read too.
    let aps: Aps = serde_json::from_str(r#"{"content-available":true,"sound":"default"}"#).unwrap();
    assert!(aps.content_available);
    assert_eq!(aps.sound, Some(Sound::Name("default".into())));
    // JSON cannot carry a non-finite score, and Apple's range is 0 to 1.
    for score in [f64::NAN, f64::INFINITY, -0.1, 1.5] {
        let mut bad = Payload::default();
        bad.aps.relevance_score = Some(score);
        assert_eq!(bad.to_vec(), Err(RequestError::Payload), "{score}");
    }
}

#[test]
fn apple_rules_are_checked_before_sending() {
    let build = |n: Notification| n.into_request(Environment::Production, None);
    let mail = || Notification::mail(token(), topic(TOPIC), ACCOUNT, now()).unwrap();
    assert_eq!(
        build(mail().priority(Priority::High)).unwrap_err(),
        RequestError::Priority {
            push_type: "background",
            priority: "10"
        }
    );
    let alert = |json: Vec<u8>| Notification::with_json(token(), topic("com.example.app"), json);
    let big = format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(4096));
    assert_eq!(
        build(alert(big.clone().into_bytes()).unwrap()).unwrap_err(),
        RequestError::PayloadTooLarge {
            len: big.len(),
            max: 4096
        }
    );
    // VoIP takes 5120 octets, on a `.voip` topic.
    let voip = Notification::with_json(
        token(),
        topic("com.example.app.voip"),
        big.clone().into_bytes(),
    )
    .unwrap()
    .push_type(PushType::Voip);
    assert!(build(voip).is_ok());
    let voip = alert(big.into_bytes()).unwrap().push_type(PushType::Voip);
    assert_eq!(
        build(voip).unwrap_err(),
        RequestError::TopicForPushType {
            push_type: "voip",
            suffix: ".voip"
        }
    );
    // A location query goes to `<bundle id>.location-query`.
    let location = |topic_text: &str| {
        Notification::with_json(token(), topic(topic_text), br#"{"aps":{}}"#.to_vec())
            .unwrap()
            .push_type(PushType::Location)
    };
    assert_eq!(
        build(location("com.example.app")).unwrap_err(),
        RequestError::TopicForPushType {
            push_type: "location",
            suffix: ".location-query"
        }
    );
    assert!(build(location("com.example.app.location-query")).is_ok());
    assert_eq!(alert(b"[1]".to_vec()).unwrap_err(), RequestError::Payload);
    assert_eq!(alert(b"{".to_vec()).unwrap_err(), RequestError::Payload);

    // Optional headers.
    let id = ApnsId::try_from("ec1bf194-b3b2-424a-89a9-5a918a6e7a9b").unwrap();
    let request = build(
        alert(br#"{"aps":{"alert":"hi"}}"#.to_vec())
            .unwrap()
            .apns_id(id)
            .collapse_id(CollapseId::try_from("inbox").unwrap())
            .expiration(Expiration::Immediately),
    )
    .unwrap();
    let h = request.headers();
    assert_eq!(h["apns-id"], "EC1BF194-B3B2-424A-89A9-5A918A6E7A9B");
    assert_eq!(h["apns-collapse-id"], "inbox");
    assert_eq!(h["apns-expiration"], "0");
    assert_eq!(h["apns-push-type"], "alert");
    assert_eq!(h["apns-priority"], "10");
}

#[test]
fn values_are_validated() {
    for bad in ["", "abc", "0g", &"ab".repeat(101), &"a".repeat(63)] {
        assert_eq!(
            DeviceToken::try_from(bad),
            Err(RequestError::DeviceToken),
            "{bad}"
        );
    }
    for bad in ["", "has space", "new\nline", &"t".repeat(256), "ü"] {
        assert_eq!(Topic::try_from(bad), Err(RequestError::Topic), "{bad:?}");
    }
    assert!(topic(TOPIC).is_mail());
    assert_eq!(topic(TOPIC).as_str(), TOPIC);
    assert_eq!(topic(TOPIC).header(), TOPIC);
    assert!(!topic("com.apple.mgmt.External.1234").is_mail());
    assert!(CollapseId::try_from("x".repeat(64).as_str()).is_ok());
    for bad in ["", &"x".repeat(65), "a\nb", "\u{7f}"] {
        assert_eq!(
            CollapseId::try_from(bad),
            Err(RequestError::CollapseId),
            "{bad:?}"
        );
    }
    for bad in [
        "",
        "EC1BF194B3B2424A89A95A918A6E7A9B",
        "EC1BF194-B3B2-424A-89A9-5A918A6E7A9G",
        "EC1BF194-B3B2-424A-89A9-5A918A6E7A9BB",
        "EC1BF194-B3B2-424A-89A9_5A918A6E7A9B",
    ] {
        assert_eq!(ApnsId::try_from(bad), Err(RequestError::ApnsId), "{bad}");
    }
    // Push types and priorities Apple accepts together.
    assert!(PushType::Background.allows(Priority::Normal));
    assert!(!PushType::Background.allows(Priority::High));
    assert!(!PushType::Background.allows(Priority::Low));
    assert!(PushType::Alert.allows(Priority::Low));
    assert!(!PushType::PushToTalk.allows(Priority::Normal));
    assert!(!PushType::Location.allows(Priority::Low));
}

proptest! {
    #[test]
    fn random_ids_are_version_4_uuids(bytes in any::<[u8; 16]>()) {
        let id = ApnsId::from_random(bytes);
        let text = id.as_str();
        prop_assert_eq!(ApnsId::try_from(text), Ok(id));
        prop_assert_eq!(text.as_bytes()[14], b'4');
        prop_assert!(matches!(text.as_bytes()[19], b'8' | b'9' | b'A' | b'B'));
    }

    #[test]
    fn tokens_keep_their_case_and_compare_without_it(token in "([0-9a-fA-F]{2}){8,100}") {
        use std::hash::BuildHasher;
        let parsed = DeviceToken::try_from(token.as_str()).unwrap();
        prop_assert_eq!(parsed.as_str(), token.as_str());
        let lower = DeviceToken::try_from(token.to_lowercase()).unwrap();
        let upper = DeviceToken::try_from(token.to_uppercase()).unwrap();
        prop_assert_eq!(&parsed, &lower);
        prop_assert_eq!(&lower, &upper);
        prop_assert_eq!(parsed.cmp(&upper), std::cmp::Ordering::Equal);
        let hasher = std::collections::hash_map::RandomState::new();
        prop_assert_eq!(hasher.hash_one(&parsed), hasher.hash_one(&upper));
        prop_assert_eq!(parsed.to_lowercase(), token.to_lowercase());
    }

    #[test]
    fn payloads_round_trip(
        title in proptest::option::of(".{0,20}"),
        body in ".{0,40}",
        badge in proptest::option::of(any::<u32>()),
        account in proptest::option::of("[A-F0-9-]{1,36}"),
        flag in any::<bool>(),
    ) {
        let mut payload = Payload::default();
        payload.aps.alert = Some(match title {
            Some(title) => Alert::Fields(Box::new(AlertFields { title: Some(title), body: Some(body), ..AlertFields::default() })),
            None => Alert::Text(body),
        });
        payload.aps.badge = badge;
        payload.aps.account_id = account;
        payload.aps.content_available = flag;
        let json = payload.to_vec().unwrap();
        prop_assert_eq!(serde_json::from_slice::<Payload>(&json).unwrap(), payload);
    }

    #[test]
    fn the_fast_path_matches_the_general_one(
        token in "([0-9a-f]{2}){32}",
        account in "\\PC{0,40}",
        secs in 0u64..4_000_000_000,
    ) {
        let token = DeviceToken::try_from(token.as_str()).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let general = Notification::mail(token.clone(), topic(TOPIC), &account, when).unwrap()
            .into_request(Environment::Production, None)
            .unwrap();
        let fast = MailPush::new(Environment::Production, &topic(TOPIC)).request(&token, &account, when, None).unwrap();
        prop_assert_eq!(render(&general), render(&fast));
        let parsed: Payload = serde_json::from_slice(fast.body()).unwrap();
        prop_assert_eq!(parsed, Payload::mail(&account));
    }
}
