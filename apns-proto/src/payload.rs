//! The JSON payload: the `aps` dictionary Apple defines, custom keys beside it, and
//! the mail payload `{"aps":{"account-id":"…"}}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::RequestError;

/// A notification payload: `{"aps": {...}, custom keys...}`.
///
/// ```
/// use apns_proto::payload::{Alert, Aps, Payload};
/// let mut payload = Payload::default();
/// payload.aps.alert = Some(Alert::Text("You have mail".into()));
/// payload.aps.badge = Some(3);
/// payload.custom.insert("folder".into(), "INBOX".into());
/// assert_eq!(payload.to_vec()?, br#"{"aps":{"alert":"You have mail","badge":3},"folder":"INBOX"}"#);
/// assert_eq!(Payload::mail("55FAD99D-748E-44DA-8A7F-91D3478CAABD").to_vec()?,
///            br#"{"aps":{"account-id":"55FAD99D-748E-44DA-8A7F-91D3478CAABD"}}"#);
/// # Ok::<(), apns_proto::RequestError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The `aps` dictionary.
    pub aps: Aps,
    /// Keys beside `aps`, for the app.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

impl Payload {
    /// The payload iOS Mail expects: the account id alone, no alert, badge or sound.
    pub fn mail(account_id: &str) -> Self {
        Self {
            aps: Aps {
                account_id: Some(account_id.to_owned()),
                ..Aps::default()
            },
            custom: Map::new(),
        }
    }

    /// The compact JSON APNs receives. A relevance score or critical volume outside
    /// 0 to 1 (or not a number) is refused: JSON would carry NaN as `null`; so is a
    /// custom key `aps`, which would write the dictionary twice.
    ///
    /// ```
    /// use apns_proto::payload::Payload;
    /// let mut payload = Payload::mail("55FAD99D-748E-44DA-8A7F-91D3478CAABD");
    /// payload.custom.insert("aps".into(), "again".into());
    /// assert!(payload.to_vec().is_err());
    /// ```
    pub fn to_vec(&self) -> Result<Vec<u8>, RequestError> {
        if self.custom.contains_key("aps") {
            return Err(RequestError::Payload);
        }
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        let volume = match &self.aps.sound {
            Some(Sound::Critical(sound)) => sound.volume,
            _ => None,
        };
        if !self.aps.relevance_score.into_iter().chain(volume).all(unit) {
            return Err(RequestError::Payload);
        }
        serde_json::to_vec(self).map_err(|_| RequestError::Payload)
    }
}

/// Apple's `aps` dictionary. Every field is optional; absent ones are not written.
/// Build it with `..Aps::default()`, so fields Apple adds later do not break you.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Aps {
    /// `alert`: text to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// `badge`: the app icon's number (0 removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<u32>,
    /// `sound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<Sound>,
    /// `thread-id`: groups notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// `category`: the notification's actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `content-available: 1`: a background update.
    #[serde(default, with = "flag", skip_serializing_if = "is_false")]
    pub content_available: bool,
    /// `mutable-content: 1`: a service extension may change it.
    #[serde(default, with = "flag", skip_serializing_if = "is_false")]
    pub mutable_content: bool,
    /// `target-content-id`: the window to bring forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_content_id: Option<String>,
    /// `interruption-level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption_level: Option<InterruptionLevel>,
    /// `relevance-score`: 0 to 1, for the notification summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevance_score: Option<f64>,
    /// `filter-criteria`: the Focus filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<String>,
    /// `account-id`: iOS Mail's account, the whole of a mail push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// `alert`: a string, or a dictionary with localisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Alert {
    /// `"alert": "text"`: the body alone.
    Text(String),
    /// `"alert": {...}`.
    Fields(Box<AlertFields>),
}

/// The alert dictionary; build it with `..AlertFields::default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AlertFields {
    /// `title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `subtitle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `launch-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_image: Option<String>,
    /// `title-loc-key`: the app's localised title format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_loc_key: Option<String>,
    /// `title-loc-args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_loc_args: Option<Vec<String>>,
    /// `subtitle-loc-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_loc_key: Option<String>,
    /// `subtitle-loc-args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_loc_args: Option<Vec<String>>,
    /// `loc-key`: the app's localised body format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loc_key: Option<String>,
    /// `loc-args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loc_args: Option<Vec<String>>,
}

/// `sound`: a file name, or a critical alert sound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sound {
    /// `"sound": "name"` (`"default"` for the system sound).
    Name(String),
    /// `"sound": {"critical": 1, "name": ..., "volume": ...}`.
    Critical(CriticalSound),
}

/// A critical alert's sound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalSound {
    /// `critical`: 1 for a critical alert.
    #[serde(default, with = "flag")]
    pub critical: bool,
    /// `name`.
    pub name: String,
    /// `volume`, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<f64>,
}

/// `interruption-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InterruptionLevel {
    /// `passive`: no sound or light.
    Passive,
    /// `active`: the default.
    Active,
    /// `time-sensitive`: breaks through Focus.
    TimeSensitive,
    /// `critical`: breaks through mute (needs Apple's entitlement).
    Critical,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

/// Apple's flags are the number 1 (or absent), not JSON booleans.
mod flag {
    use super::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub(super) fn serialize<S: Serializer>(value: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Flag {
            Number(u64),
            Bool(bool),
        }
        Ok(match Flag::deserialize(d)? {
            Flag::Number(n) => n != 0,
            Flag::Bool(b) => b,
        })
    }
}
