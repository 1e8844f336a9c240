//! The aws-lc-rs provider: assembly P-256 and AES-128-GCM.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey};
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::{SECRET_LEN, SIGNATURE_LEN, TAG_LEN};
use crate::Error;
use crate::keys::{PrivateKey, PublicKey};

pub(super) type Aead = LessSafeKey;

fn private(secret: &PrivateKey) -> Result<agreement::PrivateKey, Error> {
    agreement::PrivateKey::from_private_key(&ECDH_P256, secret.as_bytes())
        .map_err(|_| Error::PrivateKeyOutOfRange)
}

pub(super) fn ephemeral_agree(
    secret: &PrivateKey,
    peer: &PublicKey,
) -> Result<(PublicKey, Zeroizing<[u8; SECRET_LEN]>), Error> {
    let (public, key) = prepare(secret)?;
    Ok((public, agree_key(&key, peer)?))
}

/// `secret` imported (and checked) as aws-lc's key, with its public key.
pub(super) fn prepare(secret: &PrivateKey) -> Result<(PublicKey, agreement::PrivateKey), Error> {
    let key = private(secret)?;
    let public = key.compute_public_key().map_err(|_| Error::KeyAgreement)?;
    // aws-lc computed this point from a valid scalar, so the cheap on-curve check in
    // `PublicKey::from_sec1` is all the validation it needs.
    let public = PublicKey::try_from(public.as_ref())?;
    Ok((public, key))
}

pub(super) fn agree(
    secret: &PrivateKey,
    peer: &PublicKey,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
    agree_key(&private(secret)?, peer)
}

pub(super) fn agree_key(
    key: &agreement::PrivateKey,
    peer: &PublicKey,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
    let peer = UnparsedPublicKey::new(&ECDH_P256, peer.as_bytes());
    agreement::agree(key, peer, Error::KeyAgreement, |shared| {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        if shared.len() != SECRET_LEN {
            return Err(Error::KeyAgreement);
        }
        out.copy_from_slice(shared);
        Ok(out)
    })
}

// aws-lc-rs's `hkdf::Salt` allocates three times per use; its HMAC allocates nothing,
// and with outputs of at most 32 octets RFC 5869 is one HMAC per step.

/// HKDF-Extract (RFC 5869 §2.2).
fn extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; SECRET_LEN]> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
    let mut prk = Zeroizing::new([0u8; SECRET_LEN]);
    prk.copy_from_slice(tag.as_ref());
    prk
}

/// HKDF-Expand (RFC 5869 §2.3) for `out.len() <= 32`: T(1) = HMAC(PRK, info ‖ 0x01).
fn expand(prk: &hmac::Key, info: &[&[u8]], out: &mut [u8]) {
    let mut ctx = hmac::Context::with_key(prk);
    for part in info {
        ctx.update(part);
    }
    ctx.update(&[1]);
    let tag = ctx.sign();
    for (o, t) in out.iter_mut().zip(tag.as_ref()) {
        *o = *t;
    }
}

pub(super) fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let prk = extract(salt, ikm);
    expand(
        &hmac::Key::new(hmac::HMAC_SHA256, prk.as_slice()),
        info,
        out,
    );
}

pub(super) fn cek_and_nonce(salt: &[u8], ikm: &[u8]) -> (Zeroizing<[u8; 16]>, [u8; 12]) {
    let prk = extract(salt, ikm);
    let prk = hmac::Key::new(hmac::HMAC_SHA256, prk.as_slice());
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    expand(&prk, &[crate::ece::CEK_INFO], cek.as_mut_slice());
    expand(&prk, &[crate::ece::NONCE_INFO], &mut nonce);
    (cek, nonce)
}

pub(super) fn aead(cek: &[u8; 16]) -> Result<Aead, Error> {
    let key = UnboundKey::new(&AES_128_GCM, cek).map_err(|_| Error::KeyAgreement)?;
    Ok(LessSafeKey::new(key))
}

pub(super) fn seal(key: &Aead, nonce: &[u8; 12], buf: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::empty(), buf)
        .map_err(|_| Error::PlaintextTooLong {
            len: buf.len(),
            limit: usize::MAX,
        })?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

pub(super) fn open(key: &Aead, nonce: &[u8; 12], buf: &mut [u8]) -> Result<(), ()> {
    key.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::empty(), buf)
        .map(|_| ())
        .map_err(|_| ())
}

pub(super) type Signer = aws_lc_rs::signature::EcdsaKeyPair;

pub(super) fn signer(secret: &PrivateKey, public: &PublicKey) -> Result<Signer, Error> {
    aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        secret.as_bytes(),
        public.as_bytes(),
    )
    .map_err(|_| Error::PrivateKeyOutOfRange)
}

pub(super) fn sign(key: &Signer, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], Error> {
    // aws-lc draws the ECDSA nonce from its own DRBG and ignores this argument.
    let signature = key
        .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
        .map_err(|_| Error::Signing)?;
    <[u8; SIGNATURE_LEN]>::try_from(signature.as_ref()).map_err(|_| Error::Signing)
}
