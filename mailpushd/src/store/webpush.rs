//! Web Push subscriptions: each account read whole for the state machine, changed by
//! the [`Change`]s its transitions return; a fan-out's records decoded one by one.

use imap_webpush_proto::state::{Account, Change, Record, Verifications};
use sqlx::{AnyConnection, Row};
use xaps_proto::UserName;

use super::fronts::instance_column;
use super::{Kind, Lock, Store, StoreError, user_names};

impl Store {
    /// `user`'s Web Push state: subscriptions and verification count.
    pub async fn webpush_account(&self, user: &UserName) -> Result<Account, StoreError> {
        let mut conn = self.readers.acquire().await?;
        load_account(self.kind, &mut conn, user).await
    }

    /// `user`'s Web Push subscriptions, each decoded as it is taken: a fan-out pushes
    /// to the first while the rest are still to be read.
    pub async fn webpush_records(&self, user: &UserName) -> Result<Records, StoreError> {
        let mut conn = self.readers.acquire().await?;
        load_records(self.kind, &mut conn, user).await
    }

    /// When the next subscription has housekeeping due, seconds since the Unix epoch
    /// ([`Record::next_deadline`], as stored).
    pub async fn next_webpush_deadline(&self) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> = sqlx::query("SELECT MIN(due_at) FROM webpush_subscriptions")
            .fetch_one(&self.readers)
            .await?
            .try_get(0)?;
        next.map(|t| {
            u64::try_from(t)
                .map_err(|_| StoreError::corrupt("a subscription", "a negative deadline"))
        })
        .transpose()
    }

    /// Up to `limit` users with subscription housekeeping due at `now` (seconds since the
    /// Unix epoch).
    pub async fn webpush_users_due(
        &self,
        now: u64,
        limit: u32,
    ) -> Result<Vec<UserName>, StoreError> {
        let now = i64::try_from(now).map_err(|_| StoreError::corrupt("the clock", "past 2262"))?;
        let limit = i64::from(limit);
        let rows = sqlx::query(
            "SELECT DISTINCT username FROM webpush_subscriptions WHERE due_at <= $1 LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        user_names(&rows)
    }

    /// Moves `user`'s housekeeping deadlines that come before `until` (seconds since
    /// the Unix epoch) to it: a user whose housekeeping failed (a record that no longer
    /// reads) is tried again then, not at once and ahead of every other user.
    pub async fn delay_webpush_sweep(&self, user: &UserName, until: u64) -> Result<(), StoreError> {
        let until =
            i64::try_from(until).map_err(|_| StoreError::corrupt("the clock", "past 2262"))?;
        let mut tx = self.begin(&[Lock::User(user.as_str())]).await?;
        sqlx::query(
            "UPDATE webpush_subscriptions SET due_at = $2 WHERE username = $1 AND due_at < $2",
        )
        .bind(user.as_str())
        .bind(until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs `change` on `user`'s Web Push state and stores the changes it returns, in
    /// one transaction: when this returns, they are on disk.
    pub async fn update_webpush<R>(
        &self,
        user: &UserName,
        change: impl FnOnce(&Account) -> (R, Vec<Change>),
    ) -> Result<R, StoreError> {
        let mut tx = self.begin(&[Lock::User(user.as_str())]).await?;
        let account = load_account(self.kind, &mut tx, user).await?;
        let (result, changes) = change(&account);
        write_changes(&mut tx, user, &changes).await?;
        tx.commit().await?;
        Ok(result)
    }
}

/// Stores `changes` to `user`'s Web Push state, in the transaction `conn` is in.
pub(super) async fn write_changes(
    conn: &mut AnyConnection,
    user: &UserName,
    changes: &[Change],
) -> Result<(), StoreError> {
    for change in changes {
        match change {
            Change::Store(record) => {
                let json = serde_json::to_string(record).map_err(|e| {
                    StoreError::corrupt(format!("{user:?} / {:?}", record.sub_id.as_str()), e)
                })?;
                let due_at = record
                    .next_deadline()
                    .map(|t| {
                        i64::try_from(t).map_err(|_| {
                            StoreError::corrupt(
                                format!("{user:?} / {:?}", record.sub_id.as_str()),
                                "a deadline past 2262",
                            )
                        })
                    })
                    .transpose()?;
                let silenced_by = record
                    .silence
                    .connection()
                    .map(|connection| instance_column(connection.instance));
                sqlx::query(
                    "INSERT INTO webpush_subscriptions (username, sub_id, record, due_at, silenced_by) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (username, sub_id) DO UPDATE SET record = excluded.record, due_at = excluded.due_at, silenced_by = excluded.silenced_by",
                )
                .bind(user.as_str())
                .bind(record.sub_id.as_str())
                .bind(json)
                .bind(due_at)
                .bind(silenced_by)
                .execute(&mut *conn)
                .await?;
            }
            Change::Delete(id) => {
                sqlx::query(
                    "DELETE FROM webpush_subscriptions WHERE username = $1 AND sub_id = $2",
                )
                .bind(user.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
            }
            Change::Verifications(v) => {
                sqlx::query(
                    "INSERT INTO webpush_accounts (username, window_start, sent) VALUES ($1, $2, $3)
                     ON CONFLICT (username) DO UPDATE SET window_start = excluded.window_start, sent = excluded.sent",
                )
                .bind(user.as_str())
                .bind(
                    i64::try_from(v.window_start)
                        .map_err(|_| StoreError::corrupt(user.as_str(), "a window start past 2262"))?,
                )
                .bind(i64::from(v.sent))
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

pub(super) async fn load_account(
    kind: Kind,
    conn: &mut AnyConnection,
    user: &UserName,
) -> Result<Account, StoreError> {
    let records = load_records(kind, conn, user)
        .await?
        .collect::<Result<Vec<_>, _>>()?;
    let verifications =
        sqlx::query("SELECT window_start, sent FROM webpush_accounts WHERE username = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| -> Result<Verifications, StoreError> {
                let start: i64 = row.try_get(0)?;
                let sent: i64 = row.try_get(1)?;
                Ok(Verifications {
                    window_start: u64::try_from(start).ok().ok_or_else(|| {
                        StoreError::corrupt(user.as_str(), "a negative verification window")
                    })?,
                    sent: u32::try_from(sent).ok().ok_or_else(|| {
                        StoreError::corrupt(user.as_str(), "a verification count out of range")
                    })?,
                })
            })
            .transpose()?
            .unwrap_or_default();
    Ok(Account {
        records,
        verifications,
    })
}

/// All of `user`'s records, read as one value: one row through the driver instead of
/// one per subscription, which is most of the cost of a large fan-out's read. Compact
/// JSON never holds a raw line feed, so it separates them.
async fn load_records(
    kind: Kind,
    conn: &mut AnyConnection,
    user: &UserName,
) -> Result<Records, StoreError> {
    let all = match kind {
        Kind::Sqlite => {
            "SELECT group_concat(record, char(10)) FROM webpush_subscriptions WHERE username = $1"
        }
        Kind::Postgres => {
            "SELECT string_agg(record, E'\\n') FROM webpush_subscriptions WHERE username = $1"
        }
    };
    let joined: Option<String> = sqlx::query(all)
        .bind(user.as_str())
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(Records {
        user: user.clone(),
        joined: joined.unwrap_or_default(),
        at: 0,
        n: 0,
    })
}

/// A user's Web Push subscriptions as read from the store, each decoded when it is
/// taken ([`Store::webpush_records`]).
#[derive(Debug)]
pub struct Records {
    user: UserName,
    /// The records, one JSON text per line.
    joined: String,
    /// Where the next one starts.
    at: usize,
    /// How many were taken.
    n: usize,
}

impl Records {
    /// Whether the user has no subscription at all.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }
}

impl Iterator for Records {
    type Item = Result<Record, StoreError>;

    /// The next record, or why it does not read (the ones after it still may).
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.joined.get(self.at..)?;
            if rest.is_empty() {
                return None;
            }
            let (line, _) = rest.split_once('\n').unwrap_or((rest, ""));
            self.at += line.len() + 1;
            if line.is_empty() {
                continue;
            }
            self.n += 1;
            return Some(serde_json::from_str(line).map_err(|e| {
                StoreError::corrupt(
                    format!("{}'s Web Push subscription record {}", self.user, self.n),
                    e,
                )
            }));
        }
    }
}
