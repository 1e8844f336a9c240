//! The RFC 8030 push request: headers, validation, and the `http::Request` it becomes.

use core::fmt;
use core::str::FromStr;

use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use rand_core::CryptoRngCore;

use crate::{Encryptor, Endpoint, Error, MadeAhead, Subscription, SubscriptionKeys, VapidToken};

// RFC 8030's headers, named once rather than parsed (and allocated) for each request.
const TTL: HeaderName = HeaderName::from_static("ttl");
const URGENCY: HeaderName = HeaderName::from_static("urgency");
const TOPIC: HeaderName = HeaderName::from_static("topic");

/// How long the push service keeps an undelivered message, in seconds (RFC 8030 §5.2).
/// Required: there is no good default between "only if the device is online now" (0)
/// and the weeks some libraries pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u32);

impl Ttl {
    /// A TTL of `seconds`.
    pub const fn from_secs(seconds: u32) -> Self {
        Self(seconds)
    }

    /// The TTL in seconds.
    pub const fn as_secs(self) -> u32 {
        self.0
    }
}

/// How urgently the user agent should wake up for a message (RFC 8030 §5.3). Push
/// services and devices use it to save battery; without the header, `normal` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Urgency {
    /// On power and Wi-Fi only.
    VeryLow,
    /// On either power or Wi-Fi.
    Low,
    /// On neither power nor Wi-Fi.
    #[default]
    Normal,
    /// Even on low battery: new mail the user is waiting for.
    High,
}

impl Urgency {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Urgency {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        [
            Urgency::VeryLow,
            Urgency::Low,
            Urgency::Normal,
            Urgency::High,
        ]
        .into_iter()
        .find(|u| u.as_str().eq_ignore_ascii_case(text))
        .ok_or(Error::InvalidUrgency)
    }
}

/// The longest Topic RFC 8030 §5.4 allows.
pub const MAX_TOPIC_LEN: usize = 32;

