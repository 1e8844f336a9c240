//! The subscription state machine: pure, storage-agnostic.
//!
//! ```text
//!   WEBPUSH (new, changed, or under a rotated VAPID key) ──► Inactive ── verification push
//!   Inactive ── WEBPUSH, unchanged ──► Inactive, same token (pushed again at most once
//!                                      per resend interval)
//!   Inactive ── ACKWEBPUSH <token> (unexpired, single use) ──► Active
//!   Active ── SILWEBPUSH ──► Active, silenced (for n seconds / until that connection ends)
//!   silenced until a connection ── that connection ends ([`disconnect`]) ──► not silenced
//!   any ── WEBPUSH <id> NIL ──► deleted
//!   Inactive, token expired ── [`sweep`] ──► deleted
//! ```
//!
//! [`handle`] takes the account's stored state and a command and returns what to store,
//! what to answer and what to push. A refused command changes nothing. Verification
//! pushes are what the ACK handshake exists to hold back, so they are limited twice:
//! an unchanged WEBPUSH for a pending subscription keeps its token and pushes again at
//! most once per [`Settings::resend_interval`], and an account gets at most
//! [`Settings::max_verifications`] per [`Settings::verification_window`]
//! (`NO [LIMIT]` past it).

use std::time::{Duration, SystemTime};

use imap_syntax::Tag;
use webpush_crypto::rand_core::CryptoRngCore;
use webpush_crypto::{
    Encryptor, Endpoint, MadeAhead, Outcome, PublicKey, PushRequest, SubscriptionKeys, Topic, Ttl,
    Urgency, VapidToken, base64url, unix_secs,
};

use crate::command::{Command, CommandBody, SubscriptionArgs};
use crate::content::ack_push;
use crate::error::Refusal;
use crate::policy::endpoint_policy;
use crate::response::{Response, Status, StatusKind, Text};
use crate::types::{AckToken, EndpointText, ListSelector, SilenceState, SubId};

/// Identifies the server's VAPID key, so a rotation is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VapidKeyId(pub u32);

/// Identifies an IMAP connection, for "silenced until this connection ends": the
/// server process (`instance`, drawn at random when it starts, see [`ConnectionIds`])
/// and the connection within it. Ids from before a restart never collide with new
/// ones, so a silence left by a connection that died with the old process can be
/// recognised and ended ([`sweep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConnectionId {
    /// The server process that owns the connection.
    pub instance: u64,
    /// The connection, within that process.
    pub serial: u64,
}

/// Hands out [`ConnectionId`]s for one server process.
///
/// ```
/// use imap_webpush_proto::state::ConnectionIds;
/// let mut ids = ConnectionIds::new(&mut rand_core::OsRng)?;
/// let (a, b) = (ids.next_id(), ids.next_id());
/// assert_ne!(a, b);
/// assert!(ids.owns(a));
/// // After a restart, a new instance: the old ids are recognisably gone.
/// let restarted = ConnectionIds::new(&mut rand_core::OsRng)?;
/// assert!(!restarted.owns(a));
/// # Ok::<(), imap_webpush_proto::Refusal>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionIds {
    instance: u64,
    next: u64,
}

impl ConnectionIds {
    /// Ids for a process that just started, its instance drawn from `rng`.
    pub fn new(rng: &mut impl CryptoRngCore) -> Result<Self, Refusal> {
        let mut bytes = [0u8; 8];
        rng.try_fill_bytes(&mut bytes)
            .map_err(|_| Refusal::Unavailable)?;
        Ok(Self {
            instance: u64::from_le_bytes(bytes),
            next: 0,
        })
    }

    /// The next connection's id.
    pub fn next_id(&mut self) -> ConnectionId {
        self.next = self.next.wrapping_add(1);
        ConnectionId {
            instance: self.instance,
            serial: self.next,
        }
    }

    /// This process's instance.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Whether `id` was handed out by this process.
    pub fn owns(&self, id: ConnectionId) -> bool {
        id.instance == self.instance
    }
}

