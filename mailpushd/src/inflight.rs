//! Counting the pushes a sender still owes, so a shutdown can wait for them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Pushes taken and not yet finished, and a wake-up for whoever waits for none.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    active: std::sync::Arc<AtomicUsize>,
    idle: Notify,
}

impl InFlight {
    /// The count itself, for whoever waits for the sender to be idle.
    pub(crate) fn count(&self) -> std::sync::Arc<AtomicUsize> {
        self.active.clone()
    }

    /// One more push taken.
    pub(crate) fn start(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// One push finished, for good.
    pub(crate) fn finish(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until none is left or `deadline` passes; returns how many are left.
    pub(crate) async fn drain(&self, deadline: Duration) -> usize {
        let wait = async {
            loop {
                // Registered before the check, so a finish in between still wakes it.
                let idle = self.idle.notified();
                if self.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        self.active.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_the_last_one() {
        let counter = std::sync::Arc::new(InFlight::default());
        counter.start();
        counter.start();
        assert_eq!(counter.drain(Duration::from_millis(10)).await, 2);
        let other = counter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            other.finish();
            other.finish();
        });
        assert_eq!(counter.drain(Duration::from_secs(5)).await, 0);
    }
}