/// A message topic (RFC 8030 §5.4): a newer message with the same topic replaces an
/// undelivered older one, so a phone that was offline gets one "new mail" push, not
/// forty. At most 32 characters of the base64url alphabet.
///
/// ```
/// use webpush_crypto::Topic;
/// assert!(Topic::new("inbox-alice").is_ok());
/// assert!(Topic::new("inbox/alice").is_err());
/// assert!(Topic::new(&"a".repeat(33)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    /// Validates a topic.
    pub fn new(text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::InvalidTopic { reason: "empty" });
        }
        if text.len() > MAX_TOPIC_LEN {
            return Err(Error::InvalidTopic {
                reason: "longer than 32 characters",
            });
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidTopic {
                reason: "characters outside the base64url alphabet (A-Z a-z 0-9 - _)",
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// The topic naming `digest` (24 octets of a hash of whatever the topic stands
    /// for): its 32 base64url characters, the longest topic RFC 8030 allows, so it
    /// needs no check.
    ///
    /// ```
    /// use webpush_crypto::Topic;
    /// assert_eq!(Topic::from_digest(&[0xfb; 24]).as_str().len(), 32);
    /// ```
    pub fn from_digest(digest: &[u8; 24]) -> Self {
        Self(crate::base64url::encode(digest))
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Topic {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl TryFrom<&str> for Topic {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

/// Builds the RFC 8030 `POST` for one message to one subscription.
///
/// The result is an [`http::Request<Vec<u8>>`]: send it with any HTTP client (hyper,
/// reqwest, a pooled HTTP/2 connection), then hand the status and headers to
/// [`Outcome::classify`](crate::Outcome::classify).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webpush_crypto::{
///     Encryptor, PushRequest, Subject, Subscription, SubscriptionKeys, TokenCache, Ttl,
///     UaKeys, Urgency, VapidKey, VapidSigner,
/// };
///
/// let mut rng = rand_core::OsRng;
/// let browser = UaKeys::generate(&mut rng)?;
/// let subscription = Subscription::new(
///     "https://push.example.net/p/JzLQ3raZ".parse()?,
///     browser.subscription_keys(),
/// );
/// let signer = VapidSigner::new(VapidKey::generate(&mut rng)?, "mailto:postmaster@mail.example".parse()?);
/// let mut tokens = TokenCache::new(signer);
/// let now = SystemTime::now();
///
/// let request = PushRequest::new(&subscription, Ttl::from_secs(3600))
///     .urgency(Urgency::High)
///     .topic("inbox".parse()?)
///     .vapid(tokens.token(subscription.endpoint.origin(), now)?)
///     .build(&Encryptor::new(), b"You have mail", &mut rng)?;
///
/// assert_eq!(request.method(), "POST");
/// assert_eq!(request.headers()["content-encoding"], "aes128gcm");
/// assert_eq!(request.headers()["ttl"], "3600");
/// assert!(request.headers()["authorization"].to_str().unwrap().starts_with("vapid t="));
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PushRequest<'a> {
    endpoint: &'a Endpoint,
    keys: &'a SubscriptionKeys,
    ttl: Ttl,
    urgency: Option<Urgency>,
    topic: Option<Topic>,
    vapid: Option<VapidToken>,
}

impl<'a> PushRequest<'a> {
    /// A request to `subscription` that the push service keeps for `ttl`.
    pub fn new(subscription: &'a Subscription, ttl: Ttl) -> Self {
        Self::to(&subscription.endpoint, &subscription.keys, ttl)
    }

    /// A request to `endpoint`, encrypted for `keys`, kept for `ttl`: for a server that
    /// stores the two apart and has no [`Subscription`] to lend.
    pub fn to(endpoint: &'a Endpoint, keys: &'a SubscriptionKeys, ttl: Ttl) -> Self {
        Self {
            endpoint,
            keys,
            ttl,
            urgency: None,
            topic: None,
            vapid: None,
        }
    }

    /// Sets the `Urgency` header; without it, push services assume `normal`.
    pub fn urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = Some(urgency);
        self
    }

    /// Sets the `Topic` header, so this message replaces an undelivered one with the
    /// same topic.
    pub fn topic(mut self, topic: Topic) -> Self {
        self.topic = Some(topic);
        self
    }

    /// Authorizes the request with a VAPID token, from [`VapidSigner::sign`] or a
    /// [`TokenCache`] (cheap to clone). Every major push service requires one.
    ///
    /// [`VapidSigner::sign`]: crate::VapidSigner::sign
    /// [`TokenCache`]: crate::TokenCache
    pub fn vapid(mut self, token: VapidToken) -> Self {
        self.vapid = Some(token);
        self
    }

    /// Encrypts `plaintext` with `encryptor` (fresh key and salt from `rng`) and builds
    /// the request.
    pub fn build(
        &self,
        encryptor: &Encryptor,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Request<Vec<u8>>, Error> {
        // Check everything that does not need the body first: a refused request costs
        // no ECDH.
        let authorization = self.authorization()?;
        let body = encryptor.encrypt(self.keys, plaintext, rng)?;
        self.finish(authorization, body)
    }

    /// [`PushRequest::build`] with a key made ahead, which it takes: with an
    /// [`EphemeralKey`](crate::EphemeralKey) the message costs its ECDH, HKDF and
    /// AES-GCM alone; with an [`Agreement`](crate::Agreement), its HKDF and AES-GCM
    /// alone. An agreement made with other keys than this request's is refused
    /// ([`Error::AgreementForOtherKeys`]).
    pub fn build_prepared(
        &self,
        encryptor: &Encryptor,
        plaintext: &[u8],
        ahead: impl Into<MadeAhead>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Request<Vec<u8>>, Error> {
        let authorization = self.authorization()?;
        let body = match ahead.into() {
            MadeAhead::Key(key) => encryptor.encrypt_prepared(self.keys, plaintext, key, rng)?,
            MadeAhead::Agreement(agreement) => {
                if agreement.keys() != self.keys {
                    return Err(Error::AgreementForOtherKeys);
                }
                encryptor.encrypt_agreed(plaintext, agreement, rng)?
            }
        };
        self.finish(authorization, body)
    }

    fn authorization(&self) -> Result<Option<HeaderValue>, Error> {
        let Some(token) = &self.vapid else {
            return Ok(None);
        };
        if token.public_key() == self.keys.p256dh() {
            return Err(Error::VapidKeyIsSubscriptionKey);
        }
        let origin = self.endpoint.origin();
        if token.audience() != origin {
            return Err(Error::AudienceMismatch {
                expected: origin.as_str().to_owned(),
                found: token.audience().as_str().to_owned(),
            });
        }
        let mut value = HeaderValue::from_str(token.authorization()).map_err(|_| {
            Error::MalformedAuthorization {
                reason: "contains characters not allowed in an HTTP header",
            }
        })?;
        // A credential for the push service: `Debug` of the request shows "Sensitive",
        // and HPACK never indexes it.
        value.set_sensitive(true);
        Ok(Some(value))
    }

    fn finish(
        &self,
        authorization: Option<HeaderValue>,
        body: Vec<u8>,
    ) -> Result<Request<Vec<u8>>, Error> {
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.uri().clone();
        let length = HeaderValue::from(request.body().len());
        // Room for these and the Host header an HTTP client adds, so none of them
        // makes the map grow.
        *request.headers_mut() = HeaderMap::with_capacity(8);
        let headers = request.headers_mut();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(CONTENT_LENGTH, length);
        headers.insert(TTL, HeaderValue::from(self.ttl.as_secs()));
        if let Some(urgency) = self.urgency {
            headers.insert(URGENCY, HeaderValue::from_static(urgency.as_str()));
        }
        if let Some(topic) = &self.topic {
            let value = HeaderValue::from_str(topic.as_str()).map_err(|_| Error::InvalidTopic {
                reason: "characters not allowed in an HTTP header",
            })?;
            headers.insert(TOPIC, value);
        }
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        Ok(request)
    }
}