/// Whether a subscription may receive pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Activation {
    /// Waiting for ACKWEBPUSH with this token.
    Inactive {
        /// The token sent in the verification push.
        token: AckToken<'static>,
        /// When it stops being accepted, seconds since the Unix epoch.
        expires_at: u64,
        /// When it was last pushed, seconds since the Unix epoch.
        sent_at: u64,
        /// The VAPID key `* VAPID` named when the token was made: the one the client
        /// subscribed its push service with, so the only one the subscription may be
        /// activated under. `None` in a record stored before this was kept.
        #[cfg_attr(feature = "serde", serde(default))]
        vapid_key: Option<VapidKeyId>,
    },
    /// Acknowledged while this VAPID key was current.
    Active {
        /// The key it was activated under.
        vapid_key: VapidKeyId,
    },
}

/// Whether and how long pushes are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Silence {
    /// Not silenced.
    None,
    /// Until this time, seconds since the Unix epoch.
    Until(u64),
    /// Until this connection ends.
    UntilDisconnect(ConnectionId),
    /// Until this connection ends, or this time (seconds since the Unix epoch) at the
    /// latest: for a connection whose end may never be reported
    /// ([`Settings::disconnect_silence_limit`]).
    UntilDisconnectOrTime(ConnectionId, u64),
}

impl Silence {
    /// The connection whose end ends it, if one does.
    ///
    /// ```
    /// # use imap_webpush_proto::state::{ConnectionId, Silence};
    /// let c = ConnectionId { instance: 1, serial: 2 };
    /// assert_eq!(Silence::UntilDisconnectOrTime(c, 1_800_000_000).connection(), Some(c));
    /// assert_eq!(Silence::Until(1_800_000_000).connection(), None);
    /// ```
    pub fn connection(&self) -> Option<ConnectionId> {
        match *self {
            Silence::UntilDisconnect(c) | Silence::UntilDisconnectOrTime(c, _) => Some(c),
            Silence::None | Silence::Until(_) => None,
        }
    }
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Record {
    /// Its id, unique in the account.
    pub sub_id: SubId<'static>,
    /// Where pushes go, accepted by [`endpoint_policy`].
    pub endpoint: Endpoint,
    /// What pushes are encrypted for.
    pub keys: SubscriptionKeys,
    /// Acknowledged or not.
    pub activation: Activation,
    /// Silenced or not.
    pub silence: Silence,
}

impl Record {
    /// The silence state as `* WEBPUSH` reports it at `now` (seconds since the epoch).
    pub fn silence_state(&self, now: u64) -> SilenceState {
        match self.silence {
            Silence::UntilDisconnect(_) => SilenceState::UntilDisconnect,
            Silence::UntilDisconnectOrTime(_, t) if t > now => SilenceState::UntilDisconnect,
            Silence::Until(t) if t > now => {
                SilenceState::from_secs(u32::try_from(t - now).unwrap_or(u32::MAX).max(1))
            }
            Silence::Until(_) | Silence::UntilDisconnectOrTime(..) | Silence::None => {
                SilenceState::NotSilenced
            }
        }
    }

    /// When [`sweep`] next has something to do for this record, seconds since the Unix
    /// epoch: its ack token expiring while it waits for ACKWEBPUSH, or its timed
    /// silence ending. `None` when nothing of it changes with time alone (active and
    /// not silenced, or silenced until a connection ends).
    ///
    /// ```
    /// # use imap_webpush_proto::state::{Activation, Record, Silence, VapidKeyId};
    /// # use imap_webpush_proto::{SubId, endpoint_policy};
    /// # let mut record = Record {
    /// #     sub_id: SubId::new("a1")?.into_owned(),
    /// #     endpoint: endpoint_policy("https://push.example.net/p/1")?,
    /// #     keys: webpush_crypto::UaKeys::generate(&mut rand_core::OsRng)?.subscription_keys(),
    /// #     activation: Activation::Active { vapid_key: VapidKeyId(1) },
    /// #     silence: Silence::None,
    /// # };
    /// assert_eq!(record.next_deadline(), None);
    /// record.silence = Silence::Until(1_800_000_000);
    /// assert_eq!(record.next_deadline(), Some(1_800_000_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_deadline(&self) -> Option<u64> {
        let expiry = match self.activation {
            Activation::Inactive { expires_at, .. } => Some(expires_at),
            Activation::Active { .. } => None,
        };
        let silence = match self.silence {
            Silence::Until(t) | Silence::UntilDisconnectOrTime(_, t) => Some(t),
            Silence::None | Silence::UntilDisconnect(_) => None,
        };
        match (expiry, silence) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `* WEBPUSH` response for this record. Endpoints accepted by
    /// [`endpoint_policy`] always make a valid one.
    fn response(&self, now: u64) -> Option<Response<'static>> {
        Some(Response::WebPush {
            sub_id: self.sub_id.clone(),
            endpoint: EndpointText::new(self.endpoint.as_str().to_owned()).ok()?,
            silence: self.silence_state(now),
        })
    }
}

