//! Known-answer tests from RFC 8291 Appendix A and RFC 8188 §3.1 and §3.2, in the
//! "decode, compare, re-encode, decode again" pattern, for every provider.

use webpush_crypto::base64url::decode;
use webpush_crypto::ece::{self, RecordSize};
use webpush_crypto::{
    AuthSecret, Encryptor, PrivateKey, Provider, PublicKey, Salt, SubscriptionKeys, UaKeys,
    decrypt_with,
};

fn b64(s: &str) -> Vec<u8> {
    decode(s, "test vector").unwrap()
}

// RFC 8291 Appendix A.
const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
const AS_PUBLIC: &str =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const UA_PUBLIC: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

fn rfc8291_ua() -> UaKeys {
    UaKeys::new(
        PrivateKey::from_base64url(UA_PRIVATE).unwrap(),
        AuthSecret::from_base64url(AUTH).unwrap(),
    )
    .unwrap()
}

#[test]
fn rfc8291_keys_match_the_published_public_keys() {
    let ua = rfc8291_ua();
    assert_eq!(ua.public_key().to_base64url(), UA_PUBLIC);
    let as_private = PrivateKey::from_base64url(AS_PRIVATE).unwrap();
    assert_eq!(as_private.public_key().unwrap().to_base64url(), AS_PUBLIC);
}

#[test]
fn rfc8291_appendix_a_kat_inverse() {
    let body = b64(BODY);
    assert_eq!(
        body.len(),
        144,
        "the RFC's Content-Length: 145 is off by one"
    );
    for &provider in Provider::all() {
        // Decode and compare.
        let ua = rfc8291_ua();
        let plaintext = decrypt_with(provider, &ua, &body).unwrap();
        assert_eq!(plaintext, PLAINTEXT.as_bytes(), "{provider:?}");
        // Re-encode with the published ephemeral key and salt: byte for byte.
        let keys = SubscriptionKeys::from_base64url(UA_PUBLIC, AUTH).unwrap();
        let encrypted = Encryptor::new()
            .with_provider(provider)
            .encrypt_with(
                &keys,
                &plaintext,
                &PrivateKey::from_base64url(AS_PRIVATE).unwrap(),
                &Salt::from_base64url(SALT).unwrap(),
            )
            .unwrap();
        assert_eq!(encrypted, body, "{provider:?}");
        // Decode again.
        assert_eq!(decrypt_with(provider, &ua, &encrypted).unwrap(), plaintext);
    }
}

#[test]
fn rfc8188_section_3_1_single_record() {
    let ikm = b64("yqdlZ-tYemfogSmv7Ws5PQ");
    let body = b64("I1BsxtFttlv3u_Oo94xnmwAAEAAA-NAVub2qFgBEuQKRapoZu-IxkIva3MEB1PD-ly8Thjg");
    assert_eq!(body.len(), 53, "the RFC's prose says 54; the bytes say 53");
    for &provider in Provider::all() {
        let (header, plaintext) = ece::decrypt(provider, &ikm, &body).unwrap();
        assert_eq!(plaintext, b"I am the walrus");
        assert_eq!(header.rs, RecordSize::DEFAULT);
        assert!(header.keyid.is_empty());
        let again = ece::encrypt(
            provider,
            &ikm,
            &header.salt,
            header.keyid,
            header.rs,
            &plaintext,
            0,
        )
        .unwrap();
        assert_eq!(again, body, "{provider:?}");
        assert_eq!(ece::decrypt(provider, &ikm, &again).unwrap().1, plaintext);
    }
}

#[test]
fn rfc8188_section_3_2_multiple_records() {
    let ikm = b64("BO3ZVPxUlnLORbVGMpbT1Q");
    let body = b64(
        "uNCkWiNYzKTnBN9ji3-qWAAAABkCYTHOG8chz_gnvgOqdGYovxyjuqRyJFjEDyoF1Fvkj6hQPdPHI51OEUKEpgz3SsLWIqS_uA",
    );
    assert_eq!(body.len(), 73);
    for &provider in Provider::all() {
        let (header, plaintext) = ece::decrypt(provider, &ikm, &body).unwrap();
        assert_eq!(plaintext, b"I am the walrus");
        assert_eq!(header.rs.get(), 25);
        assert_eq!(header.keyid, b"a1");
        // One padding octet in the first record: "I am th" 0x01 0x00 | "e walrus" 0x02.
        let again = ece::encrypt(
            provider,
            &ikm,
            &header.salt,
            header.keyid,
            header.rs,
            &plaintext,
            1,
        )
        .unwrap();
        assert_eq!(again, body, "{provider:?}");
        assert_eq!(ece::decrypt(provider, &ikm, &again).unwrap().1, plaintext);
    }
}

