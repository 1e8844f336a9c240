//! The subscription state machine: pure, storage-agnostic.
//!
//! ```text
//!   WEBPUSH (new, changed, or under a rotated VAPID key) ──► Inactive ── verification push
//!   Inactive ── ACKWEBPUSH <token> (unexpired, single use) ──► Active
//!   Active ── SILWEBPUSH ──► Active, silenced (for n seconds / until that connection ends)
//!   any ── WEBPUSH <id> NIL ──► deleted
//! ```
//!
//! [`handle`] takes the account's stored subscriptions and a command and returns what
//! to store, what to answer and what to push. A refused command changes nothing.

use std::time::{Duration, SystemTime};

use imap_syntax::Tag;
use webpush_crypto::rand_core::CryptoRngCore;
use webpush_crypto::{Endpoint, PublicKey, SubscriptionKeys, base64url};

use crate::command::{Command, CommandBody, SubscriptionArgs};
use crate::content::ack_push;
use crate::error::Refusal;
use crate::policy::endpoint_policy;
use crate::response::{Response, Status, StatusKind, Text};
use crate::types::{AckToken, EndpointText, ListSelector, SilenceState, SubId};

/// Identifies the server's VAPID key, so a rotation is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VapidKeyId(pub u32);

/// Identifies an IMAP connection, for "silenced until this connection ends".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Whether a subscription may receive pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// Waiting for ACKWEBPUSH with this token.
    Inactive {
        /// The token sent in the verification push.
        token: AckToken<'static>,
        /// When it stops being accepted, seconds since the Unix epoch.
        expires_at: u64,
    },
    /// Acknowledged while this VAPID key was current.
    Active {
        /// The key it was activated under.
        vapid_key: VapidKeyId,
    },
}

/// Whether and how long pushes are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Not silenced.
    None,
    /// Until this time, seconds since the Unix epoch.
    Until(u64),
    /// Until this connection ends.
    UntilDisconnect(ConnectionId),
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The silence state as `* WEBPUSH` reports it at `now`.
    pub fn silence_state(&self, now: u64) -> SilenceState {
        match self.silence {
            Silence::UntilDisconnect(_) => SilenceState::UntilDisconnect,
            Silence::Until(t) if t > now => {
                SilenceState::from_secs(u32::try_from(t - now).unwrap_or(u32::MAX).max(1))
            }
            Silence::Until(_) | Silence::None => SilenceState::NotSilenced,
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
}

impl Settings {
    /// Settings for `vapid_key`, with 16 subscriptions per account and 5-minute tokens.
    pub fn new(vapid_key: PublicKey, vapid_key_id: VapidKeyId) -> Self {
        Self {
            vapid_key,
            vapid_key_id,
            max_subscriptions: 16,
            ack_lifetime: Duration::from_secs(300),
        }
    }
}

/// A storage change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace the record with this id (boxed: a record is large).
    Store(Box<Record>),
    /// Delete the record with this id.
    Delete(SubId<'static>),
}

/// A push to send: encrypt `plaintext` for `keys` and POST it to `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Applies `command` to `account` (all of this account's stored subscriptions) at
/// `now`, for the connection `connection`.
pub fn handle(
    command: &Command<'_>,
    account: &[Record],
    settings: &Settings,
    now: SystemTime,
    connection: ConnectionId,
    rng: &mut impl CryptoRngCore,
) -> Transition {
    let now = unix_secs(now);
    let tag = &command.tag;
    let find = |id: &SubId<'_>| account.iter().find(|r| r.sub_id.as_str() == id.as_str());
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
            if find(sub_id).is_some() {
                t.changes.push(Change::Delete(sub_id.clone().into_owned()));
            }
            t
        }
        CommandBody::WebPush {
            sub_id,
            subscription: Some(args),
        } => {
            let existing = find(sub_id);
            subscribe(
                tag,
                sub_id,
                args,
                existing,
                account.len(),
                settings,
                now,
                rng,
            )
            .unwrap_or_else(|refusal| Transition::refused(tag, &refusal))
        }
        CommandBody::AckWebPush { token } => {
            // Only this account's records are searched: another account's token
            // cannot match.
            let pending = account.iter().find(|r| match &r.activation {
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
                ListSelector::All => account.iter().collect(),
                ListSelector::One(id) => match find(id) {
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
            let Some(record) = find(sub_id) else {
                return Transition::refused(tag, &Refusal::UnknownSubscription);
            };
            if !matches!(record.activation, Activation::Active { .. }) {
                return Transition::refused(tag, &Refusal::NotActive);
            }
            let silence = match seconds {
                0 => Silence::UntilDisconnect(connection),
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
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn subscribe(
    tag: &Tag<'_>,
    sub_id: &SubId<'_>,
    args: &SubscriptionArgs<'_>,
    existing: Option<&Record>,
    count: usize,
    settings: &Settings,
    now: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<Transition, Refusal> {
    let endpoint = endpoint_policy(args.endpoint.as_str())?;
    if args.p256dh == settings.vapid_key {
        return Err(Refusal::KeyIsVapidKey);
    }
    if existing.is_none() && count >= settings.max_subscriptions {
        return Err(Refusal::Limit);
    }
    let keys = SubscriptionKeys::new(args.p256dh.clone(), args.auth.clone());
    let unchanged_and_active = existing.filter(|r| {
        r.endpoint == endpoint
            && r.keys == keys
            && r.activation
                == Activation::Active {
                    vapid_key: settings.vapid_key_id,
                }
    });
    let mut t = Transition::ok(tag, "WEBPUSH");
    if let Some(record) = unchanged_and_active {
        t.untagged.extend(record.response(now));
        return Ok(t);
    }
    // New, changed, still unacknowledged, or activated under a rotated VAPID key:
    // inactive until the new token comes back.
    let token = new_token(rng)?;
    let record = Record {
        sub_id: sub_id.clone().into_owned(),
        endpoint,
        keys,
        activation: Activation::Inactive {
            token: token.clone(),
            expires_at: now.saturating_add(settings.ack_lifetime.as_secs()),
        },
        silence: Silence::None,
    };
    t.untagged.push(Response::Vapid(settings.vapid_key.clone()));
    t.untagged.extend(record.response(now));
    t.pushes.push(Push {
        sub_id: record.sub_id.clone(),
        endpoint: record.endpoint.clone(),
        keys: record.keys.clone(),
        plaintext: ack_push(&token),
    });
    t.changes.push(Change::Store(Box::new(record)));
    Ok(t)
}

/// Seconds since the Unix epoch; a clock before 1970 reads as 1970.
fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 128 random bits, base64url: 22 characters, all atom-safe.
fn new_token(rng: &mut impl CryptoRngCore) -> Result<AckToken<'static>, Refusal> {
    let mut bytes = [0u8; 16];
    rng.try_fill_bytes(&mut bytes)
        .map_err(|_| Refusal::Unavailable)?;
    AckToken::new(base64url::encode(&bytes)).map_err(|_| Refusal::Unavailable)
}

/// Whether `record` gets pushes for a mailbox event at `now`: active under the current
/// VAPID key and not silenced. `connected` tells whether a connection is still open.
pub fn receives_pushes(
    record: &Record,
    settings: &Settings,
    now: SystemTime,
    connected: impl Fn(ConnectionId) -> bool,
) -> bool {
    let now = unix_secs(now);
    let active = record.activation
        == Activation::Active {
            vapid_key: settings.vapid_key_id,
        };
    let silenced = match record.silence {
        Silence::None => false,
        Silence::Until(t) => t > now,
        Silence::UntilDisconnect(c) => connected(c),
    };
    active && !silenced
}
