//! Shared workloads for the benches: the operations compared side by side, each a
//! plain function so the criterion bench and the interleaved ratio bench run the very
//! same code.
//!
//! Floors are naive compositions of each provider's primitives (fresh ephemeral key,
//! ECDH, the RFC 8291 HKDF schedule, AES-128-GCM): what any correct implementation must
//! pay on that provider.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use webpush_crypto::{Encryptor, Provider, UaKeys, decrypt_with};

pub mod apns;
pub mod imap;
pub mod push;
pub mod vapid;
pub mod xaps;

/// Which p256 release a RustCrypto floor multiplies with.
#[derive(Debug, Clone, Copy)]
pub enum P256Floor {
    /// 0.14's basepoint table for the public key, 0.13 for the shared secret.
    Fastest,
    /// 0.13 for both.
    P256_0_13,
    /// 0.14 for both.
    P256_0_14,
}

/// An ephemeral key of the RustCrypto floor, made ahead: the scalar and its public key.
pub type FloorRustCryptoKey = (p256::SecretKey, [u8; 65]);

/// An ephemeral key of the aws-lc-rs floor, made ahead by aws-lc itself.
pub type FloorAwsLcKey = (
    aws_lc_rs::agreement::EphemeralPrivateKey,
    aws_lc_rs::agreement::PublicKey,
);

/// A random scalar, as a p256 0.13 key and a 0.14 scalar, with its public key from
/// p256 0.14's basepoint table.
fn table_key() -> (p256::SecretKey, p256_basepoint::Scalar, [u8; 65]) {
    use p256_basepoint::elliptic_curve::PrimeField;
    use p256_basepoint::elliptic_curve::group::Group;
    use p256_basepoint::elliptic_curve::sec1::ToSec1Point;
    let secret = p256::SecretKey::random(&mut OsRng);
    let bytes: [u8; 32] = secret.to_bytes().into();
    let scalar = p256_basepoint::Scalar::from_repr(bytes.into()).expect("scalar");
    let point = p256_basepoint::ProjectivePoint::mul_by_generator(&scalar).to_affine();
    let mut public = [0u8; 65];
    public.copy_from_slice(point.to_sec1_point(false).as_bytes());
    (secret, scalar, public)
}

/// The RustCrypto floor's ephemeral key, made the fastest way it knows.
pub fn floor_rustcrypto_key() -> FloorRustCryptoKey {
    let (secret, _, public) = table_key();
    (secret, public)
}

/// The aws-lc-rs floor's ephemeral key, generated inside aws-lc (no import check).
pub fn floor_aws_lc_key() -> FloorAwsLcKey {
    use aws_lc_rs::{agreement, rand};
    let eph =
        agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rand::SystemRandom::new())
            .expect("keygen");
    let public = eph.compute_public_key().expect("public key");
    (eph, public)
}

/// A subscription and a message body to encrypt, with the same keys in every crate's form.
pub struct Fixture {
    /// The user agent.
    pub ua: UaKeys,
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// Our ciphertext of `plaintext`, for decryption benches.
    pub body: Vec<u8>,
    ua_p256: p256::PublicKey,
    ua_secret: p256::SecretKey,
}

impl Fixture {
    /// A fresh subscription and a plaintext of `len` octets.
    pub fn new(len: usize) -> Self {
        let ua = UaKeys::generate(&mut OsRng).expect("key generation");
        let plaintext = vec![0x61; len];
        let body = Encryptor::new()
            .encrypt(&ua.subscription_keys(), &plaintext, &mut OsRng)
            .expect("encryption");
        let ua_p256 = p256::PublicKey::from_sec1_bytes(ua.public_key().as_bytes()).expect("point");
        let ua_secret = p256::SecretKey::from_slice(ua.private_key().as_bytes()).expect("scalar");
        Self {
            ua,
            plaintext,
            body,
            ua_p256,
            ua_secret,
        }
    }

    /// Our encryption with `provider`.
    pub fn ours_encrypt(&self, provider: Provider) -> Vec<u8> {
        Encryptor::new()
            .with_provider(provider)
            .encrypt(&self.ua.subscription_keys(), &self.plaintext, &mut OsRng)
            .expect("encryption")
    }

    /// Our decryption with `provider`.
    pub fn ours_decrypt(&self, provider: Provider) -> Vec<u8> {
        decrypt_with(provider, &self.ua, &self.body).expect("decryption")
    }

