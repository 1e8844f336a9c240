//! Every malformed body, header and key gets its own error, for every provider.

use webpush_crypto::base64url::decode;
use webpush_crypto::ece::{self, RecordSize};
use webpush_crypto::{
    AuthSecret, Encryptor, Error, Padding, PrivateKey, Provider, PublicKey, Salt, UaKeys,
    decrypt_with,
};

const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

fn ua() -> UaKeys {
    UaKeys::new(
        PrivateKey::from_base64url(UA_PRIVATE).unwrap(),
        AuthSecret::from_base64url(AUTH).unwrap(),
    )
    .unwrap()
}

fn body() -> Vec<u8> {
    decode(BODY, "test").unwrap()
}

fn each(check: impl Fn(Provider)) {
    for &p in Provider::all() {
        check(p);
    }
}

#[test]
fn truncated_header_at_every_length() {
    each(|p| {
        let body = body();
        for len in 0..21 {
            assert_eq!(
                decrypt_with(p, &ua(), &body[..len]),
                Err(Error::HeaderTruncated { len })
            );
        }
    });
}

#[test]
fn truncated_keyid() {
    each(|p| {
        let body = body();
        for len in 21..86 {
            assert_eq!(
                decrypt_with(p, &ua(), &body[..len]),
                Err(Error::KeyIdTruncated {
                    idlen: 65,
                    available: len - 21
                })
            );
        }
    });
}

#[test]
fn header_without_records() {
    each(|p| assert_eq!(decrypt_with(p, &ua(), &body()[..86]), Err(Error::NoRecords)));
}

#[test]
fn truncated_record_or_tag() {
    each(|p| {
        let body = body();
        for len in 87..103 {
            assert_eq!(
                decrypt_with(p, &ua(), &body[..len]),
                Err(Error::RecordTruncated {
                    index: 0,
                    len: len - 86
                })
            );
        }
        for len in 103..body.len() {
            assert_eq!(
                decrypt_with(p, &ua(), &body[..len]),
                Err(Error::Authentication { index: 0 })
            );
        }
    });
}

#[test]
fn record_size_below_18_is_rejected_without_allocation_from_it() {
    each(|p| {
        for rs in [0u32, 1, 17] {
            let mut body = body();
            body[16..20].copy_from_slice(&rs.to_be_bytes());
            assert_eq!(
                decrypt_with(p, &ua(), &body),
                Err(Error::RecordSizeTooSmall { rs, min: 18 })
            );
        }
        // rs is not authenticated and a huge one is no allocation request: the single
        // record still decrypts, from a buffer sized by the body.
        let mut body = body();
        body[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decrypt_with(p, &ua(), &body).unwrap().len(), 41);
    });
}

#[test]
fn more_than_one_record_or_trailing_bytes() {
    each(|p| {
        // rs = 18 makes the 58-octet record three records.
        let mut body = body();
        body[16..20].copy_from_slice(&18u32.to_be_bytes());
        assert_eq!(
            decrypt_with(p, &ua(), &body),
            Err(Error::MultipleRecords { len: 58, rs: 18 })
        );
        // Trailing bytes after the final record break its tag.
        let mut body = self::body();
        body.extend_from_slice(&[0; 17]);
        assert_eq!(
            decrypt_with(p, &ua(), &body),
            Err(Error::Authentication { index: 0 })
        );
    });
}

#[test]
fn flipped_bit_anywhere_after_the_header_fails_authentication() {
    each(|p| {
        let original = body();
        for i in 86..original.len() {
            let mut body = original.clone();
            body[i] ^= 0x01;
            assert_eq!(
                decrypt_with(p, &ua(), &body),
                Err(Error::Authentication { index: 0 }),
                "bit flip at {i}"
            );
        }
        // In the salt it changes the key; in the key id it changes the ECDH.
        let mut body = original.clone();
        body[0] ^= 1;
        assert_eq!(
            decrypt_with(p, &ua(), &body),
            Err(Error::Authentication { index: 0 })
        );
    });
}

#[test]
fn keyid_that_is_not_a_point_is_rejected_before_ecdh() {
    each(|p| {
        let mut body = body();
        body[21 + 64] ^= 0x01; // last octet of y: off the curve
        assert_eq!(
            decrypt_with(p, &ua(), &body),
            Err(Error::PublicKeyNotOnCurve)
        );
        let mut body = self::body();
        body[21] = 0x02; // compressed marker
        assert_eq!(
            decrypt_with(p, &ua(), &body),
            Err(Error::PublicKeyNotUncompressed { tag: 0x02 })
        );
        let mut body = self::body();
        body[20] = 33;
        assert_eq!(
            decrypt_with(p, &ua(), &body),
            Err(Error::KeyIdLength { len: 33 })
        );
    });
}

