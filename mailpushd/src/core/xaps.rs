//! iOS Mail: device registrations (the xaps plugin's `/register`, later
//! `XAPPLEPUSHSERVICE` itself) and mail events, pushed to devices through APNs.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use xaps_proto::daemon::{Notify, NotifyOutcome, Register};
use xaps_proto::registry::{Lookup, Registered, Registry, RegistryError};
use xaps_proto::{AccountId, DeviceToken, UserName};

use super::Core;
use super::owed::now_ms;
use crate::store::{OwedKey, OwedTarget, Records, StoreError};

/// A registration that was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The registry's rules refuse it (the per-user limit, its mailboxes).
    #[error("registration refused: {0}")]
    Refused(#[from] RegistryError),
    /// The store failed: nothing was stored.
    #[error("registration not stored: {0}")]
    Store(#[from] StoreError),
}

/// A notify whose events may not be owed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The store failed: nothing of the events was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task that stores the events and starts their pushes ended without saying
    /// whether they were stored (it failed, or the daemon is stopping).
    #[error("the events may not have been stored: {0}")]
    Interrupted(String),
}

impl Core {
    /// Registers a device for `register.username` (the authenticated user); once this
    /// returns, the registration is on disk. What the registry did.
    pub async fn register(&self, register: Register) -> Result<Registered, RegisterError> {
        let user = register.username.clone();
        let account = register.account_id.clone();
        let registered = self
            .store
            .update_user(&user, self.registry(), move |registry| {
                // Read under the user's lock: of two registrations of a device at
                // once, the one stored last has the later time, and a 410 between
                // them cannot pass for newer than the device's last registration.
                match registry.register(register, SystemTime::now()) {
                    Ok((registered, change)) => (Ok(registered), vec![change]),
                    Err(refused) => (Err(refused), Vec::new()),
                }
            })
            .await??;
        tracing::info!(?user, account = ?account.as_str(), outcome = ?registered, "device registered");
        Ok(registered)
    }

    /// Mail events in one mailbox of one user: new mail pushed at once, other events
    /// after the quiet period, to the user's devices and Web Push subscriptions. Each
    /// push is owed in the store before this answers (xapsd's 200, 204 or 404): from
    /// then on, an outage or a crash delays it and never loses it.
    pub async fn notify(self: &Arc<Self>, notify: &Notify) -> Result<NotifyOutcome, NotifyError> {
        let since = Instant::now();
        let user = notify.username();
        let registry = self.store.user(user, self.registry()).await?;
        let new_mail = notify.is_message_new();
        let lookup = registry.lookup_notify(notify);
        let mut events = Vec::new();
        if let Lookup::Push(targets) = &lookup {
            events.extend(targets.iter().map(|target| {
                let key = OwedKey {
                    user: user.clone(),
                    target: OwedTarget::Device {
                        token: target.device_token.clone(),
                        account: target.account_id.clone(),
                    },
                    mailbox: String::new(),
                };
                (key, new_mail)
            }));
        }
        // push.mailboxes holds for Web Push too: spam in Junk wakes no browser, and a
        // user's owed pushes stay one per mailbox that pushes.
        let pushes = self.config.push.mailboxes.pushes_unlisted(notify.mailbox());
        let records = match &self.webpush {
            Some(_) if pushes => {
                Some(self.store.webpush_records(user).await?).filter(|r| !r.is_empty())
            }
            _ => None,
        };
        if records.is_some() {
            let key = OwedKey {
                user: user.clone(),
                target: OwedTarget::Subscriptions,
                mailbox: notify.mailbox().to_owned(),
            };
            events.push((key, new_mail));
        }
        // From the store's write on, in a task of its own: a caller that goes away
        // before the answer (a mail server's client timing out) must not leave a
        // push owed, leased and never started (a commit whose end it did not wait
        // for), or counted as sending for good.
        let core = Arc::clone(self);
        let notify = notify.clone();
        let owed =
            tokio::spawn(async move { core.owe_and_start(events, &notify, records, since).await });
        owed.await
            .map_err(|e| NotifyError::Interrupted(e.to_string()))??;
        Ok(lookup.outcome())
    }

    /// Owes `events` in the store and starts what is due: new mail now, with the
    /// envelopes for the subscriptions (`records`); anything else when the timer finds
    /// it due.
    async fn owe_and_start(
        self: &Arc<Self>,
        events: Vec<(OwedKey, bool)>,
        notify: &Notify,
        mut records: Option<Records>,
        since: Instant,
    ) -> Result<(), StoreError> {
        let now = now_ms(SystemTime::now());
        // With as many owed pushes on their way as may be (an outage), new mail waits
        // in the store for the timer, leased to none, as a backlog does. Notifies
        // stored at that moment may each still add theirs: a bound of MAX_SENDING plus
        // those, which http.max_connections bounds.
        let room = self.room_to_send();
        let lease = if room {
            self.lease(now)
        } else {
            self.lease_ended(now)
        };
        let marks = self
            .store
            .owe(&events, now, self.config.push.delay, lease)
            .await?;
        let (at_once, until_ms) = (notify.is_message_new() && room, lease.until_ms);
        for mark in marks {
            if !at_once {
                self.owed_by_ms(mark.owed.due_ms);
                continue;
            }
            match (&mark.key.target, records.take()) {
                (OwedTarget::Subscriptions, Some(records)) => {
                    // The envelopes the event source told of go with new mail's push
                    // now; should it fail, the owed push is the generic one.
                    let sent = mark.sent(until_ms);
                    self.new_mail_push(notify, sent, mark.owed.since_ms, records, since)
                        .await;
                }
                (_, taken) => {
                    records = taken;
                    self.dispatch(mark, until_ms, since, true).await;
                }
            }
        }
        Ok(())
    }

    /// Forgets what is owed to `token` for `account` of `user`: it no longer receives
    /// that account's pushes.
    async fn forget_device(&self, user: &UserName, token: &DeviceToken, account: &AccountId) {
        let key = OwedKey {
            user: user.clone(),
            target: OwedTarget::Device {
                token: token.clone(),
                account: account.clone(),
            },
            mailbox: String::new(),
        };
        if let Err(e) = self.store.forget(&[key]).await {
            tracing::error!(error = %e, ?user, account = ?account.as_str(), "a gone device's owed push not removed: it is sent in vain");
        }
    }

    /// APNs said `token` stopped being valid at `since` (410): the crate's rule removes
    /// the registrations with it made before then.
    pub(super) async fn token_gone(&self, token: &DeviceToken, since: SystemTime) {
        let rule_token = token.clone();
        let removed = self
            .store
            .update_token(token, Registry::new(), move |registry| {
                let removed = registry.unregistered(&rule_token, since);
                let changes = removed.iter().cloned().map(Into::into).collect();
                (removed, changes)
            })
            .await;
        match removed {
            Ok(removed) if removed.is_empty() => {
                self.metrics.gone("apns", false);
                tracing::info!(token = ?token, ?since, "APNs says the device token is gone, but each registration with it was made after that: kept");
            }
            Ok(removed) => {
                self.metrics.gone("apns", true);
                for r in removed {
                    tracing::info!(user = ?r.user, account = ?r.account_id.as_str(), "APNs says the device token is gone: registration removed");
                    self.forget_device(&r.user, &r.registration.device_token, &r.account_id)
                        .await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot remove an unregistered device token"),
        }
    }
}
