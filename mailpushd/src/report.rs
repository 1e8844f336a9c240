//! What the senders report back to the service core: the answers that change what is
//! stored. Senders never write to the store; the core applies their reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use xaps_proto::{DeviceToken, UserName};

use crate::store::{PushRecord, Sent};

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
    /// An owed push was sent: delivered or refused for good (`settled`), or a round of
    /// attempts failed.
    OwedDone {
        /// The send.
        sent: Sent,
        /// Delivered or refused for good; else the round failed.
        settled: bool,
        /// For the push log (APNs pushes).
        record: Option<Box<PushRecord>>,
    },
    /// A fan-out of an owed push to a user's subscriptions ended.
    FanOutDone {
        /// The send.
        sent: Sent,
        /// Since when the push was owed.
        since_ms: u64,
        /// The subscriptions whose push a round of attempts could not deliver, each
        /// once.
        failed: Vec<Failed>,
    },
}

/// A subscription a fan-out's round of attempts could not deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Its id.
    pub sub_id: String,
    /// How long its push service asked it to wait (`Retry-After`, at most
    /// `webpush.max_hold`); zero when it asked for nothing.
    pub asked: std::time::Duration,
}

/// One fan-out of an owed push to a user's subscriptions: each delivery says how it
/// ended, and the last one reports the whole ([`Report::FanOutDone`]). The fan-out
/// itself counts as one until it has handed out every delivery
/// ([`FanOut::handed_out`]), so an early delivery's end cannot report it finished.
#[derive(Debug)]
pub struct FanOut {
    sent: Sent,
    /// When its deliveries must have ended, by the lease it was sent under.
    deadline: crate::retry::Deadline,
    since_ms: u64,
    left: AtomicUsize,
    failed: std::sync::Mutex<Vec<Failed>>,
    reports: ReportSender,
}

impl FanOut {
    /// A fan-out for `sent`, owed since `since_ms`, about to hand out its deliveries.
    pub fn new(sent: Sent, since_ms: u64, reports: ReportSender) -> Arc<Self> {
        Arc::new(Self {
            deadline: crate::retry::Deadline::of_send(&sent),
            sent,
            since_ms,
            left: AtomicUsize::new(1),
            failed: std::sync::Mutex::new(Vec::new()),
            reports,
        })
    }

    /// When its deliveries must have ended: what is not delivered by then goes to the
    /// next round.
    pub fn deadline(&self) -> crate::retry::Deadline {
        self.deadline
    }

    /// One more delivery handed out.
    pub fn one_more(&self) {
        self.left.fetch_add(1, Ordering::AcqRel);
    }

    /// Every delivery is handed out.
    pub fn handed_out(&self) {
        self.end(None);
    }

    /// Subscription `sub_id` is not pushed this round (the user is over their rate):
    /// its push stays owed, as if a delivery to it had failed.
    pub fn not_now(&self, sub_id: &str) {
        self.one_more();
        self.done(sub_id, false, std::time::Duration::ZERO);
    }

    /// One delivery, to subscription `sub_id`, ended: delivered or refused for good
    /// (`settled`), or its round failed, its service having `asked` it to wait so long.
    pub fn done(&self, sub_id: &str, settled: bool, asked: std::time::Duration) {
        self.end((!settled).then(|| Failed {
            sub_id: sub_id.to_owned(),
            asked,
        }));
    }

    fn end(&self, failed: Option<Failed>) {
        if let Some(failed) = failed {
            crate::lock(&self.failed).push(failed);
        }
        if self.left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut failed = std::mem::take(&mut *crate::lock(&self.failed));
        // Each subscription once, with the longest wait asked of its pushes.
        failed.sort_unstable_by(|a, b| a.sub_id.cmp(&b.sub_id).then(b.asked.cmp(&a.asked)));
        failed.dedup_by(|later, first| later.sub_id == first.sub_id);
        let report = Report::FanOutDone {
            sent: self.sent.clone(),
            since_ms: self.since_ms,
            failed,
        };
        send_soon(&self.reports, report);
    }
}

/// Hands `report` in now, or, when the queue is full, as soon as it has room.
pub fn send_soon(reports: &ReportSender, report: Report) {
    match reports.queue.try_send(report) {
        Ok(()) => {}
        Err(tokio::sync::mpsc::error::TrySendError::Full(report)) => {
            let reports = reports.clone();
            // Counted until it is queued: a stop waits for it (ReportReceiver::last).
            reports.waiting.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                if reports.queue.send(report).await.is_err() {
                    tracing::error!("a push's end not recorded: the daemon is stopping");
                }
                reports.waiting.fetch_sub(1, Ordering::AcqRel);
            });
        }
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
            tracing::error!("a push's end not recorded: the daemon is stopping");
        }
    }
}

/// How long a stop waits for a report handed in while the queue was full: it comes
/// as soon as the queue has room, which the stop makes.
const LAST_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a sender hands its reports in. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReportSender {
    queue: tokio::sync::mpsc::Sender<Report>,
    /// Reports [`send_soon`] holds until the queue has room.
    waiting: Arc<AtomicUsize>,
}

impl ReportSender {
    /// Hands `report` in, waiting for room; the report back when the core takes no
    /// more (the daemon has stopped).
    pub async fn send(&self, report: Report) -> Result<(), Report> {
        self.queue.send(report).await.map_err(|e| e.0)
    }
}

/// Where the core takes them.
#[derive(Debug)]
pub struct ReportReceiver {
    queue: tokio::sync::mpsc::Receiver<Report>,
    waiting: Arc<AtomicUsize>,
}

impl ReportReceiver {
    /// The next report; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Report> {
        self.queue.recv().await
    }

    /// Up to `limit` reports into `buffer`, waiting for the first; 0 once every sender
    /// is gone.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Report>, limit: usize) -> usize {
        self.queue.recv_many(buffer, limit).await
    }

    /// A report queued now, if any.
    pub fn try_recv(&mut self) -> Option<Report> {
        self.queue.try_recv().ok()
    }

    /// At a stop, once the senders are drained: the next report still to come, queued
    /// or held by [`send_soon`] for want of room (which comes as soon as this takes
    /// one); `None` once there is none.
    pub async fn last(&mut self) -> Option<Report> {
        if let Some(report) = self.try_recv() {
            return Some(report);
        }
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        tokio::time::timeout(LAST_WAIT, self.queue.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A new bounded channel for reports.
pub fn channel() -> (ReportSender, ReportReceiver) {
    channel_of(REPORT_QUEUE)
}

fn channel_of(size: usize) -> (ReportSender, ReportReceiver) {
    let (queue, taken) = tokio::sync::mpsc::channel(size);
    let waiting = Arc::new(AtomicUsize::new(0));
    (
        ReportSender {
            queue,
            waiting: waiting.clone(),
        },
        ReportReceiver {
            queue: taken,
            waiting,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone() -> Report {
        Report::ApnsTokenGone {
            token: DeviceToken::new(&"ab".repeat(32)).unwrap(),
            since: SystemTime::UNIX_EPOCH,
        }
    }

    /// A report handed in while the queue was full is taken at a stop too: it would
    /// otherwise be lost, and its push sent again after the restart.
    #[tokio::test]
    async fn a_stop_takes_the_reports_held_for_want_of_room() {
        let (reports, mut reported) = channel_of(1);
        send_soon(&reports, gone());
        send_soon(&reports, gone());
        assert!(reported.last().await.is_some());
        assert!(
            reported.last().await.is_some(),
            "the one held for want of room"
        );
        assert!(reported.last().await.is_none());
    }
}
