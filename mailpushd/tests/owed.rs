//! The store's owed pushes when two sends of one mark overlap: a send whose lease
//! ended and another that took the mark up after it.

use std::time::Duration;

mod support;

use mailpushd::store::{Lease, OwedKey, OwedTarget, Rescheduled, Sent, Store};
use xaps_proto::owed::Rounds;

const ROUNDS: Rounds = Rounds {
    first: Duration::from_secs(1),
    max: Duration::from_secs(60),
    give_up_after: Duration::from_secs(3600),
};

async fn store(dir: &tempfile::TempDir) -> Store {
    Store::open_sqlite(&dir.path().join("store.sqlite"))
        .await
        .unwrap()
}

fn key(target: OwedTarget) -> OwedKey {
    OwedKey {
        user: support::user_name("alice"),
        target,
        mailbox: "INBOX".into(),
    }
}

fn lease(owner: &str, until_ms: u64) -> Lease<'_> {
    Lease { owner, until_ms }
}

/// An event other than new mail for `key` at `now_ms`: owed, leased to none.
async fn event(store: &Store, key: &OwedKey, now_ms: u64) {
    store
        .owe(
            &[(key.clone(), false)],
            now_ms,
            Duration::ZERO,
            lease("a", 0),
        )
        .await
        .unwrap();
}

/// The store's database, as another program sees it.
async fn raw(dir: &tempfile::TempDir) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!(
        "sqlite:{}",
        dir.path().join("store.sqlite").display()
    ))
    .await
    .unwrap()
}

/// New mail for `key` at `now_ms`, sent at once under a lease of `owner`'s until
/// `until_ms`: that send.
async fn new_mail(store: &Store, key: &OwedKey, now_ms: u64, owner: &str, until_ms: u64) -> Sent {
    let owed = store
        .owe(
            &[(key.clone(), true)],
            now_ms,
            Duration::ZERO,
            lease(owner, until_ms),
        )
        .await
        .unwrap();
    owed[0].sent(until_ms)
}

/// A send whose lease ended fails its round after another send took the mark up: the
/// mark stays the other's, its lease kept, and the timer does not take it a third time.
#[tokio::test]
async fn a_stale_sends_failure_leaves_the_live_sends_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let key = key(OwedTarget::Subscriptions);
    let stale = new_mail(&store, &key, 1_000, "a", 2_000).await;
    // The first lease ended: the timer takes the mark up again.
    let taken = store.take_due(2_500, lease("b", 60_000), 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        store
            .reschedule(&stale, 2_600, &ROUNDS, Duration::ZERO)
            .await
            .unwrap(),
        Rescheduled::Sending
    );
    // Still leased to the live send, well after the first round's wait.
    assert!(
        store
            .take_due(10_000, lease("c", 70_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.owed_count().await.unwrap(), 1);
}

/// A subscription a fan-out could not push while that subscription's own mark was
/// being sent: the send under way, begun before, does not settle the newer event.
#[tokio::test]
async fn a_failed_fan_out_makes_a_subscriptions_mark_newer_than_its_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let key = key(OwedTarget::Subscription("sub-1".into()));
    let sending = new_mail(&store, &key, 1_000, "a", 90_000).await;
    // New mail's fan-out could not reach the subscription meanwhile.
    store
        .owe_failed(&[(key.clone(), Duration::ZERO)], 1_500, 1_500, &ROUNDS)
        .await
        .unwrap();
    // The send begun before it is delivered: the mark stays for the newer event.
    let left = store.settle_all(&[sending], &[], 1_600).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].is_some(), "{left:?}");
    assert_eq!(store.owed_count().await.unwrap(), 1);
}

/// New mail acknowledged while the mark's send is under way, in the same millisecond
/// as the event that send carries, or after the clock stepped back: the send does not
/// settle it, and the push it owes is not lost.
#[tokio::test]
async fn an_event_in_the_sends_millisecond_or_before_it_on_the_clock_is_not_settled_by_it() {
    for later_ms in [1_000, 400] {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let key = key(OwedTarget::Subscriptions);
        let sending = new_mail(&store, &key, 1_000, "a", 90_000).await;
        store
            .owe(
                &[(key.clone(), true)],
                later_ms,
                Duration::ZERO,
                lease("a", 90_000),
            )
            .await
            .unwrap();
        let left = store.settle_all(&[sending], &[], 1_000).await.unwrap();
        assert!(left[0].is_some(), "new mail at {later_ms}: {left:?}");
        assert_eq!(store.owed_count().await.unwrap(), 1, "at {later_ms}");
    }
}

