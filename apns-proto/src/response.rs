//! What APNs answered, and what the sender does about it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::types::ApnsId;

/// The largest body read; APNs error bodies are a few dozen octets.
pub const MAX_BODY_LEN: usize = 4096;

/// A reason APNs gives for refusing a notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// 400: the collapse id is over 64 octets.
    BadCollapseId,
    /// 400: the token is invalid, or for the other environment.
    BadDeviceToken,
    /// 400: the expiration is invalid.
    BadExpirationDate,
    /// 400: the `apns-id` is not a UUID.
    BadMessageId,
    /// 400: the priority is invalid.
    BadPriority,
    /// 400: the topic is invalid.
    BadTopic,
    /// 400: the token does not belong to the topic.
    DeviceTokenNotForTopic,
    /// 400: a header was repeated.
    DuplicateHeaders,
    /// 400: the connection was idle too long.
    IdleTimeout,
    /// 400: the push type is invalid.
    InvalidPushType,
    /// 400: no device token in the path.
    MissingDeviceToken,
    /// 400: no topic where one is required.
    MissingTopic,
    /// 400: the payload is empty.
    PayloadEmpty,
    /// 400: pushing to this topic is not allowed.
    TopicDisallowed,
    /// 403: the certificate is invalid.
    BadCertificate,
    /// 403: the certificate is for the other environment.
    BadCertificateEnvironment,
    /// 403: the provider token is stale: make a new one.
    ExpiredProviderToken,
    /// 403: the action is not allowed.
    Forbidden,
    /// 403: the provider token is invalid, or its signature wrong.
    InvalidProviderToken,
    /// 403: neither a certificate nor a provider token was given.
    MissingProviderToken,
    /// 403: the token's key id is not the team's.
    UnrelatedKeyIdInToken,
    /// 404: the path is wrong.
    BadPath,
    /// 405: only POST is allowed.
    MethodNotAllowed,
    /// 410: the token expired.
    ExpiredToken,
    /// 410: the token is no longer active for the topic.
    Unregistered,
    /// 413: the payload is too large.
    PayloadTooLarge,
    /// 429: the provider token was refreshed too often.
    TooManyProviderTokenUpdates,
    /// 429: too many requests to this device.
    TooManyRequests,
    /// 500: APNs failed.
    InternalServerError,
    /// 503: APNs is unavailable.
    ServiceUnavailable,
    /// 503: the APNs server is shutting down.
    Shutdown,
    /// A reason this crate does not know yet, as sent.
    Other(String),
}

const REASONS: [(&str, Reason); 31] = [
    ("BadCollapseId", Reason::BadCollapseId),
    ("BadDeviceToken", Reason::BadDeviceToken),
    ("BadExpirationDate", Reason::BadExpirationDate),
    ("BadMessageId", Reason::BadMessageId),
    ("BadPriority", Reason::BadPriority),
    ("BadTopic", Reason::BadTopic),
    ("DeviceTokenNotForTopic", Reason::DeviceTokenNotForTopic),
    ("DuplicateHeaders", Reason::DuplicateHeaders),
    ("IdleTimeout", Reason::IdleTimeout),
    ("InvalidPushType", Reason::InvalidPushType),
    ("MissingDeviceToken", Reason::MissingDeviceToken),
    ("MissingTopic", Reason::MissingTopic),
    ("PayloadEmpty", Reason::PayloadEmpty),
    ("TopicDisallowed", Reason::TopicDisallowed),
    ("BadCertificate", Reason::BadCertificate),
    (
        "BadCertificateEnvironment",
        Reason::BadCertificateEnvironment,
    ),
    ("ExpiredProviderToken", Reason::ExpiredProviderToken),
    ("Forbidden", Reason::Forbidden),
    ("InvalidProviderToken", Reason::InvalidProviderToken),
    ("MissingProviderToken", Reason::MissingProviderToken),
    ("UnrelatedKeyIdInToken", Reason::UnrelatedKeyIdInToken),
    ("BadPath", Reason::BadPath),
    ("MethodNotAllowed", Reason::MethodNotAllowed),
    ("ExpiredToken", Reason::ExpiredToken),
    ("Unregistered", Reason::Unregistered),
    ("PayloadTooLarge", Reason::PayloadTooLarge),
    (
        "TooManyProviderTokenUpdates",
        Reason::TooManyProviderTokenUpdates,
    ),
    ("TooManyRequests", Reason::TooManyRequests),
    ("InternalServerError", Reason::InternalServerError),
    ("ServiceUnavailable", Reason::ServiceUnavailable),
    ("Shutdown", Reason::Shutdown),
];

impl Reason {
    /// Every reason Apple documents, as sent.
    pub fn documented() -> impl Iterator<Item = (&'static str, Reason)> {
        REASONS.into_iter()
    }

    /// The reason for a `reason` string; unknown ones are kept as [`Reason::Other`].
    pub fn parse(text: &str) -> Self {
        REASONS
            .iter()
            .find(|(name, _)| *name == text)
            .map_or_else(|| Reason::Other(text.to_owned()), |(_, r)| r.clone())
    }

    /// The string APNs sends.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Other(text) => text,
            known => REASONS
                .iter()
                .find(|(_, r)| r == known)
                .map_or("", |(name, _)| name),
        }
    }
}

