//! iOS Mail: device registrations (the xaps plugin's `/register`, later
//! `XAPPLEPUSHSERVICE` itself) and mail events, pushed to devices through APNs.

use std::time::{Instant, SystemTime};

use xaps_proto::DeviceToken;
use xaps_proto::daemon::{Notify, NotifyOutcome, Register};
use xaps_proto::registry::{Lookup, Registered, Registry, RegistryError};

use super::Core;
use crate::apns::Job;
use crate::store::StoreError;

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

impl Core {
    /// Registers a device for `register.username` (the authenticated user); once this
    /// returns, the registration is on disk. What the registry did.
    pub async fn register(&self, register: Register) -> Result<Registered, RegisterError> {
        let user = register.username.clone();
        let account = register.account_id.clone();
        let now = SystemTime::now();
        let registered = self
            .store
            .update_user(&user, self.registry(), move |registry| {
                match registry.register(register, now) {
                    Ok((registered, change)) => (Ok(registered), vec![change]),
                    Err(refused) => (Err(refused), Vec::new()),
                }
            })
            .await??;
        if let Registered::Replaced { previous } = &registered {
            // The account moved to another device: the old one's pending push is void.
            self.schedule
                .cancel_device(&(previous.clone(), account.clone()));
        }
        tracing::info!(%user, %account, outcome = ?registered, "device registered");
        Ok(registered)
    }

    /// Mail events in one mailbox of one user: new mail pushed at once, other events
    /// after the quiet period, to the user's devices and Web Push subscriptions. The
    /// answer the event source gets (xapsd's 200, 204 or 404).
    pub async fn notify(&self, notify: &Notify) -> Result<NotifyOutcome, StoreError> {
        let since = Instant::now();
        let registry = self.store.user(&notify.username, self.registry()).await?;
        if let Some(webpush) = &self.webpush {
            self.webpush_event(webpush, notify, since).await;
        }
        let lookup = registry.lookup_notify(notify);
        if let Lookup::Push(targets) = &lookup {
            let new_mail = notify.is_message_new();
            for target in targets {
                let key = (target.device_token.clone(), target.account_id.clone());
                if let Some((device_token, account_id)) =
                    self.schedule.device_event(key, new_mail, since)
                {
                    self.apns.spawn(Job {
                        device_token,
                        account_id,
                        since,
                    });
                }
            }
        }
        Ok(lookup.outcome())
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
            Ok(removed) => {
                for r in removed {
                    tracing::info!(user = %r.user, account = %r.account_id, "APNs says the device token is gone: registration removed");
                    self.schedule
                        .cancel_device(&(r.registration.device_token, r.account_id));
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot remove an unregistered device token"),
        }
    }
}
