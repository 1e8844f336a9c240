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