/// An account's verification pushes in the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Verifications {
    /// When the window started, seconds since the Unix epoch.
    pub window_start: u64,
    /// How many were sent in it.
    pub sent: u32,
}

impl Verifications {
    /// The count after one more push at `now`, or the refusal past the limit.
    fn one_more(self, now: u64, settings: &Settings) -> Result<Self, Refusal> {
        let window = settings.verification_window.as_secs();
        if now >= self.window_start.saturating_add(window) || now < self.window_start {
            return Ok(Self {
                window_start: now,
                sent: 1,
            });
        }
        if self.sent >= settings.max_verifications {
            return Err(Refusal::TooManyVerifications);
        }
        Ok(Self {
            sent: self.sent + 1,
            ..self
        })
    }
}

/// One account's stored state: its subscriptions and its verification count.
///
/// A server with its own storage builds one from its rows for [`handle`], then applies
/// the [`Change`]s to its rows; [`Account::apply`] does the same in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Account {
    /// Every subscription of the account.
    pub records: Vec<Record>,
    /// Its verification pushes in the current window.
    pub verifications: Verifications,
}

impl Account {
    /// The subscription with this id.
    pub fn find(&self, id: &SubId<'_>) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.sub_id.as_str() == id.as_str())
    }

    /// The earliest [`Record::next_deadline`] of the account's subscriptions.
    pub fn next_deadline(&self) -> Option<u64> {
        self.records.iter().filter_map(Record::next_deadline).min()
    }

    /// Applies changes in order, as a store would.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Store(record) => {
                    match self.records.iter_mut().find(|r| r.sub_id == record.sub_id) {
                        Some(slot) => *slot = (**record).clone(),
                        None => self.records.push((**record).clone()),
                    }
                }
                Change::Delete(id) => self.records.retain(|r| &r.sub_id != id),
                Change::Verifications(v) => self.verifications = *v,
            }
        }
    }
}

/// The server's settings for the state machine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The current VAPID public key (sent in `* VAPID`).
    pub vapid_key: PublicKey,
    /// Its id.
    pub vapid_key_id: VapidKeyId,
    /// Subscriptions allowed per account.
    pub max_subscriptions: usize,
    /// How long an ack token is accepted (5 minutes by default).
    pub ack_lifetime: Duration,
    /// How soon an unchanged WEBPUSH for a pending subscription pushes its token
    /// again (1 minute by default); sooner, it is answered without a push.
    pub resend_interval: Duration,
    /// Verification pushes allowed per account per window (20 by default).
    pub max_verifications: u32,
    /// The window (an hour by default).
    pub verification_window: Duration,
    /// Which endpoints are stored: [`Endpoints::Policy`] unless testing against a
    /// local push service.
    pub endpoints: Endpoints,
    /// How long a silence "until this connection ends" (`SILWEBPUSH … 0`) lasts at
    /// most: `None` (the default) where the connection's end is always seen, a bound
    /// where it may never be reported (an IMAP server that forwards commands and
    /// crashes), so that a subscription is not silenced for ever.
    pub disconnect_silence_limit: Option<Duration>,
}

/// Which endpoints WEBPUSH accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoints {
    /// [`endpoint_policy`]: https to a globally reachable host. The default, and the
    /// only choice for a server with real clients.
    #[default]
    Policy,
    /// **For tests against a local push service only** (such as `web-push-testing`,
    /// which listens on plain http on localhost): plain `http` and local addresses are
    /// accepted. Pushes to such endpoints can be read and forged on the way.
    LocalTestService,
}

