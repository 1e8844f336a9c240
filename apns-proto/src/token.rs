//! Provider tokens: the ES256 JWT in `authorization: bearer …`, made from the team's
//! `.p8` key, reused and renewed within Apple's 20 to 60 minute window.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::error::TokenError;
use crate::types::unix_secs;

/// When a token is renewed by default: after 50 minutes.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(50 * 60);
/// Apple refuses tokens refreshed more often than this ...
pub const MIN_REFRESH: Duration = Duration::from_secs(20 * 60);
/// ... and tokens older than this.
pub const MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// The `jsonwebtoken` backend, named explicitly rather than taken from its process-wide
/// default, so a build with both backends compiled in cannot panic.
fn backend() -> &'static jsonwebtoken::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
}

/// A team's signing key with its key id and team id. The key is zeroized on drop
/// (by `jsonwebtoken`) and never shown by `Debug`.
#[derive(Clone)]
pub struct ProviderKey {
    key: EncodingKey,
    key_id: String,
    team_id: String,
}

impl fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderKey")
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .finish()
    }
}

fn apple_id(text: &str, what: &'static str) -> Result<String, TokenError> {
    if text.len() != 10 || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenError::Id(what));
    }
    Ok(text.to_owned())
}

impl ProviderKey {
    /// A key from the `.p8` file Apple issues (PKCS#8 PEM), its 10-character key id
    /// and the team id.
    pub fn from_p8_pem(pem: &[u8], key_id: &str, team_id: &str) -> Result<Self, TokenError> {
        let der = crate::pem::decode(pem, "PRIVATE KEY").map_err(|_| TokenError::Key)?;
        Self::checked(EncodingKey::from_ec_der(&der), key_id, team_id)
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8], key_id: &str, team_id: &str) -> Result<Self, TokenError> {
        Self::checked(EncodingKey::from_ec_der(der), key_id, team_id)
    }

    fn checked(key: EncodingKey, key_id: &str, team_id: &str) -> Result<Self, TokenError> {
        let key = Self {
            key,
            key_id: apple_id(key_id, "key id")?,
            team_id: apple_id(team_id, "team id")?,
        };
        // Sign once, so a bad key fails here and not on the first push.
        key.sign(0).map_err(|_| TokenError::Key)?;
        Ok(key)
    }

    /// A token issued at `iat` (seconds since the epoch):
    /// `{"alg":"ES256","kid":…}.{"iss":…,"iat":…}.signature`.
    pub fn sign(&self, iat: u64) -> Result<String, TokenError> {
        let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, self.key_id);
        let claims = format!(r#"{{"iss":"{}","iat":{iat}}}"#, self.team_id);
        let mut token = String::with_capacity(200);
        URL_SAFE_NO_PAD.encode_string(header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signer = (backend().signer_factory)(&Algorithm::ES256, &self.key)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        let signature = signer
            .try_sign(token.as_bytes())
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// The current provider token, renewed when it reaches the refresh age (50 minutes
/// by default, 20 to 60 allowed) or when the clock went backwards. `now` is an
/// argument; nothing here reads a clock.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use apns_proto::{ProviderKey, ProviderTokens};
/// # let pem = include_bytes!("../tests/data/AuthKey_TEST123456.p8");
/// let key = ProviderKey::from_p8_pem(pem, "TEST123456", "TEAM123456")?;
/// let mut tokens = ProviderTokens::new(key);
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let first = tokens.header(t0)?.clone();
/// assert!(first.to_str().unwrap().starts_with("bearer ey"));
/// // Reused for 50 minutes, then renewed.
/// assert_eq!(tokens.header(t0 + Duration::from_secs(49 * 60))?, &first);
/// assert_ne!(tokens.header(t0 + Duration::from_secs(50 * 60))?, &first);
/// // The token is a credential: never shown.
/// assert!(!format!("{tokens:?}").contains("bearer"));
/// # Ok::<(), apns_proto::TokenError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProviderTokens {
    key: ProviderKey,
    refresh: Duration,
    current: Option<(u64, HeaderValue)>,
}

impl ProviderTokens {
    /// Tokens from `key`, renewed after 50 minutes.
    pub fn new(key: ProviderKey) -> Self {
        Self {
            key,
            refresh: DEFAULT_REFRESH,
            current: None,
        }
    }

    /// Renews after `refresh` instead: 20 to 60 minutes, as Apple requires (less is
    /// answered `TooManyProviderTokenUpdates`, more `ExpiredProviderToken`).
    pub fn with_refresh(mut self, refresh: Duration) -> Result<Self, TokenError> {
        if !(MIN_REFRESH..=MAX_AGE).contains(&refresh) {
            return Err(TokenError::RefreshInterval);
        }
        self.refresh = refresh;
        Ok(self)
    }

    /// The `authorization` header value (`bearer <jwt>`) to send at `now`.
    pub fn header(&mut self, now: SystemTime) -> Result<&HeaderValue, TokenError> {
        let now_secs = unix_secs(now).map_err(|_| TokenError::ClockBeforeEpoch)?;
        let current = match self.current.take() {
            Some((iat, value)) if now_secs >= iat && now_secs - iat < self.refresh.as_secs() => {
                (iat, value)
            }
            // Missing, stale, or from a clock that went backwards: a new one.
            _ => {
                let token = self.key.sign(now_secs)?;
                let mut value = HeaderValue::try_from(format!("bearer {token}"))
                    .map_err(|e| TokenError::Sign(e.to_string()))?;
                // A credential for an hour: `Debug` shows "Sensitive", and HPACK never
                // indexes it.
                value.set_sensitive(true);
                (now_secs, value)
            }
        };
        let (_, value) = self.current.insert(current);
        Ok(value)
    }

    /// When the current token was issued, in seconds since the epoch.
    pub fn issued_at(&self) -> Option<u64> {
        self.current.as_ref().map(|(iat, _)| *iat)
    }

    /// Forgets the current token, after APNs answered `ExpiredProviderToken`.
    pub fn invalidate(&mut self) {
        self.current = None;
    }

    /// Forgets `refused` (the `authorization` value a request carried) if it is still
    /// the current token; whether it was. The many requests APNs refuses with
    /// `ExpiredProviderToken` at once renew it once, not each the one the last renewed
    /// (APNs answers `TooManyProviderTokenUpdates` to that).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use apns_proto::{ProviderKey, ProviderTokens};
    /// # let pem = include_bytes!("../tests/data/AuthKey_TEST123456.p8");
    /// let key = ProviderKey::from_p8_pem(pem, "TEST123456", "TEAM123456")?;
    /// let mut tokens = ProviderTokens::new(key);
    /// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let refused = tokens.header(t0)?.clone();
    /// assert!(tokens.invalidate_refused(&refused));
    /// let renewed = tokens.header(t0 + Duration::from_secs(1))?.clone();
    /// // Another refusal of the old token leaves the renewed one.
    /// assert!(!tokens.invalidate_refused(&refused));
    /// assert_eq!(tokens.header(t0 + Duration::from_secs(2))?, &renewed);
    /// # Ok::<(), apns_proto::TokenError>(())
    /// ```
    pub fn invalidate_refused(&mut self, refused: &HeaderValue) -> bool {
        let current = self
            .current
            .as_ref()
            .is_some_and(|(_, value)| value == refused);
        if current {
            self.current = None;
        }
        current
    }
}
