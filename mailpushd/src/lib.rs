//! mailpushd: push e-mail for self-hosted mail servers, in place of xapsd.
#![forbid(unsafe_code)]

mod api;
pub mod apns;
pub mod config;
pub mod daemon;
pub mod demo;
mod inflight;
pub mod metrics;
pub mod standin;
pub mod store;
pub mod tls;
pub mod webpush;

/// Locks `mutex`. Nothing here panics while holding a lock (the panicking constructs
/// are denied), so a poisoned lock would be a bug elsewhere; its value is used as it
/// is rather than taking every sender down with it.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
