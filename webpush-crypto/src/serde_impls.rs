//! `serde` for what a server stores: endpoints and origins as their text, keys and
//! secrets as unpadded base64url, subscription keys as `{"p256dh", "auth"}` (the
//! `PushSubscription` field names). Deserializing validates as the constructors do.
//! Secrets stay redacted in `Debug`; serializing one writes it, which is the point.

use std::borrow::Cow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{AuthSecret, Endpoint, Origin, PrivateKey, PublicKey, SubscriptionKeys, VapidKey};

/// Text that may borrow from the input.
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'de, str>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Text::deserialize(deserializer).map(|t| t.0)
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Reads back what was written, plain-http test endpoints included: what a server
/// stores from clients was checked by its endpoint policy before it was stored.
impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Endpoint::new_allowing_plain_http(&text(deserializer)?).map_err(D::Error::custom)
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Endpoint::new_allowing_plain_http(&text(deserializer)?)
            .map(|e| e.origin().clone())
            .map_err(D::Error::custom)
    }
}

/// A type written as its unpadded base64url text and read back by `$read`; secrets are
/// read through a wiped copy.
macro_rules! base64url_text {
    ($type:ty, $read:expr) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_base64url())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = zeroize::Zeroizing::new(text(deserializer)?.into_owned());
                $read(text.as_bytes()).map_err(D::Error::custom)
            }
        }
    };
}

base64url_text!(PublicKey, PublicKey::from_base64url);
base64url_text!(AuthSecret, AuthSecret::from_base64url);
base64url_text!(PrivateKey, PrivateKey::from_base64url);
// The raw scalar, the form `web-push generate-vapid-keys` prints; read back in any
// form `VapidKey::import` takes.
base64url_text!(VapidKey, VapidKey::import);

#[derive(Serialize, Deserialize)]
struct Keys {
    p256dh: PublicKey,
    auth: AuthSecret,
}

impl Serialize for SubscriptionKeys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Keys {
            p256dh: self.p256dh().clone(),
            auth: self.auth().clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SubscriptionKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Keys::deserialize(deserializer).map(|k| SubscriptionKeys::new(k.p256dh, k.auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        value: &T,
    ) -> String {
        let json = serde_json::to_string(value).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value, "{json}");
        json
    }

    #[test]
    fn stored_values_round_trip() {
        let keys = SubscriptionKeys::from_base64url(P256DH, AUTH).unwrap();
        assert_eq!(
            round_trip(&keys),
            format!(r#"{{"p256dh":"{P256DH}","auth":"{AUTH}"}}"#)
        );
        let endpoint: Endpoint = "https://push.example.net/p/JzLQ3raZ".parse().unwrap();
        round_trip(&endpoint);
        round_trip(endpoint.origin());
        round_trip(&Endpoint::new_allowing_plain_http("http://127.0.0.1:8090/notify/x").unwrap());
        let ua = crate::UaKeys::generate(&mut rand_core::OsRng).unwrap();
        let json = serde_json::to_string(ua.private_key()).unwrap();
        let again: PrivateKey = serde_json::from_str(&json).unwrap();
        assert_eq!(again.as_bytes(), ua.private_key().as_bytes());
        let vapid = VapidKey::generate(&mut rand_core::OsRng).unwrap();
        let again: VapidKey =
            serde_json::from_str(&serde_json::to_string(&vapid).unwrap()).unwrap();
        assert_eq!(again.public_key(), vapid.public_key());
        // Still redacted where it matters.
        assert!(!format!("{keys:?}").contains(AUTH));
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            r#"{"p256dh":"AwE","auth":"BTBZMqHH6r4Tts7J_aSIgg"}"#,
            r#"{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"short"}"#,
            r#"{"auth":"BTBZMqHH6r4Tts7J_aSIgg"}"#,
        ] {
            assert!(
                serde_json::from_str::<SubscriptionKeys>(bad).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<Endpoint>(r#""ftp://x/""#).is_err());
        assert!(serde_json::from_str::<Endpoint>(r#""https://x:99999/""#).is_err());
    }
}
