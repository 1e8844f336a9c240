//! The IMAP front instances that set silences "until this connection ends": each
//! running front says it is alive, so that the silences of one that died without
//! ending its sessions (a crash, a kill, a lost machine) can be ended by whichever
//! daemon notices first ([`Core::end_dead_fronts`](crate::core::Core::end_dead_fronts)).

use sqlx::Row;
use xaps_proto::UserName;

use super::owed::{read_ms, stored};
use super::{Store, StoreError};

/// A front's instance as stored: its 64 bits, as the database's signed integer.
pub(super) fn instance_column(instance: u64) -> i64 {
    i64::from_ne_bytes(instance.to_ne_bytes())
}

fn instance_read(column: i64) -> u64 {
    u64::from_ne_bytes(column.to_ne_bytes())
}

impl Store {
    /// The front `instance` is alive at `now_ms` (milliseconds since 1970).
    pub async fn front_alive(&self, instance: u64, now_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO front_instances (instance, alive_ms) VALUES ($1, $2)
             ON CONFLICT (instance) DO UPDATE SET alive_ms = excluded.alive_ms",
        )
        .bind(instance_column(instance))
        .bind(stored("a front's heartbeat", now_ms)?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Up to `limit` front instances last alive before `before_ms`, with when each was.
    pub async fn fronts_silent_since(
        &self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, alive_ms FROM front_instances WHERE alive_ms < $1 ORDER BY alive_ms LIMIT $2",
        )
        .bind(stored("a front's heartbeat", before_ms)?)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let instance: i64 = row.try_get(0)?;
                let alive: i64 = row.try_get(1)?;
                Ok((
                    instance_read(instance),
                    read_ms("a front's heartbeat", alive)?,
                ))
            })
            .collect()
    }

    /// Up to `limit` users, in order after `after` (from the first with `None`), with a
    /// subscription silenced until a connection of the front `instance` ends.
    pub async fn users_silenced_by(
        &self,
        instance: u64,
        after: Option<&UserName>,
        limit: u32,
    ) -> Result<Vec<UserName>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT username FROM webpush_subscriptions
             WHERE silenced_by = $1 AND username > $2 ORDER BY username LIMIT $3",
        )
        .bind(instance_column(instance))
        .bind(after.map_or("", UserName::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                UserName::new(&name).map_err(|e| StoreError::corrupt(name.clone(), e))
            })
            .collect()
    }

    /// Forgets the front `instance` if it was last alive before `before_ms` and no
    /// subscription is silenced by one of its connections any more; whether it went.
    /// One still named by a silence stays, so that a later pass ends that silence.
    pub async fn forget_front(&self, instance: u64, before_ms: u64) -> Result<bool, StoreError> {
        let instance = instance_column(instance);
        let before = stored("a front's heartbeat", before_ms)?;
        // One statement: a silence stored meanwhile comes from a live front, whose
        // heartbeat is not before `before_ms`.
        let gone = sqlx::query(
            "DELETE FROM front_instances WHERE instance = $1 AND alive_ms < $2
             AND NOT EXISTS (SELECT 1 FROM webpush_subscriptions WHERE silenced_by = $1)",
        )
        .bind(instance)
        .bind(before)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(gone > 0)
    }
}