    /// The RustCrypto floor: p256 + hkdf + aes-gcm, composed naively, the fastest way
    /// the p256 releases allow: 0.14's basepoint table for the ephemeral public key,
    /// 0.13's variable-base multiplication for the shared secret.
    pub fn floor_rustcrypto_encrypt(&self) -> Vec<u8> {
        self.floor_rustcrypto_with(P256Floor::Fastest)
    }

    /// The RustCrypto floor on one p256 release for both multiplications, to show what
    /// each costs.
    pub fn floor_rustcrypto_on(&self, release: P256Floor) -> Vec<u8> {
        self.floor_rustcrypto_with(release)
    }

    fn floor_rustcrypto_with(&self, how: P256Floor) -> Vec<u8> {
        use p256_basepoint::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
        let (as_public, shared): ([u8; 65], [u8; 32]) = match how {
            P256Floor::P256_0_13 => {
                let eph = p256::ecdh::EphemeralSecret::random(&mut OsRng);
                let mut public = [0u8; 65];
                public.copy_from_slice(eph.public_key().to_encoded_point(false).as_bytes());
                let shared = eph.diffie_hellman(&self.ua_p256);
                (public, (*shared.raw_secret_bytes()).into())
            }
            P256Floor::Fastest => {
                let (secret, _, public) = table_key();
                return self.floor_rustcrypto_encrypt_with((secret, public));
            }
            P256Floor::P256_0_14 => {
                let (_, scalar, public) = table_key();
                let peer =
                    p256_basepoint::AffinePoint::from_sec1_bytes(self.ua.public_key().as_bytes())
                        .expect("point");
                let shared = (p256_basepoint::ProjectivePoint::from(peer) * scalar).to_affine();
                let encoded = shared.to_sec1_point(false);
                let mut x = [0u8; 32];
                x.copy_from_slice(&encoded.as_bytes()[1..33]);
                (public, x)
            }
        };
        self.floor_rustcrypto_rest(&as_public, &shared)
    }

