//! VAPID tokens (RFC 8292 §2): claims, signing, and the `Authorization` header value.

use core::fmt;
use core::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{VapidKey, unix_secs};
use crate::{Error, Origin, PublicKey, base64url};

/// The longest token lifetime RFC 8292 §2 allows: `exp` at most 24 hours ahead.
pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);
/// The default lifetime, 12 hours: what Node's `web-push` uses, far enough from the
/// 24-hour ceiling that clock skew at the push service cannot push it over.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(12 * 60 * 60);
/// The shortest lifetime accepted.
pub const MIN_VALIDITY: Duration = Duration::from_secs(60);

/// The longest subject accepted.
const MAX_SUBJECT_LEN: usize = 512;

/// `base64url({"typ":"JWT","alg":"ES256"})`, the header of every token, as in RFC 8292 §2.4.
pub(crate) const JWT_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9";

/// The `sub` claim: how the push service can reach the sender's operator, a `mailto:`
/// or `https:` URI (RFC 8292 §2.1). Required here and never invented: push services use
/// it to contact whoever runs a misbehaving server.
///
/// ```
/// use webpush_crypto::Subject;
/// assert!("mailto:postmaster@mail.example".parse::<Subject>().is_ok());
/// assert!("https://mail.example/contact".parse::<Subject>().is_ok());
/// assert!("postmaster@mail.example".parse::<Subject>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    /// Validates a `mailto:` address or an `https:` URL.
    pub fn new(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidSubject { reason };
        if text.len() > MAX_SUBJECT_LEN {
            return Err(invalid("longer than 512 octets"));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "contains spaces, control or non-ASCII characters (percent-encode them)",
            ));
        }
        let (scheme, address) = text
            .split_once(':')
            .ok_or(invalid("must start with mailto: or https:"))?;
        if scheme.eq_ignore_ascii_case("mailto") {
            match address.split_once('@') {
                Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
                _ => {
                    return Err(invalid(
                        "mailto: must be followed by an address local@domain",
                    ));
                }
            }
        } else if scheme.eq_ignore_ascii_case("https") {
            Origin::new(text).map_err(|_| invalid("https: subject is not a URL with a host"))?;
        } else {
            return Err(invalid("must start with mailto: or https:"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Subject").field(&self.0).finish()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Subject {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl TryFrom<&str> for Subject {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

/// Signs VAPID tokens: a key, the operator's contact, and a lifetime.
///
/// Signing costs one ECDSA signature, the most expensive step of a request after the
/// encryption itself; put the signer in a [`TokenCache`](super::TokenCache) to sign once
/// per push service every few hours instead of once per message.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webpush_crypto::{Endpoint, Subject, VapidKey, VapidSigner};
///
/// let key = VapidKey::generate(&mut rand_core::OsRng)?;
/// let signer = VapidSigner::new(key, Subject::new("mailto:postmaster@mail.example")?);
/// let endpoint: Endpoint = "https://push.example.net/p/JzLQ3raZJfFBR0aq".parse()?;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let token = signer.sign(endpoint.origin(), now)?;
/// assert!(token.authorization().starts_with("vapid t=eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9."));
/// assert_eq!(token.expires_at(), 1_700_000_000 + 12 * 3600);
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Debug)]
pub struct VapidSigner {
    key: VapidKey,
    subject: Subject,
    validity: Duration,
    /// `k=` and the key, formatted once.
    key_param: String,
}

impl VapidSigner {
    /// A signer with the default lifetime of 12 hours.
    pub fn new(key: VapidKey, subject: Subject) -> Self {
        let key_param = format!(", k={}", key.public_key().to_base64url());
        Self {
            key,
            subject,
            validity: DEFAULT_VALIDITY,
            key_param,
        }
    }

    /// Sets the token lifetime: between one minute and 24 hours (RFC 8292 §2).
    pub fn with_validity(mut self, validity: Duration) -> Result<Self, Error> {
        if validity > MAX_VALIDITY {
            return Err(Error::InvalidValidity {
                reason: "RFC 8292 allows at most 24 hours",
            });
        }
        if validity < MIN_VALIDITY {
            return Err(Error::InvalidValidity {
                reason: "shorter than one minute",
            });
        }
        self.validity = validity;
        Ok(self)
    }

    /// The signing key.
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The `sub` claim of every token.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The lifetime of every token.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// Signs a token for `audience`, valid from `now` for [`validity`](Self::validity).
    pub fn sign(&self, audience: &Origin, now: SystemTime) -> Result<VapidToken, Error> {
        let exp = unix_secs(now)?.saturating_add(self.validity.as_secs());
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            aud: &'a str,
            exp: u64,
            sub: &'a str,
        }
        let claims = serde_json::to_vec(&Claims {
            aud: audience.as_str(),
            exp,
            sub: self.subject.as_str(),
        })
        .map_err(|_| Error::MalformedToken {
            reason: "claims cannot be serialized",
        })?;
        // The JWT, allocated at its final size: header "." claims "." sig. What is
        // signed is the JWT before its signature.
        let capacity = JWT_HEADER.len()
            + 1
            + base64_len(claims.len())
            + 1
            + base64_len(crate::provider::SIGNATURE_LEN);
        let mut jwt = String::with_capacity(capacity);
        jwt.push_str(JWT_HEADER);
        jwt.push('.');
        base64url::encode_into(&claims, &mut jwt);
        let signature = self.key.sign(jwt.as_bytes())?;
        jwt.push('.');
        base64url::encode_into(&signature, &mut jwt);
        // The header value, also at its final size: "vapid t=" JWT ", k=" key.
        let mut header = String::with_capacity(PREFIX.len() + jwt.len() + self.key_param.len());
        header.push_str(PREFIX);
        header.push_str(&jwt);
        header.push_str(&self.key_param);
        Ok(VapidToken(Arc::new(TokenParts {
            header,
            jwt,
            audience: audience.clone(),
            expires_at: exp,
            key: self.key.public_key().clone(),
        })))
    }
}

