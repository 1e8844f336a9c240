//! Ephemeral keys made ahead of a burst, in two bounded pools that one filler stocks
//! in the background while the sender is idle, each key taken by the one message that
//! uses it:
//!
//! - [`AgreementPool`]: keys already agreed with the subscriptions the sender pushed to
//!   before (`webpush_crypto::Agreement`), for their next message, which then costs its
//!   HKDF and AES-GCM alone;
//! - [`KeyPool`]: keys for any subscription (`webpush_crypto::EphemeralKey`), which
//!   spare a message the making of its key, for a subscription without an agreement.
//!
//! A push that finds neither makes its key in line, as it would without the pools: they
//! only move work, they never hold a push back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use imap_webpush_proto::SubId;
use webpush_crypto::{Agreement, EphemeralKey, Provider, SubscriptionKeys};
use xaps_proto::UserName;

use crate::metrics::Metrics;

/// How often the filler looks at the pools and the sender, at ten keys a second or more.
const FILL_TICK: Duration = Duration::from_millis(100);

/// Agreements put in the pool under one taking of its lock, so that a push looking for
/// its own never waits for a whole batch.
const STOCK_CHUNK: usize = 256;

/// Whether the sender has work on hand: pushes taken and not finished, less those only
/// waiting for a retry (which may wait minutes, and cost nothing meanwhile).
#[derive(Clone, Debug)]
pub(super) struct Busy {
    /// Pushes taken and not finished (`InFlight`'s count).
    pub(super) taken: Arc<AtomicUsize>,
    /// Of them, those waiting out a retry's back-off.
    pub(super) resting: Arc<AtomicUsize>,
}

impl Busy {
    fn now(&self) -> bool {
        // `taken` first: a retry that wakes between the two loads still counts.
        let taken = self.taken.load(Ordering::Acquire);
        taken > self.resting.load(Ordering::Acquire)
    }
}

/// Stocks `agreements` first, then `keys`, for `provider`, at most `per_second` items a
/// second in all,
/// and only while the sender is not `busy`, checked before each item: a push waits for
/// at most one item being made, never for a batch to be made. Orders not reached when a push
/// arrives go back to the front of the agreement pool's queue. Ends when both pools are
/// dropped.
pub(super) async fn fill(
    agreements: Option<Weak<AgreementPool>>,
    keys: Option<Weak<KeyPool>>,
    provider: Provider,
    per_second: u32,
    busy: Busy,
) {
    // A tenth of the rate every tenth of a second; below ten a second, one item at the
    // rate's own interval, so the rate is never exceeded.
    let (batch, tick) = match per_second / 10 {
        0 => (1, Duration::from_secs(1) / per_second.max(1)),
        tenth => (tenth as usize, FILL_TICK),
    };
    loop {
        tokio::time::sleep(tick).await;
        let agreements = agreements.as_ref().and_then(Weak::upgrade);
        let keys = keys.as_ref().and_then(Weak::upgrade);
        if agreements.is_none() && keys.is_none() {
            return;
        }
        if busy.now() {
            continue;
        }
        let orders = agreements
            .as_ref()
            .map_or_else(Vec::new, |pool| pool.orders(batch));
        let wanted_keys = keys.as_ref().map_or(0, |pool| {
            pool.missing().min(batch.saturating_sub(orders.len()))
        });
        if orders.is_empty() && wanted_keys == 0 {
            continue;
        }
        let working = busy.clone();
        // The elliptic-curve work off the runtime's workers, given up at the first
        // push on hand: a push that starts meanwhile has the core at once.
        let made = tokio::task::spawn_blocking(move || {
            make(provider, orders, wanted_keys, || working.now())
        })
        .await;
        let Ok(made) = made else {
            // The blocking task did not run to its end (the runtime shutting down):
            // what it took is dropped, and asked for again at the subscription's next
            // push.
            continue;
        };
        if let Some(pool) = &agreements {
            pool.give_back(made.unmade);
            pool.stock(made.agreements);
        }
        if let Some(pool) = &keys {
            pool.stock(made.keys);
        }
    }
}

/// What one batch of the filler made, and the orders it did not reach.
struct Made {
    agreements: Vec<(Sub, Agreement)>,
    unmade: Vec<(Sub, SubscriptionKeys)>,
    keys: Vec<EphemeralKey>,
}