    /// The RustCrypto floor with its ephemeral key made beforehand (by
    /// [`floor_rustcrypto_key`]): the ECDH, HKDF and AES-GCM left of a message.
    pub fn floor_rustcrypto_encrypt_with(&self, key: FloorRustCryptoKey) -> Vec<u8> {
        let (secret, as_public) = key;
        let shared =
            p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), self.ua_p256.as_affine());
        self.floor_rustcrypto_rest(&as_public, &(*shared.raw_secret_bytes()).into())
    }

    /// RFC 8291's key derivation and RFC 8188's content encryption on RustCrypto.
    fn floor_rustcrypto_rest(&self, as_public: &[u8; 65], shared: &[u8; 32]) -> Vec<u8> {
        let as_public = &as_public[..];
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(self.ua.auth().as_bytes()), shared)
            .expand_multi_info(
                &[
                    b"WebPush: info\0",
                    self.ua.public_key().as_bytes(),
                    as_public,
                ],
                &mut ikm,
            )
            .expect("hkdf");
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .expect("hkdf");
        hk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .expect("hkdf");
        let mut out = Vec::with_capacity(86 + self.plaintext.len() + 17);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&4096u32.to_be_bytes());
        out.push(65);
        out.extend_from_slice(as_public);
        out.extend_from_slice(&self.plaintext);
        out.push(2);
        let tag = Aes128Gcm::new(&cek.into())
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut out[86..])
            .expect("seal");
        out.extend_from_slice(&tag);
        out
    }

    /// The RustCrypto floor for decryption: static ECDH, HKDF schedule, AES-GCM open.
    pub fn floor_rustcrypto_decrypt(&self) -> Vec<u8> {
        let body = &self.body;
        let as_public = p256::PublicKey::from_sec1_bytes(&body[21..86]).expect("point");
        let shared =
            p256::ecdh::diffie_hellman(self.ua_secret.to_nonzero_scalar(), as_public.as_affine());
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(self.ua.auth().as_bytes()), shared.raw_secret_bytes())
            .expand_multi_info(
                &[
                    b"WebPush: info\0",
                    self.ua.public_key().as_bytes(),
                    &body[21..86],
                ],
                &mut ikm,
            )
            .expect("hkdf");
        let hk = Hkdf::<Sha256>::new(Some(&body[..16]), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .expect("hkdf");
        hk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .expect("hkdf");
        let mut out = body[86..].to_vec();
        let split = out.len() - 16;
        let (data, tag) = out.split_at_mut(split);
        Aes128Gcm::new(&cek.into())
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), b"", data, (&*tag).into())
            .expect("open");
        out.truncate(split - 1);
        out
    }

    /// The aws-lc-rs floor: ephemeral key, ECDH, HKDF, AES-128-GCM, composed naively.
    pub fn floor_aws_lc_encrypt(&self) -> Vec<u8> {
        self.floor_aws_lc_encrypt_with(floor_aws_lc_key())
    }

    /// The aws-lc-rs floor with its ephemeral key made beforehand (by
    /// [`floor_aws_lc_key`]): the ECDH, HKDF and AES-GCM left of a message.
    pub fn floor_aws_lc_encrypt_with(&self, key: FloorAwsLcKey) -> Vec<u8> {
        use aws_lc_rs::agreement;
        let (eph, as_public) = key;
        let peer = agreement::UnparsedPublicKey::new(
            &agreement::ECDH_P256,
            self.ua.public_key().as_bytes(),
        );
        let ikm = agreement::agree_ephemeral(eph, peer, (), |shared| {
            Ok(self.aws_lc_ikm(shared, as_public.as_ref()))
        })
        .expect("ecdh");
        self.aws_lc_seal(as_public.as_ref(), &ikm)
    }

    /// The aws-lc-rs floor with the ephemeral scalar drawn from the caller's RNG, as
    /// our API requires: aws-lc-rs imports a scalar with `from_private_key`, which
    /// derives the public key and then checks the pair, one fixed-base multiplication
    /// more than generating the key inside aws-lc.
    pub fn floor_aws_lc_scalar_encrypt(&self) -> Vec<u8> {
        use aws_lc_rs::agreement;
        let mut scalar = [0u8; 32];
        OsRng.fill_bytes(&mut scalar);
        let key = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &scalar)
            .expect("scalar");
        let as_public = key.compute_public_key().expect("public key");
        let peer = agreement::UnparsedPublicKey::new(
            &agreement::ECDH_P256,
            self.ua.public_key().as_bytes(),
        );
        let ikm = agreement::agree(&key, peer, (), |shared| {
            Ok(self.aws_lc_ikm(shared, as_public.as_ref()))
        })
        .expect("ecdh");
        self.aws_lc_seal(as_public.as_ref(), &ikm)
    }

    /// RFC 8291's key derivation on aws-lc-rs.
    fn aws_lc_ikm(&self, shared: &[u8], as_public: &[u8]) -> [u8; 32] {
        use aws_lc_rs::hkdf;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, self.ua.auth().as_bytes()).extract(shared);
        let info: [&[u8]; 3] = [
            b"WebPush: info\0",
            self.ua.public_key().as_bytes(),
            as_public,
        ];
        let mut ikm = [0u8; 32];
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut ikm))
            .expect("hkdf");
        ikm
    }

    /// RFC 8188's content encryption on aws-lc-rs.
    fn aws_lc_seal(&self, as_public: &[u8], ikm: &[u8; 32]) -> Vec<u8> {
        use aws_lc_rs::{aead, hkdf, rand};
        let mut salt = [0u8; 16];
        rand::SecureRandom::fill(&rand::SystemRandom::new(), &mut salt).expect("rng");
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(&[b"Content-Encoding: aes128gcm\0"], &aead::AES_128_GCM)
            .and_then(|okm| okm.fill(&mut cek))
            .expect("hkdf");
        prk.expand(&[b"Content-Encoding: nonce\0"], Len12)
            .and_then(|okm| okm.fill(&mut nonce))
            .expect("hkdf");
        let mut out = Vec::with_capacity(86 + self.plaintext.len() + 17);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&4096u32.to_be_bytes());
        out.push(65);
        out.extend_from_slice(as_public);
        out.extend_from_slice(&self.plaintext);
        out.push(2);
        let key =
            aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).expect("key"));
        let tag = key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                &mut out[86..],
            )
            .expect("seal");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// `ece` 2.4 (OpenSSL backend): its `encrypt` draws its own key and salt.
    #[cfg(feature = "compare")]
    pub fn ece_encrypt(&self) -> Vec<u8> {
        ece::encrypt(
            self.ua.public_key().as_bytes(),
            self.ua.auth().as_bytes(),
            &self.plaintext,
        )
        .expect("ece")
    }

    /// `ece` 2.4 decryption.
    #[cfg(feature = "compare")]
    pub fn ece_decrypt(&self) -> Vec<u8> {
        let components = ece::EcKeyComponents::new(
            self.ua.private_key().as_bytes().to_vec(),
            self.ua.public_key().as_bytes().to_vec(),
        );
        ece::decrypt(&components, self.ua.auth().as_bytes(), &self.body).expect("ece")
    }

    /// `web-push-native` 0.5 (p256 0.13): its `encrypt` takes the message by value.
    #[cfg(feature = "compare")]
    pub fn web_push_native_encrypt(&self) -> Vec<u8> {
        let auth = web_push_native::Auth::clone_from_slice(self.ua.auth().as_bytes());
        web_push_native::encrypt(self.plaintext.clone(), &self.ua_p256, &auth)
            .expect("web-push-native")
    }

    /// `web-push-native` 0.5 decryption.
    #[cfg(feature = "compare")]
    pub fn web_push_native_decrypt(&self) -> Vec<u8> {
        let auth = web_push_native::Auth::clone_from_slice(self.ua.auth().as_bytes());
        web_push_native::decrypt(self.body.clone(), &self.ua_secret, &auth)
            .expect("web-push-native")
    }
}

