//! VAPID: the RFC 8292 §2.4 known answer, sign/verify across providers, every refusal,
//! and the token cache's reuse and renewal rules.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use webpush_crypto::vapid::{DEFAULT_MARGIN, MAX_VALIDITY};
use webpush_crypto::{
    Error, Origin, Provider, Subject, TokenCache, VapidCredentials, VapidKey, VapidSigner,
    VapidVerifier, base64url,
};

/// RFC 8292 §2.4, unwrapped onto one line.
const RFC_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA";
const RFC_KEY: &str =
    "BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs";
const RFC_EXP: u64 = 1_453_523_768;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn rfc_header() -> String {
    format!("vapid t={RFC_TOKEN}, k={RFC_KEY}")
}

fn verifier(provider: Provider) -> VapidVerifier {
    VapidVerifier::new(Origin::new("https://push.example.net").unwrap()).with_provider(provider)
}

fn make_signer(seed: u64) -> VapidSigner {
    let key = VapidKey::generate(&mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
    VapidSigner::new(key, Subject::new("mailto:postmaster@mail.example").unwrap())
}

#[test]
fn rfc8292_example_verifies_with_every_provider() {
    for &provider in Provider::all() {
        let verified = verifier(provider)
            .verify(&rfc_header(), at(RFC_EXP - 3600))
            .unwrap();
        assert_eq!(verified.public_key().to_base64url(), RFC_KEY);
        assert_eq!(verified.audience().as_str(), "https://push.example.net");
        assert_eq!(verified.expires_at(), RFC_EXP);
        assert_eq!(verified.subject(), Some("mailto:push@example.com"));
        // The documented claims, decoded from the token itself.
        let claims = RFC_TOKEN.split('.').nth(1).unwrap();
        assert_eq!(
            base64url::decode(claims, "claims").unwrap(),
            br#"{"aud":"https://push.example.net","exp":1453523768,"sub":"mailto:push@example.com"}"#
        );
    }
}

#[test]
fn rfc8292_example_with_any_byte_changed_fails() {
    for &provider in Provider::all() {
        let verifier = verifier(provider);
        let header = rfc_header();
        let start = "vapid t=".len();
        // Every character of the JWT, replaced by another of the alphabet.
        for i in start..start + RFC_TOKEN.len() {
            let original = header.as_bytes()[i];
            if original == b'.' {
                continue;
            }
            let replacement = if original == b'A' { b'B' } else { b'A' };
            let mut bytes = header.clone().into_bytes();
            bytes[i] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            let result = verifier.verify(&changed, at(RFC_EXP - 3600));
            assert!(result.is_err(), "byte {i} changed still verified");
        }
    }
}

#[test]
fn our_tokens_verify_with_every_provider() {
    for &signing in Provider::all() {
        let key = VapidKey::generate(&mut ChaCha20Rng::seed_from_u64(1))
            .unwrap()
            .with_provider(signing)
            .unwrap();
        let signer = VapidSigner::new(key, Subject::new("https://mail.example/ops").unwrap());
        let audience = Origin::new("https://push.example.net").unwrap();
        let token = signer.sign(&audience, at(1_700_000_000)).unwrap();
        assert!(token.authorization().starts_with("vapid t="));
        assert!(
            token
                .authorization()
                .ends_with(&format!(", k={}", signer.key().public_key()))
        );
        let parsed = VapidCredentials::parse(token.authorization()).unwrap();
        assert_eq!(parsed.token, token.jwt());
        for &verifying in Provider::all() {
            let verified = verifier(verifying)
                .verify(token.authorization(), at(1_700_000_000))
                .unwrap();
            assert_eq!(verified.public_key(), signer.key().public_key());
            assert_eq!(verified.expires_at(), 1_700_000_000 + 12 * 3600);
            assert_eq!(verified.subject(), Some("https://mail.example/ops"));
        }
    }
}

#[test]
fn verification_refusals() {
    let signer = make_signer(2);
    let audience = Origin::new("https://push.example.net").unwrap();
    let t0 = 1_700_000_000;
    let token = signer.sign(&audience, at(t0)).unwrap();
    let exp = t0 + 12 * 3600;
    let v = verifier(Provider::default()).with_leeway(Duration::ZERO);

    assert_eq!(
        v.verify(token.authorization(), at(exp)),
        Err(Error::TokenExpired { exp, now: exp })
    );
    assert!(v.verify(token.authorization(), at(exp - 1)).is_ok());
    // Signed "in the future": exp more than 24 h after the verifier's now.
    let early = t0 - 13 * 3600;
    assert_eq!(
        v.verify(token.authorization(), at(early)),
        Err(Error::ExpiryTooFar { exp, now: early })
    );
    // The leeway absorbs a little skew either way.
    let lenient = v.clone().with_leeway(Duration::from_secs(60));
    assert!(lenient.verify(token.authorization(), at(exp + 59)).is_ok());

    let other = VapidVerifier::new(Origin::new("https://fcm.googleapis.com").unwrap());
    assert_eq!(
        other.verify(token.authorization(), at(t0)),
        Err(Error::AudienceMismatch {
            expected: "https://fcm.googleapis.com".into(),
            found: "https://push.example.net".into(),
        })
    );

    // The token with somebody else's key in `k`.
    let imposter = signer_key_header(token.jwt(), &make_signer(3));
    assert_eq!(v.verify(&imposter, at(t0)), Err(Error::BadSignature));

    // Structural faults.
    let header_of = |jwt: &str| format!("vapid t={jwt}, k={}", signer.key().public_key());
    let parts: Vec<&str> = token.jwt().split('.').collect();
    let hs256 = base64url::encode(br#"{"typ":"JWT","alg":"HS256"}"#);
    for (jwt, expected) in [
        (
            format!("{}.{}", parts[0], parts[1]),
            Error::MalformedToken {
                reason: "not three dot-separated parts",
            },
        ),
        (
            format!("{}.x", token.jwt()),
            Error::MalformedToken {
                reason: "not three dot-separated parts",
            },
        ),
        (
            format!("{hs256}.{}.{}", parts[1], parts[2]),
            Error::MalformedToken {
                reason: "algorithm is not ES256",
            },
        ),
        (
            format!("{}.{}.AAAA", parts[0], parts[1]),
            Error::MalformedToken {
                reason: "signature is not 64 octets (r ‖ s)",
            },
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], "*"),
            Error::InvalidBase64 {
                what: "JWT signature",
            },
        ),
    ] {
        assert_eq!(v.verify(&header_of(&jwt), at(t0)), Err(expected), "{jwt}");
    }
    assert!(matches!(
        v.verify(&format!("vapid t={}, k=BAAA", token.jwt()), at(t0)),
        Err(Error::PublicKeyLength { .. })
    ));
}