impl Endpoints {
    /// Whether a stored endpoint may still be pushed to under this setting: the rule
    /// applied again at send time, so one stored while the test-only setting was on
    /// is not contacted once it is off (an IP literal never reaches a resolver that
    /// would apply the address rule).
    ///
    /// ```
    /// use imap_webpush_proto::state::Endpoints;
    /// use webpush_crypto::Endpoint;
    /// let local = Endpoint::new_allowing_plain_http("http://127.0.0.1:8090/p")?;
    /// assert!(Endpoints::LocalTestService.admits(&local).is_ok());
    /// assert!(Endpoints::Policy.admits(&local).is_err());
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn admits(self, endpoint: &Endpoint) -> Result<(), Refusal> {
        match self {
            Endpoints::LocalTestService => Ok(()),
            Endpoints::Policy if !endpoint.is_https() => Err(Refusal::Endpoint {
                reason: "not https".to_owned(),
            }),
            Endpoints::Policy => crate::check_host(endpoint.host()),
        }
    }

    fn check(self, text: &str) -> Result<Endpoint, Refusal> {
        match self {
            Endpoints::Policy => endpoint_policy(text),
            Endpoints::LocalTestService => {
                Endpoint::new_allowing_plain_http(text).map_err(|e| Refusal::Endpoint {
                    reason: e.to_string(),
                })
            }
        }
    }
}

impl Settings {
    /// Settings for `vapid_key`, with 16 subscriptions per account, 5-minute tokens
    /// pushed again at most once a minute, and 20 verification pushes per account per
    /// hour.
    pub fn new(vapid_key: PublicKey, vapid_key_id: VapidKeyId) -> Self {
        Self {
            vapid_key,
            vapid_key_id,
            max_subscriptions: 16,
            ack_lifetime: Duration::from_secs(300),
            resend_interval: Duration::from_secs(60),
            max_verifications: 20,
            verification_window: Duration::from_secs(3600),
            endpoints: Endpoints::Policy,
            disconnect_silence_limit: None,
        }
    }
}

/// A storage change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Change {
    /// Insert or replace the record with this id (boxed: a record is large).
    Store(Box<Record>),
    /// Delete the record with this id.
    Delete(SubId<'static>),
    /// Replace the account's verification count.
    Verifications(Verifications),
}

/// A push to send: encrypt `plaintext` for `keys` and POST it to `endpoint`.
///
/// `Debug` shows the plaintext's length only: it holds a verification's ACK token, or
/// what the mail says.
///
/// ```
/// # use webpush_crypto::UaKeys;
/// # use imap_webpush_proto::state::{Push, Record, Activation, Silence, VapidKeyId};
/// # use imap_webpush_proto::{SubId, endpoint_policy};
/// # let record = Record {
/// #     sub_id: SubId::new("a1")?.into_owned(),
/// #     endpoint: endpoint_policy("https://push.example.net/p/1")?,
/// #     keys: UaKeys::generate(&mut rand_core::OsRng)?.subscription_keys(),
/// #     activation: Activation::Active { vapid_key: VapidKeyId(1) },
/// #     silence: Silence::None,
/// # };
/// let push = Push::new(&record, b"* ACKWEBPUSH secret-token\r\n".to_vec());
/// let shown = format!("{push:?}");
/// assert!(!shown.contains("secret-token"));
/// assert!(shown.contains("<27 octets>"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Push {
    /// The subscription.
    pub sub_id: SubId<'static>,
    /// Where.
    pub endpoint: Endpoint,
    /// For whom.
    pub keys: SubscriptionKeys,
    /// What (before encryption).
    pub plaintext: Vec<u8>,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push")
            .field("sub_id", &self.sub_id)
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys)
            .field(
                "plaintext",
                &format_args!("<{} octets>", self.plaintext.len()),
            )
            .finish()
    }
}

