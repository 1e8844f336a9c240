//! The plugin ↔ daemon messages of the current xapsd protocol: JSON bodies of
//! `POST /register` and `POST /notify`, and what each answer means.

use serde::{Deserialize, Serialize};

use crate::types::{
    AccountId, DeviceToken, MAIL_SUBTOPIC, MAX_MAILBOX_LEN, MAX_MAILBOXES, RegistrationRequest,
};
use crate::user::UserName;

/// The longest body accepted, in octets: a registration lists at most 1,000 mailboxes.
pub const MAX_BODY_LEN: usize = 256 * 1024;

/// Why a daemon refuses a body: answered with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Not JSON of the expected shape, or too large.
    #[error("body is not a valid {what} message: {reason}")]
    Malformed {
        /// `register` or `notify`.
        what: &'static str,
        /// The JSON parser's words.
        reason: String,
    },
    /// A required field is missing or empty, or invalid (a token that is not hex,
    /// a subtopic other than `com.apple.mobilemail`, too many mailboxes).
    #[error("field {field} is missing, empty or invalid")]
    Field {
        /// The JSON field name.
        field: &'static str,
    },
}

impl BodyError {
    /// The HTTP status a daemon answers with.
    pub const fn status(&self) -> u16 {
        400
    }
}

/// `POST /register`: a device registration, sent by the IMAP plugin after
/// `XAPPLEPUSHSERVICE`. The user is the authenticated one, lowercased as xapsd does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Register {
    /// `ApsAccountId`.
    pub account_id: AccountId,
    /// `ApsDeviceToken`.
    pub device_token: DeviceToken,
    /// `Username`.
    pub username: UserName,
    /// `Mailboxes`.
    pub mailboxes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterWire {
    aps_account_id: String,
    aps_device_token: String,
    aps_subtopic: String,
    username: String,
    // Dovecot forwards `mailboxes ()` as `[]`; a missing list reads the same way.
    #[serde(default)]
    mailboxes: Vec<String>,
}

/// `POST /notify`: events in one mailbox of one user, sent by the delivery and IMAP
/// plugins for each processed message. Made by [`Notify::new`] or
/// [`Notify::from_json`] only, so its mailbox and events are never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Notify {
    username: UserName,
    mailbox: String,
    events: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    messages: Vec<MessageSummary>,
}

/// A `/notify` body as read, before its fields are checked.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NotifyWire {
    username: String,
    mailbox: String,
    events: Vec<String>,
    #[serde(default)]
    messages: Vec<MessageSummary>,
}

/// A new message as an event source describes it, for pushes that show it (Web Push's
/// ENVELOPE form). Every field may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageSummary {
    /// Its UID.
    #[serde(default)]
    pub uid: u32,
    /// The mailbox's UIDVALIDITY.
    #[serde(default)]
    pub uid_validity: u32,
    /// `From:`, as the message has it (an RFC 5322 address list).
    #[serde(default)]
    pub from: String,
    /// `Subject:`, as the message has it or decoded to UTF-8.
    #[serde(default)]
    pub subject: String,
    /// `Date:`, as RFC 5322 text (`Tue, 1 Dec 2026 21:39:06 +0100`).
    #[serde(default)]
    pub date: String,
    /// `Message-ID:`.
    #[serde(default, rename = "MessageId")]
    pub message_id: String,
}

fn malformed(what: &'static str) -> impl Fn(serde_json::Error) -> BodyError {
    move |e| BodyError::Malformed {
        what,
        reason: e.to_string(),
    }
}

/// A registration lists at most [`MAX_MAILBOXES`], each of at most
/// [`MAX_MAILBOX_LEN`] octets, as the command it comes from does.
fn mailbox_count(mailboxes: &[String]) -> Result<(), BodyError> {
    if mailboxes.len() > MAX_MAILBOXES || mailboxes.iter().any(|m| m.len() > MAX_MAILBOX_LEN) {
        return Err(BodyError::Field { field: "Mailboxes" });
    }
    Ok(())
}

