//! Crypto providers: the primitives behind every message, with one small interface.
//!
//! Elliptic-curve work is most of a message's cost, so the provider is the one lever
//! on speed. [`Provider::RustCrypto`] is pure Rust and always available;
//! [`Provider::AwsLcRs`] (feature `aws-lc-rs`) uses aws-lc's assembly P-256 and is the
//! default when compiled in. Both produce identical bytes for identical inputs: the
//! ephemeral key is drawn from the caller's RNG as a scalar, never inside the provider.

use zeroize::Zeroizing;

use crate::Error;
use crate::keys::{PrivateKey, PublicKey};

#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
mod rust_crypto;

/// A private scalar in a provider's own form, checked and ready for ECDH. Both forms
/// clear their key memory when dropped (`p256`'s on drop, aws-lc's when it frees the
/// key).
pub(crate) enum Prepared {
    RustCrypto(p256::SecretKey),
    #[cfg(feature = "aws-lc-rs")]
    AwsLcRs(aws_lc_rs::agreement::PrivateKey),
}

impl Prepared {
    /// The ECDH secret shared with `peer`: the variable-base work alone.
    pub(crate) fn agree(&self, peer: &PublicKey) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
        match self {
            Prepared::RustCrypto(scalar) => rust_crypto::agree_scalar(scalar, peer),
            #[cfg(feature = "aws-lc-rs")]
            Prepared::AwsLcRs(key) => aws_lc::agree_key(key, peer),
        }
    }
}

/// Length of a P-256 shared secret and of a SHA-256 output.
pub(crate) const SECRET_LEN: usize = 32;
/// Length of an AES-128-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of an ES256 signature in JOSE form, `r ‖ s`.
pub(crate) const SIGNATURE_LEN: usize = 64;

#[cfg(not(any(feature = "rust-crypto", feature = "aws-lc-rs")))]
compile_error!(
    "webpush-crypto needs a jsonwebtoken backend: enable the `rust-crypto` or `aws-lc-rs` feature"
);

/// Which implementation of P-256, HKDF-SHA-256 and AES-128-GCM to use.
///
/// ```
/// use webpush_crypto::Provider;
/// // The default is the fastest provider compiled in.
/// let provider = Provider::default();
/// assert!(Provider::all().contains(&provider));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// RustCrypto's `p256`, `hkdf`, `sha2` and `aes-gcm`: pure Rust, no C toolchain.
    RustCrypto,
    /// `aws-lc-rs`: assembly P-256 and AES-GCM, much faster at the elliptic-curve work
    /// that dominates a message's cost (the README's performance section has figures).
    #[cfg(feature = "aws-lc-rs")]
    AwsLcRs,
}

impl Default for Provider {
    fn default() -> Self {
        #[cfg(feature = "aws-lc-rs")]
        return Provider::AwsLcRs;
        #[cfg(not(feature = "aws-lc-rs"))]
        return Provider::RustCrypto;
    }
}

impl Provider {
    /// Every provider compiled into this build, the default first.
    pub const fn all() -> &'static [Provider] {
        &[
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs,
            Provider::RustCrypto,
        ]
    }

    /// The provider's name, for logs and benchmark labels.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::RustCrypto => "rustcrypto",
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => "aws-lc-rs",
        }
    }

    /// Derives the public key of `secret` and the ECDH secret shared with `peer`: the
    /// sender's half of RFC 8291, in one call so a provider can share work between them.
    pub(crate) fn ephemeral_agree(
        self,
        secret: &PrivateKey,
        peer: &PublicKey,
    ) -> Result<(PublicKey, Zeroizing<[u8; SECRET_LEN]>), Error> {
        match self {
            Provider::RustCrypto => rust_crypto::ephemeral_agree(secret, peer),
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => aws_lc::ephemeral_agree(secret, peer),
        }
    }

    /// The public key of `secret`, and `secret` in this provider's own form, checked,
    /// ready for ECDH: the fixed-base work of an ephemeral key, done once, ahead.
    pub(crate) fn prepare(self, secret: &PrivateKey) -> Result<(PublicKey, Prepared), Error> {
        match self {
            Provider::RustCrypto => Ok((
                secret.public_key()?,
                Prepared::RustCrypto(secret.to_p256()?),
            )),
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => {
                let (public, key) = aws_lc::prepare(secret)?;
                Ok((public, Prepared::AwsLcRs(key)))
            }
        }
    }

    /// ECDH between a long-term `secret` and `peer`: the user agent's half.
    pub(crate) fn agree(
        self,
        secret: &PrivateKey,
        peer: &PublicKey,
    ) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
        match self {
            Provider::RustCrypto => rust_crypto::agree(secret, peer),
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => aws_lc::agree(secret, peer),
        }
    }

    /// HKDF-SHA-256 (RFC 5869) with an output of at most 32 octets (one HMAC block):
    /// extract, then one expand over the concatenation of `info`.
    pub(crate) fn hkdf(self, salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
        match self {
            Provider::RustCrypto => rust_crypto::hkdf(salt, ikm, info, out),
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => aws_lc::hkdf(salt, ikm, info, out),
        }
    }

    /// RFC 8188 §2.2 and §2.3: the content-encryption key and base nonce from one
    /// extract and two expands.
    pub(crate) fn cek_and_nonce(self, salt: &[u8], ikm: &[u8]) -> (Zeroizing<[u8; 16]>, [u8; 12]) {
        match self {
            Provider::RustCrypto => rust_crypto::cek_and_nonce(salt, ikm),
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => aws_lc::cek_and_nonce(salt, ikm),
        }
    }

    /// An AES-128-GCM key, set up once for all records of a body.
    pub(crate) fn aead(self, cek: &[u8; 16]) -> Result<AeadKey, Error> {
        match self {
            Provider::RustCrypto => Ok(AeadKey::RustCrypto(rust_crypto::aead(cek))),
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => aws_lc::aead(cek).map(AeadKey::AwsLcRs),
        }
    }
}

