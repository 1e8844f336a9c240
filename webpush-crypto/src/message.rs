//! RFC 8291: Web Push message encryption, for the application server, and decryption,
//! for the user agent.
//!
//! ```text
//! ecdh_secret = ECDH(as_private, ua_public)
//! IKM   = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32)
//! body  = aes128gcm(IKM, salt, keyid = as_public, rs, one record ending in 0x02)
//! ```

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::ece::{self, Header, RecordSize};
use crate::keys::{PrivateKey, PublicKey, Salt, SubscriptionKeys, UaKeys};
use crate::padding::{MIN_WEBPUSH_RECORD_SIZE, Padding, webpush_capacity};
use crate::provider::{Provider, SECRET_LEN};
use crate::{Agreement, EphemeralKey, Error, PUBLIC_KEY_LEN};

const KEY_INFO_PREFIX: &[u8] = b"WebPush: info\0";

/// RFC 8291 §3.4: the input keying material shared by sender and user agent.
fn derive_ikm(
    provider: Provider,
    ecdh_secret: &[u8; SECRET_LEN],
    auth: &[u8; 16],
    ua_public: &PublicKey,
    as_public: &PublicKey,
) -> Zeroizing<[u8; SECRET_LEN]> {
    let mut ikm = Zeroizing::new([0u8; SECRET_LEN]);
    derive_ikm_into(&mut ikm, provider, ecdh_secret, auth, ua_public, as_public);
    ikm
}

/// [`derive_ikm`] into `out`, for a caller that keeps the result where it is.
pub(crate) fn derive_ikm_into(
    out: &mut [u8; SECRET_LEN],
    provider: Provider,
    ecdh_secret: &[u8; SECRET_LEN],
    auth: &[u8; 16],
    ua_public: &PublicKey,
    as_public: &PublicKey,
) {
    provider.hkdf(
        auth,
        ecdh_secret,
        &[KEY_INFO_PREFIX, ua_public.as_bytes(), as_public.as_bytes()],
        out.as_mut_slice(),
    );
}

/// Encrypts Web Push messages: a provider, a record size and a padding policy.
///
/// ```
/// use webpush_crypto::{Encryptor, UaKeys, decrypt};
///
/// let mut rng = rand_core::OsRng;
/// let browser = UaKeys::generate(&mut rng)?; // in real life, from the PushSubscription
/// let encryptor = Encryptor::new();
/// assert_eq!(encryptor.plaintext_limit(), 3993);
///
/// let body = encryptor.encrypt(&browser.subscription_keys(), b"* 3 EXISTS\r\n", &mut rng)?;
/// assert_eq!(decrypt(&browser, &body)?, b"* 3 EXISTS\r\n");
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encryptor {
    provider: Provider,
    rs: RecordSize,
    padding: Padding,
}

impl Default for Encryptor {
    fn default() -> Self {
        Self::new()
    }
}

impl Encryptor {
    /// The default provider, record size 4096, no padding.
    pub fn new() -> Self {
        Self {
            provider: Provider::default(),
            rs: RecordSize::DEFAULT,
            padding: Padding::None,
        }
    }

    /// Uses `provider` for the cryptography.
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// Uses record size `rs`, which bounds the whole body; at least 103, the size of an
    /// empty message.
    pub fn with_record_size(mut self, rs: RecordSize) -> Result<Self, Error> {
        if rs.get() < MIN_WEBPUSH_RECORD_SIZE {
            return Err(Error::RecordSizeTooSmall {
                rs: rs.get(),
                min: MIN_WEBPUSH_RECORD_SIZE,
            });
        }
        self.rs = rs;
        Ok(self)
    }

    /// Uses padding policy `padding`.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// The provider in use.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The record size in use.
    pub fn record_size(&self) -> RecordSize {
        self.rs
    }

