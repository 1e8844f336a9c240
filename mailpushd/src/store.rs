//! The store: registrations kept durably, read and changed through the crate's
//! [`Registry`], so every rule (refresh, replace, the per-user limit, the 410 timestamp
//! rule, expiry) is the crate's and the store only loads and saves.
//!
//! One schema and one list of migrations for every driver; SQLite (one file, WAL, a
//! commit is on disk before a registration is acknowledged) is the embedded default.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use xaps_proto::registry::{Registration, Registry};
use xaps_proto::{AccountId, DeviceToken, Timestamp};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row no longer reads (edited by hand, or written by a newer version).
    #[error("stored registration of {user:?} / {account:?} is unreadable: {reason}")]
    Corrupt {
        /// The user.
        user: String,
        /// The account id.
        account: String,
        /// What is wrong.
        reason: String,
    },
}

/// The schema, one step per version; never edited once released, only appended to.
const MIGRATIONS: &[&str] = &["CREATE TABLE registrations (
        username TEXT NOT NULL,
        account_id TEXT NOT NULL,
        device_token TEXT NOT NULL,
        mailboxes TEXT NOT NULL,
        registered_at TEXT,
        registered_ns BIGINT,
        PRIMARY KEY (username, account_id)
    );
    CREATE INDEX registrations_token ON registrations (device_token);
    CREATE INDEX registrations_time ON registrations (registered_ns);"];

/// One stored row.
type Row_ = (String, AccountId, Registration);

/// The registrations' store.
#[derive(Debug, Clone)]
pub struct Store {
    driver: Driver,
}

#[derive(Debug, Clone)]
enum Driver {
    Sqlite {
        /// One connection: SQLite has one writer, and a queue here is cheaper than
        /// busy retries.
        writer: SqlitePool,
        /// Readers see committed data while the writer works (WAL).
        readers: SqlitePool,
    },
}

impl Store {
    /// Opens the configured store.
    pub async fn open(database: &crate::config::Database) -> Result<Self, StoreError> {
        match database {
            crate::config::Database::Sqlite(path) => Self::open_sqlite(path).await,
        }
    }

