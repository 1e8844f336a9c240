//! What the senders report back to the service core: the answers that change what is
//! stored. Senders never write to the store; the core applies their reports.

use std::sync::Arc;
use std::time::SystemTime;

use xaps_proto::{DeviceToken, UserName};

/// How many reports may wait for the core before a sender waits to hand in another.
pub const REPORT_QUEUE: usize = 1024;

/// A sender's answer that changes what is stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Report {
    /// APNs said the device token stopped being valid at `since` (410): the
    /// registrations with it made before then go.
    ApnsTokenGone {
        /// The token.
        token: DeviceToken,
        /// When APNs says it stopped being valid.
        since: SystemTime,
    },
    /// A push service said the subscription a push went to is gone (404, 410).
    WebPushGone {
        /// Whose.
        user: Arc<UserName>,
        /// The push, which names the subscription and the endpoint it went to.
        push: Box<imap_webpush_proto::state::Push>,
        /// The answer.
        outcome: webpush_crypto::Outcome,
    },
}

/// Where a sender hands its reports in.
pub type ReportSender = tokio::sync::mpsc::Sender<Report>;
/// Where the core takes them.
pub type ReportReceiver = tokio::sync::mpsc::Receiver<Report>;

/// A new bounded channel for reports.
pub fn channel() -> (ReportSender, ReportReceiver) {
    tokio::sync::mpsc::channel(REPORT_QUEUE)
}