    /// The padding policy in use.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// The largest plaintext [`Encryptor::encrypt`] accepts: 3993 octets for record size
    /// 4096 without padding.
    pub fn plaintext_limit(&self) -> usize {
        self.padding.plaintext_limit(webpush_capacity(self.rs))
    }

    /// The length of the body a plaintext of `len` octets encrypts to.
    pub fn body_len(&self, len: usize) -> Result<usize, Error> {
        let padded = self.padded_len(len)?;
        Ok(crate::padding::WEBPUSH_HEADER_LEN + padded + ece::RECORD_OVERHEAD)
    }

    /// Encrypts `plaintext` for the subscription, drawing the ephemeral key and then the
    /// salt from `rng`.
    pub fn encrypt(
        &self,
        keys: &SubscriptionKeys,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        // Check the size before spending randomness and an ECDH on a message that fails.
        let padded = self.padded_len(plaintext.len())?;
        let ephemeral = PrivateKey::generate(rng)?;
        let salt = Salt::generate(rng)?;
        let (as_public, ecdh_secret) = self.provider.ephemeral_agree(&ephemeral, keys.p256dh())?;
        self.seal(keys, plaintext, padded, &as_public, &ecdh_secret, &salt)
    }

    /// The padded length of a record of `len` octets of plaintext, or why it does not fit.
    fn padded_len(&self, len: usize) -> Result<usize, Error> {
        self.padding.padded_len(len, webpush_capacity(self.rs))
    }

    /// Encrypts with an explicit ephemeral key and salt: deterministic, for known-answer
    /// tests. Never reuse either for two messages.
    pub fn encrypt_with(
        &self,
        keys: &SubscriptionKeys,
        plaintext: &[u8],
        ephemeral: &PrivateKey,
        salt: &Salt,
    ) -> Result<Vec<u8>, Error> {
        let padded = self.padded_len(plaintext.len())?;
        let (as_public, ecdh_secret) = self.provider.ephemeral_agree(ephemeral, keys.p256dh())?;
        self.seal(keys, plaintext, padded, &as_public, &ecdh_secret, salt)
    }

    /// Encrypts `plaintext` for the subscription with a key made ahead, which it takes,
    /// and a salt drawn from `rng`: the ephemeral key's fixed-base work is not in this
    /// call. The key's own provider does the ECDH (both providers give the same
    /// bytes), this encryptor's the rest.
    pub fn encrypt_prepared(
        &self,
        keys: &SubscriptionKeys,
        plaintext: &[u8],
        ephemeral: EphemeralKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        // Check the size before spending randomness and an ECDH on a message that fails.
        let padded = self.padded_len(plaintext.len())?;
        let salt = Salt::generate(rng)?;
        self.seal_prepared(keys, plaintext, padded, ephemeral, &salt)
    }

    /// [`Encryptor::encrypt_prepared`] with an explicit salt: deterministic, for
    /// known-answer tests. Never reuse a salt.
    pub fn encrypt_prepared_with(
        &self,
        keys: &SubscriptionKeys,
        plaintext: &[u8],
        ephemeral: EphemeralKey,
        salt: &Salt,
    ) -> Result<Vec<u8>, Error> {
        let padded = self.padded_len(plaintext.len())?;
        self.seal_prepared(keys, plaintext, padded, ephemeral, salt)
    }

    /// The message of a key made ahead, its padded length known.
    fn seal_prepared(
        &self,
        keys: &SubscriptionKeys,
        plaintext: &[u8],
        padded: usize,
        ephemeral: EphemeralKey,
        salt: &Salt,
    ) -> Result<Vec<u8>, Error> {
        let (as_public, prepared) = ephemeral.into_parts();
        let ecdh_secret = prepared.agree(keys.p256dh())?;
        // The key's private half is cleared here, before the message is sealed.
        drop(prepared);
        self.seal(keys, plaintext, padded, &as_public, &ecdh_secret, salt)
    }

