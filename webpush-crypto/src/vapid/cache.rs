//! A per-audience VAPID token cache: sign once per push service, reuse for hours.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::{VapidSigner, VapidToken, unix_secs};
use crate::{Error, Origin};

/// The default renewal margin: a token is replaced one hour before it expires, which
/// also honours Apple's advice not to refresh more often than once per hour.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60 * 60);
/// The default bound on cached audiences. Mail servers talk to a handful of push
/// services, plus one per self-hosted UnifiedPush server.
pub const DEFAULT_MAX_AUDIENCES: usize = 1024;

/// Reuses each audience's token until `margin` before it expires (RFC 8292 §4
/// encourages reuse), so a message costs a hash lookup instead of a signature.
///
/// `now` is an argument: the cache never reads a clock, and a token whose `exp` is not
/// at least `margin` ahead of `now` is never returned.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webpush_crypto::{Endpoint, Subject, TokenCache, VapidKey, VapidSigner};
///
/// let key = VapidKey::generate(&mut rand_core::OsRng)?;
/// let signer = VapidSigner::new(key, Subject::new("mailto:postmaster@mail.example")?);
/// let mut cache = TokenCache::new(signer);
/// let endpoint: Endpoint = "https://push.example.net/p/abc".parse()?;
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let first = cache.token(endpoint.origin(), t0)?.authorization().to_owned();
/// // Two hours later the same token is still good.
/// let later = cache.token(endpoint.origin(), t0 + Duration::from_secs(7200))?;
/// assert_eq!(later.authorization(), first);
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Debug)]
pub struct TokenCache {
    signer: VapidSigner,
    margin: Duration,
    max_audiences: usize,
    tokens: HashMap<Origin, VapidToken>,
}

impl TokenCache {
    /// A cache around `signer`, renewing tokens [`DEFAULT_MARGIN`] before expiry.
    pub fn new(signer: VapidSigner) -> Self {
        // The margin must leave a token some useful life; shrink it for short lifetimes.
        let margin = DEFAULT_MARGIN.min(signer.validity() / 2);
        Self {
            signer,
            margin,
            max_audiences: DEFAULT_MAX_AUDIENCES,
            tokens: HashMap::new(),
        }
    }

    /// Renews tokens `margin` before they expire. The margin must be shorter than the
    /// signer's lifetime, or every call would sign a new token.
    pub fn with_margin(mut self, margin: Duration) -> Result<Self, Error> {
        if margin >= self.signer.validity() {
            return Err(Error::InvalidValidity {
                reason: "the renewal margin must be shorter than the token lifetime",
            });
        }
        self.margin = margin;
        Ok(self)
    }

    /// Bounds the number of audiences held (at least 1); beyond it, expired tokens
    /// and then the soonest-expiring one make room.
    pub fn with_max_audiences(mut self, max: usize) -> Self {
        self.max_audiences = max.max(1);
        self
    }

    /// The signer behind the cache.
    pub fn signer(&self) -> &VapidSigner {
        &self.signer
    }

    /// The renewal margin.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// A token for `audience` valid for at least `margin` after `now`: the cached one,
    /// or a freshly signed one. The token is owned and cheap to clone, so a lock around
    /// the cache need not be held while the message is encrypted.
    pub fn token(&mut self, audience: &Origin, now: SystemTime) -> Result<VapidToken, Error> {
        let now_secs = unix_secs(now)?;
        let margin = self.margin.as_secs();
        let fresh = self
            .tokens
            .get(audience)
            .is_some_and(|token| token.fresh_at(now_secs, margin));
        if !fresh {
            let token = self.signer.sign(audience, now)?;
            if !self.tokens.contains_key(audience) && self.tokens.len() >= self.max_audiences {
                self.make_room(now_secs, margin);
            }
            self.tokens.insert(audience.clone(), token);
        }
        self.tokens.get(audience).cloned().ok_or(Error::Signing)
    }

    /// Drops every token that is no longer fresh at `now`.
    pub fn purge(&mut self, now: SystemTime) -> Result<(), Error> {
        let now_secs = unix_secs(now)?;
        let margin = self.margin.as_secs();
        self.tokens
            .retain(|_, token| token.fresh_at(now_secs, margin));
        Ok(())
    }

    /// Forgets every token, for instance after the key was rotated elsewhere.
    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    /// The number of audiences with a cached token.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn make_room(&mut self, now_secs: u64, margin: u64) {
        self.tokens
            .retain(|_, token| token.fresh_at(now_secs, margin));
        if self.tokens.len() >= self.max_audiences {
            let soonest = self
                .tokens
                .iter()
                .min_by_key(|(_, token)| token.expires_at())
                .map(|(origin, _)| origin.clone());
            if let Some(origin) = soonest {
                self.tokens.remove(&origin);
            }
        }
    }
}
