//! Expiry and import at scale: a batch of users per transaction, so PostgreSQL's lock
//! table (one advisory lock per user) holds beyond a few thousand users, and the crate's
//! rule still decides which registrations go.

use std::time::{Duration, SystemTime};

mod support;

use mailpushd::config::{Database, PostgresUrl};
use mailpushd::daemon::Daemon;
use mailpushd::demo::standin_config;
use mailpushd::standin::Standin;
use mailpushd::store::Store;
use xaps_proto::registry::{Registration, Registry};
use xaps_proto::{AccountId, DeviceToken, Timestamp};

/// `n` users with one registration each, every other one old: forty days (the lifetime
/// is thirty), or, one in four, in the year 1 (an xapsd file's time past what the
/// store's nanoseconds hold, though not Go's zero time).
fn registry(n: usize) -> Registry {
    let mut registry = Registry::new().with_max_accounts_per_user(usize::MAX);
    let now = SystemTime::now();
    let old = Timestamp::from_system_time(now - Duration::from_secs(40 * 86_400)).expect("now");
    let ancient = Timestamp::try_from("0001-01-01T00:00:00.5+01:00".to_owned()).unwrap();
    assert!(!ancient.is_go_zero());
    let now = Timestamp::from_system_time(now).expect("now");
    for i in 0..n {
        let registration = Registration {
            device_token: DeviceToken::new(&format!("{:064x}", i + 1)).unwrap(),
            mailboxes: vec!["INBOX".to_owned()],
            registered_at: Some(match i % 4 {
                0 => ancient,
                2 => old,
                _ => now,
            }),
        };
        registry
            .restore(
                support::user_name(&format!("user{i}")),
                AccountId::new(&format!("ACCOUNT-{i}")).unwrap(),
                registration,
            )
            .unwrap();
    }
    registry
}

async fn import_then_expire(database: Database, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let standin = Standin::start().await.unwrap();
    let mut config = standin_config(&standin, dir.path()).unwrap();
    support::open_api(&mut config);
    config.database = database;
    // Started first: its expiry at start finds nothing, and the next is hours away.
    let daemon = Daemon::start(config.clone()).await.unwrap();
    let store = Store::open(&config.database).await.unwrap();
    assert_eq!(store.import(&registry(n)).await.unwrap(), n);
    store.close().await;
    assert_eq!(daemon.expire_now().await.unwrap(), n / 2);
    let left = daemon.store().all(Registry::new()).await.unwrap();
    assert_eq!(left.len(), n / 2);
    let fresh = |user: &xaps_proto::UserName| {
        user.as_str()
            .trim_start_matches("user")
            .parse::<usize>()
            .unwrap()
            % 2
            == 1
    };
    assert!(
        left.iter().all(|(user, _, _)| fresh(user)),
        "only the fresh ones are left"
    );
    assert_eq!(
        daemon.expire_now().await.unwrap(),
        0,
        "nothing more to expire"
    );
    daemon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_goes_in_batches_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    import_then_expire(Database::Sqlite(dir.path().join("store.sqlite")), 1_200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (Debian: postgresql); .ci/run installs it and runs --include-ignored"]
async fn ten_thousand_users_import_and_expire_on_postgresql() {
    let pg = support::Postgres::start();
    let url = pg.database("expiry").await;
    import_then_expire(
        Database::Postgres(PostgresUrl::new(&url, 4).unwrap()),
        10_000,
    )
    .await;
}
