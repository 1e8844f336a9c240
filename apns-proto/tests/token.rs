//! Provider tokens: the JWT's contents, verified by `jsonwebtoken`; reuse and renewal
//! inside Apple's window.

use std::time::{Duration, SystemTime};

use apns_proto::{MAX_AGE, ProviderKey, ProviderTokens, TokenError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};
use p256::pkcs8::DecodePrivateKey;

const P8: &[u8] = include_bytes!("data/AuthKey_TEST123456.p8");
const MINUTE: Duration = Duration::from_secs(60);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn key() -> ProviderKey {
    ProviderKey::from_p8_pem(P8, "TEST123456", "TEAM123456").unwrap()
}

fn decoding_key() -> DecodingKey {
    let secret = p256::SecretKey::from_pkcs8_pem(std::str::from_utf8(P8).unwrap()).unwrap();
    let point = secret.public_key().to_sec1_bytes();
    let (x, y) = (&point[1..33], &point[33..]);
    DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y)).unwrap()
}

/// The backends compiled in, named explicitly (the process default would panic with
/// both).
fn backends() -> Vec<&'static CryptoProvider> {
    [
        #[cfg(feature = "rust-crypto")]
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        #[cfg(feature = "aws-lc-rs")]
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    ]
    .into_iter()
    .collect()
}

/// Whether every backend verifies `token` with the test key.
fn verifies(token: &str) -> bool {
    let (message, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    backends().iter().all(|backend| {
        let verifier = (backend.verifier_factory)(&Algorithm::ES256, &decoding_key()).unwrap();
        verifier.verify(message.as_bytes(), &signature).is_ok()
    })
}

#[test]
fn the_token_verifies_and_says_what_apple_reads() {
    let token = key().sign(1_700_000_000).unwrap();
    let parts: Vec<_> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
    assert_eq!(header, br#"{"alg":"ES256","kid":"TEST123456"}"#);
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    assert_eq!(claims, br#"{"iss":"TEAM123456","iat":1700000000}"#);
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);

    assert!(
        verifies(&token),
        "every jsonwebtoken backend verifies the signature"
    );

    // A tampered token does not verify.
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"iss":"OTHER12345","iat":1700000000}"#),
        parts[2]
    );
    assert!(!verifies(&forged));
}

#[test]
fn reused_inside_the_window_and_renewed_at_its_end() {
    let mut tokens = ProviderTokens::new(key());
    let first = tokens.header(t0()).unwrap().clone();
    assert_eq!(tokens.issued_at(), Some(1_700_000_000));
    // Reused until 50 minutes.
    for minutes in [0, 1, 20, 49] {
        assert_eq!(tokens.header(t0() + minutes * MINUTE).unwrap(), &first);
    }
    let last_second = t0() + 50 * MINUTE - Duration::from_secs(1);
    assert_eq!(tokens.header(last_second).unwrap(), &first);
    // Renewed at the boundary.
    let second = tokens.header(t0() + 50 * MINUTE).unwrap().clone();
    assert_ne!(second, first);
    assert_eq!(tokens.issued_at(), Some(1_700_000_000 + 3000));
    // A clock that went backwards gets a fresh token rather than a future-dated one.
    let back = tokens.header(t0() + 10 * MINUTE).unwrap().clone();
    assert_ne!(back, second);
    assert_eq!(tokens.issued_at(), Some(1_700_000_000 + 600));
    // After ExpiredProviderToken.
    tokens.invalidate();
    assert_eq!(tokens.issued_at(), None);
    assert!(tokens.header(t0() + 10 * MINUTE).is_ok());
}

#[test]
fn never_older_than_an_hour() {
    for refresh in [20, 35, 60] {
        let mut tokens = ProviderTokens::new(key())
            .with_refresh(refresh * MINUTE)
            .unwrap();
        let mut now = t0();
        for _ in 0..500 {
            tokens.header(now).unwrap();
            let now_secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let age = now_secs - tokens.issued_at().unwrap();
            assert!(age < MAX_AGE.as_secs() && age < u64::from(refresh) * 60);
            now += Duration::from_secs(37);
        }
    }
    for refresh in [0, 19, 61] {
        assert_eq!(
            ProviderTokens::new(key())
                .with_refresh(refresh * MINUTE)
                .unwrap_err(),
            TokenError::RefreshInterval
        );
    }
}

#[test]
fn bad_keys_and_ids() {
    assert_eq!(
        ProviderKey::from_p8_pem(b"not a key", "TEST123456", "TEAM123456").unwrap_err(),
        TokenError::Key
    );
    let garbage = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert_eq!(
        ProviderKey::from_p8_pem(garbage, "TEST123456", "TEAM123456").unwrap_err(),
        TokenError::Key
    );
    assert_eq!(
        ProviderKey::from_p8_pem(P8, "SHORT", "TEAM123456").unwrap_err(),
        TokenError::Id("key id")
    );
    assert_eq!(
        ProviderKey::from_p8_pem(P8, "TEST123456", "TEAM-12345").unwrap_err(),
        TokenError::Id("team id")
    );
    // The key never shows in Debug.
    let shown = format!("{:?}", key());
    assert!(shown.contains("[redacted]") && !shown.contains("MIG"));
}
