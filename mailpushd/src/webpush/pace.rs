//! CPU pacing: whether the cores have time to spare for more requests in flight,
//! judged over short windows from the time the runtime's workers spent busy, and the
//! share of requests in flight each origin gets while they do not.

use std::time::{Duration, Instant};

/// Whether the cores have time to spare for more requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    /// Requests wait on the network: more in flight use the idle time.
    Spare,
    /// The cores are busy: more in flight would only wait for them, and their state
    /// (connections, buffers, pushes half done) would crowd the caches.
    Saturated,
}

/// The cores' load, judged over short windows from the time the runtime's workers
/// spent busy.
pub(super) struct Pace {
    window: std::sync::Mutex<Window>,
}

/// The window being measured, and the judgement of the last one.
struct Window {
    started: Instant,
    /// Each worker's count when the window started.
    workers: Vec<WorkerCount>,
    load: Load,
}

/// What tokio has counted of one runtime worker so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WorkerCount {
    /// The time it spent busy, as last added up.
    busy: Duration,
    /// How often it parked (found nothing to do) and unparked: odd while parked.
    park_unparks: u64,
}

/// How long a window of the load lasts.
const PACE_WINDOW: Duration = Duration::from_millis(50);

/// The share of the workers' time busy, in tenths, from which the cores count as
/// saturated, and below which they have time to spare again. In between the last
/// judgement stands, so the measure's jitter does not make the workers come and go.
const SATURATED_TENTHS: u128 = 9;
const SPARE_TENTHS: u128 = 7;

/// What tokio has counted of the current runtime's workers; none outside a runtime.
pub(super) fn worker_counts() -> Option<Vec<WorkerCount>> {
    let metrics = tokio::runtime::Handle::try_current().ok()?.metrics();
    let counts = (0..metrics.num_workers())
        .map(|w| WorkerCount {
            busy: metrics.worker_total_busy_duration(w),
            park_unparks: metrics.worker_park_unpark_count(w),
        })
        .collect();
    Some(counts)
}

/// How long the workers were busy over a window of `elapsed`, in all, from their
/// counts at its start and end. Tokio adds up a worker's busy time only every 61
/// polls and when it parks, so a worker in long polls shows none for a while: one
/// that neither parked nor unparked in the window was busy all of it, or parked all
/// of it (an odd count).
fn busy_between(before: &[WorkerCount], after: &[WorkerCount], elapsed: Duration) -> Duration {
    before
        .iter()
        .zip(after)
        .map(
            |(before, after)| match after.park_unparks.saturating_sub(before.park_unparks) {
                0 if after.park_unparks % 2 == 0 => elapsed,
                0 => Duration::ZERO,
                _ => after.busy.saturating_sub(before.busy).min(elapsed),
            },
        )
        .sum()
}

impl Pace {
    /// Measures from now, in the runtime the sender runs in.
    pub(super) fn new() -> Self {
        Self {
            window: std::sync::Mutex::new(Window {
                started: Instant::now(),
                workers: worker_counts().unwrap_or_default(),
                load: Load::Spare,
            }),
        }
    }

    /// The load over the last full window (spare outside a runtime).
    pub(super) fn load(&self) -> Load {
        let now = Instant::now();
        let mut window = crate::lock(&self.window);
        if now.saturating_duration_since(window.started) < PACE_WINDOW {
            return window.load;
        }
        let Some(workers) = worker_counts() else {
            return Load::Spare;
        };
        let elapsed = now.saturating_duration_since(window.started);
        let busy = busy_between(&window.workers, &workers, elapsed);
        window.load = judge(busy, elapsed, workers.len(), window.load);
        window.started = now;
        window.workers = workers;
        window.load
    }
}

/// The load of a window that lasted `elapsed`, in which `workers` workers were busy
/// for `busy` in all, after one judged `last`.
fn judge(busy: Duration, elapsed: Duration, workers: usize, last: Load) -> Load {
    let capacity = elapsed.as_nanos() * workers as u128;
    let busy = busy.as_nanos() * 10;
    if capacity == 0 || busy < SPARE_TENTHS * capacity {
        Load::Spare
    } else if busy >= SATURATED_TENTHS * capacity {
        Load::Saturated
    } else {
        last
    }
}

/// A cap on an origin's workers, under its protocol's limit, when `origins` have
/// pushes to send: none while the cores have time to spare; while they are
/// saturated, its share of `in_flight` (the queue's target keeps at least one).
pub(super) fn cap(load: Load, in_flight: usize, origins: usize) -> Option<usize> {
    match load {
        Load::Spare => None,
        Load::Saturated => Some(in_flight.div_ceil(origins.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_did_not_park_was_busy_all_the_window() {
        let ms = Duration::from_millis;
        let count = |busy, park_unparks| WorkerCount {
            busy: ms(busy),
            park_unparks,
        };
        let window = ms(50);
        // No busy time added up yet, no park: busy all along.
        assert_eq!(
            busy_between(&[count(10, 4)], &[count(10, 4)], window),
            window
        );
        // Parked all along (an odd count): idle.
        assert_eq!(
            busy_between(&[count(10, 5)], &[count(10, 5)], window),
            ms(0)
        );
        // Parked and unparked meanwhile: the busy time added up, no more than the window.
        assert_eq!(
            busy_between(&[count(10, 4)], &[count(30, 6)], window),
            ms(20)
        );
        assert_eq!(
            busy_between(&[count(10, 4)], &[count(90, 7)], window),
            window
        );
        // Summed over the workers.
        assert_eq!(
            busy_between(
                &[count(0, 2), count(0, 3)],
                &[count(0, 2), count(25, 5)],
                window
            ),
            ms(75)
        );
    }

    #[test]
    fn saturated_cores_share_their_requests_in_flight_among_the_origins() {
        // Four in flight on saturated cores: all four for one origin, two each for
        // two or three, one each for fifty.
        assert_eq!(cap(Load::Saturated, 4, 1), Some(4));
        assert_eq!(cap(Load::Saturated, 4, 2), Some(2));
        assert_eq!(cap(Load::Saturated, 4, 3), Some(2));
        assert_eq!(cap(Load::Saturated, 4, 50), Some(1));
        assert_eq!(cap(Load::Saturated, 4, 0), Some(4));
        assert_eq!(cap(Load::Spare, 4, 50), None);
    }

    #[test]
    fn the_load_is_saturated_from_nine_tenths_of_the_workers_time_spare_below_seven() {
        let ms = Duration::from_millis;
        let (spare, saturated) = (Load::Spare, Load::Saturated);
        assert_eq!(judge(ms(18), ms(10), 2, spare), saturated);
        assert_eq!(judge(ms(20), ms(10), 2, spare), saturated);
        // Between seven and nine tenths, the last judgement stands.
        assert_eq!(judge(ms(17), ms(10), 2, spare), spare);
        assert_eq!(judge(ms(17), ms(10), 2, saturated), saturated);
        assert_eq!(judge(ms(14), ms(10), 2, saturated), saturated);
        assert_eq!(judge(ms(13), ms(10), 2, saturated), spare);
        // Idle, or no workers or time to judge by: spare.
        assert_eq!(judge(ms(0), ms(10), 2, saturated), spare);
        assert_eq!(judge(ms(5), ms(0), 2, saturated), spare);
        assert_eq!(judge(ms(5), ms(10), 0, saturated), spare);
    }
}