    /// Encrypts `plaintext` with an agreement made ahead for the subscription, which it
    /// takes, and a salt drawn from `rng`: the ephemeral key's fixed-base work, its
    /// ECDH and the input keying material are not in this call, only HKDF and AES-GCM.
    /// The message goes to the keys the agreement was made with
    /// ([`Agreement::keys`]). The agreement's own provider did the ECDH and the input
    /// keying material (both providers give the same bytes), this encryptor's the rest.
    pub fn encrypt_agreed(
        &self,
        plaintext: &[u8],
        agreement: Agreement,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        // Check the size before spending randomness on a message that fails.
        self.padded_len(plaintext.len())?;
        let salt = Salt::generate(rng)?;
        self.encrypt_agreed_with(plaintext, agreement, &salt)
    }

    /// [`Encryptor::encrypt_agreed`] with an explicit salt: deterministic, for
    /// known-answer tests. Never reuse a salt.
    pub fn encrypt_agreed_with(
        &self,
        plaintext: &[u8],
        agreement: Agreement,
        salt: &Salt,
    ) -> Result<Vec<u8>, Error> {
        let padded = self.padded_len(plaintext.len())?;
        let (as_public, ikm) = agreement.into_parts();
        self.seal_ikm(plaintext, padded, &as_public, &ikm, salt)
    }

    /// RFC 8291 §3.4 from the ECDH secret on: the input keying material, then the rest.
    fn seal(
        &self,
        keys: &SubscriptionKeys,
        plaintext: &[u8],
        padded: usize,
        as_public: &PublicKey,
        ecdh_secret: &[u8; SECRET_LEN],
        salt: &Salt,
    ) -> Result<Vec<u8>, Error> {
        let ikm = derive_ikm(
            self.provider,
            ecdh_secret,
            keys.auth().as_bytes(),
            keys.p256dh(),
            as_public,
        );
        self.seal_ikm(plaintext, padded, as_public, &ikm, salt)
    }

    /// RFC 8291 §3.4 from the input keying material on: the key, the nonce, the one
    /// record.
    fn seal_ikm(
        &self,
        plaintext: &[u8],
        padded: usize,
        as_public: &PublicKey,
        ikm: &[u8; SECRET_LEN],
        salt: &Salt,
    ) -> Result<Vec<u8>, Error> {
        let (cek, nonce) = self.provider.cek_and_nonce(&salt.0, ikm.as_slice());
        let header = Header {
            salt: *salt,
            rs: self.rs,
            keyid: as_public.as_bytes(),
        };
        ece::seal_body(
            self.provider,
            &cek,
            &nonce,
            &header,
            plaintext,
            padded - plaintext.len(),
        )
    }
}

/// Decrypts a Web Push body as the user agent, with the default provider.
///
/// Strict, as RFC 8291 §4 requires: the key id must be a valid 65-octet P-256 point, the
/// body a single record, and its delimiter 0x02. See [`decrypt_with`].
pub fn decrypt(ua: &UaKeys, body: &[u8]) -> Result<Vec<u8>, Error> {
    decrypt_with(Provider::default(), ua, body)
}