/// A 12-octet HKDF output length for aws-lc-rs.
struct Len12;

impl aws_lc_rs::hkdf::KeyType for Len12 {
    fn len(&self) -> usize {
        12
    }
}

/// One named operation of a comparison.
pub type Op<'a> = (&'static str, Box<dyn Fn() -> Vec<u8> + 'a>);

/// This process's resident memory in KiB (Linux; 0 elsewhere).
pub fn resident_kib() -> u64 {
    resident_kib_of("self")
}

/// Resident memory of process `pid` (or `self`) in KiB, from `/proc` (0 where it cannot
/// be read).
pub fn resident_kib_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The value at quantile `p` (0 to 1) of `sorted`, nearest rank; zero when empty.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(index.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The median of `values` (the upper one of an even count); zero when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Registers one criterion group of `ops`, each counted as one element per call.
pub fn bench_group(c: &mut criterion::Criterion, name: &str, ops: &[Op<'_>]) {
    let mut group = c.benchmark_group(name);
    group.throughput(criterion::Throughput::Elements(1));
    for (op_name, op) in ops {
        group.bench_function(*op_name, |b| b.iter(|| std::hint::black_box(op())));
    }
    group.finish();
}

/// Every encryption compared: ours on each provider, each floor, each other crate.
pub fn encrypt_ops(f: &Fixture) -> Vec<Op<'_>> {
    let mut ops: Vec<Op<'_>> = vec![
        (
            "ours/rustcrypto",
            Box::new(|| f.ours_encrypt(Provider::RustCrypto)),
        ),
        (
            "ours/aws-lc-rs",
            Box::new(|| f.ours_encrypt(Provider::AwsLcRs)),
        ),
        (
            "floor/rustcrypto",
            Box::new(|| f.floor_rustcrypto_encrypt()),
        ),
        (
            "floor/rustcrypto, p256 0.13",
            Box::new(|| f.floor_rustcrypto_on(P256Floor::P256_0_13)),
        ),
        (
            "floor/rustcrypto, p256 0.14",
            Box::new(|| f.floor_rustcrypto_on(P256Floor::P256_0_14)),
        ),
        ("floor/aws-lc-rs", Box::new(|| f.floor_aws_lc_encrypt())),
        (
            "floor/aws-lc-rs, our scalar",
            Box::new(|| f.floor_aws_lc_scalar_encrypt()),
        ),
    ];
    ops.extend(other_crates(f, Direction::Encrypt));
    ops
}