    /// Opens (creating if needed) an SQLite store at `path` and brings its schema up to
    /// date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it returns, so a 200 is never lost.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        let store = Self {
            driver: Driver::Sqlite { writer, readers },
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let Driver::Sqlite { writer, .. } = &self.driver;
        let mut tx = writer.begin().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS mailpushd_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM mailpushd_schema")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let step_version = i64::try_from(i + 1).unwrap_or(i64::MAX);
            if step_version <= version {
                continue;
            }
            for statement in step.split(';').filter(|s| !s.trim().is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO mailpushd_schema (version) VALUES (?)")
                .bind(step_version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the connections, after the last write.
    pub async fn close(&self) {
        let Driver::Sqlite { writer, readers } = &self.driver;
        readers.close().await;
        writer.close().await;
    }

    /// Whether the store holds no registration (a new installation).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.count().await? == 0)
    }

    /// The number of registrations.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let Driver::Sqlite { readers, .. } = &self.driver;
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM registrations")
            .fetch_one(readers)
            .await?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `user`'s registrations, in `registry` (empty, with the daemon's limits and
    /// policy), for a lookup.
    pub async fn user(&self, user: &str, mut registry: Registry) -> Result<Registry, StoreError> {
        let Driver::Sqlite { readers, .. } = &self.driver;
        let rows = sqlx::query(SELECT_USER)
            .bind(user.to_lowercase())
            .fetch_all(readers)
            .await?;
        restore(&mut registry, rows)?;
        Ok(registry)
    }

    /// Runs `change` on `user`'s registrations and stores what it changed, in one
    /// transaction: when this returns, the change is on disk.
    pub async fn update_user<R>(
        &self,
        user: &str,
        registry: Registry,
        change: impl FnOnce(&mut Registry) -> R,
    ) -> Result<R, StoreError> {
        self.update(Selection::User(user.to_lowercase()), registry, change)
            .await
    }

    /// Runs `change` on every registration of `token` (any user) and stores what it
    /// changed: for an APNs 410.
    pub async fn update_token<R>(
        &self,
        token: &DeviceToken,
        registry: Registry,
        change: impl FnOnce(&mut Registry) -> R,
    ) -> Result<R, StoreError> {
        self.update(
            Selection::Token(token.as_str().to_owned()),
            registry,
            change,
        )
        .await
    }

    /// Runs `change` on every registration made before `cutoff` and stores what it
    /// changed: for expiry.
    pub async fn update_older_than<R>(
        &self,
        cutoff: Timestamp,
        registry: Registry,
        change: impl FnOnce(&mut Registry) -> R,
    ) -> Result<R, StoreError> {
        self.update(Selection::OlderThan(nanos(cutoff)), registry, change)
            .await
    }

    /// Every registration, for an export.
    pub async fn all(&self, mut registry: Registry) -> Result<Registry, StoreError> {
        let Driver::Sqlite { readers, .. } = &self.driver;
        let rows = sqlx::query(SELECT_ALL).fetch_all(readers).await?;
        restore(&mut registry, rows)?;
        Ok(registry)
    }

    /// Adds every registration of `registry` (an imported xapsd database), replacing
    /// stored ones of the same user and account, in one transaction.
    pub async fn import(&self, registry: &Registry) -> Result<usize, StoreError> {
        let Driver::Sqlite { writer, .. } = &self.driver;
        let mut tx = writer.begin().await?;
        let mut n = 0;
        for (user, account, registration) in registry.iter() {
            upsert(&mut tx, user, account, registration).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn update<R>(
        &self,
        selection: Selection,
        mut registry: Registry,
        change: impl FnOnce(&mut Registry) -> R,
    ) -> Result<R, StoreError> {
        let Driver::Sqlite { writer, .. } = &self.driver;
        let mut tx = writer.begin().await?;
        let rows = match selection {
            Selection::User(user) => sqlx::query(SELECT_USER).bind(user),
            Selection::Token(token) => sqlx::query(SELECT_TOKEN).bind(token),
            Selection::OlderThan(cutoff) => sqlx::query(SELECT_OLDER).bind(cutoff),
        }
        .fetch_all(&mut *tx)
        .await?;
        restore(&mut registry, rows)?;
        let before = snapshot(&registry);
        let result = change(&mut registry);
        let after = snapshot(&registry);
        for (key, registration) in &after {
            if before.get(key) != Some(registration) {
                upsert(&mut tx, &key.0, &key.1, registration).await?;
            }
        }
        for (user, account) in before.keys().filter(|k| !after.contains_key(*k)) {
            sqlx::query("DELETE FROM registrations WHERE username = ? AND account_id = ?")
                .bind(user)
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(result)
    }
}

/// Which rows an update loads.
enum Selection {
    User(String),
    Token(String),
    OlderThan(i64),
}

const SELECT_ALL: &str =
    "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations";
const SELECT_USER: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE username = ?";
const SELECT_TOKEN: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE device_token = ?";
const SELECT_OLDER: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE registered_ns IS NOT NULL AND registered_ns < ?";

fn snapshot(registry: &Registry) -> BTreeMap<(String, AccountId), Registration> {
    registry
        .iter()
        .map(|(u, a, r)| ((u.to_owned(), a.clone()), r.clone()))
        .collect()
}

fn nanos(time: Timestamp) -> i64 {
    i64::try_from(time.unix_nanos()).unwrap_or(i64::MAX)
}

async fn upsert(
    tx: &mut Transaction<'static, Sqlite>,
    user: &str,
    account: &AccountId,
    registration: &Registration,
) -> Result<(), StoreError> {
    let mailboxes =
        serde_json::to_string(&registration.mailboxes).map_err(|e| StoreError::Corrupt {
            user: user.to_owned(),
            account: account.as_str().to_owned(),
            reason: e.to_string(),
        })?;
    sqlx::query(
        "INSERT INTO registrations (username, account_id, device_token, mailboxes, registered_at, registered_ns)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (username, account_id) DO UPDATE SET
           device_token = excluded.device_token, mailboxes = excluded.mailboxes,
           registered_at = excluded.registered_at, registered_ns = excluded.registered_ns",
    )
    .bind(user)
    .bind(account.as_str())
    .bind(registration.device_token.as_str())
    .bind(mailboxes)
    .bind(registration.registered_at.map(|t| t.to_string()))
    .bind(registration.registered_at.map(nanos))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn restore(registry: &mut Registry, rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<(), StoreError> {
    for row in rows {
        let (user, account, registration) = read_row(&row)?;
        registry
            .restore(&user, account.clone(), registration)
            .map_err(|e| StoreError::Corrupt {
                user: user.clone(),
                account: account.as_str().to_owned(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

fn read_row(row: &sqlx::sqlite::SqliteRow) -> Result<Row_, StoreError> {
    let user: String = row.try_get(0)?;
    let account: String = row.try_get(1)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        user: user.clone(),
        account: account.clone(),
        reason,
    };
    let token: String = row.try_get(2)?;
    let mailboxes: String = row.try_get(3)?;
    let registered_at: Option<String> = row.try_get(4)?;
    let account_id = AccountId::new(&account).map_err(|e| corrupt(e.to_string()))?;
    let device_token = DeviceToken::new(&token).map_err(|e| corrupt(e.to_string()))?;
    let mailboxes: Vec<String> =
        serde_json::from_str(&mailboxes).map_err(|e| corrupt(e.to_string()))?;
    let registered_at = registered_at
        .map(|t| Timestamp::from_str(&t))
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok((
        user.clone(),
        account_id,
        Registration {
            device_token,
            mailboxes,
            registered_at,
        },
    ))
}
