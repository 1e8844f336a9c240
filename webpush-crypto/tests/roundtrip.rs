//! proptest round trips over plaintext lengths, record sizes, padding policies and
//! providers; every proper prefix of a valid body is an error, never a wrong value.

use core::num::NonZeroUsize;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use webpush_crypto::ece::{self, RecordSize};
use webpush_crypto::{
    Agreement, Encryptor, EphemeralKey, MadeAhead, Padding, Provider, PublicKey, Salt, UaKeys,
    decrypt_with,
};

fn provider() -> impl Strategy<Value = Provider> {
    proptest::sample::select(Provider::all())
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::None),
        (1usize..=4096).prop_map(|b| Padding::Bucket(NonZeroUsize::new(b).unwrap())),
        (0usize..=4096).prop_map(Padding::Exact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn web_push_round_trip(
        seed in any::<u64>(),
        provider in provider(),
        rs in 103u32..=8192,
        padding in padding(),
        len_frac in 0.0f64..=1.0,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let ua = UaKeys::generate(&mut rng).unwrap();
        let enc = Encryptor::new()
            .with_provider(provider)
            .with_record_size(RecordSize::new(rs).unwrap())
            .unwrap()
            .with_padding(padding);
        let limit = enc.plaintext_limit();
        // Lengths 0, 1 and the limit itself come up often through the fraction's ends.
        let len = ((limit as f64) * len_frac) as usize;
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        match enc.encrypt(&ua.subscription_keys(), &plaintext, &mut rng) {
            Ok(body) => {
                prop_assert_eq!(body.len(), enc.body_len(len).unwrap());
                prop_assert!(body.len() <= rs as usize, "body {} exceeds rs {}", body.len(), rs);
                if let Padding::Exact(target) = padding {
                    prop_assert_eq!(body.len(), 86 + target + 17);
                }
                // Any provider decrypts what any provider encrypted.
                for &other in Provider::all() {
                    prop_assert_eq!(&decrypt_with(other, &ua, &body).unwrap(), &plaintext);
                }
            }
            Err(e) => {
                // Only an Exact target beyond the record may refuse a plaintext within the limit.
                prop_assert!(matches!(padding, Padding::Exact(t) if t > limit), "{e}");
            }
        }
        let too_long = vec![0u8; limit + 1];
        prop_assert!(enc.encrypt(&ua.subscription_keys(), &too_long, &mut rng).is_err());
    }

    #[test]
    fn generic_aes128gcm_round_trip(
        provider in provider(),
        ikm in proptest::collection::vec(any::<u8>(), 0..64),
        salt in any::<[u8; 16]>(),
        keyid in proptest::collection::vec(any::<u8>(), 0..=255),
        rs in 18u32..=600,
        plaintext in proptest::collection::vec(any::<u8>(), 0..3000),
        padding in 0usize..700,
    ) {
        let rs = RecordSize::new(rs).unwrap();
        let body = ece::encrypt(provider, &ikm, &Salt(salt), &keyid, rs, &plaintext, padding).unwrap();
        prop_assert_eq!(Some(body.len()), ece::encrypted_len(keyid.len(), rs, plaintext.len(), padding));
        let (header, decrypted) = ece::decrypt(provider, &ikm, &body).unwrap();
        prop_assert_eq!(header.keyid, &keyid[..]);
        prop_assert_eq!(header.rs, rs);
        prop_assert_eq!(&decrypted, &plaintext);
    }

    #[test]
    fn every_proper_prefix_of_a_body_is_an_error(
        provider in provider(),
        rs in 18u32..=64,
        plaintext in proptest::collection::vec(any::<u8>(), 0..200),
        padding in 0usize..40,
        cut_frac in 0.0f64..1.0,
    ) {
        let ikm = [1u8; 16];
        let rs = RecordSize::new(rs).unwrap();
        let body = ece::encrypt(provider, &ikm, &Salt([2; 16]), b"k", rs, &plaintext, padding).unwrap();
        let cut = ((body.len() as f64) * cut_frac) as usize;
        prop_assert!(ece::decrypt(provider, &ikm, &body[..cut]).is_err());
    }

    /// Keys made ahead, each in turn an ephemeral key, an agreement made at once and an
    /// ephemeral key agreed later: every message's key id (its ephemeral public key)
    /// differs, and each message decrypts to what was sent, whichever provider made the
    /// key.
    #[test]
    fn every_message_made_ahead_has_its_own_key(
        seed in any::<u64>(),
        maker in provider(),
        encryptor in provider(),
        messages in 3usize..12,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let ua = UaKeys::generate(&mut rng).unwrap();
        let keys = ua.subscription_keys();
        let ahead: Vec<MadeAhead> = (0..messages)
            .map(|i| match i % 3 {
                0 => EphemeralKey::generate(maker, &mut rng).unwrap().into(),
                1 => Agreement::generate(maker, &keys, &mut rng).unwrap().into(),
                _ => EphemeralKey::generate(maker, &mut rng).unwrap().agree(&keys).unwrap().into(),
            })
            .collect();
        let encryptor = Encryptor::new().with_provider(encryptor);
        let mut ids = std::collections::HashSet::new();
        for (i, ahead) in ahead.into_iter().enumerate() {
            let plaintext = format!("* {i} EXISTS\r\n");
            let (public, body) = match ahead {
                MadeAhead::Key(key) => (
                    key.public_key().clone(),
                    encryptor.encrypt_prepared(&keys, plaintext.as_bytes(), key, &mut rng).unwrap(),
                ),
                MadeAhead::Agreement(agreed) => (
                    agreed.public_key().clone(),
                    encryptor.encrypt_agreed(plaintext.as_bytes(), agreed, &mut rng).unwrap(),
                ),
                _ => unreachable!("made above"),
            };
            let (header, _) = ece::Header::parse(&body).unwrap();
            prop_assert_eq!(header.keyid, public.as_bytes().as_slice());
            prop_assert!(ids.insert(header.keyid.to_vec()), "a key id used twice");
            prop_assert_eq!(decrypt_with(encryptor.provider(), &ua, &body).unwrap(), plaintext.as_bytes());
        }
    }

    #[test]
    fn public_keys_round_trip_through_base64url(seed in any::<u64>()) {
        let ua = UaKeys::generate(&mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
        let text = ua.public_key().to_base64url();
        prop_assert!(!text.contains('='));
        prop_assert_eq!(&text.parse::<PublicKey>().unwrap(), ua.public_key());
        prop_assert_eq!(&PublicKey::from_sec1(ua.public_key().as_bytes()).unwrap(), ua.public_key());
    }
}