impl Push {
    /// A push of `plaintext` (content from [`ContentBuilder`](crate::content::ContentBuilder))
    /// to `record`'s subscription.
    pub fn new(record: &Record, plaintext: Vec<u8>) -> Self {
        Self {
            sub_id: record.sub_id.clone(),
            endpoint: record.endpoint.clone(),
            keys: record.keys.clone(),
            plaintext,
        }
    }

    /// [`Push::new`], taking what it needs from `record` instead of copying it: for
    /// the last (usually the only) push of a record read for one fan-out.
    ///
    /// ```
    /// # use webpush_crypto::UaKeys;
    /// # use imap_webpush_proto::state::{Push, Record, Activation, Silence, VapidKeyId};
    /// # use imap_webpush_proto::{SubId, endpoint_policy};
    /// # let record = Record {
    /// #     sub_id: SubId::new("a1")?.into_owned(),
    /// #     endpoint: endpoint_policy("https://push.example.net/p/1")?,
    /// #     keys: UaKeys::generate(&mut rand_core::OsRng)?.subscription_keys(),
    /// #     activation: Activation::Active { vapid_key: VapidKeyId(1) },
    /// #     silence: Silence::None,
    /// # };
    /// let copied = Push::new(&record, b"* 3 EXISTS\r\n".to_vec());
    /// assert_eq!(Push::from_record(record, b"* 3 EXISTS\r\n".to_vec()), copied);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_record(record: Record, plaintext: Vec<u8>) -> Self {
        Self {
            sub_id: record.sub_id,
            endpoint: record.endpoint,
            keys: record.keys,
            plaintext,
        }
    }

    /// The RFC 8030 request for this push, encrypted with `encryptor` and authorized by
    /// `token` (for the endpoint's origin), in one call; with a `Topic` when given, so
    /// the push service keeps only the newest undelivered push of that topic (one
    /// topic per mailbox: [`mailbox_topic`](crate::content::mailbox_topic)).
    ///
    /// ```
    /// # use std::time::SystemTime;
    /// # use webpush_crypto::{Encryptor, TokenCache, Ttl, Urgency, UaKeys, VapidKey, VapidSigner};
    /// # use imap_webpush_proto::state::{Push, Record, Activation, Silence, VapidKeyId};
    /// # use imap_webpush_proto::{SubId, endpoint_policy};
    /// # let mut rng = rand_core::OsRng;
    /// # let record = Record {
    /// #     sub_id: SubId::new("a1")?.into_owned(),
    /// #     endpoint: endpoint_policy("https://push.example.net/p/1")?,
    /// #     keys: UaKeys::generate(&mut rng)?.subscription_keys(),
    /// #     activation: Activation::Active { vapid_key: VapidKeyId(1) },
    /// #     silence: Silence::None,
    /// # };
    /// # let mut tokens = TokenCache::new(VapidSigner::new(VapidKey::generate(&mut rng)?, "mailto:postmaster@mail.example".parse()?));
    /// let push = Push::new(&record, b"* SELECT INBOX\r\n".to_vec());
    /// let token = tokens.token(push.endpoint.origin(), SystemTime::now())?;
    /// let topic = imap_webpush_proto::content::mailbox_topic("INBOX");
    /// let request = push.to_request(token, Ttl::from_secs(3600), Urgency::High, Some(&topic), &Encryptor::new(), &mut rng)?;
    /// assert_eq!(request.uri(), "https://push.example.net/p/1");
    /// assert_eq!(request.headers()["topic"], topic.as_str());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_request(
        &self,
        token: VapidToken,
        ttl: Ttl,
        urgency: Urgency,
        topic: Option<&Topic>,
        encryptor: &Encryptor,
        rng: &mut impl CryptoRngCore,
    ) -> Result<http::Request<Vec<u8>>, webpush_crypto::Error> {
        self.to_request_with_key(token, ttl, urgency, topic, encryptor, None, rng)
    }

    /// [`Push::to_request`] with a key made ahead (`None`: one made now): an ephemeral
    /// key, or one agreed with this push's keys.
    #[allow(clippy::too_many_arguments)] // each is a part of the request
    pub fn to_request_with_key(
        &self,
        token: VapidToken,
        ttl: Ttl,
        urgency: Urgency,
        topic: Option<&Topic>,
        encryptor: &Encryptor,
        ahead: Option<MadeAhead>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<http::Request<Vec<u8>>, webpush_crypto::Error> {
        let mut request = PushRequest::to(&self.endpoint, &self.keys, ttl)
            .urgency(urgency)
            .vapid(token);
        if let Some(topic) = topic {
            request = request.topic(topic.clone());
        }
        match ahead {
            Some(ahead) => request.build_prepared(encryptor, &self.plaintext, ahead, rng),
            None => request.build(encryptor, &self.plaintext, rng),
        }
    }

    /// What the push service's answer means for the store, given `account` as stored
    /// now: 404 and 410 delete the subscription this push went to, and only it: one
    /// that has been replaced since (the same id, another endpoint or other keys: a
    /// client subscribing again, to a push service that may give the same endpoint
    /// back) stays, since the answer was about the old one. Every other answer changes
    /// nothing stored (retrying, or fixing the VAPID configuration, is the sender's
    /// business).
    pub fn on_outcome(&self, outcome: &Outcome, account: &Account) -> Option<Change> {
        if !outcome.removes_subscription() {
            return None;
        }
        let stored = account.find(&self.sub_id)?;
        (stored.endpoint == self.endpoint && stored.keys == self.keys)
            .then(|| Change::Delete(self.sub_id.clone()))
    }
}