/// The `Username` field as a user name.
fn user_name(text: &str) -> Result<UserName, BodyError> {
    UserName::new(text).map_err(|_| BodyError::Field { field: "Username" })
}

/// A body as written, if a daemon would read it.
fn written(
    body: Result<String, serde_json::Error>,
    what: &'static str,
) -> Result<String, BodyError> {
    let body = body.map_err(malformed(what))?;
    check_len(body.as_bytes(), what)?;
    Ok(body)
}

fn check_len(body: &[u8], what: &'static str) -> Result<(), BodyError> {
    if body.len() > MAX_BODY_LEN {
        return Err(BodyError::Malformed {
            what,
            reason: "larger than 256 KiB".into(),
        });
    }
    Ok(())
}

impl Register {
    /// The registration a plugin sends for `request`, made by the authenticated
    /// `username`.
    pub fn new(request: &RegistrationRequest, username: &UserName) -> Self {
        Self {
            account_id: request.account_id.clone(),
            device_token: request.device_token.clone(),
            username: username.clone(),
            mailboxes: request.mailboxes.clone(),
        }
    }

    /// Reads and checks a `/register` body as xapsd does: every field non-empty, the
    /// subtopic `com.apple.mobilemail`. An empty or missing `Mailboxes` (what Dovecot
    /// sends for `mailboxes ()`, and xapsd refuses) means INBOX.
    ///
    /// ```
    /// use xaps_proto::daemon::Register;
    /// let body = br#"{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"User","Mailboxes": ["INBOX","Notes"]}"#;
    /// let register = Register::from_json(body)?;
    /// assert_eq!(register.username.as_str(), "user");
    /// # Ok::<(), xaps_proto::daemon::BodyError>(())
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, BodyError> {
        check_len(body, "register")?;
        let wire: RegisterWire = serde_json::from_slice(body).map_err(malformed("register"))?;
        let field = |field| BodyError::Field { field };
        let account_id = AccountId::new(&wire.aps_account_id).map_err(|_| field("ApsAccountId"))?;
        let device_token =
            DeviceToken::new(&wire.aps_device_token).map_err(|_| field("ApsDeviceToken"))?;
        if wire.aps_subtopic != MAIL_SUBTOPIC {
            return Err(field("ApsSubtopic"));
        }
        let username = user_name(&wire.username)?;
        mailbox_count(&wire.mailboxes)?;
        let mailboxes = if wire.mailboxes.is_empty() {
            vec!["INBOX".to_owned()]
        } else {
            wire.mailboxes
        };
        Ok(Self {
            account_id,
            device_token,
            username,
            mailboxes,
        })
    }

    /// The body, with the field names and order the plugin uses; refused with the
    /// error a daemon would answer it with ([`Register::from_json`]) if it would be.
    pub fn to_json(&self) -> Result<String, BodyError> {
        mailbox_count(&self.mailboxes)?;
        let wire = RegisterWire {
            aps_account_id: self.account_id.as_str().to_owned(),
            aps_device_token: self.device_token.as_str().to_owned(),
            aps_subtopic: MAIL_SUBTOPIC.to_owned(),
            username: self.username.as_str().to_owned(),
            mailboxes: self.mailboxes.clone(),
        };
        written(serde_json::to_string(&wire), "register")
    }
}

impl Notify {
    /// Reads and checks a `/notify` body: a user name ([`UserName`]), mailbox and events
    /// non-empty.
    ///
    /// ```
    /// use xaps_proto::daemon::Notify;
    /// let n = Notify::from_json(br#"{"Username":"me@domain.com","Mailbox":"INBOX","Events": ["MessageNew"]}"#)?;
    /// assert!(n.is_message_new());
    /// # Ok::<(), xaps_proto::daemon::BodyError>(())
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, BodyError> {
        check_len(body, "notify")?;
        let wire: NotifyWire = serde_json::from_slice(body).map_err(malformed("notify"))?;
        Self::new(
            user_name(&wire.username)?,
            wire.mailbox,
            wire.events,
            wire.messages,
        )
    }

