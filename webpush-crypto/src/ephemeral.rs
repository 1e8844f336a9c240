//! Ephemeral keys made ahead of the messages that use them.
//!
//! RFC 8291 needs a fresh ephemeral key pair for every message; it does not need it
//! made at the moment of the message. Making it is a fixed-base P-256 multiplication
//! (and, with aws-lc-rs, the check of an imported scalar): a quarter to a third of a
//! message's cost. An [`EphemeralKey`] is that work done ahead, while a sender is idle,
//! so that a burst of mail spends only what each message really needs: one ECDH, HKDF
//! and AES-GCM.

use rand_core::CryptoRngCore;

use crate::Error;
use crate::keys::{PrivateKey, PublicKey};
use crate::provider::{Prepared, Provider};

/// An application server's ephemeral key pair for one RFC 8291 message, made ahead.
/// [`Encryptor::encrypt_prepared`](crate::Encryptor::encrypt_prepared) takes it by
/// value, so no key encrypts twice; the private half is cleared when it is dropped,
/// used or not, and `Debug` shows only the public half.
///
/// ```
/// use webpush_crypto::{Encryptor, EphemeralKey, UaKeys, decrypt};
/// let mut rng = rand_core::OsRng;
/// let browser = UaKeys::generate(&mut rng)?; // in real life, from the PushSubscription
/// let encryptor = Encryptor::new();
/// // Made while the sender is idle...
/// let key = EphemeralKey::generate(encryptor.provider(), &mut rng)?;
/// // ...and spent by one message.
/// let body = encryptor.encrypt_prepared(&browser.subscription_keys(), b"* 3 EXISTS\r\n", key, &mut rng)?;
/// assert_eq!(decrypt(&browser, &body)?, b"* 3 EXISTS\r\n");
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
///
/// A key cannot encrypt a second message:
///
/// ```compile_fail,E0382
/// use webpush_crypto::{Encryptor, EphemeralKey, UaKeys};
/// let mut rng = rand_core::OsRng;
/// let keys = UaKeys::generate(&mut rng)?.subscription_keys();
/// let encryptor = Encryptor::new();
/// let key = EphemeralKey::generate(encryptor.provider(), &mut rng)?;
/// let first = encryptor.encrypt_prepared(&keys, b"one", key, &mut rng)?;
/// let second = encryptor.encrypt_prepared(&keys, b"two", key, &mut rng)?; // moved
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
pub struct EphemeralKey {
    provider: Provider,
    public: PublicKey,
    prepared: Prepared,
}

impl EphemeralKey {
    /// A new key pair for `provider`, its scalar drawn from `rng`.
    pub fn generate(provider: Provider, rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        Self::from_private_key(provider, &PrivateKey::generate(rng)?)
    }

    /// The key pair of `secret`, for `provider`: for known-answer tests. A secret must
    /// never serve two messages.
    pub fn from_private_key(provider: Provider, secret: &PrivateKey) -> Result<Self, Error> {
        let (public, prepared) = provider.prepare(secret)?;
        Ok(Self {
            provider,
            public,
            prepared,
        })
    }

    /// The public half, which the message carries as its key id.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The provider it was made for.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The key's two halves, for the one encryption that uses it.
    pub(crate) fn into_parts(self) -> (PublicKey, Prepared) {
        (self.public, self.prepared)
    }
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("provider", &self.provider)
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}
