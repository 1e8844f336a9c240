//! Why a request cannot be built, a response not read, or a token not made.

/// A request APNs would refuse, refused before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The device token is not even-length hex of a plausible length.
    #[error("device token is not even-length hex of 16 to 200 digits")]
    DeviceToken,
    /// The topic is empty, too long or not printable ASCII.
    #[error("apns-topic must be 1 to 255 printable ASCII characters")]
    Topic,
    /// The topic lacks the suffix APNs requires for the push type (`.voip`, ...).
    #[error("apns-topic must end in {suffix} for push type {push_type}")]
    TopicForPushType {
        /// The push type.
        push_type: &'static str,
        /// The suffix it needs.
        suffix: &'static str,
    },
    /// The collapse id is empty, over 64 octets or not valid in a header.
    #[error("apns-collapse-id must be 1 to 64 octets of header text")]
    CollapseId,
    /// The `apns-id` is not a UUID.
    #[error("apns-id must be a UUID (8-4-4-4-12 hex digits)")]
    ApnsId,
    /// The priority is one Apple refuses for the push type.
    #[error("priority {priority} is not allowed with push type {push_type}")]
    Priority {
        /// The push type.
        push_type: &'static str,
        /// The priority.
        priority: &'static str,
    },
    /// The payload is larger than APNs accepts for the push type.
    #[error("payload of {len} octets is over the {max}-octet limit")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not a JSON object (APNs wants `{"aps": ...}`), has a relevance
    /// score or volume outside 0 to 1, or a custom key `aps`.
    #[error(
        "payload is not a JSON object, a score or volume is outside 0 to 1, or a custom key is named aps"
    )]
    Payload,
    /// A server that is not `host[:port]`.
    #[error("an APNs server must be given as host[:port]")]
    Server,
    /// The clock reads before 1970, so no expiration or token time can be right.
    #[error("the system clock reads before 1970")]
    ClockBeforeEpoch,
}

/// A provider token that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The key is not a PKCS#8 P-256 private key in PEM (a `.p8` file) or DER.
    #[error("the signing key is not a PKCS#8 P-256 (.p8) private key")]
    Key,
    /// The key id or team id is not 10 ASCII letters and digits.
    #[error("{0} must be 10 ASCII letters or digits, as Apple issues them")]
    Id(&'static str),
    /// Signing failed.
    #[error("signing the provider token failed: {0}")]
    Sign(String),
    /// The refresh interval is outside Apple's 20 to 60 minutes.
    #[error("provider tokens must be refreshed after 20 to 60 minutes")]
    RefreshInterval,
    /// The clock reads before 1970: no token issued now would be accepted.
    #[error("the system clock reads before 1970")]
    ClockBeforeEpoch,
}