/// What the sender does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Delivered to APNs.
    Delivered,
    /// 410: the token is gone. Remove its registrations made before `since`, when APNs
    /// learned so; a registration made after it is a device that came back and stays.
    /// Without a time, the time the answer arrived stands for it.
    DropToken {
        /// When the token stopped being valid, if APNs said.
        since: Option<SystemTime>,
    },
    /// 400 `BadDeviceToken` or `DeviceTokenNotForTopic`: APNs refused this token for
    /// this topic or environment. Count and report it, never delete on it: a sandbox
    /// token sent to production, or a wrong topic, gives this for every device, and
    /// deleting would wipe the registry over one configuration mistake.
    TokenRejected,
    /// Try again later with back-off (429, 5xx, an idle connection).
    Retry,
    /// The provider token is stale: make a new one, then retry.
    RenewProviderToken,
    /// The credentials or topic are wrong, or what answered is not APNs: an operator
    /// must fix the configuration; retrying will not help.
    FixConfiguration,
    /// The request is wrong: a bug in the sender; do not retry it.
    FixRequest,
}

/// APNs' answer to one request. Every answer reads as one: a body that is not APNs
/// JSON (a proxy's HTML page, nothing at all) leaves `reason` empty, and the action
/// then follows the status.
///
/// ```
/// use apns_proto::{Action, Outcome, Reason};
/// let outcome = Outcome::from_parts(410, Some("EC1BF194-B3B2-424A-89A9-5A918A6E7A9B"), None,
///     br#"{"reason":"Unregistered","timestamp":1700000000000}"#);
/// assert_eq!(outcome.reason, Some(Reason::Unregistered));
/// assert!(matches!(outcome.action(), Action::DropToken { since: Some(_) }));
///
/// let proxy = Outcome::from_parts(502, None, None, b"<html>Bad Gateway</html>");
/// assert_eq!(proxy.reason, None);
/// assert_eq!(proxy.action(), Action::Retry);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status.
    pub status: u16,
    /// `apns-id`: the notification's id (APNs makes one when the request had none).
    pub apns_id: Option<ApnsId>,
    /// `apns-unique-id`: a sandbox-only id for Apple's delivery log.
    pub unique_id: Option<String>,
    /// The body's `reason`; `None` for success and for a body without one.
    pub reason: Option<Reason>,
    /// The body's `timestamp` (410 only): when the token stopped being valid.
    pub timestamp: Option<SystemTime>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    reason: std::borrow::Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<u64>,
}

impl Outcome {
    /// Reads a response from its status, `apns-id` and `apns-unique-id` headers and
    /// body (of which at most [`MAX_BODY_LEN`] octets are read). Success needs no
    /// body; errors carry `{"reason": …}`. A malformed `apns-id`, a body that is not
    /// APNs JSON or a timestamp out of range are left out rather than failing the
    /// whole answer, which always has an [`action`](Self::action).
    pub fn from_parts(
        status: u16,
        apns_id: Option<&str>,
        unique_id: Option<&str>,
        body: &[u8],
    ) -> Self {
        let body = (status != 200 && body.len() <= MAX_BODY_LEN)
            .then(|| serde_json::from_slice::<Body<'_>>(body).ok())
            .flatten();
        let (reason, timestamp) = match body {
            None => (None, None),
            Some(body) => (
                Some(Reason::parse(&body.reason)),
                body.timestamp
                    .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
            ),
        };
        Self {
            status,
            apns_id: apns_id.and_then(|id| ApnsId::try_from(id).ok()),
            unique_id: unique_id
                .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
                .map(str::to_owned),
            reason,
            timestamp,
        }
    }

    /// Reads an `http::Response` as the caller's HTTP/2 client returns it.
    pub fn from_response<B: AsRef<[u8]>>(response: &http::Response<B>) -> Self {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        Self::from_parts(
            response.status().as_u16(),
            header("apns-id"),
            header("apns-unique-id"),
            response.body().as_ref(),
        )
    }

    /// What to do next: by reason, or by status for a reason this crate does not know
    /// and for an answer without one. Only a 200 is delivered; only a 410 drops a
    /// token; a status APNs never sends, or an error without APNs' reason, means
    /// something else answered.
    pub fn action(&self) -> Action {
        use Reason as R;
        let by_status = match self.status {
            200 => return Action::Delivered,
            410 => {
                return Action::DropToken {
                    since: self.timestamp,
                };
            }
            403 => Action::FixConfiguration,
            429 | 500..=599 => Action::Retry,
            400..=499 => Action::FixRequest,
            _ => Action::FixConfiguration,
        };
        match &self.reason {
            Some(R::BadDeviceToken | R::DeviceTokenNotForTopic) => Action::TokenRejected,
            Some(R::ExpiredProviderToken) => Action::RenewProviderToken,
            Some(
                R::IdleTimeout
                | R::TooManyRequests
                | R::TooManyProviderTokenUpdates
                | R::InternalServerError
                | R::ServiceUnavailable
                | R::Shutdown,
            ) => Action::Retry,
            Some(
                R::BadCertificate
                | R::BadCertificateEnvironment
                | R::Forbidden
                | R::InvalidProviderToken
                | R::MissingProviderToken
                | R::UnrelatedKeyIdInToken
                | R::TopicDisallowed
                | R::BadTopic,
            ) => Action::FixConfiguration,
            Some(
                R::BadCollapseId
                | R::BadExpirationDate
                | R::BadMessageId
                | R::BadPriority
                | R::DuplicateHeaders
                | R::InvalidPushType
                | R::MissingDeviceToken
                | R::MissingTopic
                | R::PayloadEmpty
                | R::BadPath
                | R::MethodNotAllowed
                | R::PayloadTooLarge,
            ) => Action::FixRequest,
            // Only a 410 removes registrations; these reasons come with no other status.
            Some(R::ExpiredToken | R::Unregistered | R::Other(_)) => by_status,
            // No APNs reason: APNs always gives one with an error, so a 4xx without
            // one is something else's (a proxy's 404 or 408), and the request is not
            // at fault.
            None => match by_status {
                Action::FixRequest => Action::FixConfiguration,
                other => other,
            },
        }
    }
}
