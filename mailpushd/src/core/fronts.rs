//! The IMAP front instances' lives, as far as the silences "until this connection
//! ends" need them: a front says it is alive every [`FRONT_HEARTBEAT`]; one silent for
//! [`FRONT_DEAD_AFTER`] died without ending its sessions, and the silences its connections
//! set end.

use std::time::{Duration, SystemTime};

use imap_webpush_proto::state::sweep;
use xaps_proto::UserName;

use super::Core;
use crate::store::{StoreError, now_ms};

/// How often a running front says it is alive.
pub const FRONT_HEARTBEAT: Duration = Duration::from_secs(60);

/// How long a front may stay silent before its connections count as ended: five
/// heartbeats, so that a store slow for a few minutes, or clocks a little apart
/// between daemons sharing it, do not end the silences of a front still running.
pub const FRONT_DEAD_AFTER: Duration = Duration::from_secs(5 * 60);

/// Fronts and users looked at in one round; the next round follows at once when more
/// are there.
const BATCH: u32 = 1000;

impl Core {
    /// The front `instance` is alive now.
    pub(crate) async fn front_alive(&self, instance: u64) -> Result<(), StoreError> {
        self.store
            .front_alive(instance, now_ms(SystemTime::now()))
            .await
    }

    /// The front `instance` stopped, its sessions ended: forgotten, unless one of its
    /// silences is still stored (its end failed to be stored), which a later
    /// [`Core::end_dead_fronts`] ends.
    pub(crate) async fn front_stopped(&self, instance: u64) {
        let after_now = now_ms(SystemTime::now()).saturating_add(1);
        if let Err(e) = self.store.forget_front(instance, after_now).await {
            tracing::error!(error = %e, "IMAP front: its end not stored: another daemon, or the next start, forgets it in five minutes");
        }
    }

    /// Ends the silences "until this connection ends" set through the fronts that
    /// have not said they are alive for [`FRONT_DEAD_AFTER`] at `now`, and forgets those
    /// fronts. A user whose subscriptions cannot be changed (the store fails, a record
    /// no longer reads) keeps the front remembered, and the next pass tries again.
    pub async fn end_dead_fronts(&self, now: SystemTime) {
        let Some(before) = now
            .checked_sub(FRONT_DEAD_AFTER)
            .map(now_ms)
            .filter(|ms| *ms > 0)
        else {
            tracing::error!("the clock is before 1970: dead IMAP fronts are not looked for");
            return;
        };
        let dead = match self.store.fronts_silent_since(before, BATCH).await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::error!(error = %e, "IMAP fronts not read: looked for again in a minute");
                return;
            }
        };
        for (instance, alive_ms) in dead {
            let ended = self.end_silences_of(instance, now).await;
            match self.store.forget_front(instance, before).await {
                Ok(true) => tracing::info!(
                    front = format_args!("{instance:016x}"),
                    last_alive_ms = alive_ms,
                    silences_ended = ended,
                    "an IMAP front stopped without ending its sessions: their silences ended"
                ),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "a dead IMAP front not forgotten: tried again in a minute")
                }
            }
        }
    }

    /// Ends every silence set through a connection of the front `instance`; how many.
    async fn end_silences_of(&self, instance: u64, now: SystemTime) -> usize {
        let mut ended = 0;
        let mut after: Option<UserName> = None;
        loop {
            let users = match self
                .store
                .users_silenced_by(instance, after.as_ref(), BATCH)
                .await
            {
                Ok(users) => users,
                Err(e) => {
                    tracing::error!(error = %e, "subscriptions silenced by a dead IMAP front not read: tried again in a minute");
                    return ended;
                }
            };
            let full = users.len() >= BATCH as usize;
            for user in &users {
                // The crate's housekeeping, with that front's connections all ended.
                let swept = self
                    .store
                    .update_webpush(user, |account| {
                        let changes = sweep(account, now, |c| c.instance != instance);
                        (changes.len(), changes)
                    })
                    .await;
                match swept {
                    Ok(n) => ended += n,
                    Err(e) => {
                        tracing::error!(error = %e, ?user, "silences of a dead IMAP front not ended: tried again in a minute")
                    }
                }
            }
            after = users.last().cloned();
            if !full {
                return ended;
            }
        }
    }
}
