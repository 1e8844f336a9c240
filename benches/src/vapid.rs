//! VAPID and whole-request workloads: a cached header, a freshly signed one, the raw
//! ECDSA floor of each provider, `jsonwebtoken`'s per-token path, and complete push
//! requests beside `web-push-native`'s and `web-push`'s builders.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey};
use p256::pkcs8::EncodePrivateKey as _;
use rand_core::OsRng;
use webpush_crypto::{
    Encryptor, Origin, Provider, PushRequest, Subject, Subscription, TokenCache, Ttl, UaKeys,
    Urgency, VapidKey, VapidSigner, base64url,
};

use crate::Op;

/// The contact every token carries.
pub const SUB: &str = "mailto:postmaster@mail.example";
/// The endpoint every request goes to.
pub const ENDPOINT: &str = "https://updates.push.example.net/wpush/v2/gAAAAABlxVn3";

/// One VAPID key in every form the compared code wants.
pub struct VapidFixture {
    /// Our signers, one per provider (RustCrypto first).
    pub signers: Vec<VapidSigner>,
    /// Token caches, one per provider, already holding a token.
    pub caches: Vec<RefCell<TokenCache>>,
    /// The audience.
    pub origin: Origin,
    /// The private key as PKCS#8 DER, which `jsonwebtoken` takes.
    pkcs8: Vec<u8>,
    /// The raw private scalar, base64url.
    pub raw: String,
    /// A typical JWS signing input (header.claims).
    signing_input: Vec<u8>,
    p256_key: p256::ecdsa::SigningKey,
    aws_key: aws_lc_rs::signature::EcdsaKeyPair,
    /// The subscription and plaintext of whole-request benches.
    pub subscription: Subscription,
    /// The user agent behind `subscription`.
    pub ua: UaKeys,
    /// The message of whole-request benches.
    pub plaintext: Vec<u8>,
}

/// A fixed `now`, so cached tokens stay fresh for the whole run.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

