//! A browser's push subscription: where to send, and the keys to encrypt for.

#[cfg(feature = "serde")]
use crate::Error;
use crate::{Endpoint, SubscriptionKeys};

/// A push subscription as `PushManager.subscribe()` returns it: the endpoint, the
/// user agent's keys, and an optional expiry.
///
/// With the `serde` feature it reads and writes the JSON of `PushSubscription.toJSON()`:
///
/// ```json
/// {"endpoint": "https://…", "expirationTime": null,
///  "keys": {"p256dh": "BCVx…", "auth": "4vQK…"}}
/// ```
///
/// Unknown fields are ignored, since browsers add them over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The push resource.
    pub endpoint: Endpoint,
    /// The user agent's public key and auth secret.
    pub keys: SubscriptionKeys,
    /// When the subscription expires, in milliseconds since the Unix epoch, as the
    /// browser reported it (`expirationTime`); `None` for no expiry.
    pub expiration_time: Option<u64>,
}

impl Subscription {
    /// A subscription from its parts, without expiry.
    pub fn new(endpoint: Endpoint, keys: SubscriptionKeys) -> Self {
        Self {
            endpoint,
            keys,
            expiration_time: None,
        }
    }

    /// Reads a `PushSubscription` JSON document.
    ///
    /// ```
    /// use webpush_crypto::Subscription;
    /// let json = r#"{"endpoint":"https://push.example.net/p/abc","expirationTime":null,
    ///   "keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}"#;
    /// let subscription = Subscription::from_json(json)?;
    /// assert_eq!(subscription.endpoint.origin().as_str(), "https://push.example.net");
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn from_json(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(|e| Error::InvalidSubscription {
            reason: e.to_string(),
        })
    }

    /// Writes the `PushSubscription` JSON document.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::InvalidSubscription {
            reason: e.to_string(),
        })
    }
}

#[cfg(feature = "serde")]
mod json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Subscription;
    use crate::{Endpoint, SubscriptionKeys};

    /// What is written: milliseconds as an integer.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct WireOut<'a> {
        endpoint: &'a str,
        expiration_time: Option<u64>,
        keys: WireKeys<'a>,
    }

    /// What is read: browsers may send a fractional DOMHighResTimeStamp.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WireIn<'a> {
        #[serde(borrow)]
        endpoint: std::borrow::Cow<'a, str>,
        #[serde(default)]
        expiration_time: Option<f64>,
        #[serde(borrow)]
        keys: WireKeys<'a>,
    }

    #[derive(Serialize, Deserialize)]
    struct WireKeys<'a> {
        #[serde(borrow)]
        p256dh: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        auth: std::borrow::Cow<'a, str>,
    }

    impl Serialize for Subscription {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            WireOut {
                endpoint: self.endpoint.as_str(),
                expiration_time: self.expiration_time,
                keys: WireKeys {
                    p256dh: self.keys.p256dh().to_base64url().into(),
                    auth: self.keys.auth().to_base64url().into(),
                },
            }
            .serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for Subscription {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            use serde::de::Error as _;
            let wire = WireIn::deserialize(deserializer)?;
            let endpoint = Endpoint::new(&wire.endpoint).map_err(D::Error::custom)?;
            let keys = SubscriptionKeys::from_base64url(&*wire.keys.p256dh, &*wire.keys.auth)
                .map_err(D::Error::custom)?;
            let expiration_time = match wire.expiration_time {
                None => None,
                // A DOMHighResTimeStamp may carry a fraction of a millisecond.
                Some(ms) if ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64 => Some(ms as u64),
                Some(_) => {
                    return Err(D::Error::custom(
                        "expirationTime is not a non-negative number of milliseconds",
                    ));
                }
            };
            Ok(Subscription {
                endpoint,
                keys,
                expiration_time,
            })
        }
    }
}
