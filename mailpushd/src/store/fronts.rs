//! The IMAP front instances that set silences "until this connection ends": each
//! running front says it is alive, so that the silences of one that died without
//! ending its sessions (a crash, a kill, a lost machine) can be ended by whichever
//! daemon notices first ([`Core::end_dead_fronts`](crate::core::Core::end_dead_fronts)).
//!
//! Every time here is the database's clock, written and compared there: daemons
//! sharing PostgreSQL whose own clocks are apart never take a live front for dead.

use std::time::Duration;

use sqlx::Row;
use xaps_proto::UserName;

use imap_webpush_proto::state::{Account, Change};

use super::webpush::{load_account, write_changes};
use super::{Kind, Lock, Store, StoreError, user_names};

/// A front's instance as stored: its 64 bits, as the database's signed integer.
pub(super) fn instance_column(instance: u64) -> i64 {
    i64::from_ne_bytes(instance.to_ne_bytes())
}

fn instance_read(column: i64) -> u64 {
    u64::from_ne_bytes(column.to_ne_bytes())
}

/// The database's clock, in milliseconds since 1970, as SQL.
fn now_ms(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Kind::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// `silent_for` in milliseconds, for a comparison in SQL: a silence longer than the
/// column can count (292 million years) is longer than any front's, and reads as one.
fn millis(silent_for: Duration) -> i64 {
    i64::try_from(silent_for.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// The front `instance` is alive now.
    pub async fn front_alive(&self, instance: u64) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO front_instances (instance, alive_ms) VALUES ($1, {now})
             ON CONFLICT (instance) DO UPDATE SET alive_ms = excluded.alive_ms",
            now = now_ms(self.kind)
        ))
        .bind(instance_column(instance))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Up to `limit` front instances that have not said they are alive for
    /// `silent_for`, in order after `after` (from the first with `None`).
    pub async fn silent_fronts(
        &self,
        silent_for: Duration,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<u64>, StoreError> {
        let (after, first) = match after {
            Some(instance) => (instance_column(instance), false),
            None => (i64::MIN, true),
        };
        let rows = sqlx::query(&format!(
            "SELECT instance FROM front_instances
             WHERE alive_ms < {now} - $1 AND (instance > $2 OR $3) ORDER BY instance LIMIT $4",
            now = now_ms(self.kind)
        ))
        .bind(millis(silent_for))
        .bind(after)
        .bind(first)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| Ok(instance_read(row.try_get(0)?)))
            .collect()
    }

    /// Up to `limit` users, in order after `after` (from the first with `None`), with a
    /// subscription silenced until a connection of the front `instance` ends; none
    /// once that front has said it is alive within `silent_for` (it was not dead).
    pub async fn users_silenced_by(
        &self,
        instance: u64,
        silent_for: Duration,
        after: Option<&UserName>,
        limit: u32,
    ) -> Result<Vec<UserName>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT username FROM webpush_subscriptions
             WHERE silenced_by = $1 AND username > $2
             AND EXISTS (SELECT 1 FROM front_instances WHERE instance = $1 AND alive_ms < {now} - $3)
             ORDER BY username LIMIT $4",
            now = now_ms(self.kind)
        ))
        .bind(instance_column(instance))
        .bind(after.map_or("", UserName::as_str))
        .bind(millis(silent_for))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        user_names(&rows)
    }

    /// Runs `change` on `user`'s Web Push state and stores its changes, in one
    /// transaction under the user's lock, while the front `instance` still has not said
    /// it is alive for `silent_for`; `None`, and nothing changed, once it has. Then no
    /// row of the user names that front any more: one that still did held no silence
    /// of it (a daemon of an earlier version rewrote its record without the column),
    /// and the front can be forgotten. A silence the front stores after this waits for
    /// the lock, and names it.
    pub async fn end_front_silences<R>(
        &self,
        user: &UserName,
        instance: u64,
        silent_for: Duration,
        change: impl FnOnce(&Account) -> (R, Vec<Change>),
    ) -> Result<Option<R>, StoreError> {
        let mut tx = self.begin(&[Lock::User(user.as_str())]).await?;
        // PostgreSQL: the row's lock holds a heartbeat back until this commits, so
        // that the front cannot come back between the check and the changes.
        let lock = match self.kind {
            Kind::Sqlite => "",
            Kind::Postgres => " FOR SHARE",
        };
        let silent = sqlx::query(&format!(
            "SELECT 1 FROM front_instances WHERE instance = $1 AND alive_ms < {now} - $2{lock}",
            now = now_ms(self.kind)
        ))
        .bind(instance_column(instance))
        .bind(millis(silent_for))
        .fetch_optional(&mut *tx)
        .await?;
        if silent.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let account = load_account(self.kind, &mut tx, user).await?;
        let (result, changes) = change(&account);
        write_changes(&mut tx, user, &changes).await?;
        sqlx::query(
            "UPDATE webpush_subscriptions SET silenced_by = NULL WHERE username = $1 AND silenced_by = $2",
        )
        .bind(user.as_str())
        .bind(instance_column(instance))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(result))
    }

    /// Forgets the front `instance`, if no subscription is silenced by one of its
    /// connections any more, and it has not said it is alive within `silent_for`
    /// (`None`: it stopped, whenever it last said so); whether it went. One still
    /// named by a silence stays, so that a later pass ends that silence.
    pub async fn forget_front(
        &self,
        instance: u64,
        silent_for: Option<Duration>,
    ) -> Result<bool, StoreError> {
        // One statement: a silence stored meanwhile comes from a live front, whose
        // heartbeat is recent.
        let gone = sqlx::query(&format!(
            "DELETE FROM front_instances WHERE instance = $1 AND ($2 OR alive_ms < {now} - $3)
             AND NOT EXISTS (SELECT 1 FROM webpush_subscriptions WHERE silenced_by = $1)",
            now = now_ms(self.kind)
        ))
        .bind(instance_column(instance))
        .bind(silent_for.is_none())
        .bind(silent_for.map_or(0, millis))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(gone > 0)
    }
}