impl VapidFixture {
    /// A fresh key, subscription and a plaintext of `len` octets.
    pub fn new(len: usize) -> Self {
        let key = VapidKey::generate(&mut OsRng).expect("key");
        let raw = key.to_base64url().to_string();
        let origin = Origin::new(ENDPOINT).expect("origin");
        let signer = |provider| {
            let key = VapidKey::from_base64url(&raw)
                .and_then(|k| k.with_provider(provider))
                .expect("key");
            VapidSigner::new(key, Subject::new(SUB).expect("sub"))
        };
        let providers = [Provider::RustCrypto, Provider::AwsLcRs];
        let signers: Vec<VapidSigner> = providers.into_iter().map(signer).collect();
        let caches = providers
            .into_iter()
            .map(|p| {
                let mut cache = TokenCache::new(signer(p));
                cache.token(&origin, now()).expect("token");
                RefCell::new(cache)
            })
            .collect();
        let secret = p256::SecretKey::from_slice(&base64url::decode(&raw, "key").expect("raw"))
            .expect("scalar");
        let pkcs8 = secret.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec();
        let public = key.public_key().as_bytes().to_vec();
        let aws_key = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            secret.to_bytes().as_slice(),
            &public,
        )
        .expect("aws-lc key");
        let token = signers[0].sign(&origin, now()).expect("token");
        let jwt = token.jwt();
        let signing_input = jwt.as_bytes()[..jwt.rfind('.').expect("dot")].to_vec();
        let ua = UaKeys::generate(&mut OsRng).expect("ua");
        let subscription =
            Subscription::new(ENDPOINT.parse().expect("endpoint"), ua.subscription_keys());
        Self {
            signers,
            caches,
            origin,
            pkcs8,
            raw,
            signing_input,
            p256_key: p256::ecdsa::SigningKey::from(&secret),
            aws_key,
            subscription,
            ua,
            plaintext: vec![0x61; len],
        }
    }

    /// `jsonwebtoken` 11's per-token path for ES256 with `provider`: build the signer
    /// from the PKCS#8 key, serialize and encode header and claims, sign.
    fn jsonwebtoken(&self, provider: &'static jsonwebtoken::crypto::CryptoProvider) -> Vec<u8> {
        let header = jsonwebtoken::Header::new(Algorithm::ES256);
        let claims = serde_json::json!({
            "aud": self.origin.as_str(),
            "exp": 1_800_043_200u64,
            "sub": SUB,
        });
        let mut message = base64url::encode(&serde_json::to_vec(&header).expect("json"));
        message.push('.');
        message.push_str(&base64url::encode(
            &serde_json::to_vec(&claims).expect("json"),
        ));
        let signer =
            (provider.signer_factory)(&Algorithm::ES256, &EncodingKey::from_ec_der(&self.pkcs8))
                .expect("signer");
        let signature = signer.try_sign(message.as_bytes()).expect("signature");
        message.push('.');
        message.push_str(&base64url::encode(&signature));
        message.into_bytes()
    }

    fn cached(&self, i: usize) -> Vec<u8> {
        let mut cache = self.caches[i].borrow_mut();
        black_box(
            cache
                .token(&self.origin, now())
                .expect("token")
                .authorization()
                .len(),
        );
        Vec::new()
    }

    fn request(&self, i: usize, provider: Provider) -> Vec<u8> {
        let mut cache = self.caches[i].borrow_mut();
        let token = cache.token(&self.origin, now()).expect("token");
        PushRequest::new(&self.subscription, Ttl::from_secs(3600))
            .urgency(Urgency::High)
            .vapid(token)
            .build(
                &Encryptor::new().with_provider(provider),
                &self.plaintext,
                &mut OsRng,
            )
            .expect("request")
            .into_body()
    }

    fn encrypt_only(&self, provider: Provider) -> Vec<u8> {
        Encryptor::new()
            .with_provider(provider)
            .encrypt(&self.subscription.keys, &self.plaintext, &mut OsRng)
            .expect("encryption")
    }

    /// `web-push-native` 0.5's builder: it signs a VAPID token per request.
    #[cfg(feature = "compare")]
    fn web_push_native(&self) -> Vec<u8> {
        use web_push_native::jwt_simple::algorithms::ES256KeyPair;
        thread_local! {
            static KEY: RefCell<Option<ES256KeyPair>> = const { RefCell::new(None) };
        }
        KEY.with(|slot| {
            let mut slot = slot.borrow_mut();
            let key = slot.get_or_insert_with(|| {
                ES256KeyPair::from_bytes(&base64url::decode(&self.raw, "key").expect("raw"))
                    .expect("jwt-simple key")
            });
            let ua =
                web_push_native::p256::PublicKey::from_sec1_bytes(self.ua.public_key().as_bytes())
                    .expect("point");
            let auth = web_push_native::Auth::clone_from_slice(self.ua.auth().as_bytes());
            web_push_native::WebPushBuilder::new(ENDPOINT.parse().expect("uri"), ua, auth)
                .with_vapid(key, SUB)
                .build(self.plaintext.clone())
                .expect("web-push-native")
                .into_body()
        })
    }

    /// `web-push` 0.11's message builder with a VAPID signature built per message, as
    /// its documentation shows.
    #[cfg(feature = "compare")]
    fn web_push(&self) -> Vec<u8> {
        let sub = web_push::SubscriptionInfo::new(
            ENDPOINT.to_owned(),
            self.ua.public_key().to_base64url(),
            self.ua.auth().to_base64url(),
        );
        let mut signature =
            web_push::VapidSignatureBuilder::from_base64(&self.raw, &sub).expect("vapid key");
        signature.add_claim("sub", SUB);
        let mut builder = web_push::WebPushMessageBuilder::new(&sub);
        builder.set_payload(web_push::ContentEncoding::Aes128Gcm, &self.plaintext);
        builder.set_vapid_signature(signature.build().expect("signature"));
        builder.set_ttl(3600);
        builder
            .build()
            .expect("web-push")
            .payload
            .map(|p| p.content)
            .unwrap_or_default()
    }
}

