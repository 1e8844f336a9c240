//! Ephemeral keys made ahead of the messages that use them.
//!
//! RFC 8291 needs a fresh ephemeral key pair for every message; it does not need it
//! made at the moment of the message. Making it is a fixed-base P-256 multiplication
//! (and, with aws-lc-rs, the check of an imported scalar): a quarter to a third of a
//! message's cost. An [`EphemeralKey`] is that work done ahead, while a sender is idle,
//! so that a burst of mail spends only one ECDH, HKDF and AES-GCM a message. An
//! [`Agreement`] goes further, for a sender that knows which subscription the next
//! message goes to: the ECDH with that subscription's key is done ahead too, and the
//! message spends its HKDF and AES-GCM alone.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::Error;
use crate::keys::{PrivateKey, PublicKey, SubscriptionKeys};
use crate::message::derive_ikm_into;
use crate::provider::{Prepared, Provider, SECRET_LEN};

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

    /// Spends the key on one subscription ahead of its message: the ECDH with `keys`
    /// and the input keying material, done now (see [`Agreement`]).
    pub fn agree(self, keys: &SubscriptionKeys) -> Result<Agreement, Error> {
        let provider = self.provider;
        let (as_public, prepared) = self.into_parts();
        let ecdh_secret = prepared.agree(keys.p256dh())?;
        drop(prepared);
        Ok(Agreement::new(provider, keys, as_public, &ecdh_secret))
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

/// An ephemeral key already agreed with one subscription's keys: the ECDH and the
/// input keying material of RFC 8291 §3.4, done ahead of the subscription's next
/// message, so that the message itself costs its HKDF and AES-GCM alone.
///
/// A sender that knows which subscriptions mail will go to (those it pushed to before)
/// can make one for each while it is idle. Like an [`EphemeralKey`], an agreement is
/// taken by value by the one message that uses it
/// ([`Encryptor::encrypt_agreed`](crate::Encryptor::encrypt_agreed)); its secret is
/// cleared when it is dropped, used or not, and `Debug` shows only the public key.
///
/// ```
/// use webpush_crypto::{Agreement, Encryptor, UaKeys, decrypt};
/// let mut rng = rand_core::OsRng;
/// let browser = UaKeys::generate(&mut rng)?; // in real life, from the PushSubscription
/// let encryptor = Encryptor::new();
/// // Made while the sender is idle, for the subscription's next message...
/// let agreed = Agreement::generate(encryptor.provider(), &browser.subscription_keys(), &mut rng)?;
/// // ...and spent by it.
/// let body = encryptor.encrypt_agreed(b"* 3 EXISTS\r\n", agreed, &mut rng)?;
/// assert_eq!(decrypt(&browser, &body)?, b"* 3 EXISTS\r\n");
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
///
/// An agreement cannot encrypt a second message:
///
/// ```compile_fail,E0382
/// use webpush_crypto::{Agreement, Encryptor, UaKeys};
/// let mut rng = rand_core::OsRng;
/// let keys = UaKeys::generate(&mut rng)?.subscription_keys();
/// let encryptor = Encryptor::new();
/// let agreed = Agreement::generate(encryptor.provider(), &keys, &mut rng)?;
/// let first = encryptor.encrypt_agreed(b"one", agreed, &mut rng)?;
/// let second = encryptor.encrypt_agreed(b"two", agreed, &mut rng)?; // moved
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
pub struct Agreement {
    keys: SubscriptionKeys,
    as_public: PublicKey,
    /// On the heap, so that moving the agreement (into a pool, out of it) never copies
    /// the secret: the one copy is cleared when the agreement is dropped.
    ikm: Box<Zeroizing<[u8; SECRET_LEN]>>,
}

impl Agreement {
    /// A new ephemeral key for `provider`, its scalar drawn from `rng`, agreed with
    /// `keys`.
    pub fn generate(
        provider: Provider,
        keys: &SubscriptionKeys,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, Error> {
        Self::from_private_key(provider, keys, &PrivateKey::generate(rng)?)
    }

    /// The ephemeral key `secret`, for `provider`, agreed with `keys`: for known-answer
    /// tests. A secret must never serve two messages.
    pub fn from_private_key(
        provider: Provider,
        keys: &SubscriptionKeys,
        secret: &PrivateKey,
    ) -> Result<Self, Error> {
        let (as_public, ecdh_secret) = provider.ephemeral_agree(secret, keys.p256dh())?;
        Ok(Self::new(provider, keys, as_public, &ecdh_secret))
    }

    fn new(
        provider: Provider,
        keys: &SubscriptionKeys,
        as_public: PublicKey,
        ecdh_secret: &[u8; SECRET_LEN],
    ) -> Self {
        // Derived in place on the heap, so that the agreement holds the one copy it
        // clears (the HKDF implementations' own buffers are theirs).
        let mut ikm = Box::new(Zeroizing::new([0u8; SECRET_LEN]));
        derive_ikm_into(
            &mut ikm,
            provider,
            ecdh_secret,
            keys.auth().as_bytes(),
            keys.p256dh(),
            &as_public,
        );
        Self {
            keys: keys.clone(),
            as_public,
            ikm,
        }
    }

    /// The subscription keys it was agreed with: the only ones it can encrypt for.
    pub fn keys(&self) -> &SubscriptionKeys {
        &self.keys
    }

    /// The ephemeral public key, which the message carries as its key id.
    pub fn public_key(&self) -> &PublicKey {
        &self.as_public
    }

    /// The key id and the input keying material, for the one encryption that uses them.
    pub(crate) fn into_parts(self) -> (PublicKey, Box<Zeroizing<[u8; SECRET_LEN]>>) {
        (self.as_public, self.ikm)
    }
}

impl std::fmt::Debug for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agreement")
            .field("p256dh", self.keys.p256dh())
            .field("public", &self.as_public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A key made ahead of its message, in either form: for callers that take one or the
/// other ([`PushRequest::build_prepared`](crate::PushRequest::build_prepared)).
#[derive(Debug)]
#[non_exhaustive]
pub enum MadeAhead {
    /// An ephemeral key, for any subscription.
    Key(EphemeralKey),
    /// An ephemeral key agreed with one subscription's keys.
    Agreement(Agreement),
}

impl From<EphemeralKey> for MadeAhead {
    fn from(key: EphemeralKey) -> Self {
        MadeAhead::Key(key)
    }
}

impl From<Agreement> for MadeAhead {
    fn from(agreement: Agreement) -> Self {
        MadeAhead::Agreement(agreement)
    }
}