/// Everything a command leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Storage changes, to apply before answering.
    pub changes: Vec<Change>,
    /// Untagged responses, in order.
    pub untagged: Vec<Response<'static>>,
    /// The tagged result.
    pub tagged: Response<'static>,
    /// Pushes to send.
    pub pushes: Vec<Push>,
}

impl Transition {
    fn refused(tag: &Tag<'_>, refusal: &Refusal) -> Self {
        Self {
            changes: Vec::new(),
            untagged: Vec::new(),
            tagged: refusal.response(tag.clone().into_owned()),
            pushes: Vec::new(),
        }
    }

    fn ok(tag: &Tag<'_>, name: &str) -> Self {
        Self {
            changes: Vec::new(),
            untagged: Vec::new(),
            tagged: Response::Status(Status {
                tag: Some(tag.clone().into_owned()),
                kind: StatusKind::Ok,
                code: None,
                text: Text::sanitized(format!("{name} completed")),
            }),
            pushes: Vec::new(),
        }
    }
}

/// Applies `command` to `account` at `now`, for the connection `connection`.
pub fn handle(
    command: &Command<'_>,
    account: &Account,
    settings: &Settings,
    now: SystemTime,
    connection: ConnectionId,
    rng: &mut impl CryptoRngCore,
) -> Transition {
    let tag = &command.tag;
    // A clock before 1970 makes every expiry wrong: refuse rather than guess.
    let Ok(now) = unix_secs(now) else {
        return Transition::refused(tag, &Refusal::Unavailable);
    };
    match &command.body {
        CommandBody::GetVapid => {
            let mut t = Transition::ok(tag, "GETVAPID");
            t.untagged.push(Response::Vapid(settings.vapid_key.clone()));
            t
        }
        CommandBody::WebPush {
            sub_id,
            subscription: None,
        } => {
            let mut t = Transition::ok(tag, "WEBPUSH");
            if account.find(sub_id).is_some() {
                t.changes.push(Change::Delete(sub_id.clone().into_owned()));
            }
            t
        }
        CommandBody::WebPush {
            sub_id,
            subscription: Some(args),
        } => subscribe(tag, sub_id, args, account, settings, now, rng)
            .unwrap_or_else(|refusal| Transition::refused(tag, &refusal)),
        CommandBody::AckWebPush { token } => {
            // Only this account's records are searched: another account's token
            // cannot match.
            let pending = account.records.iter().find(|r| match &r.activation {
                Activation::Inactive { token: t, .. } => t == token,
                Activation::Active { .. } => false,
            });
            let Some(record) = pending else {
                return Transition::refused(tag, &Refusal::UnknownAckToken);
            };
            if let Activation::Inactive { expires_at, .. } = record.activation
                && now >= expires_at
            {
                return Transition::refused(tag, &Refusal::ExpiredAckToken);
            }
            // The client's push service knows the key it was told; a push signed with
            // a later one would be refused there.
            if let Activation::Inactive {
                vapid_key: Some(key),
                ..
            } = record.activation
                && key != settings.vapid_key_id
            {
                return Transition::refused(tag, &Refusal::VapidKeyChanged);
            }
            let record = Record {
                activation: Activation::Active {
                    vapid_key: settings.vapid_key_id,
                },
                ..record.clone()
            };
            let mut t = Transition::ok(tag, "ACKWEBPUSH");
            t.untagged.extend(record.response(now));
            t.changes.push(Change::Store(Box::new(record)));
            t
        }
        CommandBody::LWebPush { selector } => {
            let listed: Vec<&Record> = match selector {
                ListSelector::All => account.records.iter().collect(),
                ListSelector::One(id) => match account.find(id) {
                    Some(r) => vec![r],
                    None => return Transition::refused(tag, &Refusal::UnknownSubscription),
                },
            };
            let mut t = Transition::ok(tag, "LWEBPUSH");
            t.untagged
                .extend(listed.iter().filter_map(|r| r.response(now)));
            t
        }
        CommandBody::SilWebPush { sub_id, seconds } => {
            let Some(record) = account.find(sub_id) else {
                return Transition::refused(tag, &Refusal::UnknownSubscription);
            };
            if !matches!(record.activation, Activation::Active { .. }) {
                return Transition::refused(tag, &Refusal::NotActive);
            }
            let silence = match seconds {
                0 => match settings.disconnect_silence_limit {
                    None => Silence::UntilDisconnect(connection),
                    Some(limit) => Silence::UntilDisconnectOrTime(
                        connection,
                        now.saturating_add(limit.as_secs()),
                    ),
                },
                n => Silence::Until(now.saturating_add(u64::from(*n))),
            };
            let record = Record {
                silence,
                ..record.clone()
            };
            let mut t = Transition::ok(tag, "SILWEBPUSH");
            t.untagged.extend(record.response(now));
            t.changes.push(Change::Store(Box::new(record)));
            t
        }
    }
}