/// Makes the agreements `orders` asks for, then `wanted_keys` keys, until `busy`.
fn make(
    provider: Provider,
    orders: Vec<(Sub, SubscriptionKeys)>,
    wanted_keys: usize,
    busy: impl Fn() -> bool,
) -> Made {
    let mut made = Made {
        agreements: Vec::with_capacity(orders.len()),
        unmade: Vec::new(),
        keys: Vec::new(),
    };
    let mut orders = orders.into_iter();
    for (sub, keys) in orders.by_ref() {
        if busy() {
            made.unmade.push((sub, keys));
            break;
        }
        match Agreement::generate(provider, &keys, &mut rand_core::OsRng) {
            Ok(agreement) => made.agreements.push((sub, agreement)),
            Err(e) => {
                // The order is dropped (its subscription's next push asks again), so
                // that a failure is not met again at every tick.
                tracing::warn!(error = %e, "no key agreed ahead: pushes do their own ECDH");
                break;
            }
        }
    }
    made.unmade.extend(orders);
    if !made.unmade.is_empty() {
        return made;
    }
    for _ in 0..wanted_keys {
        if busy() {
            break;
        }
        match EphemeralKey::generate(provider, &mut rand_core::OsRng) {
            Ok(key) => made.keys.push(key),
            Err(e) => {
                tracing::warn!(error = %e, "no ephemeral key made ahead: pushes make theirs in line");
                break;
            }
        }
    }
    made
}

/// Ephemeral keys for any subscription.
pub(super) struct KeyPool {
    keys: Mutex<Vec<EphemeralKey>>,
    size: usize,
    metrics: Arc<Metrics>,
}

impl KeyPool {
    /// An empty pool of at most `size` keys.
    pub(super) fn new(size: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            keys: Mutex::new(Vec::with_capacity(size)),
            size,
            metrics,
        })
    }

    /// A key made ahead, if the pool has one; otherwise the push makes its own (counted).
    pub(super) fn take(&self) -> Option<EphemeralKey> {
        let key = {
            let mut keys = crate::lock(&self.keys);
            let key = keys.pop();
            // Under the lock, so that the gauge follows the pool in order.
            self.metrics.set_key_pool(keys.len());
            key
        };
        if key.is_none() {
            self.metrics.keys_made(false, 1);
        }
        key
    }

    /// Keys the pool lacks.
    fn missing(&self) -> usize {
        self.size.saturating_sub(crate::lock(&self.keys).len())
    }

    /// Puts keys made ahead in the pool, as many as it has room for.
    fn stock(&self, made: Vec<EphemeralKey>) {
        if made.is_empty() {
            return;
        }
        let mut keys = crate::lock(&self.keys);
        // Counted before the gauge shows them.
        self.metrics.keys_made(true, made.len());
        let room = self.size.saturating_sub(keys.len());
        keys.extend(made.into_iter().take(room));
        self.metrics.set_key_pool(keys.len());
    }
}

/// Keys agreed ahead, each with one subscription's keys, for the subscriptions pushed
/// to before: a subscription that got a push gets an agreement for its next one while
/// the sender is idle. At most `size` are kept and at most `size` wait to be made; a
/// new one takes the place of the one made longest ago, so that subscriptions that no
/// longer get pushes (deleted, or whose keys changed) give their places up. Pushes
/// that come round in a cycle longer than `size` subscriptions find none.
pub(super) struct AgreementPool {
    state: Mutex<Agreed>,
    size: usize,
    metrics: Arc<Metrics>,
}

