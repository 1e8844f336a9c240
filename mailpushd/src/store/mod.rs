//! The store: registrations and subscriptions kept durably. They are read into the
//! crates' own values ([`Registry`](xaps_proto::registry::Registry),
//! [`Account`](imap_webpush_proto::state::Account)), changed by the crates' operations,
//! and the changes those return are what the store writes: every rule (refresh,
//! replace, the per-user limit, the 410 timestamp rule, expiry) is the crates', and
//! the store only loads and saves.
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

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

mod fronts;
mod owed;
mod pushlog;
mod registrations;
mod vapid;
mod webpush;

pub use owed::{Lease, OwedKey, OwedPush, OwedTarget, Rescheduled, Sent, now_ms};
pub use pushlog::{KEPT as PUSHES_KEPT, LoggedPush, PushRecord};
pub use registrations::DeviceStatus;
pub use vapid::FileKey;
pub use webpush::Records;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite file cannot be made its owner's only.
    #[error("cannot make {path} readable by its owner only: {source}")]
    Permissions {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An SQLite file whose name is not UTF-8 (the driver takes it as a URL).
    #[error("the SQLite file name {0:?} is not UTF-8")]
    Path(std::path::PathBuf),
    /// A stored row no longer reads (edited by hand, or written by a newer version).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// What it is (whose registration, which subscription or key).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An operation returned a kind of change this version cannot store: nothing of
    /// the transaction was kept.
    #[error("a change of a kind this version cannot store: nothing was stored")]
    UnknownChange,
    /// Whether the SQLite file is there cannot be told (a folder on the way is not
    /// searchable by this user).
    #[error("cannot look for the store at {path}: {source}")]
    Unsearchable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A command that reads the store found none where the configuration says.
    #[error("no store at {0}: check `database`, or start the daemon (serve) once to make it")]
    Missing(std::path::PathBuf),
    /// The store's schema is another version's than this program's.
    #[error(
        "the store's schema is version {found}, this mailpushd's is {expected}: {}",
        if found < expected { "start this version's daemon (serve) once to bring it up to date" } else { "it was made by a newer mailpushd" }
    )]
    Schema {
        /// The store's.
        found: i64,
        /// This program's.
        expected: i64,
    },
    /// The system clock reads a time the store cannot write (years 0001 to 9999 only).
    #[error("the clock reads {0:?}, outside years 0001 to 9999: set the system clock")]
    Clock(std::time::SystemTime),
}

/// The user names in the first column of `rows`.
fn user_names(rows: &[sqlx::any::AnyRow]) -> Result<Vec<xaps_proto::UserName>, StoreError> {
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            xaps_proto::UserName::new(&name)
                .map_err(|e| StoreError::corrupt(format!("user {name:?}"), e))
        })
        .collect()
}

