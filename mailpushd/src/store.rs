//! The store: registrations kept durably, read and changed through the crate's
//! [`Registry`], so every rule (refresh, replace, the per-user limit, the 410 timestamp
//! rule, expiry) is the crate's and the store only loads and saves.
//!
//! One schema, one list of migrations and one set of statements for every driver,
//! chosen by the database URL: SQLite (one file, WAL, a commit is on disk before a
//! registration is acknowledged) is the embedded default; PostgreSQL lets several
//! daemons share one database.
//!
//! Every change is a read-modify-write of one user's rows in one transaction. SQLite has
//! one writer, so those transactions never overlap. On PostgreSQL, where other daemons
//! write at the same time, each transaction first takes a transaction-scoped advisory
//! lock on every user it changes (in sorted order, so two never wait on each other): two
//! daemons then see each other's changes to a user in order, the way one would.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use imap_webpush_proto::state::{Account, Change, Record, VapidKeyId, Verifications};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row, Transaction};
use webpush_crypto::VapidKey;
use xaps_proto::registry::{Registration, Registry};
use xaps_proto::{AccountId, DeviceToken, Timestamp};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An SQLite file whose name is not UTF-8 (the driver takes it as a URL).
    #[error("the SQLite file name {0:?} is not UTF-8")]
    Path(std::path::PathBuf),
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
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE registrations (
        username TEXT NOT NULL,
        account_id TEXT NOT NULL,
        device_token TEXT NOT NULL,
        mailboxes TEXT NOT NULL,
        registered_at TEXT,
        registered_ns BIGINT,
        PRIMARY KEY (username, account_id)
    );
    CREATE INDEX registrations_token ON registrations (device_token);
    CREATE INDEX registrations_time ON registrations (registered_ns);",
    // Web Push: each subscription as the state machine's record (JSON), each account's
    // verification count, and the VAPID keys (the highest id is current).
    "CREATE TABLE webpush_subscriptions (
        username TEXT NOT NULL,
        sub_id TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (username, sub_id)
    );
    CREATE TABLE webpush_accounts (
        username TEXT NOT NULL PRIMARY KEY,
        window_start BIGINT NOT NULL,
        sent BIGINT NOT NULL
    );
    CREATE TABLE vapid_keys (
        id BIGINT NOT NULL PRIMARY KEY,
        private_key TEXT NOT NULL,
        created_at TEXT NOT NULL
    );",
];

/// One stored row.
type Row_ = (String, AccountId, Registration);

/// The registrations' store.
#[derive(Debug, Clone)]
pub struct Store {
    kind: Kind,
    /// SQLite: one connection, as SQLite has one writer and a queue here is cheaper
    /// than busy retries. PostgreSQL: the one pool.
    writer: AnyPool,
    /// SQLite: read-only connections that see committed data while the writer works
    /// (WAL). PostgreSQL: the same pool as `writer`.
    readers: AnyPool,
}

/// Which database the store is on: where their SQL differs (locks), it is here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// What a write transaction locks (on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lock<'a> {
    /// The schema: two daemons starting at once migrate one after the other.
    Schema,
    /// The VAPID keys.
    Vapid,
    /// One user's registrations and subscriptions.
    User(&'a str),
}

impl Lock<'_> {
    /// The lock's name, hashed into PostgreSQL's advisory lock key. The prefixes keep
    /// a user's name from naming another lock.
    fn name(self) -> String {
        match self {
            Lock::Schema => "schema".to_owned(),
            Lock::Vapid => "vapid".to_owned(),
            Lock::User(user) => format!("user {user}"),
        }
    }
}

impl Store {
    /// Opens the configured store.
    pub async fn open(database: &crate::config::Database) -> Result<Self, StoreError> {
        match database {
            crate::config::Database::Sqlite(path) => Self::open_sqlite(path).await,
            crate::config::Database::Postgres(url) => {
                Self::open_postgres(url.expose(), url.max_connections()).await
            }
        }
    }

