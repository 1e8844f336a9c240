//! IMAP WEBPUSH: the commands of a connection, decided by the crate's state machine and
//! stored before they are answered; mail events made into push content for the user's
//! active subscriptions.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use imap_syntax::{Limits, Mailbox};
use imap_webpush_proto::content::{
    ContentBuilder, Envelope, Event, HeaderValues, MailboxEvents, mailbox_topic,
};
use imap_webpush_proto::state::{
    Account, ConnectionId, Endpoints, Push, Settings, VapidKeyId, disconnect, handle,
    receives_pushes, sweep,
};
use imap_webpush_proto::{Command, Config, DecodeError, Refusal, Response};
use webpush_crypto::unix_secs;
use webpush_crypto::{Encryptor, Subject, TokenCache, Urgency, VapidKey, VapidSigner};
use xaps_proto::UserName;
use xaps_proto::daemon::{MessageSummary, Notify};

use super::Core;
use crate::metrics::{Metrics, PushOutcome};
use crate::rate::{Rate, WhenFull};

/// Users whose pushes are counted in a minute at most: beyond, a user not yet counted
/// waits for the next minute like one over the rate (16 octets each).
const MAX_RATED_USERS: usize = 1_000_000;
use crate::report::{FanOut, Report, ReportSender, send_soon};
use crate::store::{FileKey, OwedTarget, Records, Sent, Store, StoreError};
use crate::webpush::{Delivery, SetupError, WebPushSender};

/// How many accounts one round of housekeeping sweeps; the next round follows at once
/// when more are due.
const SWEEP_BATCH: u32 = 1000;

/// "Until this connection ends": whether a connection is open. A connection forwarded
/// by an IMAP server is known only by its id, and its end only when the server says
/// so (`/imap/disconnect`): until then it counts as open.
fn forwarded_connection_open(_: ConnectionId) -> bool {
    true
}

/// Whether the daemon sees the end of a connection WEBPUSH commands come on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnds {
    /// An IMAP front session: its end is seen, and so is its front's death.
    Seen,
    /// A connection an IMAP server forwards commands of (`/imap/webpush`): its end is
    /// known only when the server reports it, which a server that crashes never does,
    /// so its silences "until this connection ends" last
    /// `webpush.forwarded_silence_max_secs` at most.
    Reported,
}

/// Commands arrive whole, literals included: nothing waits for `+`.
const WHOLE: Config = Config {
    syntax: Limits {
        literal_handshake: false,
        ..Config::SERVER.syntax
    },
    max_message: Config::SERVER.max_message,
};

/// IMAP WEBPUSH cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebPushSetupError {
    /// `webpush.subject` is not a VAPID contact.
    #[error("webpush.subject: {0}")]
    Subject(webpush_crypto::Error),
    /// The VAPID key file cannot be read.
    #[error("cannot read {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The VAPID key file holds no key the crate reads.
    #[error("{path}: {source}")]
    Key {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: webpush_crypto::Error,
    },
    /// A new VAPID key could not be made.
    #[error("cannot make a VAPID key: {0}")]
    Generate(webpush_crypto::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sender cannot be set up.
    #[error("Web Push sender: {0}")]
    Sender(#[from] SetupError),
}

/// A request body that is not one whole WEBPUSH-family command: the front door should
/// not have passed it on, and answers `BAD` itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotACommand {
    /// More than one command.
    #[error("one command per request")]
    Trailing,
    /// Not a whole command of the five.
    #[error("not one whole WEBPUSH command: {0}")]
    Decode(DecodeError),
}

/// IMAP WEBPUSH's state: the sender, the state machine's settings (the current VAPID
/// key), and the VAPID contact.
pub(super) struct WebPushCore {
    pub(super) sender: WebPushSender,
    settings: std::sync::RwLock<Settings>,
    subject: Subject,
    /// Pushes per user a minute (`webpush.max_pushes_per_user_per_minute`).
    rate: std::sync::Mutex<Rate>,
}

