//! The RFC 8030 request: headers, refusals before any crypto, the body decrypts, and
//! the PushSubscription JSON round trip.

use std::time::{Duration, SystemTime};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use webpush_crypto::{
    Encryptor, Error, Origin, PrivateKey, PushRequest, Subject, Subscription, Topic, Ttl, UaKeys,
    Urgency, VapidKey, VapidSigner, VapidVerifier, decrypt,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn setup(seed: u64) -> (UaKeys, Subscription, VapidSigner) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ua = UaKeys::generate(&mut rng).unwrap();
    let subscription = Subscription::new(
        "https://push.example.net/wpush/v2/gAAAAABl"
            .parse()
            .unwrap(),
        ua.subscription_keys(),
    );
    let signer = VapidSigner::new(
        VapidKey::generate(&mut rng).unwrap(),
        Subject::new("mailto:postmaster@mail.example").unwrap(),
    );
    (ua, subscription, signer)
}

#[test]
fn a_full_request() {
    let (ua, subscription, signer) = setup(1);
    let token = signer.sign(subscription.endpoint.origin(), now()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let request = PushRequest::new(&subscription, Ttl::from_secs(86_400))
        .urgency(Urgency::High)
        .topic(Topic::new("inbox").unwrap())
        .vapid(token.clone())
        .build(&Encryptor::new(), b"new mail in INBOX", &mut rng)
        .unwrap();

    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), "https://push.example.net/wpush/v2/gAAAAABl");
    let h = request.headers();
    assert_eq!(h["content-encoding"], "aes128gcm");
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(
        h["content-length"],
        request.body().len().to_string().as_str()
    );
    assert_eq!(h["ttl"], "86400");
    assert_eq!(h["urgency"], "high");
    assert_eq!(h["topic"], "inbox");
    assert_eq!(h["authorization"], token.authorization());
    assert_eq!(h.len(), 7);
    // The VAPID token is a credential: a logged request does not show it.
    assert!(h["authorization"].is_sensitive());
    assert!(!format!("{request:?}").contains("vapid t="));

    assert_eq!(decrypt(&ua, request.body()).unwrap(), b"new mail in INBOX");
    let verified = VapidVerifier::new(Origin::new("https://push.example.net").unwrap())
        .verify(h["authorization"].to_str().unwrap(), now())
        .unwrap();
    assert_eq!(verified.public_key(), signer.key().public_key());
}

#[test]
fn optional_headers_are_absent_unless_set() {
    let (_, subscription, _) = setup(3);
    let request = PushRequest::new(&subscription, Ttl::from_secs(0))
        .build(&Encryptor::new(), b"", &mut ChaCha20Rng::seed_from_u64(4))
        .unwrap();
    let h = request.headers();
    assert_eq!(h["ttl"], "0");
    for absent in ["urgency", "topic", "authorization"] {
        assert!(!h.contains_key(absent), "{absent}");
    }
}

#[test]
fn refuses_the_subscription_key_as_vapid_key() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let private = PrivateKey::generate(&mut rng).unwrap();
    let ua = UaKeys::new(
        private.clone(),
        webpush_crypto::AuthSecret::generate(&mut rng).unwrap(),
    )
    .unwrap();
    let subscription = Subscription::new(
        "https://push.example.net/p/1".parse().unwrap(),
        ua.subscription_keys(),
    );
    let signer = VapidSigner::new(
        VapidKey::from_private_key(private).unwrap(),
        Subject::new("mailto:a@b").unwrap(),
    );
    let token = signer.sign(subscription.endpoint.origin(), now()).unwrap();
    let result = PushRequest::new(&subscription, Ttl::from_secs(60))
        .vapid(token.clone())
        .build(&Encryptor::new(), b"x", &mut rng);
    assert_eq!(result.unwrap_err(), Error::VapidKeyIsSubscriptionKey);
}

#[test]
fn refuses_a_token_for_another_push_service() {
    let (_, subscription, signer) = setup(6);
    let token = signer
        .sign(&Origin::new("https://fcm.googleapis.com").unwrap(), now())
        .unwrap();
    let result = PushRequest::new(&subscription, Ttl::from_secs(60))
        .vapid(token.clone())
        .build(&Encryptor::new(), b"x", &mut ChaCha20Rng::seed_from_u64(7));
    assert_eq!(
        result.unwrap_err(),
        Error::AudienceMismatch {
            expected: "https://push.example.net".into(),
            found: "https://fcm.googleapis.com".into(),
        }
    );
}