impl StoreError {
    fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
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
    // When each subscription next has housekeeping due (its ack token expiring, its
    // silence ending; Record::next_deadline), so the timer finds the accounts to sweep
    // without reading every record. Rows from before are swept when their account is
    // next used.
    "ALTER TABLE webpush_subscriptions ADD COLUMN due_at BIGINT;
    CREATE INDEX webpush_subscriptions_due ON webpush_subscriptions (due_at);",
    // Pushes owed: acknowledged to the mail server, not delivered yet (store/owed.rs).
    "CREATE TABLE owed_pushes (
        kind TEXT NOT NULL,
        username TEXT NOT NULL,
        target TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        due_ms BIGINT NOT NULL,
        since_ms BIGINT NOT NULL,
        touched_ms BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        lease_owner TEXT,
        lease_ms BIGINT,
        PRIMARY KEY (kind, username, target, mailbox)
    );
    CREATE INDEX owed_pushes_due ON owed_pushes (due_ms);",
    // Device tokens kept as received (as xapsd keeps them), found by their lower case.
    "ALTER TABLE registrations ADD COLUMN token_key TEXT;
    UPDATE registrations SET token_key = lower(device_token);
    DROP INDEX registrations_token;
    CREATE INDEX registrations_token_key ON registrations (token_key);",
    // Every device an account registered from (a restored or cloned iPhone keeps the
    // account id): one row per user, account and token.
    "CREATE TABLE registrations_by_device (
        username TEXT NOT NULL,
        account_id TEXT NOT NULL,
        device_token TEXT NOT NULL,
        token_key TEXT NOT NULL,
        mailboxes TEXT NOT NULL,
        registered_at TEXT,
        registered_ns BIGINT,
        PRIMARY KEY (username, account_id, token_key)
    );
    INSERT INTO registrations_by_device
        SELECT username, account_id, device_token, token_key, mailboxes, registered_at, registered_ns
        FROM registrations;
    DROP TABLE registrations;
    ALTER TABLE registrations_by_device RENAME TO registrations;
    CREATE INDEX registrations_token_key ON registrations (token_key);
    CREATE INDEX registrations_time ON registrations (registered_ns);",
    // When each device first registered, and its last pushes (`mailpushd status`).
    "ALTER TABLE registrations ADD COLUMN created_at TEXT;
    CREATE TABLE push_log (
        username TEXT NOT NULL,
        account_id TEXT NOT NULL,
        token_key TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        event TEXT NOT NULL,
        outcome TEXT NOT NULL,
        status BIGINT,
        apns_id TEXT,
        reason TEXT
    );
    CREATE INDEX push_log_device ON push_log (username, account_id, token_key, at_ms);",
    // The IMAP front instances alive, and the instance in the connection id each
    // silence "until this connection ends" waits for (a front's, or a hash for a
    // connection an IMAP server forwards, which names no front) (store/fronts.rs): a
    // front that died without ending its sessions leaves silences another daemon can
    // end. A silence stored before has none, and ends when its connection's end is
    // stored, as before.
    "CREATE TABLE front_instances (
        instance BIGINT NOT NULL PRIMARY KEY,
        alive_ms BIGINT NOT NULL
    );
    ALTER TABLE webpush_subscriptions ADD COLUMN silenced_by BIGINT;
    CREATE INDEX webpush_subscriptions_silenced_by ON webpush_subscriptions (silenced_by);",
];

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

    /// Opens the configured store as it is, for the commands that read it (`status`,
    /// `check-config`, `export-xapsd`): neither made where there is none (a mistyped
    /// path is said, not answered with an empty store) nor migrated (a newer program's
    /// check does not change the schema under older daemons sharing it). A schema of
    /// another version is refused.
    pub async fn open_existing(database: &crate::config::Database) -> Result<Self, StoreError> {
        let store = match database {
            crate::config::Database::Sqlite(path) => {
                match path.try_exists() {
                    Ok(true) => {}
                    Ok(false) => return Err(StoreError::Missing(path.clone())),
                    // Not "no store": one that cannot be looked at is said as such.
                    Err(source) => {
                        return Err(StoreError::Unsearchable {
                            path: path.clone(),
                            source,
                        });
                    }
                }
                Self::connect_sqlite(path, "rw").await?
            }
            crate::config::Database::Postgres(url) => {
                Self::connect_postgres(url.expose(), url.max_connections()).await?
            }
        };
        let expected = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        let found: i64 = match sqlx::query("SELECT COALESCE(MAX(version), 0) FROM mailpushd_schema")
            .fetch_one(&store.readers)
            .await
        {
            Ok(row) => row.try_get(0)?,
            // No schema table: nothing of this program's is in it. Any other error is
            // the database's, and said.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01")
                    || e.message().contains("no such table") =>
            {
                0
            }
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        if found != expected {
            store.close().await;
            return Err(StoreError::Schema { found, expected });
        }
        Ok(store)
    }

    /// Opens (creating if needed) an SQLite store at `path` and brings its schema up to
    /// date. The file holds the VAPID private key and every subscription's keys: it is
    /// made readable by its owner only (and SQLite gives its `-wal` and `-shm` files
    /// the same mode), and one made more open by an earlier version is closed up.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        owner_only(path)?;
        let store = Self::connect_sqlite(path, "rwc").await?;
        // The file exists once migrated; readers open it read-only.
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to the SQLite file at `path`, its writer in SQLite's `mode` (`rwc`
    /// makes the file, `rw` does not), its readers read-only.
    async fn connect_sqlite(path: &Path, mode: &str) -> Result<Self, StoreError> {
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
            .connect(&format!("sqlite://{escaped}?mode={mode}"))
            .await?;
        // Readers open lazily, once the file exists (`open_sqlite` migrates first).
        let readers = pragmas(AnyPoolOptions::new().max_connections(4))
            .connect_lazy(&format!("sqlite://{escaped}?mode=ro"))?;
        Ok(Self {
            kind: Kind::Sqlite,
            readers,
            writer,
        })
    }

    /// Connects to PostgreSQL at `url` (`postgres://user:password@host/database`, with
    /// the usual parameters such as `sslmode`) with up to `max_connections`, and brings
    /// the schema up to date.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = Self::connect_postgres(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` with up to `max_connections`.
    async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        install_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self {
            kind: Kind::Postgres,
            readers: pool.clone(),
            writer: pool,
        })
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
}

/// Makes `path` a file only its owner can read and write: created so when it is new,
/// its mode (and that of its `-wal` and `-shm` files) set so when it is not.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let permission = |source| StoreError::Permissions {
        path: path.to_owned(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(permission(e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = Path::new(&file);
        let metadata = match std::fs::symlink_metadata(file) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(permission(e)),
        };
        // A mode set by path follows a link, to whatever file it names (a link's own
        // mode reads 0777 whatever its target's): links are left alone, and said.
        if metadata.file_type().is_symlink() {
            tracing::warn!(file = %file.display(), "a symbolic link: its target's mode is not checked (name the store's file itself)");
            continue;
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .map_err(permission)?;
            tracing::warn!(file = %file.display(), "the store was readable by others: made the owner's only");
        }
    }
    Ok(())
}

/// The drivers the store's URLs name. An application that installed its own set
/// first keeps it (and a URL its set lacks is refused at connect).
fn install_drivers() {
    let _already =
        sqlx::any::install_drivers(&[sqlx::postgres::any::DRIVER, sqlx::sqlite::any::DRIVER]);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// A store made more open is closed up; a link beside it is not followed.
    #[test]
    fn the_store_is_made_the_owners_only_and_no_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.sqlite");
        owner_only(&store).unwrap();
        assert_eq!(mode(&store), 0o600);
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::write(&theirs, "").unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&theirs, dir.path().join("store.sqlite-shm")).unwrap();
        owner_only(&store).unwrap();
        assert_eq!(mode(&store), 0o600);
        assert_eq!(mode(&theirs), 0o644, "followed the link");
    }

    /// A database with nothing of this program's in it is schema version 0.
    #[tokio::test]
    async fn a_database_without_this_programs_schema_is_version_0() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.sqlite");
        std::fs::write(&empty, "").unwrap();
        let opened = Store::open_existing(&crate::config::Database::Sqlite(empty)).await;
        assert!(
            matches!(opened, Err(StoreError::Schema { found: 0, .. })),
            "{opened:?}"
        );
    }
}