#[test]
fn bad_subscription_keys() {
    let ua_public =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    let bytes = decode(ua_public, "t").unwrap();
    // Wrong lengths.
    assert_eq!(
        PublicKey::from_sec1(&bytes[..64]),
        Err(Error::PublicKeyLength { len: 64 })
    );
    assert_eq!(
        PublicKey::from_sec1(&[]),
        Err(Error::PublicKeyLength { len: 0 })
    );
    // Compressed form of the same point.
    let mut compressed = vec![0x02 | (bytes[64] & 1)];
    compressed.extend_from_slice(&bytes[1..33]);
    assert_eq!(
        PublicKey::from_sec1(&compressed),
        Err(Error::PublicKeyLength { len: 33 })
    );
    // Off the curve.
    let mut off = bytes.clone();
    off[40] ^= 0x10;
    assert_eq!(PublicKey::from_sec1(&off), Err(Error::PublicKeyNotOnCurve));
    // The point at infinity and a hybrid marker.
    let mut hybrid = bytes.clone();
    hybrid[0] = 0x06;
    assert_eq!(
        PublicKey::from_sec1(&hybrid),
        Err(Error::PublicKeyNotUncompressed { tag: 6 })
    );
    assert_eq!(
        PublicKey::from_sec1(&[0u8; 65]),
        Err(Error::PublicKeyNotUncompressed { tag: 0 })
    );
    // Not base64url.
    assert_eq!(
        "BCVx+r7N/eNg".parse::<PublicKey>(),
        Err(Error::InvalidBase64 { what: "public key" })
    );
    // Auth secrets of the wrong length.
    assert_eq!(
        "BTBZMqHH6r4Tts7J_aSI".parse::<AuthSecret>(),
        Err(Error::AuthSecretLength { len: 15 })
    );
    assert_eq!(
        "BTBZMqHH6r4Tts7J_aSIggAA".parse::<AuthSecret>(),
        Err(Error::AuthSecretLength { len: 18 })
    );
    // Private keys out of range.
    assert_eq!(
        PrivateKey::from_bytes(&[0; 32]).unwrap_err(),
        Error::PrivateKeyOutOfRange
    );
    assert_eq!(
        PrivateKey::from_bytes(&[0xff; 32]).unwrap_err(),
        Error::PrivateKeyOutOfRange
    );
    // Shorter scalars lost leading zeros (Node does that) and are padded; longer
    // ones and nothing at all are refused.
    assert_eq!(PrivateKey::from_bytes(&[1; 31]).unwrap().as_bytes()[0], 0);
    assert_eq!(
        PrivateKey::from_bytes(&[1; 33]).unwrap_err(),
        Error::PrivateKeyLength { len: 33 }
    );
    assert_eq!(
        PrivateKey::from_bytes(&[]).unwrap_err(),
        Error::PrivateKeyLength { len: 0 }
    );
    // A long input is reported by length, not by a buffer error.
    let long = "A".repeat(400);
    assert!(matches!(
        long.parse::<PublicKey>(),
        Err(Error::PublicKeyLength { .. })
    ));
}

#[test]
fn plaintext_limit_is_enforced_not_truncated() {
    let keys = ua().subscription_keys();
    each(|p| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let enc = Encryptor::new().with_provider(p);
        assert_eq!(enc.plaintext_limit(), 3993);
        let ok = enc.encrypt(&keys, &[0x61; 3993], &mut rng).unwrap();
        assert_eq!(ok.len(), 4096);
        assert_eq!(
            enc.encrypt(&keys, &[0x61; 3994], &mut rng),
            Err(Error::PlaintextTooLong {
                len: 3994,
                limit: 3993
            })
        );
        let exact = enc.with_padding(Padding::Exact(100));
        assert_eq!(
            exact.encrypt(&keys, &[0x61; 101], &mut rng),
            Err(Error::PlaintextTooLong {
                len: 101,
                limit: 100
            })
        );
        let too_much = enc.with_padding(Padding::Exact(4000));
        assert_eq!(
            too_much.encrypt(&keys, b"x", &mut rng),
            Err(Error::PaddingTooLarge {
                target: 4000,
                capacity: 3993
            })
        );
    });
    assert_eq!(
        Encryptor::new().with_record_size(RecordSize::new(102).unwrap()),
        Err(Error::RecordSizeTooSmall { rs: 102, min: 103 })
    );
    assert_eq!(
        RecordSize::new(17),
        Err(Error::RecordSizeTooSmall { rs: 17, min: 18 })
    );
}

#[test]
fn generic_decoder_rejects_wrong_delimiters_and_truncation() {
    let ikm = [9u8; 16];
    let salt = Salt([3; 16]);
    let rs = RecordSize::new(20).unwrap(); // 3 octets of content per record
    each(|p| {
        let body = ece::encrypt(p, &ikm, &salt, b"", rs, b"abcdefg", 0).unwrap();
        assert_eq!(body.len(), 21 + 20 + 20 + 18);
        assert_eq!(ece::decrypt(p, &ikm, &body).unwrap().1, b"abcdefg");
        // Dropping the final record leaves a stream whose last record says "more".
        assert_eq!(
            ece::decrypt(p, &ikm, &body[..61]),
            Err(Error::BadDelimiter {
                index: 1,
                found: 1,
                expected: 2
            })
        );
        // A final record alone where a full one was expected: wrong nonce, wrong tag.
        let mut spliced = body[..21].to_vec();
        spliced.extend_from_slice(&body[61..]);
        assert_eq!(
            ece::decrypt(p, &ikm, &spliced),
            Err(Error::Authentication { index: 0 })
        );
        // Records swapped.
        let mut swapped = body[..21].to_vec();
        swapped.extend_from_slice(&body[41..61]);
        swapped.extend_from_slice(&body[21..41]);
        swapped.extend_from_slice(&body[61..]);
        assert_eq!(
            ece::decrypt(p, &ikm, &swapped),
            Err(Error::Authentication { index: 0 })
        );
    });
}

use rand_chacha::rand_core::SeedableRng as _;
