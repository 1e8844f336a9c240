//! The Apple Push Notification service (APNs) provider API, without I/O: requests to
//! send over the caller's HTTP/2 client, payloads, responses mapped to what to do
//! next, provider tokens and certificate topics.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use apns_proto::{Action, DeviceToken, Environment, MailPush, Outcome, Topic};
//!
//! // xapsd's last step: iOS Mail's push for one account.
//! let topic = Topic::try_from("com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6")?;
//! let mut push = MailPush::new(Environment::Production, &topic);
//! let token = DeviceToken::try_from("73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF")?;
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let request = push.request(&token, "55FAD99D-748E-44DA-8A7F-91D3478CAABD", now, None)?;
//! // The token as the device sent it (APNs reads hex in either case).
//! assert_eq!(request.uri().path(), "/3/device/73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF");
//!
//! // ... the server sends it and reads the answer:
//! let outcome = Outcome::from_parts(410, None, None, br#"{"reason":"Unregistered"}"#);
//! assert_eq!(outcome.action(), Action::DropToken { since: None });
//! # Ok::<(), Box<dyn std::error::Error>>(())
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

#[cfg(feature = "certificate")]
mod certificate;
mod error;
pub mod payload;
#[cfg(any(
    feature = "rust-crypto",
    feature = "aws-lc-rs",
    feature = "certificate"
))]
mod pem;
mod request;
mod response;
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
mod token;
mod types;

#[cfg(feature = "certificate")]
pub use certificate::{CertificateError, CertificateInfo};
pub use error::{RequestError, TokenError};
pub use payload::Payload;
pub use request::{MAIL_TTL, MailPush, Notification};
pub use response::{Action, MAX_BODY_LEN, Outcome, Reason};
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
pub use token::{DEFAULT_REFRESH, MAX_AGE, MIN_REFRESH, ProviderKey, ProviderTokens};
pub use types::{
    ApnsId, CollapseId, DeviceToken, Environment, Expiration, Priority, PushType, Server, Topic,
    unix_secs,
};

// The README's example is compiled and run with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