/// The VAPID header per message: cached, signed each time, the raw signature floor,
/// and `jsonwebtoken`.
pub fn vapid_ops(f: &VapidFixture) -> Vec<Op<'_>> {
    vec![
        ("cached/rustcrypto", Box::new(|| f.cached(0))),
        ("cached/aws-lc-rs", Box::new(|| f.cached(1))),
        (
            "signed/rustcrypto",
            Box::new(|| {
                f.signers[0]
                    .sign(&f.origin, now())
                    .expect("token")
                    .jwt()
                    .as_bytes()
                    .to_vec()
            }),
        ),
        (
            "signed/aws-lc-rs",
            Box::new(|| {
                f.signers[1]
                    .sign(&f.origin, now())
                    .expect("token")
                    .jwt()
                    .as_bytes()
                    .to_vec()
            }),
        ),
        (
            "floor ECDSA/rustcrypto",
            Box::new(|| {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = f.p256_key.sign(&f.signing_input);
                s.to_bytes().to_vec()
            }),
        ),
        (
            "floor ECDSA/aws-lc-rs",
            Box::new(|| {
                f.aws_key
                    .sign(&aws_lc_rs::rand::SystemRandom::new(), &f.signing_input)
                    .expect("signature")
                    .as_ref()
                    .to_vec()
            }),
        ),
        (
            "jsonwebtoken/rust_crypto",
            Box::new(|| f.jsonwebtoken(&jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER)),
        ),
        (
            "jsonwebtoken/aws_lc_rs",
            Box::new(|| f.jsonwebtoken(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER)),
        ),
    ]
}

/// A whole request per message (encrypt + cached VAPID + headers) beside the
/// encryption alone and the other crates' builders.
pub fn request_ops(f: &VapidFixture) -> Vec<Op<'_>> {
    let mut ops: Vec<Op<'_>> = vec![
        (
            "request/rustcrypto",
            Box::new(|| f.request(0, Provider::RustCrypto)),
        ),
        (
            "request/aws-lc-rs",
            Box::new(|| f.request(1, Provider::AwsLcRs)),
        ),
        (
            "encrypt only/rustcrypto",
            Box::new(|| f.encrypt_only(Provider::RustCrypto)),
        ),
        (
            "encrypt only/aws-lc-rs",
            Box::new(|| f.encrypt_only(Provider::AwsLcRs)),
        ),
    ];
    ops.extend(other_builders(f));
    ops
}

#[cfg(feature = "compare")]
fn other_builders(f: &VapidFixture) -> Vec<Op<'_>> {
    vec![
        ("web-push-native-0.5", Box::new(|| f.web_push_native())),
        ("web-push-0.11/openssl", Box::new(|| f.web_push())),
    ]
}

#[cfg(not(feature = "compare"))]
fn other_builders(_f: &VapidFixture) -> Vec<Op<'_>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use webpush_crypto::{VapidVerifier, decrypt};

    /// Every token-producing workload yields a token that verifies, and every request
    /// body decrypts, or the comparison is void.
    #[test]
    fn every_workload_is_valid() {
        let f = VapidFixture::new(100);
        let verifier = VapidVerifier::new(f.origin.clone());
        let k = f.signers[0].key().public_key().to_base64url();
        for (name, op) in vapid_ops(&f) {
            let out = op();
            if name.starts_with("signed") || name.starts_with("jsonwebtoken") {
                let header = format!("vapid t={}, k={k}", String::from_utf8(out).expect("utf-8"));
                verifier
                    .verify(&header, now())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            } else if name.starts_with("floor") {
                assert_eq!(out.len(), 64, "{name}");
            }
        }
        for (name, op) in request_ops(&f) {
            assert_eq!(decrypt(&f.ua, &op()).expect(name), f.plaintext, "{name}");
        }
    }
}
