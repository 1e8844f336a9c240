//! Ephemeral keys made ahead of a burst, in two bounded pools filled in the background
//! while the sender is idle, each key taken by the one message that uses it:
//!
//! - [`AgreementPool`]: keys already agreed with the subscriptions the sender pushed to
//!   before (`webpush_crypto::Agreement`), for their next message, which then costs its
//!   HKDF and AES-GCM alone;
//! - [`KeyPool`]: keys for any subscription (`webpush_crypto::EphemeralKey`), which
//!   spare a message the making of its key, for a subscription without an agreement.
//!
//! A push that finds neither makes its key in line, as it would without the pools: they
//! only move work, they never hold a push back.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use imap_webpush_proto::SubId;
use webpush_crypto::{Agreement, EphemeralKey, Provider, SubscriptionKeys};
use xaps_proto::UserName;

use crate::metrics::Metrics;

/// How often a filler looks at its pool and the sender, at ten keys a second or more.
const FILL_TICK: Duration = Duration::from_millis(100);

/// A pool a filler keeps stocked: what to make, how, and where it goes.
pub(super) trait Stock: Send + Sync + 'static {
    /// What one item is made from.
    type Order: Send + 'static;
    /// What is made.
    type Item: Send + 'static;

    /// Up to `n` orders for what the pool lacks.
    fn orders(&self, n: usize) -> Vec<Self::Order>;
    /// Makes one item, off the runtime's workers.
    fn make(provider: Provider, order: Self::Order) -> Result<Self::Item, webpush_crypto::Error>;
    /// Puts what was made in the pool.
    fn stock(&self, made: Vec<Self::Item>);
    /// The provider the items are made for.
    fn provider(&self) -> Provider;
}