/// WEBPUSH with arguments: create, update, re-verify, or confirm unchanged.
fn subscribe(
    tag: &Tag<'_>,
    sub_id: &SubId<'_>,
    args: &SubscriptionArgs<'_>,
    account: &Account,
    settings: &Settings,
    now: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<Transition, Refusal> {
    let endpoint = settings.endpoints.check(args.endpoint.as_str())?;
    if args.p256dh == settings.vapid_key {
        return Err(Refusal::KeyIsVapidKey);
    }
    let existing = account.find(sub_id);
    if existing.is_none() && account.records.len() >= settings.max_subscriptions {
        return Err(Refusal::Limit);
    }
    let keys = SubscriptionKeys::new(args.p256dh.clone(), args.auth.clone());
    let unchanged = existing.filter(|r| r.endpoint == endpoint && r.keys == keys);
    let mut t = Transition::ok(tag, "WEBPUSH");
    match unchanged.map(|r| (r, &r.activation)) {
        Some((record, Activation::Active { vapid_key })) if *vapid_key == settings.vapid_key_id => {
            t.untagged.extend(record.response(now));
            return Ok(t);
        }
        // Pending with a live token: the same token, pushed again only when the last
        // push is at least the resend interval old.
        Some((
            record,
            Activation::Inactive {
                token,
                expires_at,
                sent_at,
                vapid_key,
            },
        )) if now < *expires_at && vapid_key.is_none_or(|k| k == settings.vapid_key_id) => {
            t.untagged.push(Response::Vapid(settings.vapid_key.clone()));
            t.untagged.extend(record.response(now));
            if now >= sent_at.saturating_add(settings.resend_interval.as_secs()) {
                let verifications = account.verifications.one_more(now, settings)?;
                let record = Record {
                    activation: Activation::Inactive {
                        token: token.clone(),
                        expires_at: *expires_at,
                        sent_at: now,
                        vapid_key: Some(settings.vapid_key_id),
                    },
                    ..record.clone()
                };
                t.pushes.push(Push::new(&record, ack_push(token)));
                t.changes.push(Change::Store(Box::new(record)));
                t.changes.push(Change::Verifications(verifications));
            }
            return Ok(t);
        }
        _ => {}
    }
    // New, changed, expired, or made or activated under a rotated VAPID key: inactive
    // until the new token comes back.
    let verifications = account.verifications.one_more(now, settings)?;
    let token = new_token(rng)?;
    let record = Record {
        sub_id: sub_id.clone().into_owned(),
        endpoint,
        keys,
        activation: Activation::Inactive {
            token: token.clone(),
            expires_at: now.saturating_add(settings.ack_lifetime.as_secs()),
            sent_at: now,
            vapid_key: Some(settings.vapid_key_id),
        },
        silence: Silence::None,
    };
    t.untagged.push(Response::Vapid(settings.vapid_key.clone()));
    t.untagged.extend(record.response(now));
    t.pushes.push(Push::new(&record, ack_push(&token)));
    t.changes.push(Change::Store(Box::new(record)));
    t.changes.push(Change::Verifications(verifications));
    Ok(t)
}

/// 128 random bits, base64url: 22 characters, all atom-safe.
fn new_token(rng: &mut impl CryptoRngCore) -> Result<AckToken<'static>, Refusal> {
    let mut bytes = [0u8; 16];
    rng.try_fill_bytes(&mut bytes)
        .map_err(|_| Refusal::Unavailable)?;
    AckToken::new(base64url::encode(&bytes)).map_err(|_| Refusal::Unavailable)
}