impl WebPushCore {
    /// Sets up IMAP WEBPUSH when a VAPID contact is configured: the VAPID key from the
    /// configured file, or the store's current one, or a new one made into the store.
    pub(super) async fn new(
        config: &crate::config::Config,
        store: &Store,
        metrics: &Arc<Metrics>,
        reports: ReportSender,
    ) -> Result<Option<Self>, WebPushSetupError> {
        let Some(subject) = &config.webpush.subject else {
            tracing::info!("no webpush.subject: IMAP WEBPUSH answers NO [CANNOT]");
            return Ok(None);
        };
        let subject = Subject::new(subject).map_err(WebPushSetupError::Subject)?;
        let (id, key) = current_vapid_key(config, store).await?;
        let public = key.public_key().clone();
        let tokens = TokenCache::new(VapidSigner::new(key, subject.clone()));
        let sender = WebPushSender::new(&config.webpush, tokens, reports, metrics.clone())?;
        let mut settings = Settings::new(public.clone(), id);
        settings.max_subscriptions = config.webpush.max_subscriptions;
        settings.ack_lifetime = config.webpush.ack_lifetime;
        // Bounded unless the connection's end is seen: see `ConnectionEnds`.
        settings.disconnect_silence_limit = Some(config.webpush.forwarded_silence_max);
        if config.webpush.allow_local_push_service {
            tracing::warn!(
                "webpush.allow_local_push_service: plain-http and local endpoints accepted (tests only)"
            );
            settings.endpoints = Endpoints::LocalTestService;
        }
        tracing::info!(key = %public, "IMAP WEBPUSH on, VAPID key {}", id.0);
        Ok(Some(Self {
            sender,
            settings: std::sync::RwLock::new(settings),
            subject,
            rate: std::sync::Mutex::new(Rate::new(
                config.webpush.max_pushes_per_user_per_minute,
                MAX_RATED_USERS,
                WhenFull::Refuse,
            )),
        }))
    }

    /// The state machine's settings now.
    fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Takes up the VAPID key current in `store`, made current by `rotate-vapid-key`
    /// here or on another machine: subscriptions activated under the old one verify
    /// again.
    async fn take_up_current_key(&self, store: &Store) {
        let (id, key) = match store.vapid_key().await {
            Ok(Some(current)) => current,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "the current VAPID key not read: going on with the one in use");
                return;
            }
        };
        let current = self
            .settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .vapid_key_id;
        if current == id {
            return;
        }
        let public = key.public_key().clone();
        self.sender
            .set_tokens(TokenCache::new(VapidSigner::new(key, self.subject.clone())));
        let mut settings = self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        settings.vapid_key = public;
        settings.vapid_key_id = id;
        tracing::info!(key = id.0, "VAPID key rotated");
    }
}

/// The VAPID key to use, made current in the store.
pub async fn current_vapid_key(
    config: &crate::config::Config,
    store: &Store,
) -> Result<(VapidKeyId, VapidKey), WebPushSetupError> {
    if let Some(file) = &config.webpush.key_file {
        let bytes = crate::files::read_private(file, crate::files::KEY_MAX).map_err(|source| {
            WebPushSetupError::KeyFile {
                path: file.clone(),
                source,
            }
        })?;
        let key = VapidKey::import(&bytes).map_err(|source| WebPushSetupError::Key {
            path: file.clone(),
            source,
        })?;
        return Ok(match store.vapid_key_from_file(key).await? {
            FileKey::Current(id, key) => (id, key),
            FileKey::Imported(id, key) => {
                tracing::info!(key = id.0, path = %file.display(), "VAPID key imported from webpush.key_file: current now");
                (id, key)
            }
            FileKey::Superseded { file: old, current } => {
                tracing::warn!(
                    path = %file.display(),
                    file_key = old.0,
                    current = current.0.0,
                    "webpush.key_file holds a VAPID key replaced since (rotate-vapid-key, or another \
                     daemon's file): the current one stays; remove webpush.key_file, or put a new \
                     key in it to rotate to that"
                );
                current
            }
        });
    }
    if let Some(current) = store.vapid_key().await? {
        return Ok(current);
    }
    let key = VapidKey::generate(&mut rand_core::OsRng).map_err(WebPushSetupError::Generate)?;
    let public = key.public_key().clone();
    // Another daemon on the same database may have made one meanwhile: theirs wins.
    let (id, key) = store.first_vapid_key(key).await?;
    if key.public_key() == &public {
        tracing::info!("made a VAPID key into the store");
    }
    Ok((id, key))
}