/// A subscription: its user and its id.
pub(super) type Sub = (Arc<UserName>, SubId<'static>);

#[derive(Default)]
struct Agreed {
    /// The agreements ready, by subscription, each with its place in `order`.
    ready: HashMap<Sub, (u64, Agreement)>,
    /// The subscriptions of `ready`, the one whose agreement was made longest ago first.
    order: BTreeMap<u64, Sub>,
    /// Subscriptions to make agreements for, in the order they were pushed to, and
    /// the keys each was last pushed to: each waits once, for its latest keys.
    wanted: VecDeque<Sub>,
    waiting: HashMap<Sub, SubscriptionKeys>,
    /// The next place in `order`.
    next: u64,
}

impl Agreed {
    fn remove(&mut self, sub: &Sub) -> Option<Agreement> {
        let (place, agreement) = self.ready.remove(sub)?;
        self.order.remove(&place);
        Some(agreement)
    }
}

impl AgreementPool {
    /// An empty pool of at most `size` agreements.
    pub(super) fn new(size: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Agreed::default()),
            size,
            metrics,
        })
    }

    /// The agreement made ahead for subscription `sub`, whose keys are `keys`, if there
    /// is one; either way one is wanted for the subscription's next push, with these
    /// keys. One made with other keys (the subscription's changed since) is dropped.
    pub(super) fn take(&self, sub: &Sub, keys: &SubscriptionKeys) -> Option<Agreement> {
        let mut state = crate::lock(&self.state);
        let agreement = state.remove(sub).filter(|a| a.keys() == keys);
        if let Some(waiting) = state.waiting.get_mut(sub) {
            if waiting != keys {
                *waiting = keys.clone();
            }
        } else if state.wanted.len() < self.size {
            state.waiting.insert(sub.clone(), keys.clone());
            state.wanted.push_back(sub.clone());
        }
        self.metrics.set_agreement_pool(state.ready.len());
        drop(state);
        self.metrics.agreement_taken(agreement.is_some());
        agreement
    }

    /// Forgets subscription `sub` (its push service says it is gone): its agreement, or
    /// its order waiting to be made.
    pub(super) fn forget(&self, sub: &Sub) {
        let mut state = crate::lock(&self.state);
        state.remove(sub);
        if state.waiting.remove(sub).is_some() {
            state.wanted.retain(|waiting| waiting != sub);
        }
        self.metrics.set_agreement_pool(state.ready.len());
    }

    /// Takes up to `n` orders out of the queue, the longest waiting first.
    fn orders(&self, n: usize) -> Vec<(Sub, SubscriptionKeys)> {
        let mut state = crate::lock(&self.state);
        let mut orders = Vec::with_capacity(n.min(state.wanted.len()));
        while orders.len() < n {
            let Some(sub) = state.wanted.pop_front() else {
                break;
            };
            if let Some(keys) = state.waiting.remove(&sub) {
                orders.push((sub, keys));
            }
        }
        orders
    }

    /// Puts orders the filler did not reach back at the front of the queue, the longest
    /// waiting first, as many as there is room for, unless the subscription was pushed
    /// to again meanwhile (it waits, with its latest keys).
    fn give_back(&self, unmade: Vec<(Sub, SubscriptionKeys)>) {
        if unmade.is_empty() {
            return;
        }
        let mut state = crate::lock(&self.state);
        let room = self.size.saturating_sub(state.wanted.len());
        let back: Vec<(Sub, SubscriptionKeys)> = unmade
            .into_iter()
            .filter(|(sub, _)| !state.waiting.contains_key(sub))
            .take(room)
            .collect();
        for (sub, keys) in back.into_iter().rev() {
            state.waiting.insert(sub.clone(), keys);
            state.wanted.push_front(sub);
        }
    }

    /// Puts agreements made ahead in the pool, a chunk under each taking of the lock.
    fn stock(&self, made: Vec<(Sub, Agreement)>) {
        let mut made = made.into_iter().peekable();
        while made.peek().is_some() {
            let mut state = crate::lock(&self.state);
            let mut n = 0;
            for (sub, agreement) in made.by_ref().take(STOCK_CHUNK) {
                n += 1;
                // A newer one for the same subscription replaces the older, and a full
                // pool gives up the one made longest ago. An order for the same keys
                // queued meanwhile (a push while this one was made) is served by it;
                // its place in `wanted` is skipped when it comes up.
                state.remove(&sub);
                if state.waiting.get(&sub) == Some(agreement.keys()) {
                    state.waiting.remove(&sub);
                }
                if state.ready.len() >= self.size
                    && let Some((_, oldest)) = state.order.pop_first()
                {
                    state.ready.remove(&oldest);
                }
                let place = state.next;
                state.next += 1;
                state.order.insert(place, sub.clone());
                state.ready.insert(sub, (place, agreement));
            }
            // Counted before the gauge shows them.
            self.metrics.agreements_made(n);
            self.metrics.set_agreement_pool(state.ready.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webpush_crypto::UaKeys;

    fn len(pool: &KeyPool) -> usize {
        crate::lock(&pool.keys).len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_filler_waits_for_an_idle_sender_and_stops_at_the_first_push() {
        // A batch of 100,000 keys takes seconds of one core.
        let pool = KeyPool::new(100_000, Arc::new(Metrics::new()));
        let busy = Arc::new(AtomicUsize::new(1));
        let pushes = Busy {
            taken: busy.clone(),
            resting: Arc::new(AtomicUsize::new(0)),
        };
        tokio::spawn(fill(
            None,
            Some(Arc::downgrade(&pool)),
            Provider::default(),
            1_000_000,
            pushes,
        ));
        // A request in flight: nothing is made.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(len(&pool), 0);
        // Idle: a batch begins at the next tick; a push arriving during it ends it
        // after the key being made, and what was made is in the pool at once.
        busy.store(0, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(250)).await;
        busy.store(1, Ordering::Release);
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while len(&pool) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the batch went on after the push"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let made = len(&pool);
        assert!(made < 100_000);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(len(&pool), made, "keys made while a push was in flight");
    }

    fn subscriptions(n: usize) -> Vec<(Sub, SubscriptionKeys)> {
        let user = Arc::new(UserName::new("alice").unwrap());
        (0..n)
            .map(|i| {
                let keys = UaKeys::generate(&mut rand_core::OsRng)
                    .unwrap()
                    .subscription_keys();
                ((user.clone(), SubId::new(format!("s{i}")).unwrap()), keys)
            })
            .collect()
    }

    /// Makes what the pool wants, as the filler does.
    fn fill_now(pool: &AgreementPool) {
        let made = make(Provider::default(), pool.orders(usize::MAX), 0, || false);
        assert!(made.unmade.is_empty());
        pool.stock(made.agreements);
    }

    fn take(pool: &AgreementPool, (sub, keys): &(Sub, SubscriptionKeys)) -> Option<Agreement> {
        pool.take(sub, keys)
    }

    #[test]
    fn an_agreement_is_made_for_a_subscription_pushed_to_and_taken_once_by_its_next_push() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let subs = subscriptions(3);
        // Nothing is known of a subscription before its first push.
        assert!(take(&pool, &subs[0]).is_none());
        assert!(take(&pool, &subs[1]).is_none());
        // Asked for twice, wanted once.
        assert!(take(&pool, &subs[1]).is_none());
        assert_eq!(crate::lock(&pool.state).wanted.len(), 2);
        fill_now(&pool);
        let agreed = take(&pool, &subs[0]).expect("made ahead");
        assert_eq!(agreed.keys(), &subs[0].1);
        // Taken: the next push of the same subscription finds none, until made again.
        assert!(take(&pool, &subs[0]).is_none());
        assert!(take(&pool, &subs[2]).is_none());
        fill_now(&pool);
        for sub in &subs {
            assert_eq!(take(&pool, sub).expect("made again").keys(), &sub.1);
        }
    }

    #[test]
    fn subscriptions_with_the_same_keys_each_have_their_own() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let mut subs = subscriptions(2);
        subs[1].1 = subs[0].1.clone();
        for sub in &subs {
            assert!(take(&pool, sub).is_none());
        }
        fill_now(&pool);
        let first = take(&pool, &subs[0]).unwrap();
        let second = take(&pool, &subs[1]).unwrap();
        assert_ne!(first.public_key(), second.public_key());
    }

    #[test]
    fn an_agreement_for_keys_that_changed_is_dropped() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let sub = subscriptions(1).remove(0);
        assert!(take(&pool, &sub).is_none());
        fill_now(&pool);
        // The same public key with another auth secret: the agreement would give a
        // message the user agent cannot decrypt.
        let changed = SubscriptionKeys::new(
            sub.1.p256dh().clone(),
            webpush_crypto::AuthSecret::new([7; 16]),
        );
        assert!(pool.take(&sub.0, &changed).is_none());
        assert!(take(&pool, &sub).is_none(), "dropped, not kept for later");
    }

    #[test]
    fn a_full_pool_gives_up_the_agreement_made_longest_ago_and_wants_at_most_its_size() {
        let pool = AgreementPool::new(3, Arc::new(Metrics::new()));
        let subs = subscriptions(5);
        for sub in &subs {
            assert!(take(&pool, sub).is_none());
        }
        // Three wait; the other two are not kept.
        assert_eq!(crate::lock(&pool.state).wanted.len(), 3);
        fill_now(&pool);
        // Two newer subscriptions push past the two made first.
        for sub in &subs[3..] {
            assert!(take(&pool, sub).is_none());
        }
        fill_now(&pool);
        assert_eq!(crate::lock(&pool.state).ready.len(), 3);
        assert_eq!(crate::lock(&pool.state).order.len(), 3);
        assert!(take(&pool, &subs[0]).is_none());
        assert!(take(&pool, &subs[1]).is_none());
        assert!(take(&pool, &subs[2]).is_some());
        assert!(take(&pool, &subs[3]).is_some());
        assert!(take(&pool, &subs[4]).is_some());
    }

    #[test]
    fn orders_a_push_interrupts_go_back_to_the_front_of_the_queue() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let subs = subscriptions(4);
        for sub in &subs {
            assert!(take(&pool, sub).is_none());
        }
        // A push arrives after the second agreement: the other two orders are kept.
        let made = std::cell::Cell::new(0);
        let busy = || {
            made.set(made.get() + 1);
            made.get() > 2
        };
        let batch = make(Provider::default(), pool.orders(usize::MAX), 5, busy);
        assert_eq!(batch.agreements.len(), 2);
        assert_eq!(batch.unmade.len(), 2);
        assert!(
            batch.keys.is_empty(),
            "no keys before every agreement asked for"
        );
        // Meanwhile the last subscription is pushed to again, with new keys: it waits
        // once, with those.
        let changed = UaKeys::generate(&mut rand_core::OsRng)
            .unwrap()
            .subscription_keys();
        assert!(pool.take(&subs[3].0, &changed).is_none());
        pool.give_back(batch.unmade);
        pool.stock(batch.agreements);
        let queued: Vec<Sub> = crate::lock(&pool.state).wanted.iter().cloned().collect();
        assert_eq!(queued, [subs[2].0.clone(), subs[3].0.clone()]);
        fill_now(&pool);
        for sub in &subs[..3] {
            assert!(take(&pool, sub).is_some());
        }
        assert_eq!(pool.take(&subs[3].0, &changed).unwrap().keys(), &changed);
    }

    #[test]
    fn keys_that_change_while_waiting_are_the_ones_agreed_with() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let sub = subscriptions(1).remove(0);
        assert!(take(&pool, &sub).is_none());
        let changed = UaKeys::generate(&mut rand_core::OsRng)
            .unwrap()
            .subscription_keys();
        assert!(pool.take(&sub.0, &changed).is_none());
        assert_eq!(crate::lock(&pool.state).wanted.len(), 1);
        fill_now(&pool);
        assert_eq!(pool.take(&sub.0, &changed).unwrap().keys(), &changed);
    }

    #[test]
    fn pushes_waiting_for_a_retry_leave_the_sender_idle() {
        let busy = Busy {
            taken: Arc::new(AtomicUsize::new(0)),
            resting: Arc::new(AtomicUsize::new(0)),
        };
        assert!(!busy.now());
        busy.taken.store(2, Ordering::Release);
        busy.resting.store(1, Ordering::Release);
        assert!(busy.now(), "one push on hand");
        busy.resting.store(2, Ordering::Release);
        assert!(!busy.now(), "both only wait for their retries");
    }

    #[test]
    fn a_subscription_gone_is_forgotten() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let subs = subscriptions(2);
        for sub in &subs {
            assert!(take(&pool, sub).is_none());
        }
        fill_now(&pool);
        // One with an agreement ready, one waiting for its agreement: both go.
        assert!(take(&pool, &subs[1]).is_some());
        pool.forget(&subs[0].0);
        pool.forget(&subs[1].0);
        assert!(pool.orders(usize::MAX).is_empty());
        assert!(crate::lock(&pool.state).ready.is_empty());
        assert!(crate::lock(&pool.state).order.is_empty());
    }

    #[test]
    fn a_full_queue_takes_back_the_orders_waiting_longest() {
        let pool = AgreementPool::new(3, Arc::new(Metrics::new()));
        let subs = subscriptions(5);
        for sub in &subs[..3] {
            assert!(take(&pool, sub).is_none());
        }
        let orders = pool.orders(usize::MAX);
        // Meanwhile two others are pushed to: room for one of the three orders.
        for sub in &subs[3..] {
            assert!(take(&pool, sub).is_none());
        }
        pool.give_back(orders);
        let queued: Vec<Sub> = crate::lock(&pool.state).wanted.iter().cloned().collect();
        assert_eq!(
            queued,
            [subs[0].0.clone(), subs[3].0.clone(), subs[4].0.clone()]
        );
    }

    #[test]
    fn an_agreement_made_serves_an_order_for_the_same_keys_queued_meanwhile() {
        let pool = AgreementPool::new(10, Arc::new(Metrics::new()));
        let sub = subscriptions(1).remove(0);
        assert!(take(&pool, &sub).is_none());
        let orders = pool.orders(usize::MAX);
        // A push while the agreement is made asks for one again.
        assert!(take(&pool, &sub).is_none());
        let made = make(Provider::default(), orders, 0, || false);
        pool.stock(made.agreements);
        assert!(
            pool.orders(usize::MAX).is_empty(),
            "a second agreement made"
        );
        assert!(take(&pool, &sub).is_some());
    }
}