    /// A notify from another source (Dovecot's OX driver, say), checked as
    /// [`Notify::from_json`] checks a body: mailbox and events non-empty, the mailbox
    /// at most [`MAX_MAILBOX_LEN`] octets.
    ///
    /// ```
    /// use xaps_proto::{UserName, daemon::{BodyError, Notify}};
    /// let me = UserName::new("me@domain.com")?;
    /// let events = vec!["MessageNew".to_owned()];
    /// assert!(Notify::new(me.clone(), "INBOX".into(), events.clone(), Vec::new()).is_ok());
    /// assert!(matches!(
    ///     Notify::new(me, String::new(), events, Vec::new()),
    ///     Err(BodyError::Field { field: "Mailbox" })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        username: UserName,
        mailbox: String,
        events: Vec<String>,
        messages: Vec<MessageSummary>,
    ) -> Result<Self, BodyError> {
        let notify = Notify {
            username,
            mailbox,
            events,
            messages,
        };
        notify.check()?;
        Ok(notify)
    }

    /// The body. Every `Notify` is one [`Notify::from_json`] takes back (its
    /// constructors check it); an error is JSON's own.
    pub fn to_json(&self) -> Result<String, BodyError> {
        written(serde_json::to_string(self), "notify")
    }

    /// Mailbox and events non-empty (the user name is never empty), the mailbox's name
    /// at most [`MAX_MAILBOX_LEN`] octets: a daemon keeps what it owes each mailbox,
    /// so names without a bound would be state without one.
    fn check(&self) -> Result<(), BodyError> {
        let empty = [
            (
                "Mailbox",
                self.mailbox.is_empty() || self.mailbox.len() > MAX_MAILBOX_LEN,
            ),
            ("Events", self.events.is_empty()),
        ];
        match empty.into_iter().find(|(_, empty)| *empty) {
            Some((field, _)) => Err(BodyError::Field { field }),
            None => Ok(()),
        }
    }

    /// `Username`.
    pub fn username(&self) -> &UserName {
        &self.username
    }

    /// `Mailbox`: never empty.
    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    /// `Events`: Dovecot push-notification event names (`MessageNew`, `FlagsSet`,
    /// ...); never none.
    pub fn events(&self) -> &[String] {
        &self.events
    }

    /// `Messages`: what an event source knows of the new messages (mailpushd's Lua
    /// script sends it; the xaps plugin does not, and xapsd ignores it). Empty when
    /// absent, and then not written.
    pub fn messages(&self) -> &[MessageSummary] {
        &self.messages
    }

    /// Whether the events include new mail, which is pushed at once.
    pub fn is_message_new(&self) -> bool {
        crate::is_message_new(&self.events)
    }
}

/// What a daemon answers to `/notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// 200: pushes were sent or scheduled (or the mailbox is not one that pushes).
    Accepted,
    /// 204: the user has devices, none registered for this mailbox.
    NotSubscribed,
    /// 404: the user has no registered device.
    NoDevice,
}

impl NotifyOutcome {
    /// The HTTP status.
    pub const fn status(self) -> u16 {
        match self {
            NotifyOutcome::Accepted => 200,
            NotifyOutcome::NotSubscribed => 204,
            NotifyOutcome::NoDevice => 404,
        }
    }

    /// The outcome a plugin reads from a status; `None` for an error status.
    pub const fn from_status(status: u16) -> Option<Self> {
        match status {
            200 => Some(NotifyOutcome::Accepted),
            204 => Some(NotifyOutcome::NotSubscribed),
            404 => Some(NotifyOutcome::NoDevice),
            _ => None,
        }
    }
}