/// The responses as lines to send, untagged first. The state machine's responses
/// always encode; should one not, it is left out and logged, and a tagged one that does
/// not is answered `NO` rather than never: the client waits for its tag.
fn answer(untagged: &[Response<'_>], tagged: &Response<'_>, tag: &imap_syntax::Tag<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for response in untagged {
        if let Err(e) = response.encode(&mut out) {
            tracing::error!(error = %e, "an untagged WEBPUSH response not encoded: left out");
        }
    }
    if let Err(e) = tagged.encode(&mut out) {
        tracing::error!(error = %e, "a tagged WEBPUSH response not encoded: answered NO");
        let refusal = Refusal::Unavailable.response(tag.clone().into_owned());
        if refusal.encode(&mut out).is_err() {
            // A validated tag is safe to write as it is.
            out.extend_from_slice(format!("{} NO server error\r\n", tag.as_str()).as_bytes());
        }
    }
    out
}

impl Core {
    /// One command of the WEBPUSH family (`GETVAPID`, `WEBPUSH`, `ACKWEBPUSH`,
    /// `LWEBPUSH`, `SILWEBPUSH`), whole with its literals, from `user` (the identity
    /// the IMAP server authenticated) on `connection`: the response lines to send back,
    /// untagged first. A command the grammar refuses is answered `BAD`, and changes
    /// nothing; one the state machine accepts is stored before it is answered.
    pub async fn webpush_command(
        &self,
        user: &UserName,
        connection: ConnectionId,
        ends: ConnectionEnds,
        line: &[u8],
    ) -> Result<Vec<u8>, NotACommand> {
        let command = match Command::decode(line, &WHOLE) {
            Ok((&[], command)) => command,
            Ok(_) => return Err(NotACommand::Trailing),
            Err(e) => {
                return match e.response() {
                    // BAD, with the grammar's words: the client's error, answered.
                    Some(bad) => {
                        let mut out = Vec::new();
                        match bad.encode(&mut out) {
                            Ok(()) => Ok(out),
                            Err(_) => Err(NotACommand::Decode(e)),
                        }
                    }
                    None => Err(NotACommand::Decode(e)),
                };
            }
        };
        let tag = &command.tag;
        let Some(webpush) = &self.webpush else {
            return Ok(answer(
                &[],
                &Refusal::Unavailable.response(tag.clone().into_owned()),
                tag,
            ));
        };
        webpush.take_up_current_key(&self.store).await;
        let mut settings = webpush.settings();
        if ends == ConnectionEnds::Seen {
            settings.disconnect_silence_limit = None;
        }
        let now = SystemTime::now();
        let result = self
            .store
            .update_webpush(user, |stored| {
                // Housekeeping first, in the same transaction: a pending subscription
                // whose token expired does not count toward the limit.
                let mut changes = sweep(stored, now, forwarded_connection_open);
                let mut account = stored.clone();
                account.apply(&changes);
                let t = handle(
                    &command,
                    &account,
                    &settings,
                    now,
                    connection,
                    &mut rand_core::OsRng,
                );
                account.apply(&t.changes);
                changes.extend(t.changes.iter().cloned());
                ((t, account.next_deadline()), changes)
            })
            .await;
        let transition = match result {
            Ok((t, deadline)) => {
                if let Some(at) = deadline.and_then(instant_at) {
                    self.schedule.sweep_by(at);
                }
                t
            }
            Err(e) => {
                tracing::error!(error = %e, ?user, "WEBPUSH not stored");
                return Ok(answer(
                    &[],
                    &Refusal::Unavailable.response(tag.clone().into_owned()),
                    tag,
                ));
            }
        };
        let since = Instant::now();
        let user = Arc::new(user.clone());
        for push in transition.pushes {
            webpush.sender.spawn(Delivery {
                user: user.clone(),
                push,
                // The user is waiting for the verification push.
                urgency: Urgency::High,
                topic: None,
                generic: None,
                since,
                // Not owed: the user is waiting, and asks again if it does not come.
                fan_out: None,
            });
        }
        Ok(answer(&transition.untagged, &transition.tagged, tag))
    }

    /// The IMAP connection `connection` of `user` ended: the silences it set "until
    /// this connection ends" end.
    pub async fn connection_ended(
        &self,
        user: &UserName,
        connection: ConnectionId,
    ) -> Result<(), StoreError> {
        self.store
            .update_webpush(user, |account| ((), disconnect(account, connection)))
            .await
    }

    /// Subscription housekeeping due at `now` (`state::sweep`): pending subscriptions
    /// whose token expired go, silences that are over end. Then the next deadline, from
    /// the store, for the timer. Run at start, and by the timer.
    pub async fn sweep_subscriptions(&self, now: SystemTime) {
        let Ok(now_secs) = unix_secs(now) else {
            tracing::error!("the clock is before 1970: no subscription housekeeping");
            return;
        };
        loop {
            let users = match self.store.webpush_users_due(now_secs, SWEEP_BATCH).await {
                Ok(users) => users,
                Err(e) => {
                    tracing::error!(error = %e, "subscriptions due for housekeeping not read: tried again in a minute");
                    self.schedule
                        .set_sweep(Some(Instant::now() + std::time::Duration::from_secs(60)));
                    return;
                }
            };
            let full = users.len() >= SWEEP_BATCH as usize;
            for user in users {
                let swept = self
                    .store
                    .update_webpush(&user, |account: &Account| {
                        let changes = sweep(account, now, forwarded_connection_open);
                        (changes.len(), changes)
                    })
                    .await;
                match swept {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(?user, changes = n, "subscriptions swept"),
                    Err(e) => {
                        tracing::error!(error = %e, ?user, "subscriptions not swept: tried again in a minute");
                        // Still due, it would come first again, at once and for ever.
                        // From now, not the call's start: a long pass must not leave
                        // it due again at once.
                        let later = unix_secs(SystemTime::now())
                            .unwrap_or(now_secs)
                            .max(now_secs)
                            .saturating_add(SWEEP_RETRY_SECS);
                        if let Err(e) = self.store.delay_webpush_sweep(&user, later).await {
                            tracing::error!(error = %e, ?user, "a failed housekeeping not put off: housekeeping waits a minute");
                            self.schedule.set_sweep(Some(
                                Instant::now() + std::time::Duration::from_secs(SWEEP_RETRY_SECS),
                            ));
                            return;
                        }
                    }
                }
            }
            if !full {
                break;
            }
        }
        match self.store.next_webpush_deadline().await {
            Ok(next) => self.schedule.set_sweep(next.and_then(instant_at)),
            Err(e) => {
                tracing::error!(error = %e, "the next subscription deadline not read: tried again in a minute");
                self.schedule
                    .set_sweep(Some(Instant::now() + std::time::Duration::from_secs(60)));
            }
        }
    }

    /// A push service said the subscription `push` went to is gone: deleted if it is
    /// still the one stored (the state machine's rule: not one that replaced it since).
    pub(super) async fn subscription_gone(
        &self,
        user: &UserName,
        push: &Push,
        outcome: &webpush_crypto::Outcome,
    ) {
        let deleted = self
            .store
            .update_webpush(user, |account| {
                let change = push.on_outcome(outcome, account);
                (change.is_some(), change.into_iter().collect())
            })
            .await;
        let sub_id = push.sub_id.as_str();
        match deleted {
            Ok(true) => {
                self.metrics.gone("webpush", true);
                tracing::info!(
                    ?user,
                    sub_id,
                    "the push service says the subscription is gone: deleted"
                );
            }
            Ok(false) => {
                self.metrics.gone("webpush", false);
                tracing::info!(
                    ?user,
                    sub_id,
                    "the push service says an endpoint is gone that the subscription has left since: kept"
                );
            }
            Err(e) => tracing::error!(error = %e, ?user, "cannot delete a gone subscription"),
        }
    }

    /// New mail's push to `user`'s subscriptions (`records`, read when the event was
    /// owed as `key`), with the envelopes the event source gave.
    pub(super) async fn new_mail_push(
        &self,
        notify: &Notify,
        sent: Sent,
        since_ms: u64,
        records: Records,
        since: Instant,
    ) {
        let groups = [MailboxEvents {
            mailbox: Mailbox::new(notify.mailbox()),
            events: events(notify),
        }];
        self.send_started();
        let fan_out = FanOut::new(sent, since_ms, self.reports.clone());
        if let Some(webpush) = &self.webpush {
            let push = Fan {
                user: notify.username(),
                mailbox: notify.mailbox(),
                groups: &groups,
                urgency: Urgency::High,
                since,
                only: None,
            };
            self.fan_out(webpush, &push, records, &fan_out).await;
        }
        fan_out.handed_out();
    }

    /// An owed Web Push, the generic one (`* SELECT <mailbox>`): to all of the user's
    /// subscriptions, or to the one its mark names.
    pub(super) async fn generic_push(&self, sent: Sent, since_ms: u64, since: Instant) {
        let key = &sent.key;
        let Some(webpush) = &self.webpush else {
            // Kept in its rounds, as in an outage: a restart without the subject, set
            // again later, loses nothing; push.give_up_after ends it otherwise.
            tracing::warn!(user = ?key.user, "a Web Push owed while IMAP WEBPUSH is off (no webpush.subject): kept owed until it is set or push.give_up_after passes");
            send_soon(
                &self.reports,
                Report::OwedDone {
                    sent,
                    settled: false,
                    record: None,
                },
            );
            return;
        };
        let records = match self.store.webpush_records(&key.user).await {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, user = ?key.user, "subscriptions not read: the push is tried again later");
                send_soon(
                    &self.reports,
                    Report::OwedDone {
                        sent,
                        settled: false,
                        record: None,
                    },
                );
                return;
            }
        };
        let only = match &key.target {
            OwedTarget::Subscription(sub_id) => Some(sub_id.clone()),
            _ => None,
        };
        let user = key.user.clone();
        let mailbox = key.mailbox.clone();
        let groups = [MailboxEvents {
            mailbox: Mailbox::new(&mailbox),
            events: Vec::new(),
        }];
        let fan_out = FanOut::new(sent, since_ms, self.reports.clone());
        let push = Fan {
            user: &user,
            mailbox: &mailbox,
            groups: &groups,
            urgency: Urgency::Normal,
            since,
            only: only.as_deref(),
        };
        self.fan_out(webpush, &push, records, &fan_out).await;
        fan_out.handed_out();
    }

    /// Pushes `push.groups` to every subscription in `records` that receives pushes
    /// now (or only the one `push.only` names), each delivery counted in `fan_out`.
    async fn fan_out(
        &self,
        webpush: &WebPushCore,
        push: &Fan<'_>,
        records: Records,
        fan_out: &Arc<FanOut>,
    ) {
        let Fan {
            user,
            mailbox,
            groups,
            urgency,
            since,
            only,
        } = *push;
        // Another daemon sharing the store may have rotated the key: subscriptions
        // acknowledged since are active under the new one.
        webpush.take_up_current_key(&self.store).await;
        let settings = webpush.settings();
        let now = SystemTime::now();
        let builder = ContentBuilder::for_encryptor(&Encryptor::new());
        let content = builder.build_content(groups);
        let generic = builder.generic(&Mailbox::new(mailbox));
        // What to send instead of each push if the service finds it too large.
        let instead: Vec<Option<Vec<u8>>> = content
            .pushes
            .iter()
            .map(|plaintext| generic.clone().filter(|g| g != plaintext))
            .collect();
        let topic = mailbox_topic(mailbox);
        let shared_user = Arc::new(user.clone());
        let pairs: Vec<_> = content.pushes.iter().zip(&instead).collect();
        let deliver = |push: Push, generic: &Option<Vec<u8>>| {
            fan_out.one_more();
            webpush.sender.spawn(Delivery {
                user: shared_user.clone(),
                push,
                urgency,
                topic: Some(topic.clone()),
                generic: generic.clone(),
                since,
                fan_out: Some(fan_out.clone()),
            });
        };
        let mut targets = 0_usize;
        // Asked at the first subscription that would get the push: a user with none
        // uses none of the rate.
        let mut allowed = None;
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(error = %e, ?user, "a subscription not read: no push for it");
                    continue;
                }
            };
            if only.is_some_and(|sub_id| record.sub_id.as_str() != sub_id) {
                continue;
            }
            // "Until this connection ends" holds until the IMAP server reports the end.
            if !receives_pushes(&record, &settings, now, forwarded_connection_open) {
                continue;
            }
            // The endpoint rule again: the record may predate the setting in force.
            if let Err(refusal) = settings.endpoints.admits(&record.endpoint) {
                tracing::warn!(?user, sub_id = record.sub_id.as_str(), reason = %refusal, "a stored endpoint the endpoint rule now refuses: not pushed");
                continue;
            }
            targets += 1;
            let allowed = *allowed.get_or_insert_with(|| {
                crate::lock(&webpush.rate).allow(user.as_str(), Instant::now())
            });
            if !allowed {
                // Over the user's rate: owed to this subscription for a later round,
                // where the store keeps one per subscription and mailbox however much
                // mail comes meanwhile.
                fan_out.not_now(record.sub_id.as_str());
                continue;
            }
            // The record's last (usually only) push takes it over; any before copy it.
            let Some((&(plaintext, generic), before)) = pairs.split_last() else {
                continue;
            };
            for &(plaintext, generic) in before {
                deliver(Push::new(&record, plaintext.clone()), generic);
            }
            deliver(Push::from_record(record, plaintext.clone()), generic);
        }
        if allowed == Some(false) {
            self.metrics.push("webpush", PushOutcome::RateLimited);
            tracing::warn!(
                ?user,
                ?mailbox,
                targets,
                "over webpush.max_pushes_per_user_per_minute: the push stays owed for a later round"
            );
        }
        if targets > 0 && allowed == Some(true) {
            for left in &content.left_out {
                // The mailbox's name comes from mail (an IMAP client named it): escaped.
                tracing::info!(
                    ?user,
                    ?mailbox,
                    ?left,
                    "left out of a push to stay within its size"
                );
            }
        }
    }
}

