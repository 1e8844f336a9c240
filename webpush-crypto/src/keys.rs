//! Key material: P-256 public and private keys, the subscription's auth secret, salts,
//! and the user agent's key pair.
//!
//! Every constructor validates, so a value of these types is always usable: a
//! [`PublicKey`] is an uncompressed point on P-256, a [`PrivateKey`] a scalar in range.
//! Secrets are zeroized on drop and print as `<redacted>`.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Error, base64url};

/// Octets in an uncompressed SEC1 P-256 point.
pub const PUBLIC_KEY_LEN: usize = 65;
/// Octets in a P-256 private scalar.
pub const PRIVATE_KEY_LEN: usize = 32;
/// Octets in a Web Push auth secret.
pub const AUTH_SECRET_LEN: usize = 16;
/// Octets in an RFC 8188 salt.
pub const SALT_LEN: usize = 16;

/// An uncompressed P-256 public key (65 octets, `0x04 ‖ x ‖ y`), checked to lie on the
/// curve: a subscription's `p256dh`, or a sender's ephemeral key.
///
/// ```
/// use webpush_crypto::PublicKey;
/// let p256dh: PublicKey = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
///     .parse()
///     .unwrap();
/// assert_eq!(p256dh.as_bytes()[0], 0x04);
/// // Compressed points, wrong lengths and points off the curve are refused.
/// assert!("AwE".parse::<PublicKey>().is_err());
/// ```
///
/// It keeps only the 65 octets, so a stored subscription carries no second copy of the
/// point; the point is rebuilt for the rare operation that needs it (key agreement),
/// where the cost is lost in the scalar multiplication.
#[derive(Clone)]
pub struct PublicKey {
    bytes: [u8; PUBLIC_KEY_LEN],
}

impl PublicKey {
    /// Validates a 65-octet uncompressed SEC1 point.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        let array = <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
            .map_err(|_| Error::PublicKeyLength { len: bytes.len() })?;
        Self::from_array(array)
    }

    fn from_array(bytes: [u8; PUBLIC_KEY_LEN]) -> Result<Self, Error> {
        if bytes[0] != 0x04 {
            return Err(Error::PublicKeyNotUncompressed { tag: bytes[0] });
        }
        let key = Self { bytes };
        key.to_p256()?;
        Ok(key)
    }

    /// The uncompressed encoding of a point this crate computed itself (a public key
    /// derived from a private one), which needs no check.
    pub(crate) fn from_computed(encoded: &[u8]) -> Result<Self, Error> {
        let bytes = <[u8; PUBLIC_KEY_LEN]>::try_from(encoded)
            .map_err(|_| Error::PublicKeyLength { len: encoded.len() })?;
        Ok(Self { bytes })
    }

    /// Decodes base64url (padded or not, as text or octets) and validates.
    pub fn from_base64url(text: impl AsRef<[u8]>) -> Result<Self, Error> {
        Self::from_array(base64url::decode_array(
            text.as_ref(),
            "public key",
            |len| Error::PublicKeyLength { len },
        )?)
    }

    /// The 65 octets of the uncompressed point.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// The unpadded base64url form browsers and the IMAP `* VAPID` response use.
    pub fn to_base64url(&self) -> String {
        base64url::encode(&self.bytes)
    }

    /// The point, for key agreement. Construction checked it, so this does not fail
    /// unless the p256 crate changes its mind.
    pub(crate) fn to_p256(&self) -> Result<p256::PublicKey, Error> {
        p256::PublicKey::from_sec1_bytes(&self.bytes).map_err(|_| Error::PublicKeyNotOnCurve)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey")
            .field(&self.to_base64url())
            .finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = Error;
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_sec1(bytes)
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::from_base64url(text)
    }
}

/// A P-256 private scalar: a user agent's key, or an explicit ephemeral sender key for
/// known-answer tests. Zeroized on drop; `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<[u8; PRIVATE_KEY_LEN]>);