/// RFC 8292 §2: `aud` is the origin, serialized; a URL of it with a path, its host in
/// capitals or its default port written, is not, though each names that origin.
#[test]
fn an_audience_that_is_not_the_serialized_origin_is_refused() {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::DecodePrivateKey as _;
    let key = VapidKey::generate(&mut ChaCha20Rng::seed_from_u64(7)).unwrap();
    // Signed here with p256 itself, claims and all: the signer writes only origins.
    let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let t0 = 1_700_000_000;
    let token = |aud: &str| {
        let claims =
            serde_json::json!({"aud": aud, "exp": t0 + 3600, "sub": "mailto:a@example.net"});
        let signed = format!(
            "{}.{}",
            b64.encode(br#"{"typ":"JWT","alg":"ES256"}"#),
            b64.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = signing.sign(signed.as_bytes());
        let jwt = format!("{signed}.{}", b64.encode(signature.to_bytes()));
        format!("vapid t={jwt}, k={}", key.public_key())
    };
    let v = verifier(Provider::default());
    assert!(v.verify(&token("https://push.example.net"), at(t0)).is_ok());
    for aud in [
        "https://push.example.net/p/x",
        "https://push.example.net/",
        "https://PUSH.example.net",
        "https://push.example.net:443",
    ] {
        assert_eq!(
            v.verify(&token(aud), at(t0)),
            Err(Error::AudienceMismatch {
                expected: "https://push.example.net".into(),
                found: aud.into(),
            }),
            "{aud}"
        );
    }
}

fn signer_key_header(jwt: &str, other: &VapidSigner) -> String {
    format!("vapid t={jwt}, k={}", other.key().public_key())
}

#[test]
fn validity_bounds() {
    assert!(make_signer(4).with_validity(MAX_VALIDITY).is_ok());
    assert!(matches!(
        make_signer(4).with_validity(MAX_VALIDITY + Duration::from_secs(1)),
        Err(Error::InvalidValidity { .. })
    ));
    assert!(matches!(
        make_signer(4).with_validity(Duration::from_secs(59)),
        Err(Error::InvalidValidity { .. })
    ));
    let audience = Origin::new("https://push.example.net").unwrap();
    assert_eq!(
        make_signer(4).sign(&audience, SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
        Err(Error::ClockBeforeEpoch)
    );
}

#[test]
fn cache_reuses_inside_the_window_and_renews_at_the_margin() {
    let mut cache = TokenCache::new(make_signer(5));
    assert_eq!(cache.margin(), DEFAULT_MARGIN);
    let push = Origin::new("https://push.example.net").unwrap();
    let t0 = 1_700_000_000;
    let first = cache.token(&push, at(t0)).unwrap().clone();
    assert_eq!(first.expires_at(), t0 + 12 * 3600);
    // Reused right up to one second before the margin...
    let renew_at = first.expires_at() - DEFAULT_MARGIN.as_secs();
    for now in [t0 + 1, t0 + 3600, renew_at - 1] {
        assert_eq!(cache.token(&push, at(now)).unwrap(), first, "at {now}");
    }
    // ...and replaced at it.
    let second = cache.token(&push, at(renew_at)).unwrap().clone();
    assert_ne!(second, first);
    assert_eq!(second.expires_at(), renew_at + 12 * 3600);
    // A clock that jumps past the expiry never gets the stale token.
    let late = cache.token(&push, at(second.expires_at() + 10)).unwrap();
    assert!(late.expires_at() > second.expires_at() + 10);
}

#[test]
fn cache_keeps_one_token_per_audience() {
    let mut cache = TokenCache::new(make_signer(6)).with_max_audiences(2);
    let t0 = 1_700_000_000;
    let a = Origin::new("https://a.example").unwrap();
    let b = Origin::new("https://b.example").unwrap();
    let c = Origin::new("https://c.example").unwrap();
    let token_a = cache.token(&a, at(t0)).unwrap().clone();
    let token_b = cache.token(&b, at(t0 + 10)).unwrap().clone();
    assert_eq!(token_a.audience(), &a);
    assert_eq!(token_b.audience(), &b);
    assert_ne!(token_a.jwt(), token_b.jwt());
    assert_eq!(cache.token(&a, at(t0 + 20)).unwrap(), token_a);
    assert_eq!(cache.len(), 2);
    // A third audience evicts the token closest to expiry (a's), not b's.
    cache.token(&c, at(t0 + 30)).unwrap();
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.token(&b, at(t0 + 40)).unwrap(), token_b);
    // Purge drops what is no longer fresh.
    cache.purge(at(t0 + 24 * 3600)).unwrap();
    assert!(cache.is_empty());
}

#[test]
fn cache_margin_must_leave_a_useful_token() {
    assert!(
        TokenCache::new(make_signer(7))
            .with_margin(Duration::from_secs(12 * 3600))
            .is_err()
    );
    assert!(
        TokenCache::new(make_signer(7))
            .with_margin(Duration::from_secs(11 * 3600))
            .is_ok()
    );
    // A short lifetime gets a proportionate default margin.
    let short = make_signer(7)
        .with_validity(Duration::from_secs(600))
        .unwrap();
    assert_eq!(TokenCache::new(short).margin(), Duration::from_secs(300));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any header we write parses back to the same token and key, and verifies.
    #[test]
    fn header_round_trip(seed in any::<u64>(), now in 0u64..4_000_000_000, host in "[a-z]{1,20}(\\.[a-z]{1,10}){0,3}", port in proptest::option::of(1u16..)) {
        let signer = make_signer(seed);
        let text = match port { Some(port) => format!("https://{host}:{port}"), None => format!("https://{host}") };
        let audience = Origin::new(&text).unwrap();
        let token = signer.sign(&audience, at(now)).unwrap();
        let parsed = VapidCredentials::parse(token.authorization()).unwrap();
        prop_assert_eq!(parsed.token, token.jwt());
        prop_assert_eq!(parsed.key, signer.key().public_key().to_base64url());
        let verified = VapidVerifier::new(audience.clone()).verify(token.authorization(), at(now)).unwrap();
        prop_assert_eq!(verified.audience(), &audience);
    }

    /// The parser never panics, and whatever it accepts has both parameters.
    #[test]
    fn parser_total(value in "\\PC{0,200}") {
        if let Ok(c) = VapidCredentials::parse(&value) {
            prop_assert!(!c.token.is_empty() && !c.key.is_empty());
        }
    }
}
