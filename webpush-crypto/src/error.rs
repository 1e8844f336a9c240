//! The error type of this crate.

/// Everything that can go wrong while importing keys, encoding and decoding `aes128gcm`
/// bodies, signing and verifying VAPID tokens, and building push requests.
///
/// Each variant names the fault in words a server operator can act on; none of them
/// carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A base64url value contained characters outside the URL-safe alphabet.
    #[error("{what} is not valid base64url")]
    InvalidBase64 {
        /// Which value was being decoded.
        what: &'static str,
    },
    /// A public key was not 65 octets long.
    #[error("P-256 public key must be 65 octets (uncompressed point), got {len}")]
    PublicKeyLength {
        /// The length received.
        len: usize,
    },
    /// A public key did not start with the uncompressed-point marker `0x04`.
    #[error("P-256 public key must be an uncompressed point (first octet 0x04), got 0x{tag:02x}")]
    PublicKeyNotUncompressed {
        /// The first octet received.
        tag: u8,
    },
    /// A public key's coordinates do not lie on the P-256 curve.
    #[error("P-256 public key is not a point on the curve")]
    PublicKeyNotOnCurve,
    /// A subscription's auth secret was not 16 octets long.
    #[error("auth secret must be 16 octets, got {len}")]
    AuthSecretLength {
        /// The length received.
        len: usize,
    },
    /// A private key was not 32 octets long.
    #[error("P-256 private key must be 32 octets, got {len}")]
    PrivateKeyLength {
        /// The length received.
        len: usize,
    },
    /// A private key was zero or not below the group order.
    #[error("P-256 private key is out of range (zero or not below the group order)")]
    PrivateKeyOutOfRange,
    /// A salt was not 16 octets long.
    #[error("salt must be 16 octets, got {len}")]
    SaltLength {
        /// The length received.
        len: usize,
    },
    /// A record size below the protocol minimum was requested or received.
    #[error("record size {rs} is below the minimum of {min}")]
    RecordSizeTooSmall {
        /// The record size.
        rs: u32,
        /// The smallest record size allowed here.
        min: u32,
    },
    /// A key id longer than the 255 octets the header can carry.
    #[error("key id is {len} octets; the aes128gcm header holds at most 255")]
    KeyIdTooLong {
        /// The length requested.
        len: usize,
    },
    /// The plaintext (with the padding the policy demands) does not fit the message.
    #[error(
        "plaintext of {len} octets exceeds the limit of {limit} octets for this record size and padding"
    )]
    PlaintextTooLong {
        /// The plaintext length.
        len: usize,
        /// The largest plaintext accepted with these settings.
        limit: usize,
    },
    /// A padding policy asks for more octets than one record can hold.
    #[error("padding to {target} octets exceeds the {capacity} octets this record size can carry")]
    PaddingTooLarge {
        /// The padded length asked for.
        target: usize,
        /// The most the record can hold.
        capacity: usize,
    },
    /// A body shorter than the fixed 21-octet `aes128gcm` header.
    #[error("body of {len} octets is shorter than the 21-octet aes128gcm header")]
    HeaderTruncated {
        /// The body length.
        len: usize,
    },
    /// The header announces a key id longer than the body.
    #[error("header announces a {idlen}-octet key id but only {available} octets follow")]
    KeyIdTruncated {
        /// The announced key id length.
        idlen: usize,
        /// The octets left in the body.
        available: usize,
    },
    /// A Web Push body whose key id is not the sender's 65-octet public key.
    #[error("Web Push key id must be the sender's 65-octet public key, got {len} octets")]
    KeyIdLength {
        /// The key id length received.
        len: usize,
    },
    /// The header is followed by no record at all.
    #[error("body has a header but no encrypted record")]
    NoRecords,
    /// A record too short to hold a delimiter and an authentication tag.
    #[error("record {index} is {len} octets, shorter than the 17 octets of delimiter and tag")]
    RecordTruncated {
        /// Index of the record, from 0.
        index: u64,
        /// Its length.
        len: usize,
    },
    /// A Web Push body longer than one record.
    #[error(
        "Web Push messages carry exactly one record, but {len} octets follow the header with a record size of {rs}"
    )]
    MultipleRecords {
        /// Octets after the header.
        len: usize,
        /// The header's record size.
        rs: u32,
    },
    /// Authentication failed: wrong keys, or the body was altered or truncated.
    #[error("record {index} failed authentication: wrong keys, or the body was corrupted")]
    Authentication {
        /// Index of the record, from 0.
        index: u64,
    },
    /// A decrypted record contained only zeros.
    #[error("record {index} has no padding delimiter")]
    MissingDelimiter {
        /// Index of the record, from 0.
        index: u64,
    },
    /// A record ended with the wrong padding delimiter.
    #[error("record {index} ends with delimiter 0x{found:02x} where 0x{expected:02x} was required")]
    BadDelimiter {
        /// Index of the record, from 0.
        index: u64,
        /// The delimiter octet found.
        found: u8,
        /// The delimiter this record position requires (0x01 before the last record, 0x02 last).
        expected: u8,
    },
    /// Elliptic-curve key agreement failed inside the crypto provider.
    #[error("ECDH key agreement failed in the crypto provider")]
    KeyAgreement,
    /// The random number generator failed or produced no usable key.
    #[error("random number generator failed")]
    Rng,
    /// The crypto provider failed to produce a signature.
    #[error("ECDSA signing failed in the crypto provider")]
    Signing,
    /// A push endpoint or origin that is not an absolute `https` URL with a host.
    #[error("push endpoint is invalid: {reason}")]
    InvalidEndpoint {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A VAPID `sub` claim that is not a `mailto:` or `https:` contact.
    #[error("VAPID subject (contact) is invalid: {reason}")]
    InvalidSubject {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A VAPID private key in no format this crate reads, or not a P-256 key.
    #[error("VAPID private key cannot be read: {reason}")]
    InvalidVapidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A token lifetime outside what RFC 8292 allows, or a cache margin that would
    /// renew every token at once.
    #[error("VAPID token lifetime is invalid: {reason}")]
    InvalidValidity {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `now` before 1970, which no token can be dated from.
    #[error("the clock reads a time before 1970")]
    ClockBeforeEpoch,
    /// An `Authorization` header that is not `vapid t=<jwt>, k=<key>`.
    #[error("Authorization header is not a valid vapid credential: {reason}")]
    MalformedAuthorization {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A VAPID JWT that is not a compact ES256 JWS with the claims RFC 8292 requires.
    #[error("VAPID token is malformed: {reason}")]
    MalformedToken {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token's signature does not verify with the key in the header.
    #[error("VAPID token signature does not verify with the given key")]
    BadSignature,
    /// The token's `aud` is not the origin of the push resource.
    #[error("VAPID token is for audience {found:?}, not {expected:?}")]
    AudienceMismatch {
        /// The origin the token should name.
        expected: String,
        /// The `aud` it names.
        found: String,
    },
    /// The token's `exp` has passed.
    #[error("VAPID token expired at {exp} (Unix time), now is {now}")]
    TokenExpired {
        /// The token's `exp`.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// The token's `exp` is more than 24 hours ahead (RFC 8292 §2).
    #[error("VAPID token expires at {exp} (Unix time), more than 24 hours after {now}")]
    ExpiryTooFar {
        /// The token's `exp`.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// RFC 8292 §3: the VAPID key must differ from the subscription's ECDH key.
    #[error("the VAPID key is the subscription's own p256dh key; a push service refuses that")]
    VapidKeyIsSubscriptionKey,
    /// An [`Agreement`](crate::Agreement) made ahead was handed to a request whose
    /// subscription keys are not the ones it was made with (another subscription's, or
    /// the same subscription's since it changed them): the user agent could not decrypt
    /// the message.
    #[error("the key made ahead was agreed with other keys than the subscription's")]
    AgreementForOtherKeys,
    /// A `Topic` longer than 32 characters or outside the base64url alphabet.
    #[error("Topic is invalid: {reason}")]
    InvalidTopic {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `PushSubscription` JSON document that cannot be read.
    #[error("push subscription is invalid: {reason}")]
    InvalidSubscription {
        /// What is wrong with it.
        reason: String,
    },
    /// An `Urgency` other than `very-low`, `low`, `normal` or `high`.
    #[error("Urgency must be very-low, low, normal or high")]
    InvalidUrgency,
}
