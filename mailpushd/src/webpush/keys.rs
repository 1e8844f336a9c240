//! Ephemeral keys made ahead of a burst (`webpush_crypto::EphemeralKey`): a bounded
//! pool, filled in the background while the sender is idle, drained by the pushes of a
//! burst, each key taken by the one message that uses it. When the pool is empty a push
//! makes its key in line, as it would without a pool: the pool only moves work, it never
//! holds a push back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use webpush_crypto::{EphemeralKey, Provider};

use crate::metrics::Metrics;

/// How often the filler looks at the pool and the sender, at ten keys a second or more.
const FILL_TICK: Duration = Duration::from_millis(100);

/// The pool.
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

    /// Keys the pool lacks.
    fn missing(&self) -> usize {
        self.size.saturating_sub(crate::lock(&self.keys).len())
    }

    /// Fills the pool, at most `per_second` keys a second, and only while `busy` (the
    /// sender's requests in flight) is zero, checked before each key: a push waits for
    /// at most one key being made, never for a batch. Ends when the pool is dropped.
    pub(super) async fn fill(pool: Weak<Self>, per_second: u32, busy: Arc<AtomicUsize>) {
        // A tenth of the rate every tenth of a second; below ten a second, one key at
        // the rate's own interval, so the rate is never exceeded.
        let (batch, tick) = match per_second / 10 {
            0 => (1, Duration::from_secs(1) / per_second.max(1)),
            tenth => (tenth as usize, FILL_TICK),
        };
        loop {
            tokio::time::sleep(tick).await;
            let Some(this) = pool.upgrade() else { return };
            let wanted = this.missing().min(batch);
            if wanted == 0 || busy.load(Ordering::Acquire) > 0 {
                continue;
            }
            let provider = this.provider;
            let sending = busy.clone();
            // The elliptic-curve work off the runtime's workers, given up at the first
            // request in flight: a push that starts meanwhile has the core at once.
            let made = tokio::task::spawn_blocking(move || {
                (0..wanted)
                    .map_while(|_| {
                        if sending.load(Ordering::Acquire) > 0 {
                            return None;
                        }
                        EphemeralKey::generate(provider, &mut rand_core::OsRng)
                            .map_err(|e| {
                                tracing::warn!(error = %e, "no ephemeral key made ahead: pushes make theirs in line");
                            })
                            .ok()
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let n = made.len();
            {
                let mut keys = crate::lock(&this.keys);
                let room = this.size.saturating_sub(keys.len());
                keys.extend(made.into_iter().take(room));
                this.metrics.set_key_pool(keys.len());
            }
            this.metrics.keys_made(true, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(pool: &KeyPool) -> usize {
        crate::lock(&pool.keys).len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_filler_waits_for_an_idle_sender_and_stops_at_the_first_push() {
        // A batch of 100,000 keys takes seconds of one core.
        let pool = KeyPool::new(100_000, Provider::default(), Arc::new(Metrics::new()));
        let busy = Arc::new(AtomicUsize::new(1));
        tokio::spawn(KeyPool::fill(
            Arc::downgrade(&pool),
            1_000_000,
            busy.clone(),
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
}