/// Fills `pool`, at most `per_second` items a second, and only while `busy` (the
/// sender's requests in flight) is zero, checked before each item: a push waits for at
/// most one item being made, never for a batch. Ends when the pool is dropped.
pub(super) async fn fill<S: Stock>(pool: Weak<S>, per_second: u32, busy: Arc<AtomicUsize>) {
    // A tenth of the rate every tenth of a second; below ten a second, one item at the
    // rate's own interval, so the rate is never exceeded.
    let (batch, tick) = match per_second / 10 {
        0 => (1, Duration::from_secs(1) / per_second.max(1)),
        tenth => (tenth as usize, FILL_TICK),
    };
    loop {
        tokio::time::sleep(tick).await;
        let Some(this) = pool.upgrade() else { return };
        if busy.load(Ordering::Acquire) > 0 {
            continue;
        }
        let orders = this.orders(batch);
        if orders.is_empty() {
            continue;
        }
        let provider = this.provider();
        let sending = busy.clone();
        // The elliptic-curve work off the runtime's workers, given up at the first
        // request in flight: a push that starts meanwhile has the core at once.
        let made = tokio::task::spawn_blocking(move || {
            orders
                .into_iter()
                .map_while(|order| {
                    if sending.load(Ordering::Acquire) > 0 {
                        return None;
                    }
                    S::make(provider, order)
                        .map_err(|e| {
                            tracing::warn!(error = %e, "no key made ahead: pushes make theirs in line");
                        })
                        .ok()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        this.stock(made);
    }
}

/// Ephemeral keys for any subscription.
pub(super) struct KeyPool {
    keys: Mutex<Vec<EphemeralKey>>,
    size: usize,
    provider: Provider,
    metrics: Arc<Metrics>,
}

impl KeyPool {
    /// An empty pool of at most `size` keys for `provider`.
    pub(super) fn new(size: usize, provider: Provider, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            keys: Mutex::new(Vec::with_capacity(size)),
            size,
            provider,
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
}

impl Stock for KeyPool {
    type Order = ();
    type Item = EphemeralKey;

    fn orders(&self, n: usize) -> Vec<()> {
        let missing = self.size.saturating_sub(crate::lock(&self.keys).len());
        vec![(); missing.min(n)]
    }

    fn make(provider: Provider, (): ()) -> Result<EphemeralKey, webpush_crypto::Error> {
        EphemeralKey::generate(provider, &mut rand_core::OsRng)
    }

    fn stock(&self, made: Vec<EphemeralKey>) {
        let n = made.len();
        {
            let mut keys = crate::lock(&self.keys);
            let room = self.size.saturating_sub(keys.len());
            keys.extend(made.into_iter().take(room));
            self.metrics.set_key_pool(keys.len());
        }
        self.metrics.keys_made(true, n);
    }

    fn provider(&self) -> Provider {
        self.provider
    }
}

/// Keys agreed ahead, each with one subscription's keys, for the subscriptions pushed
/// to before: a subscription that got a push gets an agreement for its next one while
/// the sender is idle. At most `size` are kept and at most `size` wait to be made; a
/// new one takes the place of the one made longest ago, so that subscriptions that no
/// longer get pushes (deleted, or whose keys changed) give their places up.
pub(super) struct AgreementPool {
    state: Mutex<Agreed>,
    size: usize,
    provider: Provider,
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
    /// Subscriptions to make agreements for, with their keys, in the order they were
    /// pushed to; and the same subscriptions, so that each waits once.
    wanted: VecDeque<(Sub, SubscriptionKeys)>,
    waiting: HashSet<Sub>,
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
    /// An empty pool of at most `size` agreements for `provider`.
    pub(super) fn new(size: usize, provider: Provider, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Agreed::default()),
            size,
            provider,
            metrics,
        })
    }

    /// The agreement made ahead for subscription `sub`, whose keys are `keys`, if there
    /// is one; either way one is wanted for the subscription's next push. One made with
    /// other keys (the subscription's changed since) is dropped.
    pub(super) fn take(&self, sub: &Sub, keys: &SubscriptionKeys) -> Option<Agreement> {
        let mut state = crate::lock(&self.state);
        let agreement = state.remove(sub).filter(|a| a.keys() == keys);
        if !state.waiting.contains(sub) && state.wanted.len() < self.size {
            state.waiting.insert(sub.clone());
            state.wanted.push_back((sub.clone(), keys.clone()));
        }
        self.metrics.set_agreement_pool(state.ready.len());
        drop(state);
        self.metrics.agreement_taken(agreement.is_some());
        agreement
    }
}

impl Stock for AgreementPool {
    type Order = (Sub, SubscriptionKeys);
    type Item = (Sub, Agreement);

    fn orders(&self, n: usize) -> Vec<(Sub, SubscriptionKeys)> {
        let mut state = crate::lock(&self.state);
        let n = n.min(state.wanted.len());
        let orders: Vec<(Sub, SubscriptionKeys)> = state.wanted.drain(..n).collect();
        for (sub, _) in &orders {
            state.waiting.remove(sub);
        }
        orders
    }

    fn make(
        provider: Provider,
        (sub, keys): (Sub, SubscriptionKeys),
    ) -> Result<(Sub, Agreement), webpush_crypto::Error> {
        Ok((
            sub,
            Agreement::generate(provider, &keys, &mut rand_core::OsRng)?,
        ))
    }

    fn stock(&self, made: Vec<(Sub, Agreement)>) {
        let n = made.len();
        let mut state = crate::lock(&self.state);
        for (sub, agreement) in made {
            // A newer one for the same subscription replaces the older, and a full
            // pool gives up the one made longest ago.
            state.remove(&sub);
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
        self.metrics.set_agreement_pool(state.ready.len());
        drop(state);
        self.metrics.agreements_made(n);
    }

    fn provider(&self) -> Provider {
        self.provider
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
        let pool = KeyPool::new(100_000, Provider::default(), Arc::new(Metrics::new()));
        let busy = Arc::new(AtomicUsize::new(1));
        tokio::spawn(fill(Arc::downgrade(&pool), 1_000_000, busy.clone()));
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
        let made = pool
            .orders(usize::MAX)
            .into_iter()
            .map(|order| AgreementPool::make(pool.provider, order).unwrap())
            .collect();
        pool.stock(made);
    }

    fn take(pool: &AgreementPool, (sub, keys): &(Sub, SubscriptionKeys)) -> Option<Agreement> {
        pool.take(sub, keys)
    }

    #[test]
    fn an_agreement_is_made_for_a_subscription_pushed_to_and_taken_once_by_its_next_push() {
        let pool = AgreementPool::new(10, Provider::default(), Arc::new(Metrics::new()));
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
        let pool = AgreementPool::new(10, Provider::default(), Arc::new(Metrics::new()));
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
        let pool = AgreementPool::new(10, Provider::default(), Arc::new(Metrics::new()));
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
        let pool = AgreementPool::new(3, Provider::default(), Arc::new(Metrics::new()));
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
}