impl PrivateKey {
    /// Validates a big-endian scalar (non-zero, below the group order) of 32 octets, or
    /// fewer: leading zero octets may be missing, as Node's `ECDH.getPrivateKey()`
    /// drops them (about one key in 256 comes out 31 octets long), and are put back.
    ///
    /// ```
    /// use webpush_crypto::PrivateKey;
    /// let short = PrivateKey::from_bytes(&[7; 31])?;
    /// assert_eq!(short.as_bytes()[0], 0);
    /// assert_eq!(short.as_bytes()[1..], [7; 31]);
    /// assert!(PrivateKey::from_bytes(&[7; 33]).is_err());
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let pad = PRIVATE_KEY_LEN
            .checked_sub(bytes.len())
            .filter(|_| !bytes.is_empty())
            .ok_or(Error::PrivateKeyLength { len: bytes.len() })?;
        let mut array = Zeroizing::new([0u8; PRIVATE_KEY_LEN]);
        for (slot, &b) in array.iter_mut().skip(pad).zip(bytes) {
            *slot = b;
        }
        let key = Self(array);
        key.to_p256()?;
        Ok(key)
    }

    /// Decodes a raw scalar from base64url (padded or not, as text or octets): 32
    /// octets, or fewer with the leading zeros dropped (see [`from_bytes`](Self::from_bytes)).
    pub fn from_base64url(text: impl AsRef<[u8]>) -> Result<Self, Error> {
        match base64url::decode_array::<PRIVATE_KEY_LEN>(text.as_ref(), "private key", |len| {
            Error::PrivateKeyLength { len }
        }) {
            Ok(raw) => Self::from_bytes(Zeroizing::new(raw).as_slice()),
            Err(Error::PrivateKeyLength { len }) if len < PRIVATE_KEY_LEN => {
                let text =
                    core::str::from_utf8(text.as_ref()).map_err(|_| Error::InvalidBase64 {
                        what: "private key",
                    })?;
                let raw = Zeroizing::new(base64url::decode(text, "private key")?);
                Self::from_bytes(&raw)
            }
            Err(e) => Err(e),
        }
    }

    /// Draws a fresh scalar from `rng`, retrying the negligible fraction of 32-octet
    /// strings that fall outside the group.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        // A value is out of range with probability below 2^-32; 16 misses in a row mean
        // the RNG is broken, not unlucky.
        for _ in 0..16 {
            let mut candidate = Zeroizing::new([0u8; PRIVATE_KEY_LEN]);
            rng.try_fill_bytes(candidate.as_mut_slice())
                .map_err(|_| Error::Rng)?;
            let key = Self(candidate);
            if key.to_p256().is_ok() {
                return Ok(key);
            }
        }
        Err(Error::Rng)
    }

    /// The 32 secret octets. Handle with care.
    pub fn as_bytes(&self) -> &[u8; PRIVATE_KEY_LEN] {
        &self.0
    }

    /// The raw scalar as unpadded base64url, the form key generators print.
    pub fn to_base64url(&self) -> Zeroizing<String> {
        Zeroizing::new(base64url::encode(self.0.as_slice()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        use p256_basepoint::elliptic_curve::PrimeField;
        use p256_basepoint::elliptic_curve::group::Group;
        use p256_basepoint::elliptic_curve::sec1::ToSec1Point;
        // The fixed-base multiplication through p256 0.14's precomputed table, which
        // selects every table entry for each window (constant time), and is faster
        // than 0.13's multiplication of the generator (the P-256 section of the
        // interleaved bench measures both).
        let repr = Zeroizing::new(p256_basepoint::FieldBytes::from(*self.0));
        let scalar =
            Option::<p256_basepoint::Scalar>::from(p256_basepoint::Scalar::from_repr(*repr))
                .map(Zeroizing::new)
                .ok_or(Error::PrivateKeyOutOfRange)?;
        let point = p256_basepoint::ProjectivePoint::mul_by_generator(&*scalar).to_affine();
        PublicKey::from_computed(point.to_sec1_point(false).as_bytes())
    }

    pub(crate) fn to_p256(&self) -> Result<p256::SecretKey, Error> {
        p256::SecretKey::from_bytes(self.0.as_slice().into())
            .map_err(|_| Error::PrivateKeyOutOfRange)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl TryFrom<&[u8]> for PrivateKey {
    type Error = Error;
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

/// The 16-octet authentication secret a user agent creates with its subscription
/// (`keys.auth`). Zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct AuthSecret(Zeroizing<[u8; AUTH_SECRET_LEN]>);

impl AuthSecret {
    /// Wraps 16 octets.
    pub fn new(bytes: [u8; AUTH_SECRET_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Decodes base64url (padded or not, as text or octets); the result must be 16
    /// octets.
    pub fn from_base64url(text: impl AsRef<[u8]>) -> Result<Self, Error> {
        base64url::decode_array(text.as_ref(), "auth secret", |len| {
            Error::AuthSecretLength { len }
        })
        .map(Self::new)
    }

    /// Draws a fresh secret from `rng`, as a user agent does when it subscribes.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; AUTH_SECRET_LEN]);
        rng.try_fill_bytes(bytes.as_mut_slice())
            .map_err(|_| Error::Rng)?;
        Ok(Self(bytes))
    }

    /// The 16 secret octets.
    pub fn as_bytes(&self) -> &[u8; AUTH_SECRET_LEN] {
        &self.0
    }

    /// Unpadded base64url, the form of a `PushSubscription`'s `keys.auth`.
    pub fn to_base64url(&self) -> String {
        base64url::encode(self.0.as_slice())
    }
}

impl TryFrom<&[u8]> for AuthSecret {
    type Error = Error;
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; AUTH_SECRET_LEN]>::try_from(bytes)
            .map(Self::new)
            .map_err(|_| Error::AuthSecretLength { len: bytes.len() })
    }
}

impl FromStr for AuthSecret {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::from_base64url(text)
    }
}

impl PartialEq for AuthSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for AuthSecret {}

impl fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthSecret(<redacted>)")
    }
}