impl Provider {
    /// An ES256 signing key, parsed once and kept for every token it signs.
    pub(crate) fn signer(self, secret: &PrivateKey, public: &PublicKey) -> Result<Signer, Error> {
        match self {
            Provider::RustCrypto => {
                let _ = public;
                rust_crypto::signer(secret).map(Signer::RustCrypto)
            }
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => aws_lc::signer(secret, public).map(Signer::AwsLcRs),
        }
    }

    /// The `jsonwebtoken` backend that verifies signatures for this provider. It is
    /// named explicitly, never taken from jsonwebtoken's process-wide default, so a
    /// build with both backends compiled in cannot panic on first use.
    pub(crate) fn jwt(self) -> &'static jsonwebtoken::crypto::CryptoProvider {
        match self {
            #[cfg(feature = "rust-crypto")]
            Provider::RustCrypto => &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
            // Without jsonwebtoken's RustCrypto backend, its aws-lc-rs one verifies.
            #[cfg(all(not(feature = "rust-crypto"), feature = "aws-lc-rs"))]
            Provider::RustCrypto => &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
            #[cfg(feature = "aws-lc-rs")]
            Provider::AwsLcRs => &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        }
    }
}

/// An ES256 signing key of one provider.
pub(crate) enum Signer {
    RustCrypto(rust_crypto::Signer),
    #[cfg(feature = "aws-lc-rs")]
    AwsLcRs(aws_lc::Signer),
}

impl Signer {
    /// Signs `message` with ECDSA over P-256 and SHA-256; the JOSE form `r ‖ s`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], Error> {
        match self {
            Signer::RustCrypto(k) => rust_crypto::sign(k, message),
            #[cfg(feature = "aws-lc-rs")]
            Signer::AwsLcRs(k) => aws_lc::sign(k, message),
        }
    }
}

/// An AES-128-GCM key of one provider.
// It lives on the stack for one body; boxing the large variant would cost an allocation
// per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AeadKey {
    RustCrypto(rust_crypto::Aead),
    #[cfg(feature = "aws-lc-rs")]
    AwsLcRs(aws_lc::Aead),
}

impl AeadKey {
    /// Encrypts `buf` in place and returns the tag. RFC 8188 uses no associated data.
    pub(crate) fn seal(&self, nonce: &[u8; 12], buf: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        match self {
            AeadKey::RustCrypto(k) => rust_crypto::seal(k, nonce, buf),
            #[cfg(feature = "aws-lc-rs")]
            AeadKey::AwsLcRs(k) => aws_lc::seal(k, nonce, buf),
        }
    }

    /// Decrypts `buf` (ciphertext followed by its tag) in place; on success the first
    /// `buf.len() - 16` octets hold the plaintext.
    pub(crate) fn open(&self, nonce: &[u8; 12], buf: &mut [u8]) -> Result<(), ()> {
        match self {
            AeadKey::RustCrypto(k) => rust_crypto::open(k, nonce, buf),
            #[cfg(feature = "aws-lc-rs")]
            AeadKey::AwsLcRs(k) => aws_lc::open(k, nonce, buf),
        }
    }
}