/// The two P-256 multiplications a push costs, on each p256 release and on aws-lc: the
/// fixed-base one (the ephemeral public key; VAPID signing's too) and the variable-base
/// one (the shared secret). Each ends in affine coordinates, as the encoding needs.
pub fn p256_ops(f: &Fixture) -> Vec<Op<'_>> {
    use p256_basepoint::elliptic_curve::PrimeField;
    use p256_basepoint::elliptic_curve::group::Group;
    use p256_basepoint::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
    let bytes: [u8; 32] = f.ua_secret.to_bytes().into();
    let scalar = p256_basepoint::Scalar::from_repr(bytes.into()).expect("scalar");
    let peer = p256_basepoint::ProjectivePoint::from(
        p256_basepoint::AffinePoint::from_sec1_bytes(f.ua.public_key().as_bytes()).expect("point"),
    );
    vec![
        (
            "fixed-base/p256 0.13",
            Box::new(|| {
                f.ua_secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec()
            }),
        ),
        (
            "fixed-base/p256 0.14 table",
            Box::new(move || {
                p256_basepoint::ProjectivePoint::mul_by_generator(&scalar)
                    .to_affine()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec()
            }),
        ),
        (
            "variable-base/p256 0.13",
            Box::new(|| {
                p256::ecdh::diffie_hellman(f.ua_secret.to_nonzero_scalar(), f.ua_p256.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }),
        ),
        (
            "variable-base/p256 0.14",
            Box::new(move || {
                (peer * scalar)
                    .to_affine()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec()
            }),
        ),
        (
            "fixed-base/aws-lc-rs, with its key check",
            Box::new(move || {
                use aws_lc_rs::agreement;
                agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &bytes)
                    .expect("scalar")
                    .compute_public_key()
                    .expect("public key")
                    .as_ref()
                    .to_vec()
            }),
        ),
    ]
}

/// Every decryption compared.
pub fn decrypt_ops(f: &Fixture) -> Vec<Op<'_>> {
    let mut ops: Vec<Op<'_>> = vec![
        (
            "ours/rustcrypto",
            Box::new(|| f.ours_decrypt(Provider::RustCrypto)),
        ),
        (
            "ours/aws-lc-rs",
            Box::new(|| f.ours_decrypt(Provider::AwsLcRs)),
        ),
        (
            "floor/rustcrypto",
            Box::new(|| f.floor_rustcrypto_decrypt()),
        ),
    ];
    ops.extend(other_crates(f, Direction::Decrypt));
    ops
}

/// Which half of a comparison to build.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Encrypt,
    Decrypt,
}

/// The popular crates' operations, present only with the `compare` feature.
#[cfg(feature = "compare")]
fn other_crates(f: &Fixture, direction: Direction) -> Vec<Op<'_>> {
    match direction {
        Direction::Encrypt => vec![
            ("ece-2.4/openssl", Box::new(|| f.ece_encrypt())),
            (
                "web-push-native-0.5",
                Box::new(|| f.web_push_native_encrypt()),
            ),
        ],
        Direction::Decrypt => vec![
            ("ece-2.4/openssl", Box::new(|| f.ece_decrypt())),
            (
                "web-push-native-0.5",
                Box::new(|| f.web_push_native_decrypt()),
            ),
        ],
    }
}

/// Without the `compare` feature there is nothing else to compare.
#[cfg(not(feature = "compare"))]
fn other_crates(_f: &Fixture, _direction: Direction) -> Vec<Op<'_>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every workload must produce a body our decoder accepts, or the comparison is void.
    #[test]
    fn every_encryption_is_a_valid_message() {
        let f = Fixture::new(300);
        for (name, op) in encrypt_ops(&f) {
            let body = op();
            assert_eq!(
                decrypt_with(Provider::RustCrypto, &f.ua, &body).unwrap(),
                f.plaintext,
                "{name}"
            );
        }
        for (name, op) in decrypt_ops(&f) {
            assert_eq!(op(), f.plaintext, "{name}");
        }
    }

    /// The multiplications compared compute the same points.
    #[test]
    fn every_multiplication_agrees() {
        let f = Fixture::new(10);
        let out: Vec<Vec<u8>> = p256_ops(&f).iter().map(|(_, op)| op()).collect();
        let [fixed_13, fixed_14, variable_13, variable_14, fixed_aws] = out.as_slice() else {
            panic!("five operations");
        };
        assert_eq!(fixed_13, fixed_14);
        assert_eq!(fixed_13, fixed_aws);
        assert_eq!(fixed_13.as_slice(), f.ua.public_key().as_bytes());
        assert_eq!(variable_13.as_slice(), &variable_14[1..33]);
    }
}
