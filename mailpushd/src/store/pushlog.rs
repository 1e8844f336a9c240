//! The last pushes to each registered device, for `mailpushd status USER`: when, for
//! what, and what APNs answered (status, `apns-id`, reason). At most [`KEPT`] per
//! device; they go with the registration.

use sqlx::{Any, Row, Transaction};
use xaps_proto::{AccountId, DeviceToken, UserName};

use super::{Lock, Store, StoreError};

/// How many pushes are kept per device.
pub const KEPT: u32 = 10;

/// One push to a device, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecord {
    /// Whose.
    pub user: UserName,
    /// The account pushed.
    pub account: AccountId,
    /// The device.
    pub token: DeviceToken,
    /// When it ended, milliseconds since 1970.
    pub at_ms: u64,
    /// What it was for: new mail, a change after the quiet period, a retry, a test.
    pub event: String,
    /// How it ended (the `outcome` label of `mailpushd_pushes_total`).
    pub outcome: String,
    /// The last HTTP status APNs answered, if it answered.
    pub status: Option<u16>,
    /// The last `apns-id` APNs answered with.
    pub apns_id: Option<String>,
    /// APNs's reason, or why there was no answer.
    pub reason: Option<String>,
}

/// Writes `records` in `tx`, keeping the last [`KEPT`] of each device.
pub(super) async fn write(
    tx: &mut Transaction<'static, Any>,
    records: &[PushRecord],
) -> Result<(), StoreError> {
    for r in records {
        let at = i64::try_from(r.at_ms)
            .map_err(|_| StoreError::corrupt("a push", "a time past 2262"))?;
        let key = r.token.to_lowercase();
        // Only for a device still registered: the push may end after APNs said the
        // token is gone and the registration went with its log.
        sqlx::query(
            "INSERT INTO push_log (username, account_id, token_key, at_ms, event, outcome, status, apns_id, reason)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
             WHERE EXISTS (SELECT 1 FROM registrations
                           WHERE username = $1 AND account_id = $2 AND token_key = $3)",
        )
        .bind(r.user.as_str())
        .bind(r.account.as_str())
        .bind(key.clone())
        .bind(at)
        .bind(r.event.clone())
        .bind(r.outcome.clone())
        .bind(r.status.map(i64::from))
        .bind(r.apns_id.clone())
        .bind(r.reason.clone())
        .execute(&mut **tx)
        .await?;
        // The oldest beyond the last KEPT go (none while there are fewer).
        sqlx::query(
            "DELETE FROM push_log WHERE username = $1 AND account_id = $2 AND token_key = $3 AND at_ms <
               (SELECT at_ms FROM push_log WHERE username = $1 AND account_id = $2 AND token_key = $3
                ORDER BY at_ms DESC LIMIT 1 OFFSET $4)",
        )
        .bind(r.user.as_str())
        .bind(r.account.as_str())
        .bind(key)
        .bind(i64::from(KEPT - 1))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Removes what is logged of a device's account (its registration went).
pub(super) async fn forget(
    tx: &mut Transaction<'static, Any>,
    user: &UserName,
    account: &AccountId,
    token: &DeviceToken,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM push_log WHERE username = $1 AND account_id = $2 AND token_key = $3")
        .bind(user.as_str())
        .bind(account.as_str())
        .bind(token.to_lowercase())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Logs `records` (pushes that ended) in one transaction.
    pub async fn log_pushes(&self, records: &[PushRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let users: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.user.as_str()).collect();
        let locks: Vec<Lock<'_>> = users.into_iter().map(Lock::User).collect();
        let mut tx = self.begin(&locks).await?;
        write(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What is logged of `user`'s pushes, oldest first: (account, token key, record).
    pub async fn pushes_of(&self, user: &UserName) -> Result<Vec<LoggedPush>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, token_key, at_ms, event, outcome, status, apns_id, reason
             FROM push_log WHERE username = $1 ORDER BY at_ms",
        )
        .bind(user.as_str())
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let what = || format!("{user}'s push log");
                let at: i64 = row.try_get(2)?;
                let status: Option<i64> = row.try_get(5)?;
                Ok(LoggedPush {
                    account: row.try_get(0)?,
                    token_key: row.try_get(1)?,
                    at_ms: u64::try_from(at)
                        .map_err(|_| StoreError::corrupt(what(), "a time before 1970"))?,
                    event: row.try_get(3)?,
                    outcome: row.try_get(4)?,
                    status: status
                        .map(u16::try_from)
                        .transpose()
                        .map_err(|_| StoreError::corrupt(what(), "a status out of range"))?,
                    apns_id: row.try_get(6)?,
                    reason: row.try_get(7)?,
                })
            })
            .collect()
    }
}

/// A logged push as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPush {
    /// The account pushed.
    pub account: String,
    /// The device's token, lower case.
    pub token_key: String,
    /// When it ended, milliseconds since 1970.
    pub at_ms: u64,
    /// What it was for.
    pub event: String,
    /// How it ended.
    pub outcome: String,
    /// The last HTTP status APNs answered.
    pub status: Option<u16>,
    /// The last `apns-id`.
    pub apns_id: Option<String>,
    /// APNs's reason, or why there was no answer.
    pub reason: Option<String>,
}