/// What precedes the JWT in the header value.
const PREFIX: &str = "vapid t=";

/// Length of unpadded base64 for `n` octets.
const fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// A signed VAPID token with its audience and expiry: the `Authorization` header value
/// for every request to one push service until it expires.
///
/// Cloning is cheap (a reference count), so a server can hold a [`TokenCache`] behind a
/// lock, take a token out and release the lock before encrypting.
///
/// [`TokenCache`]: crate::TokenCache
#[derive(Clone, PartialEq, Eq)]
pub struct VapidToken(Arc<TokenParts>);

#[derive(PartialEq, Eq)]
struct TokenParts {
    header: String,
    jwt: String,
    audience: Origin,
    expires_at: u64,
    key: PublicKey,
}

impl VapidToken {
    /// The `Authorization` header value, `vapid t=<jwt>, k=<key>` (RFC 8292 §3).
    pub fn authorization(&self) -> &str {
        &self.0.header
    }

    /// The JWT alone (`t`).
    pub fn jwt(&self) -> &str {
        &self.0.jwt
    }

    /// The origin the token is for (`aud`).
    pub fn audience(&self) -> &Origin {
        &self.0.audience
    }

    /// The `exp` claim, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.0.expires_at
    }

    /// The public key that verifies the token (`k`).
    pub fn public_key(&self) -> &PublicKey {
        &self.0.key
    }

    /// Whether the token is still usable at `now` with `margin` to spare: push services
    /// refuse a token whose `exp` has passed by the time the request arrives.
    pub fn is_fresh(&self, now: SystemTime, margin: Duration) -> bool {
        unix_secs(now).is_ok_and(|now| self.fresh_at(now, margin.as_secs()))
    }

    pub(crate) fn fresh_at(&self, now: u64, margin: u64) -> bool {
        now.saturating_add(margin) < self.0.expires_at
    }
}

impl fmt::Debug for VapidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential for this key: keep it out of logs.
        f.debug_struct("VapidToken")
            .field("audience", &self.0.audience)
            .field("expires_at", &self.0.expires_at)
            .field("key", &self.0.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        for good in [
            "mailto:push@example.com",
            "MAILTO:a@b",
            "https://mail.example/contact",
            "https://mail.example",
        ] {
            assert_eq!(Subject::new(good).unwrap().as_str(), good);
        }
        for (bad, reason) in [
            ("push@example.com", "must start with mailto: or https:"),
            ("", "must start with mailto: or https:"),
            ("http://mail.example", "must start with mailto: or https:"),
            (
                "mailto:",
                "mailto: must be followed by an address local@domain",
            ),
            (
                "mailto:@example.com",
                "mailto: must be followed by an address local@domain",
            ),
            (
                "mailto:postmaster",
                "mailto: must be followed by an address local@domain",
            ),
            ("https:", "https: subject is not a URL with a host"),
            (
                "mailto:a b@c",
                "contains spaces, control or non-ASCII characters (percent-encode them)",
            ),
            (
                "mailto:\"a\"@c\n",
                "contains spaces, control or non-ASCII characters (percent-encode them)",
            ),
        ] {
            assert_eq!(
                Subject::new(bad),
                Err(Error::InvalidSubject { reason }),
                "{bad:?}"
            );
        }
        assert!(Subject::new(&format!("mailto:a@{}", "b".repeat(600))).is_err());
    }

    #[test]
    fn base64_lengths() {
        for n in 0..100 {
            assert_eq!(base64_len(n), base64url::encode(&vec![0; n]).len());
        }
    }
}