/// [`decrypt`] with a chosen provider.
pub fn decrypt_with(provider: Provider, ua: &UaKeys, body: &[u8]) -> Result<Vec<u8>, Error> {
    let (header, records) = Header::parse(body)?;
    if header.keyid.len() != PUBLIC_KEY_LEN {
        return Err(Error::KeyIdLength {
            len: header.keyid.len(),
        });
    }
    if records.len() > header.rs.as_usize() {
        return Err(Error::MultipleRecords {
            len: records.len(),
            rs: header.rs.get(),
        });
    }
    // Validated before any ECDH: an invalid point is an error, never an input to the curve.
    let as_public = PublicKey::from_sec1(header.keyid)?;
    let ecdh_secret = provider.agree(ua.private_key(), &as_public)?;
    let ikm = derive_ikm(
        provider,
        &ecdh_secret,
        ua.auth().as_bytes(),
        ua.public_key(),
        &as_public,
    );
    let (cek, nonce) = provider.cek_and_nonce(&header.salt.0, ikm.as_slice());
    ece::open_records(provider, &cek, &nonce, header.rs, records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthSecret;

    fn ua() -> UaKeys {
        UaKeys::new(
            PrivateKey::from_bytes(&[0x42; 32]).unwrap(),
            AuthSecret::new([9; 16]),
        )
        .unwrap()
    }

    /// A single-record Web Push body whose record content is exactly `content`, so
    /// delimiters the encoder never writes can be tested.
    fn seal_raw(provider: Provider, ua: &UaKeys, content: &[u8]) -> Vec<u8> {
        let ephemeral = PrivateKey::from_bytes(&[7; 32]).unwrap();
        let (as_public, secret) = provider
            .ephemeral_agree(&ephemeral, ua.public_key())
            .unwrap();
        let ikm = derive_ikm(
            provider,
            &secret,
            ua.auth().as_bytes(),
            ua.public_key(),
            &as_public,
        );
        let salt = Salt([5; 16]);
        let (cek, nonce) = provider.cek_and_nonce(&salt.0, ikm.as_slice());
        let mut out = Vec::new();
        Header {
            salt,
            rs: RecordSize::DEFAULT,
            keyid: as_public.as_bytes(),
        }
        .encode(&mut out)
        .unwrap();
        let mut record = content.to_vec();
        let tag = provider
            .aead(&cek)
            .unwrap()
            .seal(&nonce, &mut record)
            .unwrap();
        out.extend_from_slice(&record);
        out.extend_from_slice(&tag);
        out
    }

    #[test]
    fn only_0x02_ends_a_web_push_record() {
        let ua = ua();
        for &p in Provider::all() {
            type Case = (&'static [u8], Result<Vec<u8>, Error>);
            let cases: [Case; 8] = [
                (b"hi\x02", Ok(b"hi".to_vec())),
                (b"hi\x02\x00\x00\x00", Ok(b"hi".to_vec())),
                (b"\x02", Ok(Vec::new())),
                (
                    b"hi\x01",
                    Err(Error::BadDelimiter {
                        index: 0,
                        found: 1,
                        expected: 2,
                    }),
                ),
                (
                    b"hi\x05\x00",
                    Err(Error::BadDelimiter {
                        index: 0,
                        found: 5,
                        expected: 2,
                    }),
                ),
                (
                    b"hi\x00",
                    Err(Error::BadDelimiter {
                        index: 0,
                        found: b'i',
                        expected: 2,
                    }),
                ),
                (b"\x00\x00\x00", Err(Error::MissingDelimiter { index: 0 })),
                (b"", Err(Error::RecordTruncated { index: 0, len: 16 })),
            ];
            for (content, expected) in cases {
                assert_eq!(
                    decrypt_with(p, &ua, &seal_raw(p, &ua, content)),
                    expected,
                    "{content:?}"
                );
            }
        }
    }

    #[test]
    fn encryption_refuses_before_drawing_randomness() {
        struct FailingRng;
        impl rand_core::RngCore for FailingRng {
            fn next_u32(&mut self) -> u32 {
                unreachable!()
            }
            fn next_u64(&mut self) -> u64 {
                unreachable!()
            }
            fn fill_bytes(&mut self, _: &mut [u8]) {
                unreachable!()
            }
            fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
                Err(rand_core::Error::new("no entropy"))
            }
        }
        impl rand_core::CryptoRng for FailingRng {}
        let keys = ua().subscription_keys();
        let enc = Encryptor::new();
        assert_eq!(
            enc.encrypt(&keys, &[0; 4000], &mut FailingRng),
            Err(Error::PlaintextTooLong {
                len: 4000,
                limit: 3993
            })
        );
        assert_eq!(enc.encrypt(&keys, b"x", &mut FailingRng), Err(Error::Rng));
    }
}