/// The 16-octet salt of an `aes128gcm` header. Not secret, but never reused: draw one
/// per message with [`Salt::generate`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt(pub [u8; SALT_LEN]);

impl Salt {
    /// Draws a fresh salt from `rng`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        let mut bytes = [0u8; SALT_LEN];
        rng.try_fill_bytes(&mut bytes).map_err(|_| Error::Rng)?;
        Ok(Self(bytes))
    }

    /// Decodes base64url (padded or not, as text or octets); the result must be 16
    /// octets.
    pub fn from_base64url(text: impl AsRef<[u8]>) -> Result<Self, Error> {
        base64url::decode_array(text.as_ref(), "salt", |len| Error::SaltLength { len }).map(Self)
    }
}

impl TryFrom<&[u8]> for Salt {
    type Error = Error;
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; SALT_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::SaltLength { len: bytes.len() })
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Salt")
            .field(&base64url::encode(&self.0))
            .finish()
    }
}

/// What a sender needs to encrypt for one subscription: the user agent's public key
/// (`keys.p256dh`) and auth secret (`keys.auth`).
///
/// ```
/// use webpush_crypto::SubscriptionKeys;
/// let keys = SubscriptionKeys::from_base64url(
///     "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
///     "BTBZMqHH6r4Tts7J_aSIgg",
/// )?;
/// assert_eq!(keys.auth().to_base64url(), "BTBZMqHH6r4Tts7J_aSIgg");
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionKeys {
    p256dh: PublicKey,
    auth: AuthSecret,
}

impl SubscriptionKeys {
    /// Pairs a validated public key and auth secret.
    pub fn new(p256dh: PublicKey, auth: AuthSecret) -> Self {
        Self { p256dh, auth }
    }

