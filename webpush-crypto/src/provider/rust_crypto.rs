//! The RustCrypto provider: `p256`, `hkdf` + `sha2`, `aes-gcm`.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{SECRET_LEN, SIGNATURE_LEN, TAG_LEN};
use crate::Error;
use crate::keys::{PrivateKey, PublicKey};

pub(super) type Aead = Aes128Gcm;

pub(super) fn ephemeral_agree(
    secret: &PrivateKey,
    peer: &PublicKey,
) -> Result<(PublicKey, Zeroizing<[u8; SECRET_LEN]>), Error> {
    Ok((secret.public_key()?, agree(secret, peer)?))
}

pub(super) fn agree(
    secret: &PrivateKey,
    peer: &PublicKey,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
    agree_scalar(&secret.to_p256()?, peer)
}

pub(super) fn agree_scalar(
    scalar: &p256::SecretKey,
    peer: &PublicKey,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
    let peer = peer.to_p256()?;
    let shared = p256::ecdh::diffie_hellman(scalar.to_nonzero_scalar(), peer.as_affine());
    let mut out = Zeroizing::new([0u8; SECRET_LEN]);
    out.copy_from_slice(shared.raw_secret_bytes());
    Ok(out)
}

pub(super) fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    // Outputs here are at most 32 octets, far below HKDF's 255 * 32 limit.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand_multi_info(info, out);
}

pub(super) fn cek_and_nonce(salt: &[u8], ikm: &[u8]) -> (Zeroizing<[u8; 16]>, [u8; 12]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    let _ = hk.expand(crate::ece::CEK_INFO, cek.as_mut_slice());
    let _ = hk.expand(crate::ece::NONCE_INFO, &mut nonce);
    (cek, nonce)
}

pub(super) fn aead(cek: &[u8; 16]) -> Aead {
    Aes128Gcm::new(cek.into())
}

pub(super) fn seal(key: &Aead, nonce: &[u8; 12], buf: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
    let tag = key
        .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", buf)
        // Only a buffer beyond GCM's 64 GiB limit fails, which no record reaches.
        .map_err(|_| Error::PlaintextTooLong {
            len: buf.len(),
            limit: usize::MAX,
        })?;
    Ok(tag.into())
}

pub(super) fn open(key: &Aead, nonce: &[u8; 12], buf: &mut [u8]) -> Result<(), ()> {
    let split = buf.len().checked_sub(TAG_LEN).ok_or(())?;
    let (data, tag) = buf.split_at_mut(split);
    key.decrypt_in_place_detached(Nonce::from_slice(nonce), b"", data, Tag::from_slice(tag))
        .map_err(|_| ())
}

pub(super) type Signer = p256::ecdsa::SigningKey;

pub(super) fn signer(secret: &PrivateKey) -> Result<Signer, Error> {
    Ok(p256::ecdsa::SigningKey::from(secret.to_p256()?))
}

pub(super) fn sign(key: &Signer, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], Error> {
    use p256::ecdsa::signature::Signer as _;
    // RFC 6979 nonces: deterministic, so no RNG is needed here.
    let signature: p256::ecdsa::Signature = key.try_sign(message).map_err(|_| Error::Signing)?;
    Ok(signature.to_bytes().into())
}
