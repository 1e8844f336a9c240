//! VAPID (RFC 8292): application-server keys, signed tokens, a per-audience token
//! cache, and verification.
//!
//! A mail server holds one [`VapidKey`], announces its public key (the IMAP `* VAPID`
//! response, a browser's `applicationServerKey`), and sends every push request with
//! `Authorization: vapid t=<jwt>, k=<key>`. A [`TokenCache`] signs one token per push
//! service every few hours; `now` is always an argument.
//!
//! Tokens are signed through this crate's [`Provider`](crate::Provider) with the key
//! held parsed: `jsonwebtoken` 11 re-parses its key from DER for every token, which
//! costs 2-3x the signature itself in this project's benches. Verification goes through
//! `jsonwebtoken`, with the backend named explicitly.

mod cache;
mod header;
mod key;
mod token;
mod verify;

use std::time::SystemTime;

pub use cache::{DEFAULT_MARGIN, DEFAULT_MAX_AUDIENCES, TokenCache};
pub use header::{MAX_AUTHORIZATION_LEN, VapidCredentials};
pub use key::{MAX_KEY_FILE_LEN, VapidKey};
pub use token::{DEFAULT_VALIDITY, MAX_VALIDITY, MIN_VALIDITY, Subject, VapidSigner, VapidToken};
pub use verify::{DEFAULT_LEEWAY, VapidVerifier, VerifiedToken};

use crate::Error;

/// Whole seconds since the Unix epoch, the unit of VAPID's `exp`. A clock before 1970
/// is an error: any time made from it would be wrong.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// assert_eq!(webpush_crypto::unix_secs(SystemTime::UNIX_EPOCH + Duration::from_millis(1999)), Ok(1));
/// assert!(webpush_crypto::unix_secs(SystemTime::UNIX_EPOCH - Duration::from_secs(1)).is_err());
/// ```
pub fn unix_secs(now: SystemTime) -> Result<u64, Error> {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::ClockBeforeEpoch)
}