#[test]
fn public_key_round_trips_through_base64url_with_and_without_padding() {
    let key: PublicKey = UA_PUBLIC.parse().unwrap();
    assert_eq!(key.to_base64url(), UA_PUBLIC);
    let padded = format!("{UA_PUBLIC}=");
    assert_eq!(padded.parse::<PublicKey>().unwrap(), key);
    let auth_padded = format!("{AUTH}==");
    assert_eq!(
        auth_padded.parse::<AuthSecret>().unwrap().to_base64url(),
        AUTH
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let ua = rfc8291_ua();
    let shown = format!("{ua:?}");
    assert!(shown.contains("<redacted>"));
    let private_b64 = ua.private_key().to_base64url();
    assert!(!shown.contains(private_b64.as_str()));
    assert!(!shown.contains(AUTH));
    // Public keys stay visible: operators need them in logs.
    assert!(shown.contains(UA_PUBLIC));
}

#[test]
fn rfc8291_appendix_a_with_a_key_made_ahead() {
    let body = b64(BODY);
    let keys = SubscriptionKeys::from_base64url(UA_PUBLIC, AUTH).unwrap();
    let secret = PrivateKey::from_base64url(AS_PRIVATE).unwrap();
    for &provider in Provider::all() {
        let key = webpush_crypto::EphemeralKey::from_private_key(provider, &secret).unwrap();
        assert_eq!(key.public_key().to_base64url(), AS_PUBLIC, "{provider:?}");
        // Made for either provider, used by every encryptor: the same bytes.
        for &encryptor in Provider::all() {
            let key = webpush_crypto::EphemeralKey::from_private_key(provider, &secret).unwrap();
            let encrypted = Encryptor::new()
                .with_provider(encryptor)
                .encrypt_prepared_with(
                    &keys,
                    PLAINTEXT.as_bytes(),
                    key,
                    &Salt::from_base64url(SALT).unwrap(),
                )
                .unwrap();
            assert_eq!(encrypted, body, "{provider:?} key, {encryptor:?} encryptor");
        }
    }
}

#[test]
fn rfc8291_appendix_a_with_a_key_agreed_ahead() {
    let body = b64(BODY);
    let keys = SubscriptionKeys::from_base64url(UA_PUBLIC, AUTH).unwrap();
    let secret = PrivateKey::from_base64url(AS_PRIVATE).unwrap();
    let salt = Salt::from_base64url(SALT).unwrap();
    for &provider in Provider::all() {
        for &encryptor in Provider::all() {
            let encryptor = Encryptor::new().with_provider(encryptor);
            // Agreed in one call, or from a key made ahead: the same bytes.
            let agreed =
                webpush_crypto::Agreement::from_private_key(provider, &keys, &secret).unwrap();
            assert_eq!(
                agreed.public_key().to_base64url(),
                AS_PUBLIC,
                "{provider:?}"
            );
            assert_eq!(agreed.keys(), &keys);
            let encrypted = encryptor
                .encrypt_agreed_with(PLAINTEXT.as_bytes(), agreed, &salt)
                .unwrap();
            assert_eq!(encrypted, body, "{provider:?} agreement, {encryptor:?}");
            let key = webpush_crypto::EphemeralKey::from_private_key(provider, &secret).unwrap();
            let agreed = key.agree(&keys).unwrap();
            let shown = format!("{agreed:?}");
            assert!(
                shown.contains("<redacted>") && shown.contains(AS_PUBLIC),
                "{shown}"
            );
            let encrypted = encryptor
                .encrypt_agreed_with(PLAINTEXT.as_bytes(), agreed, &salt)
                .unwrap();
            assert_eq!(encrypted, body, "{provider:?} key agreed, {encryptor:?}");
        }
    }
}
