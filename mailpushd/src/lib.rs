//! mailpushd: push e-mail for self-hosted mail servers, in place of xapsd.
#![forbid(unsafe_code)]
// Code that serves never panics on its input: a failed unwrap or index is for tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

//!
//! Layers, lowest first; each imports only those below it:
//!
//! - [`config`], [`logs`], [`metrics`], [`retry`], [`report`], [`tls`]: settings and shared
//!   mechanisms;
//! - [`store`]: SQLite or PostgreSQL, one contract;
//! - [`apns`] and [`webpush`]: the senders, which report what they learn through
//!   [`report`], never to the store;
//! - `schedule`: when each push goes, by the crates' debouncers;
//! - [`core`]: every operation, calling the crates for decisions and the store for
//!   changes;
//! - [`http`]: the HTTP API (over TCP, and a Unix socket that also serves the xaps
//!   plugin's legacy lines), a thin adapter onto the core;
//! - [`daemon`]: wires them together, owns the tasks (listener, timer, expiry,
//!   reports); [`demo`] and [`standin`] serve the demo and the tests.

mod accept;
pub mod apns;
pub mod config;
pub mod core;
pub mod daemon;
pub mod demo;
pub mod files;
pub mod front;
pub mod http;
mod inflight;
pub mod logs;
pub mod metrics;
mod rate;
pub mod report;
pub mod retry;
mod schedule;
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
