//! VAPID signing keys: generation, import in every format people bring, export.

use core::fmt;

use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::provider::{SIGNATURE_LEN, Signer};
use crate::{Error, PrivateKey, Provider, PublicKey, base64url};

/// The largest key file [`VapidKey::import`] reads. A P-256 key in any of its formats is
/// well under 1 KiB; the bound keeps a wrong file from being scanned at length.
pub const MAX_KEY_FILE_LEN: usize = 16 * 1024;

/// A VAPID (RFC 8292) key pair, held parsed for the provider that signs with it.
///
/// Import accepts what generators and tools write: the raw 32-octet scalar in base64url
/// (padded or not, as Node's `web-push generate-vapid-keys` prints it), SEC1 (`openssl
/// ecparam -genkey`) and PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`), each as PEM or DER.
/// [`VapidKey::import`] detects the format.
///
/// The private scalar is zeroized on drop; `Debug` shows only the public key.
///
/// ```
/// use webpush_crypto::VapidKey;
/// let key = VapidKey::generate(&mut rand_core::OsRng)?;
/// let pem = key.to_pkcs8_pem()?;
/// let again = VapidKey::import(pem.as_bytes())?;
/// assert_eq!(again.public_key(), key.public_key());
/// // The value for `applicationServerKey` and the IMAP `* VAPID` response:
/// assert_eq!(key.public_key().to_base64url().len(), 87);
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
pub struct VapidKey {
    secret: PrivateKey,
    public: PublicKey,
    provider: Provider,
    signer: Signer,
}

impl VapidKey {
    /// Generates a fresh key pair from `rng`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        Self::from_private_key(PrivateKey::generate(rng)?)
    }

    /// Wraps a validated scalar, for the default provider.
    pub fn from_private_key(secret: PrivateKey) -> Result<Self, Error> {
        let public = secret.public_key()?;
        let provider = Provider::default();
        let signer = provider.signer(&secret, &public)?;
        Ok(Self {
            secret,
            public,
            provider,
            signer,
        })
    }

    /// The same key, signing with `provider`.
    pub fn with_provider(self, provider: Provider) -> Result<Self, Error> {
        if provider == self.provider {
            return Ok(self);
        }
        let signer = provider.signer(&self.secret, &self.public)?;
        Ok(Self {
            provider,
            signer,
            ..self
        })
    }

    /// Reads the raw 32-octet scalar from base64url, padded or not, as text or octets.
    pub fn from_base64url(text: impl AsRef<[u8]>) -> Result<Self, Error> {
        Self::from_private_key(PrivateKey::from_base64url(text)?)
    }

    /// Reads a DER private key, PKCS#8 (`PrivateKeyInfo`) or SEC1 (`ECPrivateKey`).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let key = p256::SecretKey::from_pkcs8_der(der)
            .or_else(|_| p256::SecretKey::from_sec1_der(der))
            .map_err(|_| Error::InvalidVapidKey {
                reason: "DER is neither a PKCS#8 nor a SEC1 P-256 private key",
            })?;
        Self::from_p256(&key)
    }

    /// Reads a PEM private key: `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1). Other
    /// blocks around it, such as the `EC PARAMETERS` block `openssl ecparam -genkey`
    /// writes first, are skipped.
    pub fn from_pem(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidVapidKey { reason };
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(invalid(
                "the PEM key is encrypted; decrypt it first (openssl pkcs8 -nocrypt)",
            ));
        }
        if let Some(block) = pem_block(text, "PRIVATE KEY") {
            let key = p256::SecretKey::from_pkcs8_pem(block)
                .map_err(|_| invalid("PEM PRIVATE KEY block is not a PKCS#8 P-256 key"))?;
            return Self::from_p256(&key);
        }
        if let Some(block) = pem_block(text, "EC PRIVATE KEY") {
            let key = p256::SecretKey::from_sec1_pem(block)
                .map_err(|_| invalid("PEM EC PRIVATE KEY block is not a SEC1 P-256 key"))?;
            return Self::from_p256(&key);
        }
        Err(invalid(
            "no PEM block labelled PRIVATE KEY or EC PRIVATE KEY",
        ))
    }

    /// Reads a key in any supported format, detecting which: PEM, raw base64url, base64
    /// DER (as some Python tools store it), or binary DER.
    ///
    /// ```
    /// use webpush_crypto::VapidKey;
    /// // Node's `web-push generate-vapid-keys` prints the raw scalar:
    /// let raw = "hU3xUdBJS0DFbOU41KJJnqYMHdIMeSjhtAa3FYyrr0Q";
    /// let key = VapidKey::import(raw.as_bytes())?;
    /// assert_eq!(VapidKey::import(key.to_pkcs8_pem()?.as_bytes())?.public_key(), key.public_key());
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn import(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_KEY_FILE_LEN {
            return Err(Error::InvalidVapidKey {
                reason: "longer than any P-256 key file (16 KiB)",
            });
        }
        let Ok(text) = core::str::from_utf8(bytes) else {
            return Self::from_der(bytes);
        };
        let text = text.trim();
        if text.contains("-----BEGIN") {
            return Self::from_pem(text);
        }
        let decoded = base64url::decode(text, "VAPID private key")
            .or_else(|_| base64_standard(text))
            .map(Zeroizing::new)
            .map_err(|_| Error::InvalidVapidKey {
                reason: "neither PEM, base64url, base64 nor DER",
            })?;
        // DER is never this short: a raw scalar, maybe missing leading zero octets.
        if decoded.len() <= crate::PRIVATE_KEY_LEN {
            Self::from_private_key(PrivateKey::from_bytes(&decoded)?)
        } else {
            Self::from_der(&decoded)
        }
    }

    fn from_p256(key: &p256::SecretKey) -> Result<Self, Error> {
        let bytes = Zeroizing::new(key.to_bytes());
        Self::from_private_key(PrivateKey::from_bytes(bytes.as_slice())?)
    }

    /// The public key: `k` in the `Authorization` header, `applicationServerKey` in the
    /// browser, and the IMAP `* VAPID` response.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The provider that signs with this key.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The raw scalar as unpadded base64url, the form Node's `web-push` reads.
    pub fn to_base64url(&self) -> Zeroizing<String> {
        self.secret.to_base64url()
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form OpenSSL,
    /// `jsonwebtoken` and most servers read.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.secret
            .to_p256()?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| Error::InvalidVapidKey {
                reason: "PKCS#8 encoding failed",
            })
    }

    /// The key as SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`), as `openssl ecparam`
    /// writes it.
    pub fn to_sec1_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.secret
            .to_p256()?
            .to_sec1_pem(LineEnding::LF)
            .map_err(|_| Error::InvalidVapidKey {
                reason: "SEC1 encoding failed",
            })
    }

    /// Signs `message` (ES256, JOSE `r ‖ s`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], Error> {
        self.signer.sign(message)
    }
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// The text of the first PEM block labelled `label`, armour lines included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let rest = text.get(start..)?;
    let stop = rest.find(&end)?;
    rest.get(..stop + end.len())
}

