//! iOS registrations: read into the crate's [`Registry`], changed by its operations,
//! and stored as the [`Change`]s those operations return.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use xaps_proto::registry::{Change, Registration, Registry};
use xaps_proto::{AccountId, DeviceToken, Timestamp, UserName};

use super::{Kind, Lock, Store, StoreError, user_names};

/// A registration as `mailpushd status` shows it.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    /// The account.
    pub account: AccountId,
    /// The registration (its time is the last refresh).
    pub registration: Registration,
    /// When the device first registered the account (unknown for registrations
    /// stored before this was kept).
    pub first_registered: Option<Timestamp>,
}

/// Which rows an update loads.
enum Selection<'a> {
    User(&'a UserName),
    Users(&'a [UserName]),
    Token(&'a DeviceToken),
}

/// How many users one transaction of a bulk operation (expiry, import) covers: few
/// enough for PostgreSQL's lock table (one advisory lock each) and for SQLite's one
/// writer to pass between batches.
pub(crate) const BULK_USERS: usize = 500;

const SELECT_ALL: &str =
    "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations";
const SELECT_USER: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE username = $1";
const SELECT_TOKEN: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE token_key = $1";

impl Store {
    /// Whether the store holds no registration (a new installation).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.count().await? == 0)
    }

    /// The number of registrations.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM registrations")
            .fetch_one(&self.readers)
            .await?
            .try_get(0)?;
        u64::try_from(n).map_err(|_| StoreError::corrupt("registrations", "a negative count"))
    }

    /// `user`'s registrations, in `registry` (empty, with the daemon's limits and
    /// policy), for a lookup.
    pub async fn user(
        &self,
        user: &UserName,
        mut registry: Registry,
    ) -> Result<Registry, StoreError> {
        let rows = sqlx::query(SELECT_USER)
            .bind(user.as_str())
            .fetch_all(&self.readers)
            .await?;
        restore(&mut registry, rows)?;
        Ok(registry)
    }

    /// Runs `change` on `user`'s registrations and stores the changes it returns, in
    /// one transaction: when this returns, they are on disk.
    pub async fn update_user<R>(
        &self,
        user: &UserName,
        registry: Registry,
        change: impl FnOnce(&mut Registry) -> (R, Vec<Change>),
    ) -> Result<R, StoreError> {
        self.update(Selection::User(user), registry, change).await
    }

    /// Runs `change` on every registration of `token` (any user) and stores the changes
    /// it returns: for an APNs 410.
    pub async fn update_token<R>(
        &self,
        token: &DeviceToken,
        registry: Registry,
        change: impl FnOnce(&mut Registry) -> (R, Vec<Change>),
    ) -> Result<R, StoreError> {
        self.update(Selection::Token(token), registry, change).await
    }

    /// Up to 500 users with a registration made before `cutoff`: the next
    /// batch for expiry.
    pub async fn users_older_than(&self, cutoff: Timestamp) -> Result<Vec<UserName>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT username FROM registrations WHERE registered_ns IS NOT NULL AND registered_ns < $1 LIMIT $2",
        )
        .bind(nanos(cutoff))
        .bind(i64::try_from(BULK_USERS).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await?;
        user_names(&rows)
    }

    /// Runs `change` on the registrations of `users` (at most 500) and
    /// stores the changes it returns, in one transaction.
    pub async fn update_users<R>(
        &self,
        users: &[UserName],
        registry: Registry,
        change: impl FnOnce(&mut Registry) -> (R, Vec<Change>),
    ) -> Result<R, StoreError> {
        if users.len() > BULK_USERS {
            return Err(StoreError::corrupt(
                "a bulk update",
                format!(
                    "{} users, more than {BULK_USERS} in one transaction",
                    users.len()
                ),
            ));
        }
        self.update(Selection::Users(users), registry, change).await
    }

    /// `user`'s registrations as `mailpushd status` shows them, with when each device
    /// first registered.
    pub async fn devices_of(&self, user: &UserName) -> Result<Vec<DeviceStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, account_id, device_token, mailboxes, registered_at, created_at
             FROM registrations WHERE username = $1 ORDER BY account_id, token_key",
        )
        .bind(user.as_str())
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let (_, account, registration) = read_row(row)?;
                let created: Option<String> = row.try_get(5)?;
                let created = created
                    .map(|t| Timestamp::from_str(&t))
                    .transpose()
                    .map_err(|e| StoreError::corrupt(format!("{user:?} / {account:?}"), e))?;
                Ok(DeviceStatus {
                    account,
                    registration,
                    first_registered: created,
                })
            })
            .collect()
    }

    /// Every registration, for an export.
    pub async fn all(&self, mut registry: Registry) -> Result<Registry, StoreError> {
        let rows = sqlx::query(SELECT_ALL).fetch_all(&self.readers).await?;
        restore(&mut registry, rows)?;
        Ok(registry)
    }

    /// Adds every registration of `registry` (an imported xapsd database); one stored
    /// for the same device is replaced only by one registered later, so that an older
    /// file imported again sets nothing back. How many were written. One transaction
    /// per 500 users, so that a large database neither exhausts PostgreSQL's lock table
    /// nor holds SQLite's writer (importing again after a failure is safe: each
    /// registration is written whole).
    pub async fn import(&self, registry: &Registry) -> Result<usize, StoreError> {
        let mut rows = registry.iter().peekable();
        let mut n = 0;
        while rows.peek().is_some() {
            let mut batch = Vec::new();
            let mut users = 0;
            while let Some((user, _, _)) = rows.peek() {
                let new_user = batch
                    .last()
                    .is_none_or(|(last, _, _): &(&UserName, _, _)| *last != *user);
                if new_user && users == BULK_USERS {
                    break;
                }
                users += usize::from(new_user);
                if let Some(row) = rows.next() {
                    batch.push(row);
                }
            }
            let locks: Vec<Lock<'_>> = batch
                .iter()
                .map(|(user, _, _)| Lock::User(user.as_str()))
                .collect();
            let mut tx = self.begin(&locks).await?;
            for (user, account, registration) in &batch {
                // An older file imported again does not set back what devices did since.
                if upsert(&mut tx, user, account, registration, Newer::Only).await? {
                    n += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn update<R>(
        &self,
        selection: Selection<'_>,
        mut registry: Registry,
        change: impl FnOnce(&mut Registry) -> (R, Vec<Change>),
    ) -> Result<R, StoreError> {
        let mut tx = self.writer.begin().await?;
        // Lock every user the rows belong to, then read them: a row another daemon
        // changed meanwhile is read as it is now.
        if self.kind == Kind::Postgres {
            let users: Vec<String> = match &selection {
                Selection::User(user) => vec![user.as_str().to_owned()],
                Selection::Token(token) => {
                    distinct_users(
                        "SELECT DISTINCT username FROM registrations WHERE token_key = $1",
                        token.to_lowercase(),
                        &mut tx,
                    )
                    .await?
                }
                Selection::Users(users) => users.iter().map(|u| u.as_str().to_owned()).collect(),
            };
            let users: Vec<Lock<'_>> = users.iter().map(|u| Lock::User(u)).collect();
            self.lock(&mut tx, &users).await?;
        }
        let rows = match selection {
            Selection::User(user) => {
                sqlx::query(SELECT_USER)
                    .bind(user.as_str().to_owned())
                    .fetch_all(&mut *tx)
                    .await?
            }
            Selection::Token(token) => {
                sqlx::query(SELECT_TOKEN)
                    .bind(token.to_lowercase())
                    .fetch_all(&mut *tx)
                    .await?
            }
            Selection::Users(users) => {
                let list = (1..=users.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let query = format!("{SELECT_ALL} WHERE username IN ({list})");
                let mut query = sqlx::query(&query);
                for user in users {
                    query = query.bind(user.as_str().to_owned());
                }
                query.fetch_all(&mut *tx).await?
            }
        };
        restore(&mut registry, rows)?;
        let (result, changes) = change(&mut registry);
        for change in &changes {
            match change {
                Change::Put {
                    user,
                    account_id,
                    registration,
                } => {
                    upsert(&mut tx, user, account_id, registration, Newer::OrNot).await?;
                }
                Change::Remove(removed) => {
                    super::pushlog::forget(
                        &mut tx,
                        &removed.user,
                        &removed.account_id,
                        &removed.registration.device_token,
                    )
                    .await?;
                    sqlx::query(
                        "DELETE FROM registrations WHERE username = $1 AND account_id = $2 AND token_key = $3",
                    )
                    .bind(removed.user.as_str())
                    .bind(removed.account_id.as_str())
                    .bind(removed.registration.device_token.to_lowercase())
                    .execute(&mut *tx)
                    .await?;
                }
                // A change this version does not know would be lost unstored.
                _ => return Err(StoreError::UnknownChange),
            }
        }
        tx.commit().await?;
        Ok(result)
    }
}

/// The users of the rows `query` selects by `value`.
async fn distinct_users<'q, T>(
    query: &'q str,
    value: T,
    tx: &mut Transaction<'static, Any>,
) -> Result<Vec<String>, StoreError>
where
    T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send,
{
    let rows = sqlx::query(query).bind(value).fetch_all(&mut **tx).await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?)
}

/// A time as the store orders them: nanoseconds since 1970, saturated at the years
/// 1677 and 2262 (an imported time before the first is older than any other, as the
/// registry takes it).
fn nanos(time: Timestamp) -> i64 {
    let nanos = time.unix_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Whether a registration replaces the stored one of its device only when it is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Newer {
    /// Only when it was registered later (an import).
    Only,
    /// Always (the registry decided).
    OrNot,
}

/// Stores a registration; whether a row was written.
async fn upsert(
    tx: &mut Transaction<'static, Any>,
    user: &UserName,
    account: &AccountId,
    registration: &Registration,
    newer: Newer,
) -> Result<bool, StoreError> {
    let mailboxes = serde_json::to_string(&registration.mailboxes)
        .map_err(|e| StoreError::corrupt(format!("{user:?} / {account:?}"), e))?;
    let only_newer = match newer {
        // A time beats none, as the registry has it.
        Newer::Only => {
            " WHERE excluded.registered_ns > registrations.registered_ns \
             OR (registrations.registered_ns IS NULL AND excluded.registered_ns IS NOT NULL)"
        }
        Newer::OrNot => "",
    };
    let written = sqlx::query(&format!(
        "INSERT INTO registrations (username, account_id, device_token, token_key, mailboxes, registered_at, registered_ns, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $6)
         ON CONFLICT (username, account_id, token_key) DO UPDATE SET
           device_token = excluded.device_token, mailboxes = excluded.mailboxes,
           registered_at = excluded.registered_at, registered_ns = excluded.registered_ns{only_newer}",
    ))
    .bind(user.as_str())
    .bind(account.as_str())
    .bind(registration.device_token.as_str())
    .bind(registration.device_token.to_lowercase())
    .bind(mailboxes)
    .bind(registration.registered_at.map(|t| t.to_string()))
    .bind(registration.registered_at.map(nanos))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written > 0)
}

fn restore(registry: &mut Registry, rows: Vec<AnyRow>) -> Result<(), StoreError> {
    for row in rows {
        let (user, account, registration) = read_row(&row)?;
        let what = format!("{user:?} / {account:?}");
        registry
            .restore(user, account, registration)
            .map_err(|e| StoreError::corrupt(what, e))?;
    }
    Ok(())
}

fn read_row(row: &AnyRow) -> Result<(UserName, AccountId, Registration), StoreError> {
    let user: String = row.try_get(0)?;
    let account: String = row.try_get(1)?;
    // Escaped: the text is as stored, unchecked, and the error reaches a terminal.
    let what = || format!("{user:?} / {account:?}");
    let corrupt = |reason: &dyn std::fmt::Display| StoreError::corrupt(what(), reason);
    let token: String = row.try_get(2)?;
    let mailboxes: String = row.try_get(3)?;
    let registered_at: Option<String> = row.try_get(4)?;
    let name = UserName::new(&user).map_err(|e| corrupt(&e))?;
    let account_id = AccountId::new(&account).map_err(|e| corrupt(&e))?;
    let device_token = DeviceToken::new(&token).map_err(|e| corrupt(&e))?;
    let mailboxes: Vec<String> = serde_json::from_str(&mailboxes).map_err(|e| corrupt(&e))?;
    let registered_at = registered_at
        .map(|t| Timestamp::from_str(&t))
        .transpose()
        .map_err(|e| corrupt(&e))?;
    Ok((
        name,
        account_id,
        Registration {
            device_token,
            mailboxes,
            registered_at,
        },
    ))
}