/// A send whose lease ran out ends after another send of the mark settled it and an
/// event (not new mail, so no lease) made the mark anew, with the clock stepped back:
/// the new mark is not the one the late send took, and stays.
#[tokio::test]
async fn a_late_send_does_not_settle_a_mark_made_anew() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let key = key(OwedTarget::Subscriptions);
    event(&store, &key, 1_000).await;
    let first = store.take_due(1_000, lease("a", 2_000), 10).await.unwrap();
    let late = first[0].sent(2_000);
    let second = store.take_due(2_500, lease("b", 60_000), 10).await.unwrap();
    let left = store
        .settle_all(&[second[0].sent(60_000)], &[], 2_600)
        .await
        .unwrap();
    assert_eq!(left, [None]);
    assert_eq!(store.owed_count().await.unwrap(), 0);
    // A flag change, the clock stepped back.
    store
        .owe(&[(key.clone(), false)], 500, Duration::ZERO, lease("b", 0))
        .await
        .unwrap();
    let left = store.settle_all(&[late], &[], 2_700).await.unwrap();
    assert!(left[0].is_some(), "{left:?}");
    assert_eq!(store.owed_count().await.unwrap(), 1);
}

/// A row this version cannot read (a kind of a newer one's, a hand edit) holds back
/// no other owed push: it is leased and left as stored, and the rows after it are
/// taken.
#[tokio::test]
async fn an_unreadable_owed_push_holds_back_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let key = key(OwedTarget::Subscriptions);
    event(&store, &key, 5_000).await;
    drop(store);
    let pool = raw(&dir).await;
    for (kind, user) in [("future", "bob"), ("webpush", "bob\u{7}")] {
        sqlx::query(
            "INSERT INTO owed_pushes (kind, username, target, mailbox, due_ms, since_ms, touched_ms, failures)
             VALUES ($1, $2, '*', 'INBOX', 1000, 1000, 1000, 0)",
        )
        .bind(kind)
        .bind(user)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let store = self::store(&dir).await;
    // The two it cannot read are the first due: they fill the first batch.
    let taken = store.take_due(10_000, lease("b", 60_000), 2).await.unwrap();
    assert!(taken.is_empty(), "{taken:?}");
    // Leased, they make room for the readable one; still there when the lease ends.
    let taken = store.take_due(10_000, lease("b", 60_000), 2).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].key, key);
    drop(store);
    let pool = raw(&dir).await;
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM owed_pushes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
}

/// A round that failed with its push service asking for a wait longer than the next
/// round's: the mark is due when that wait ends, whether made for the failure, held
/// already, or rescheduled.
#[tokio::test]
async fn a_failed_round_waits_as_long_as_its_service_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let asked = Duration::from_secs(120);
    // Made for the failure: the service's two minutes, not the first round's second.
    let fresh = key(OwedTarget::Subscription("sub-1".into()));
    let due = store
        .owe_failed(&[(fresh, asked)], 1_000, 1_500, &ROUNDS)
        .await
        .unwrap();
    assert_eq!(due, Some(121_500));
    // Held already, due at once for new mail: held back to the service's wait.
    let held = key(OwedTarget::Subscription("sub-2".into()));
    new_mail(&store, &held, 1_000, "a", 90_000).await;
    let due = store
        .owe_failed(&[(held, asked)], 1_000, 1_500, &ROUNDS)
        .await
        .unwrap();
    assert_eq!(due, Some(121_500));
    // A send's round failed: rescheduled for the longer of the two waits.
    let one = key(OwedTarget::Subscription("sub-3".into()));
    let sent = new_mail(&store, &one, 1_000, "a", 90_000).await;
    assert_eq!(
        store
            .reschedule(&sent, 1_500, &ROUNDS, asked)
            .await
            .unwrap(),
        Rescheduled::Later(121_500)
    );
    let sent = new_mail(&store, &one, 200_000, "a", 290_000).await;
    assert_eq!(
        store
            .reschedule(&sent, 200_500, &ROUNDS, Duration::from_millis(10))
            .await
            .unwrap(),
        Rescheduled::Later(202_500),
        "the second round's own wait is longer"
    );
}