/// Standard-alphabet base64 with padding, for DER stored as text.
fn base64_standard(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    // A copy of the key's text: wiped when dropped.
    let compact: Zeroizing<String> = Zeroizing::new(text.split_whitespace().collect());
    base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn key() -> VapidKey {
        VapidKey::generate(&mut ChaCha20Rng::seed_from_u64(7)).unwrap()
    }

    #[test]
    fn every_export_imports_to_the_same_key() {
        let key = key();
        let sec1 = key.to_sec1_pem().unwrap();
        let pkcs8 = key.to_pkcs8_pem().unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        let raw = key.to_base64url();
        let padded = format!("{}=", raw.as_str());
        let sec1_der = p256::SecretKey::from_sec1_pem(&sec1)
            .unwrap()
            .to_sec1_der()
            .unwrap();
        let pkcs8_der = key.secret.to_p256().unwrap().to_pkcs8_der().unwrap();
        use base64::Engine as _;
        let b64_der = base64::engine::general_purpose::STANDARD.encode(pkcs8_der.as_bytes());
        for input in [
            sec1.as_bytes(),
            pkcs8.as_bytes(),
            raw.as_bytes(),
            padded.as_bytes(),
            sec1_der.as_slice(),
            pkcs8_der.as_bytes(),
            b64_der.as_bytes(),
        ] {
            assert_eq!(
                VapidKey::import(input).unwrap().public_key(),
                key.public_key()
            );
        }
    }

    #[test]
    fn openssl_ecparam_output_with_parameters_block() {
        let key = key();
        let text = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            key.to_sec1_pem().unwrap().as_str()
        );
        assert_eq!(
            VapidKey::import(text.as_bytes()).unwrap().public_key(),
            key.public_key()
        );
    }

    #[test]
    fn refusals() {
        let reason = |r: Result<VapidKey, Error>| match r {
            Err(Error::InvalidVapidKey { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(VapidKey::import(b"not a key at all!")).contains("neither"));
        assert!(
            reason(VapidKey::import(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"))
                .contains("encrypted")
        );
        assert!(
            reason(VapidKey::import(b"-----BEGIN CERTIFICATE-----\n")).contains("no PEM block")
        );
        assert!(reason(VapidKey::import(&[0x30, 0x03, 0x02, 0x01, 0x00])).contains("DER"));
        assert!(reason(VapidKey::import(&vec![b'A'; MAX_KEY_FILE_LEN + 1])).contains("16 KiB"));
        assert_eq!(
            VapidKey::import(&[b'A'; 43]).unwrap_err(),
            Error::PrivateKeyOutOfRange
        );
        // Three zero octets pad to the zero scalar, which is no key.
        assert!(matches!(
            VapidKey::from_base64url("AAAA"),
            Err(Error::PrivateKeyOutOfRange)
        ));
        assert!(matches!(
            VapidKey::from_base64url(crate::base64url::encode(&[1; 33])),
            Err(Error::PrivateKeyLength { len: 33 })
        ));
    }

    /// Node's `getPrivateKey()` drops leading zero octets: such keys import, padded,
    /// in every form that carries a raw scalar.
    #[test]
    fn short_raw_keys_are_left_padded() {
        let mut full = [0u8; 32];
        for (i, b) in full.iter_mut().enumerate().skip(2) {
            *b = i as u8;
        }
        let expected = VapidKey::from_private_key(PrivateKey::from_bytes(&full).unwrap()).unwrap();
        for short in [&full[1..], &full[2..]] {
            let raw = crate::base64url::encode(short);
            for key in [
                VapidKey::from_base64url(&raw).unwrap(),
                VapidKey::import(raw.as_bytes()).unwrap(),
                VapidKey::from_private_key(PrivateKey::from_bytes(short).unwrap()).unwrap(),
            ] {
                assert_eq!(
                    key.public_key(),
                    expected.public_key(),
                    "{} octets",
                    short.len()
                );
            }
        }
        assert!(PrivateKey::from_bytes(&[]).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = key();
        let debug = format!("{key:?}");
        assert!(!debug.contains(key.to_base64url().as_str()));
        assert!(debug.contains(&key.public_key().to_base64url()));
    }
}
