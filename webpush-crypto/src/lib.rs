//! Web Push message encryption without I/O: RFC 8291 over the RFC 8188 `aes128gcm`
//! content coding.
//!
//! Bytes in, bytes out. Randomness is an argument (any [`rand_core::CryptoRngCore`]),
//! and every encryption has a deterministic twin for known-answer tests. The crate
//! never opens a socket or reads a clock.
//!
//! * [`Encryptor`] encrypts a message for a subscription's [`SubscriptionKeys`].
//! * [`decrypt`] decrypts it as the user agent would, with [`UaKeys`].
//! * [`ece`] is the generic RFC 8188 coding (any key, key id, record size, records).
//! * [`Provider`] picks the cryptography: pure-Rust RustCrypto, or aws-lc-rs
//!   (feature `aws-lc-rs`, faster: see the README's performance section).
//!
//! ```
//! use webpush_crypto::{Encryptor, SubscriptionKeys, UaKeys, decrypt};
//!
//! let mut rng = rand_core::OsRng;
//! // The browser subscribes and hands the server its keys...
//! let browser = UaKeys::generate(&mut rng)?;
//! let keys = SubscriptionKeys::from_base64url(
//!     &browser.public_key().to_base64url(),
//!     &browser.auth().to_base64url(),
//! )?;
//! // ...the server encrypts a notification for it...
//! let body = Encryptor::new().encrypt(&keys, b"You have mail", &mut rng)?;
//! // ...and only the browser can read it.
//! assert_eq!(decrypt(&browser, &body)?, b"You have mail");
//! # Ok::<(), webpush_crypto::Error>(())
//! ```

#![forbid(unsafe_code)]
// Code that serves never panics on its input: a failed unwrap or index is for tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod base64url;
pub mod ece;
mod endpoint;
mod ephemeral;
mod error;
pub mod keys;
pub mod message;
pub mod padding;
mod provider;
mod request;
mod response;
#[cfg(feature = "serde")]
mod serde_impls;
mod subscription;
pub mod vapid;

pub use ece::RecordSize;
pub use endpoint::{Endpoint, Host, MAX_ENDPOINT_LEN, Origin};
pub use ephemeral::{Agreement, EphemeralKey, MadeAhead};
pub use error::Error;
pub use keys::{
    AUTH_SECRET_LEN, AuthSecret, PRIVATE_KEY_LEN, PUBLIC_KEY_LEN, PrivateKey, PublicKey, SALT_LEN,
    Salt, SubscriptionKeys, UaKeys,
};
pub use message::{Encryptor, decrypt, decrypt_with};
pub use padding::Padding;
pub use provider::Provider;
/// The RNG traits this crate takes, re-exported so callers need not match versions.
pub use rand_core;
pub use request::{MAX_TOPIC_LEN, PushRequest, Topic, Ttl, Urgency};
pub use response::{MAX_RETRY_AFTER, Outcome, RetryAfter};
pub use subscription::Subscription;
pub use vapid::unix_secs;
pub use vapid::{
    Subject, TokenCache, VapidCredentials, VapidKey, VapidSigner, VapidToken, VapidVerifier,
    VerifiedToken,
};

// The README's example is compiled and run with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// So is the workspace README's, which shows the whole request path.
#[doc = include_str!("../../README.md")]
#[cfg(all(doctest, feature = "serde"))]
pub struct WorkspaceReadmeDoctests;