    /// Decodes the two base64url strings of a browser's `PushSubscription.keys`.
    pub fn from_base64url(p256dh: impl AsRef<[u8]>, auth: impl AsRef<[u8]>) -> Result<Self, Error> {
        Ok(Self::new(
            PublicKey::from_base64url(p256dh)?,
            AuthSecret::from_base64url(auth)?,
        ))
    }

    /// The user agent's public key.
    pub fn p256dh(&self) -> &PublicKey {
        &self.p256dh
    }

    /// The auth secret.
    pub fn auth(&self) -> &AuthSecret {
        &self.auth
    }
}

/// The user agent's side of a subscription: its private key, public key and auth
/// secret. Push clients (Delta Chat, test harnesses) decrypt with it.
///
/// ```
/// use webpush_crypto::UaKeys;
/// let ua = UaKeys::generate(&mut rand_core::OsRng)?;
/// let for_the_server = ua.subscription_keys();
/// assert_eq!(for_the_server.p256dh(), ua.public_key());
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct UaKeys {
    private: PrivateKey,
    public: PublicKey,
    auth: AuthSecret,
}

impl UaKeys {
    /// Generates a key pair and auth secret, as a browser does in `subscribe()`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        let private = PrivateKey::generate(rng)?;
        let auth = AuthSecret::generate(rng)?;
        Self::new(private, auth)
    }

    /// Rebuilds the user agent's keys from their base64url forms, as a test harness or
    /// a client stores them (the private key may have lost leading zero octets).
    ///
    /// ```
    /// use webpush_crypto::UaKeys;
    /// // RFC 8291 Appendix A's user agent.
    /// let ua = UaKeys::from_base64url("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94", "BTBZMqHH6r4Tts7J_aSIgg")?;
    /// assert_eq!(ua.public_key().to_base64url(), "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn from_base64url(
        private: impl AsRef<[u8]>,
        auth: impl AsRef<[u8]>,
    ) -> Result<Self, Error> {
        Self::new(
            PrivateKey::from_base64url(private)?,
            AuthSecret::from_base64url(auth)?,
        )
    }

    /// Rebuilds the user agent's keys from a stored private key and auth secret.
    pub fn new(private: PrivateKey, auth: AuthSecret) -> Result<Self, Error> {
        let public = private.public_key()?;
        Ok(Self {
            private,
            public,
            auth,
        })
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.private
    }

    /// The public key (`p256dh`).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The auth secret.
    pub fn auth(&self) -> &AuthSecret {
        &self.auth
    }

    /// What the user agent hands to the application server.
    pub fn subscription_keys(&self) -> SubscriptionKeys {
        SubscriptionKeys::new(self.public.clone(), self.auth.clone())
    }
}

#[cfg(test)]
mod tests {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use proptest::prelude::*;

    use super::*;

    /// What p256 0.13 computes for the same scalar, the long way.
    fn by_p256_0_13(private: &PrivateKey) -> Vec<u8> {
        private
            .to_p256()
            .unwrap()
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn the_table_agrees_at_the_edges_of_the_scalar_range() {
        // 1, 2, 2^255, and n - 1 (the group order less one).
        let mut edges = vec![[0u8; 32]; 3];
        edges[0][31] = 1;
        edges[1][31] = 2;
        edges[2][0] = 0x80;
        let n_minus_1 = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x50,
        ];
        edges.push(n_minus_1);
        for edge in edges {
            let private = PrivateKey::from_bytes(&edge).unwrap();
            assert_eq!(
                private.public_key().unwrap().as_bytes().as_slice(),
                by_p256_0_13(&private)
            );
        }
        let mut n = n_minus_1;
        n[31] = 0x51;
        assert!(PrivateKey::from_bytes(&n).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn the_table_gives_the_public_key_p256_0_13_computes(bytes in any::<[u8; 32]>()) {
            if let Ok(private) = PrivateKey::from_bytes(&bytes) {
                let public = private.public_key().unwrap();
                prop_assert_eq!(public.as_bytes().as_slice(), by_p256_0_13(&private));
            }
        }
    }
}