/// The IMAP connection `connection` ended: the silences it set end with it.
///
/// ```
/// # use imap_webpush_proto::state::{disconnect, Account, ConnectionId};
/// let account = Account::default();
/// assert!(disconnect(&account, ConnectionId { instance: 1, serial: 2 }).is_empty());
/// ```
pub fn disconnect(account: &Account, connection: ConnectionId) -> Vec<Change> {
    account
        .records
        .iter()
        .filter(|r| r.silence.connection() == Some(connection))
        .map(unsilenced)
        .collect()
}

/// Housekeeping at `now`, for a timer set to [`Account::next_deadline`] (and before
/// [`handle`], so that an expired pending subscription does not count toward the
/// limit): deletes subscriptions never acknowledged whose token expired, and ends
/// silences that are over, including those of connections that are gone (`connected`
/// says which are open; after a restart, none of the old process's are).
pub fn sweep(
    account: &Account,
    now: SystemTime,
    connected: impl Fn(ConnectionId) -> bool,
) -> Vec<Change> {
    let Ok(now) = unix_secs(now) else {
        return Vec::new();
    };
    account
        .records
        .iter()
        .filter_map(|r| {
            if let Activation::Inactive { expires_at, .. } = r.activation
                && now >= expires_at
            {
                return Some(Change::Delete(r.sub_id.clone()));
            }
            let over = match r.silence {
                Silence::None => false,
                Silence::Until(t) => t <= now,
                Silence::UntilDisconnect(c) => !connected(c),
                Silence::UntilDisconnectOrTime(c, t) => t <= now || !connected(c),
            };
            over.then(|| unsilenced(r))
        })
        .collect()
}

fn unsilenced(record: &Record) -> Change {
    Change::Store(Box::new(Record {
        silence: Silence::None,
        ..record.clone()
    }))
}

/// Whether `record` gets pushes for a mailbox event at `now`: active under the current
/// VAPID key and not silenced. `connected` tells whether a connection is still open.
pub fn receives_pushes(
    record: &Record,
    settings: &Settings,
    now: SystemTime,
    connected: impl Fn(ConnectionId) -> bool,
) -> bool {
    let Ok(now) = unix_secs(now) else {
        return false;
    };
    let active = record.activation
        == Activation::Active {
            vapid_key: settings.vapid_key_id,
        };
    let silenced = match record.silence {
        Silence::None => false,
        Silence::Until(t) => t > now,
        Silence::UntilDisconnect(c) => connected(c),
        Silence::UntilDisconnectOrTime(c, t) => t > now && connected(c),
    };
    active && !silenced
}
