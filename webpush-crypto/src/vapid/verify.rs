//! Verification of `vapid` credentials, as a push service does it.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey};

use super::{MAX_VALIDITY, VapidCredentials, unix_secs};
use crate::{Error, Origin, Provider, PublicKey, base64url};

/// The default allowance for clock skew between sender and verifier.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Checks `Authorization: vapid t=…, k=…` for one push resource's origin: the ES256
/// signature (through `jsonwebtoken`), `aud`, and `exp` (not passed, at most 24 hours
/// ahead), each with a small clock-skew leeway.
///
/// For push-service implementers, for tests, and for a mail server that wants to check
/// the tokens it is about to send.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webpush_crypto::{Origin, VapidVerifier};
///
/// // The example of RFC 8292 §2.4.
/// let header = "vapid t=eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA, k=BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs";
/// let verifier = VapidVerifier::new(Origin::new("https://push.example.net")?);
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_453_523_768 - 3600);
/// let verified = verifier.verify(header, now)?;
/// assert_eq!(verified.subject(), Some("mailto:push@example.com"));
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct VapidVerifier {
    audience: Origin,
    leeway: Duration,
    provider: Provider,
}

/// What a verified credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    key: PublicKey,
    audience: Origin,
    expires_at: u64,
    subject: Option<String>,
}

impl VerifiedToken {
    /// The key that signed the token: the application server's identity.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The `aud` claim.
    pub fn audience(&self) -> &Origin {
        &self.audience
    }

    /// The `exp` claim, seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The `sub` claim as sent, if any (RFC 8292 makes it a SHOULD).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
}

impl VapidVerifier {
    /// A verifier for tokens addressed to `audience`.
    pub fn new(audience: Origin) -> Self {
        Self {
            audience,
            leeway: DEFAULT_LEEWAY,
            provider: Provider::default(),
        }
    }

    /// Sets the clock-skew allowance (default one minute).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verifies signatures with `provider`'s `jsonwebtoken` backend.
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// Verifies an `Authorization` header value at time `now`.
    pub fn verify(&self, authorization: &str, now: SystemTime) -> Result<VerifiedToken, Error> {
        let credentials = VapidCredentials::parse(authorization)?;
        let key = PublicKey::from_base64url(credentials.key)?;
        let malformed = |reason| Error::MalformedToken { reason };

        let mut parts = credentials.token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three dot-separated parts"));
        };
        let header: JwsHeader = serde_json::from_slice(&base64url::decode(header, "JWT header")?)
            .map_err(|_| malformed("header is not a JSON object with alg"))?;
        if header.alg != "ES256" {
            return Err(malformed("algorithm is not ES256"));
        }
        let signature = base64url::decode(signature, "JWT signature")?;
        if signature.len() != crate::provider::SIGNATURE_LEN {
            return Err(malformed("signature is not 64 octets (r ‖ s)"));
        }
        // What is signed: the header and the claims, up to the signature's dot.
        let (signed, _) = credentials
            .token
            .rsplit_once('.')
            .ok_or(malformed("not three dot-separated parts"))?;
        let verifier = (self.provider.jwt().verifier_factory)(
            &Algorithm::ES256,
            &DecodingKey::from_ec_der(key.as_bytes()),
        )
        .map_err(|_| Error::BadSignature)?;
        verifier
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| Error::BadSignature)?;

        let claims: Claims = serde_json::from_slice(&base64url::decode(claims, "JWT claims")?)
            .map_err(|_| malformed("claims are not a JSON object with aud and exp"))?;
        // RFC 8292 §2: `aud` is the origin itself, as serialized; a URL with a path,
        // or the origin written otherwise, is not it.
        if claims.aud != self.audience.as_str() {
            return Err(Error::AudienceMismatch {
                expected: self.audience.as_str().to_owned(),
                found: claims.aud,
            });
        }
        let exp = numeric_date(&claims.exp).ok_or(malformed("exp is not a number of seconds"))?;
        let now = unix_secs(now)?;
        let leeway = self.leeway.as_secs();
        if exp.saturating_add(leeway) <= now {
            return Err(Error::TokenExpired { exp, now });
        }
        if exp
            > now
                .saturating_add(MAX_VALIDITY.as_secs())
                .saturating_add(leeway)
        {
            return Err(Error::ExpiryTooFar { exp, now });
        }
        Ok(VerifiedToken {
            key,
            audience: self.audience.clone(),
            expires_at: exp,
            subject: claims.sub,
        })
    }
}

/// RFC 7519 NumericDate: seconds, possibly with a fraction, which is dropped.
fn numeric_date(value: &serde_json::Number) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            // A finite, non-negative value below 2^64, so the cast neither wraps nor saturates.
            .map(|f| f as u64)
    })
}

#[derive(serde::Deserialize)]
struct JwsHeader {
    alg: String,
}

#[derive(serde::Deserialize)]
struct Claims {
    aud: String,
    exp: serde_json::Number,
    #[serde(default)]
    sub: Option<String>,
}