    /// Opens (creating if needed) an SQLite store at `path` and brings its schema up to
    /// date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        install_drivers();
        let file = path
            .to_str()
            .ok_or_else(|| StoreError::Path(path.to_owned()))?;
        // `%`, `?` and `#` would end the file name in the URL.
        let mut escaped = String::with_capacity(file.len());
        for c in file.chars() {
            match c {
                '%' => escaped.push_str("%25"),
                '?' => escaped.push_str("%3F"),
                '#' => escaped.push_str("%23"),
                c => escaped.push(c),
            }
        }
        let pragmas = |pool: AnyPoolOptions| {
            pool.after_connect(|conn, _| {
                Box::pin(async move {
                    // FULL: a commit is on disk before it returns, so a 200 is never lost.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON",
                    )
                    .await
                    .map(drop)
                })
            })
        };
        let writer = pragmas(AnyPoolOptions::new().max_connections(1))
            .connect(&format!("sqlite://{escaped}?mode=rwc"))
            .await?;
        let store = Self {
            kind: Kind::Sqlite,
            readers: writer.clone(),
            writer,
        };
        // The file exists once migrated; readers open it read-only.
        store.migrate().await?;
        let readers = pragmas(AnyPoolOptions::new().max_connections(4))
            .connect(&format!("sqlite://{escaped}?mode=ro"))
            .await?;
        Ok(Self { readers, ..store })
    }

    /// Connects to PostgreSQL at `url` (`postgres://user:password@host/database`, with
    /// the usual parameters such as `sslmode`) with up to `max_connections`, and brings
    /// the schema up to date.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        install_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let store = Self {
            kind: Kind::Postgres,
            readers: pool.clone(),
            writer: pool,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Begins a write transaction that holds every one of `locks`.
    async fn begin(&self, locks: &[Lock<'_>]) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.writer.begin().await?;
        self.lock(&mut tx, locks).await?;
        Ok(tx)
    }

    /// Takes `locks` in `tx` (PostgreSQL; SQLite's one writer already
    /// excludes every other).
    async fn lock(
        &self,
        tx: &mut Transaction<'static, Any>,
        locks: &[Lock<'_>],
    ) -> Result<(), StoreError> {
        if self.kind == Kind::Postgres {
            let mut locks = locks.to_vec();
            locks.sort_unstable();
            locks.dedup();
            for lock in locks {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(lock.name())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        // The table first: the lock's query needs none, but SQLite's writer is enough.
        self.lock(&mut tx, &[Lock::Schema]).await?;
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
            sqlx::query("INSERT INTO mailpushd_schema (version) VALUES ($1)")
                .bind(step_version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the connections, after the last write.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

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
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `user`'s registrations, in `registry` (empty, with the daemon's limits and
    /// policy), for a lookup.
    pub async fn user(&self, user: &str, mut registry: Registry) -> Result<Registry, StoreError> {
        let rows = sqlx::query(SELECT_USER)
            .bind(user.to_lowercase())
            .fetch_all(&self.readers)
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
        let rows = sqlx::query(SELECT_ALL).fetch_all(&self.readers).await?;
        restore(&mut registry, rows)?;
        Ok(registry)
    }

    /// Adds every registration of `registry` (an imported xapsd database), replacing
    /// stored ones of the same user and account, in one transaction.
    pub async fn import(&self, registry: &Registry) -> Result<usize, StoreError> {
        let users: Vec<Lock<'_>> = registry
            .iter()
            .map(|(user, _, _)| Lock::User(user))
            .collect();
        let mut tx = self.begin(&users).await?;
        let mut n = 0;
        for (user, account, registration) in registry.iter() {
            upsert(&mut tx, user, account, registration).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// `user`'s Web Push state: subscriptions and verification count.
    pub async fn webpush_account(&self, user: &str) -> Result<Account, StoreError> {
        let mut conn = self.readers.acquire().await?;
        load_account(self.kind, &mut conn, &user.to_lowercase()).await
    }

    /// `user`'s Web Push subscriptions, each decoded as it is taken: a fan-out pushes
    /// to the first while the rest are still to be read.
    pub async fn webpush_records(&self, user: &str) -> Result<Records, StoreError> {
        let mut conn = self.readers.acquire().await?;
        load_records(self.kind, &mut conn, &user.to_lowercase()).await
    }

    /// Runs `change` on `user`'s Web Push state and stores the changes it returns, in
    /// one transaction: when this returns, they are on disk.
    pub async fn update_webpush<R>(
        &self,
        user: &str,
        change: impl FnOnce(&Account) -> (R, Vec<Change>),
    ) -> Result<R, StoreError> {
        let user = user.to_lowercase();
        let mut tx = self.begin(&[Lock::User(&user)]).await?;
        let account = load_account(self.kind, &mut tx, &user).await?;
        let (result, changes) = change(&account);
        for change in &changes {
            match change {
                Change::Store(record) => {
                    let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt {
                        user: user.clone(),
                        account: record.sub_id.as_str().to_owned(),
                        reason: e.to_string(),
                    })?;
                    sqlx::query(
                        "INSERT INTO webpush_subscriptions (username, sub_id, record) VALUES ($1, $2, $3)
                         ON CONFLICT (username, sub_id) DO UPDATE SET record = excluded.record",
                    )
                    .bind(&user)
                    .bind(record.sub_id.as_str())
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Delete(id) => {
                    sqlx::query(
                        "DELETE FROM webpush_subscriptions WHERE username = $1 AND sub_id = $2",
                    )
                    .bind(&user)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Verifications(v) => {
                    sqlx::query(
                        "INSERT INTO webpush_accounts (username, window_start, sent) VALUES ($1, $2, $3)
                         ON CONFLICT (username) DO UPDATE SET window_start = excluded.window_start, sent = excluded.sent",
                    )
                    .bind(&user)
                    .bind(i64::try_from(v.window_start).unwrap_or(i64::MAX))
                    .bind(i64::from(v.sent))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(result)
    }

    /// The current VAPID key and its id, if one was made.
    pub async fn vapid_key(&self) -> Result<Option<(VapidKeyId, VapidKey)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        current_vapid_key(&mut conn).await
    }

    /// The current VAPID key if there is one, else `key` made the first: two daemons
    /// starting together on a new database agree on one key.
    pub async fn first_vapid_key(
        &self,
        key: VapidKey,
    ) -> Result<(VapidKeyId, VapidKey), StoreError> {
        let mut tx = self.begin(&[Lock::Vapid]).await?;
        if let Some(current) = current_vapid_key(&mut tx).await? {
            return Ok(current);
        }
        let id = insert_vapid_key(&mut tx, &key).await?;
        tx.commit().await?;
        Ok((id, key))
    }

    /// Makes `key` the current VAPID key, with the next id.
    pub async fn add_vapid_key(&self, key: &VapidKey) -> Result<VapidKeyId, StoreError> {
        let mut tx = self.begin(&[Lock::Vapid]).await?;
        let id = insert_vapid_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn update<R>(
        &self,
        selection: Selection,
        mut registry: Registry,
        change: impl FnOnce(&mut Registry) -> R,
    ) -> Result<R, StoreError> {
        let mut tx = self.writer.begin().await?;
        // Lock every user the rows belong to, then read them: a row another daemon
        // changed meanwhile is read as it is now.
        if self.kind == Kind::Postgres {
            let users: Vec<String> = match &selection {
                Selection::User(user) => vec![user.clone()],
                Selection::Token(token) => {
                    distinct_users("SELECT DISTINCT username FROM registrations WHERE device_token = $1", token, &mut tx).await?
                }
                Selection::OlderThan(cutoff) => {
                    distinct_users("SELECT DISTINCT username FROM registrations WHERE registered_ns IS NOT NULL AND registered_ns < $1", cutoff, &mut tx).await?
                }
            };
            let users: Vec<Lock<'_>> = users.iter().map(|u| Lock::User(u)).collect();
            self.lock(&mut tx, &users).await?;
        }
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
            sqlx::query("DELETE FROM registrations WHERE username = $1 AND account_id = $2")
                .bind(user)
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(result)
    }
}

/// The drivers the store's URLs name. An application that installed its own set
/// first keeps it (and a URL its set lacks is refused at connect).
fn install_drivers() {
    let _already =
        sqlx::any::install_drivers(&[sqlx::postgres::any::DRIVER, sqlx::sqlite::any::DRIVER]);
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

/// The highest-numbered VAPID key, if any.
async fn current_vapid_key(
    conn: &mut AnyConnection,
) -> Result<Option<(VapidKeyId, VapidKey)>, StoreError> {
    let row = sqlx::query("SELECT id, private_key FROM vapid_keys ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    let key: String = row.try_get(1)?;
    let key = zeroize::Zeroizing::new(key);
    let key = VapidKey::import(key.as_bytes()).map_err(|e| StoreError::Corrupt {
        user: String::new(),
        account: format!("VAPID key {id}"),
        reason: e.to_string(),
    })?;
    let id = u32::try_from(id).map_err(|_| StoreError::Corrupt {
        user: String::new(),
        account: format!("VAPID key {id}"),
        reason: "id out of range".into(),
    })?;
    Ok(Some((VapidKeyId(id), key)))
}

/// Stores `key` as the VAPID key with the next id.
async fn insert_vapid_key(
    tx: &mut Transaction<'static, Any>,
    key: &VapidKey,
) -> Result<VapidKeyId, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        user: String::new(),
        account: "VAPID key".into(),
        reason,
    };
    let last: Option<i64> = sqlx::query("SELECT MAX(id) FROM vapid_keys")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let id = last.unwrap_or(0) + 1;
    let key_id = u32::try_from(id).map_err(|_| corrupt(format!("id {id} out of range")))?;
    let pem = key.to_pkcs8_pem().map_err(|e| corrupt(e.to_string()))?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    sqlx::query("INSERT INTO vapid_keys (id, private_key, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(pem.to_string())
        .bind(now.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(VapidKeyId(key_id))
}

/// Which rows an update loads.
enum Selection {
    User(String),
    Token(String),
    OlderThan(i64),
}

const SELECT_ALL: &str =
    "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations";
const SELECT_USER: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE username = $1";
const SELECT_TOKEN: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE device_token = $1";
const SELECT_OLDER: &str = "SELECT username, account_id, device_token, mailboxes, registered_at FROM registrations WHERE registered_ns IS NOT NULL AND registered_ns < $1";

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
    tx: &mut Transaction<'static, Any>,
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
         VALUES ($1, $2, $3, $4, $5, $6)
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

fn restore(registry: &mut Registry, rows: Vec<AnyRow>) -> Result<(), StoreError> {
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

fn read_row(row: &AnyRow) -> Result<Row_, StoreError> {
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

async fn load_account(
    kind: Kind,
    conn: &mut AnyConnection,
    user: &str,
) -> Result<Account, StoreError> {
    let records = load_records(kind, conn, user)
        .await?
        .collect::<Result<Vec<_>, _>>()?;
    let verifications =
        sqlx::query("SELECT window_start, sent FROM webpush_accounts WHERE username = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| -> Result<Verifications, sqlx::Error> {
                let start: i64 = row.try_get(0)?;
                let sent: i64 = row.try_get(1)?;
                Ok(Verifications {
                    window_start: u64::try_from(start).unwrap_or(0),
                    sent: u32::try_from(sent).unwrap_or(u32::MAX),
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
    user: &str,
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
        .bind(user)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(Records {
        user: user.to_owned(),
        joined: joined.unwrap_or_default(),
        at: 0,
        n: 0,
    })
}

/// A user's Web Push subscriptions as read from the store, each decoded when it is
/// taken ([`Store::webpush_records`]).
#[derive(Debug)]
pub struct Records {
    user: String,
    /// The records, one JSON text per line.
    joined: String,
    /// Where the next one starts.
    at: usize,
    /// How many were taken.
    n: usize,
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
            return Some(serde_json::from_str(line).map_err(|e| StoreError::Corrupt {
                user: self.user.clone(),
                account: format!("Web Push subscription record {}", self.n),
                reason: e.to_string(),
            }));
        }
    }
}