#[test]
fn refuses_a_message_over_the_limit() {
    let (_, subscription, _) = setup(8);
    let result = PushRequest::new(&subscription, Ttl::from_secs(60)).build(
        &Encryptor::new(),
        &[0; 3994],
        &mut ChaCha20Rng::seed_from_u64(9),
    );
    assert_eq!(
        result.unwrap_err(),
        Error::PlaintextTooLong {
            len: 3994,
            limit: 3993
        }
    );
}

#[test]
fn topics_and_urgencies() {
    assert!(Topic::new(&"A".repeat(32)).is_ok());
    for (bad, reason) in [
        ("", "empty"),
        (&*"a".repeat(33), "longer than 32 characters"),
        (
            "a b",
            "characters outside the base64url alphabet (A-Z a-z 0-9 - _)",
        ),
        (
            "a=",
            "characters outside the base64url alphabet (A-Z a-z 0-9 - _)",
        ),
        (
            "é",
            "characters outside the base64url alphabet (A-Z a-z 0-9 - _)",
        ),
    ] {
        assert_eq!(
            Topic::new(bad),
            Err(Error::InvalidTopic { reason }),
            "{bad:?}"
        );
    }
    for u in [
        Urgency::VeryLow,
        Urgency::Low,
        Urgency::Normal,
        Urgency::High,
    ] {
        assert_eq!(u.as_str().parse::<Urgency>().unwrap(), u);
    }
    assert_eq!("urgent".parse::<Urgency>(), Err(Error::InvalidUrgency));
}

#[cfg(feature = "serde")]
mod json {
    use super::*;

    /// A subscription as a browser hands it over, with padded keys as some libraries
    /// store them (the keys are those of RFC 8291 Appendix A).
    const CHROME: &str = r#"{"endpoint":"https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bHqjZxM0VImWWqDRN7U0a3AycjUf4O-byuxb_wJsKRaKvV","expirationTime":null,"keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4=","auth":"BTBZMqHH6r4Tts7J_aSIgg=="}}"#;

    #[test]
    fn reads_what_browsers_write() {
        let subscription = Subscription::from_json(CHROME).unwrap();
        assert_eq!(
            subscription.endpoint.origin().as_str(),
            "https://fcm.googleapis.com"
        );
        assert_eq!(subscription.expiration_time, None);
        // Written back without padding, and read back to the same value.
        let json = subscription.to_json().unwrap();
        assert!(!json.contains('='));
        assert_eq!(Subscription::from_json(&json).unwrap(), subscription);
    }

    #[test]
    fn expiration_and_unknown_fields() {
        let (_, mut subscription, _) = setup(10);
        subscription.expiration_time = Some(1_700_000_000_123);
        let json = subscription.to_json().unwrap();
        assert!(json.contains(r#""expirationTime":1700000000123"#), "{json}");
        assert_eq!(Subscription::from_json(&json).unwrap(), subscription);
        let extended = json.replacen('{', r#"{"futureField":[1,2],"#, 1);
        assert_eq!(Subscription::from_json(&extended).unwrap(), subscription);
        let fractional = json.replace("1700000000123", "1700000000123.7");
        assert_eq!(Subscription::from_json(&fractional).unwrap(), subscription);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let (_, subscription, _) = setup(11);
        let json = subscription.to_json().unwrap();
        let reason = |text: &str| match Subscription::from_json(text) {
            Err(Error::InvalidSubscription { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason("{}").contains("missing field `endpoint`"));
        assert!(reason("not json").contains("expected"));
        assert!(reason(&json.replace("https://", "http://")).contains("scheme is not https"));
        let p256dh = subscription.keys.p256dh().to_base64url();
        assert!(reason(&json.replace(&p256dh, &p256dh[..40])).contains("65 octets"));
        let auth = subscription.keys.auth().to_base64url();
        assert!(reason(&json.replace(&auth, "AAAA")).contains("auth secret must be 16 octets"));
        assert!(reason(&json.replace("null", "-5")).contains("expirationTime"));
        let twice = format!(
            r#"{},"endpoint":"https://a.example/p"}}"#,
            &json[..json.len() - 1]
        );
        assert!(
            reason(&twice).contains("duplicate field"),
            "{}",
            reason(&twice)
        );
    }
}