/// One fan-out's push: what goes to which of a user's subscriptions.
#[derive(Clone, Copy)]
struct Fan<'a> {
    user: &'a UserName,
    mailbox: &'a str,
    groups: &'a [MailboxEvents<'a>],
    urgency: Urgency,
    since: Instant,
    /// Only this subscription (one a fan-out could not reach).
    only: Option<&'a str>,
}

/// The moment `secs` (since the Unix epoch) is, on the monotonic clock: now for a time
/// already past.
/// `None` for one too far ahead to be an `Instant` (no housekeeping needed this side
/// of it).
/// How long a user whose housekeeping failed waits before it is tried again.
const SWEEP_RETRY_SECS: u64 = 60;

fn instant_at(secs: u64) -> Option<Instant> {
    let now = SystemTime::now();
    let from_now = unix_secs(now).map_or(0, |now| secs.saturating_sub(now));
    Instant::now().checked_add(std::time::Duration::from_secs(from_now))
}

/// The events of a notify, as push content: new messages with what the event source
/// told of them; otherwise none, which is the generic `* SELECT` push.
fn events(notify: &Notify) -> Vec<Event<'_>> {
    notify
        .messages()
        .iter()
        .filter_map(|m: &MessageSummary| {
            let uid = std::num::NonZeroU32::new(m.uid)?;
            Some(Event::NewMessage {
                uid,
                envelope: Box::new(Envelope::from_header_values(&HeaderValues {
                    date: &m.date,
                    subject: &m.subject,
                    from: &m.from,
                    message_id: &m.message_id,
                })),
                flags: None,
            })
        })
        .collect()
}
