//! The IMAP front instances' lives, as far as the silences "until this connection
//! ends" need them: a front says it is alive every [`FRONT_HEARTBEAT`]; one silent for
//! [`FRONT_DEAD_AFTER`] died without ending its sessions, and the silences its
//! connections set end.

use std::time::{Duration, SystemTime};

use imap_webpush_proto::state::sweep;
use xaps_proto::UserName;

use super::Core;
use crate::store::StoreError;

/// How often a running front says it is alive.
pub const FRONT_HEARTBEAT: Duration = Duration::from_secs(60);

/// How long a front may stay silent before its connections count as ended: five
/// heartbeats, so that a store slow for a few minutes does not end the silences of a
/// front still running.
pub const FRONT_DEAD_AFTER: Duration = Duration::from_secs(5 * 60);

/// Fronts and users looked at in one round; the next round follows at once when more
/// are there.
const BATCH: u32 = 1000;

impl Core {
    /// The front `instance` is alive now.
    pub(crate) async fn front_alive(&self, instance: u64) -> Result<(), StoreError> {
        self.store.front_alive(instance).await
    }

    /// The front `instance` stopped, its sessions ended: forgotten, unless one of its
    /// silences is still stored (its end failed to be stored), which a later
    /// [`Core::end_dead_fronts`] ends.
    pub(crate) async fn front_stopped(&self, instance: u64) {
        if let Err(e) = self.store.forget_front(instance, None).await {
            tracing::error!(error = %e, "IMAP front: its end not stored: another daemon, or the next start, forgets it in five minutes");
        }
    }

    /// Ends the silences "until this connection ends" set through the fronts that
    /// have not said they are alive for [`FRONT_DEAD_AFTER`], and forgets those fronts.
    /// A user whose subscriptions cannot be changed (the store fails, a record no
    /// longer reads) keeps the front remembered, and the next pass tries again.
    pub async fn end_dead_fronts(&self, now: SystemTime) {
        // The crate's sweep ends nothing then, and the rows would be unnamed all the
        // same.
        if webpush_crypto::unix_secs(now).is_err() {
            tracing::error!("the clock is before 1970: dead IMAP fronts are not looked for");
            return;
        }
        let mut after = None;
        loop {
            let dead = match self
                .store
                .silent_fronts(FRONT_DEAD_AFTER, after, BATCH)
                .await
            {
                Ok(dead) => dead,
                Err(e) => {
                    tracing::error!(error = %e, "IMAP fronts not read: looked for again in a minute");
                    return;
                }
            };
            for &instance in &dead {
                let ended = self.end_silences_of(instance, now).await;
                match self
                    .store
                    .forget_front(instance, Some(FRONT_DEAD_AFTER))
                    .await
                {
                    Ok(true) => tracing::info!(
                        front = format_args!("{instance:016x}"),
                        silences_ended = ended,
                        "an IMAP front stopped without ending its sessions: their silences ended"
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "a dead IMAP front not forgotten: tried again in a minute")
                    }
                }
            }
            if dead.len() < BATCH as usize {
                return;
            }
            after = dead.last().copied();
        }
    }

    /// Ends every silence set through a connection of the front `instance`, while it
    /// stays silent; how many ended.
    async fn end_silences_of(&self, instance: u64, now: SystemTime) -> usize {
        let mut ended = 0;
        let mut after: Option<UserName> = None;
        loop {
            let users = match self
                .store
                .users_silenced_by(instance, FRONT_DEAD_AFTER, after.as_ref(), BATCH)
                .await
            {
                Ok(users) => users,
                Err(e) => {
                    tracing::error!(error = %e, "subscriptions silenced by a dead IMAP front not read: tried again in a minute");
                    return ended;
                }
            };
            for user in &users {
                // The crate's housekeeping, with that front's connections all ended.
                let swept = self
                    .store
                    .end_front_silences(user, instance, FRONT_DEAD_AFTER, |account| {
                        let of_that_front = account
                            .records
                            .iter()
                            .filter(|r| {
                                r.silence
                                    .connection()
                                    .is_some_and(|c| c.instance == instance)
                            })
                            .count();
                        (
                            of_that_front,
                            sweep(account, now, |c| c.instance != instance),
                        )
                    })
                    .await;
                match swept {
                    Ok(Some(n)) => ended += n,
                    // It said it is alive again: its silences stand.
                    Ok(None) => return ended,
                    Err(e) => {
                        tracing::error!(error = %e, ?user, "silences of a dead IMAP front not ended: tried again in a minute")
                    }
                }
            }
            if users.len() < BATCH as usize {
                return ended;
            }
            after = users.last().cloned();
        }
    }
}
