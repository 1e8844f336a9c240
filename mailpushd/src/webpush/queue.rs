//! Each origin's queue of deliveries and the policy its workers follow: how many
//! workers it gets (its protocol's limit, lower while the cores are saturated, one
//! while it is held), and what a worker between jobs does next. Time is an argument:
//! nothing here reads the clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How many different users' pushes must be told to wait (429, or 5xx with
/// `Retry-After`) within [`WAIT_WINDOW`] before the whole origin is held: one user's
/// limit is not the service's.
pub(super) const HOLD_AFTER: usize = 3;

/// How far back the "wait" answers count.
pub(super) const WAIT_WINDOW: Duration = Duration::from_secs(60);

/// Requests in flight that an origin answering in HTTP/2 keeps while the cores are
/// saturated, whatever its share (its protocol's limit still bounds it). They are
/// streams on the one connection: their answers come back together, and the
/// connection's task reads, writes and runs once for several pushes rather than once
/// for each, which is the larger part of what a push costs beside its encryption.
/// Each request in flight over HTTP/1.1 is a connection of its own, so those origins
/// keep their share.
pub(super) const SATURATED_HTTP2_IN_FLIGHT: usize = 16;

/// A queued job's identity for coalescing: two with the same key carry the same push
/// (one subscription's, for one mailbox), and the newer replaces the older while it
/// waits. `None` never coalesces.
pub(super) trait Keyed {
    /// The key, if the job coalesces.
    fn key(&self) -> Option<u64>;
    /// Whether `other` carries the same push (the key's collisions told apart).
    fn same(&self, other: &Self) -> bool;
    /// Whether this one carries a later event than `other`, which has the same push.
    fn newer(&self, other: &Self) -> bool;
}

/// What [`OriginQueue::add`] did with a job.
pub(super) enum Added<J> {
    /// Queued.
    Queued,
    /// Of it and the one that waited with the same push, this is the older (an
    /// attempt again of a push that waited out a retry): the newer waits, this one is
    /// not sent.
    Replaced(J),
    /// The queue is full: not queued.
    Full(J),
}

/// Requests in flight per origin, by protocol.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Streams to an origin that answers in HTTP/2.
    pub(super) http2: usize,
    /// Connections to one that answers in HTTP/1.1, or has not answered yet.
    pub(super) http1: usize,
}

/// An origin's waiting jobs (`J`), how many workers take from them, and the HTTP/2
/// connection (`S`) its workers share once one is open.
pub(super) struct OriginQueue<J, S> {
    pub(super) jobs: VecDeque<J>,
    /// How many queued jobs have each coalescing key.
    keys: HashMap<u64, u32>,
    /// The subscriptions told to wait lately (at most a few), and when.
    waits: VecDeque<(u64, Instant)>,
    pub(super) workers: usize,
    /// The origin's last answer came in HTTP/2. Learnt afresh by each burst (a queue
    /// lives while it has workers), so nothing stale or unbounded is kept.
    pub(super) http2: bool,
    /// The HTTP/2 connection the origin's workers share, once one is open.
    pub(super) shared: Option<S>,
    /// No request goes to the origin before then: it answered 429, or 5xx with a
    /// `Retry-After`. Its limit is the sender's, not one subscription's, so the rest
    /// of a fan-out waits too instead of meeting the same answer.
    held_until: Option<Instant>,
}

impl<J, S> Default for OriginQueue<J, S> {
    fn default() -> Self {
        Self {
            jobs: VecDeque::new(),
            keys: HashMap::new(),
            waits: VecDeque::new(),
            workers: 0,
            http2: false,
            shared: None,
            held_until: None,
        }
    }
}

/// What a worker between jobs does next.
pub(super) enum Next<J> {
    /// Sends this job.
    Job(J),
    /// Waits until then, for the origin's hold to end: the last worker of a held
    /// origin stays, so that what is queued meanwhile waits too.
    Wait(Instant),
    /// Stops; `empty` when the origin has neither workers nor jobs left.
    Stop {
        /// The queue can go.
        empty: bool,
    },
}

impl<J: Keyed, S> OriginQueue<J, S> {
    /// Queues `job`, unless one with the same push waits already (the newer of the two
    /// waits, the older is handed back) or `max` jobs wait (it is handed back).
    pub(super) fn add(&mut self, job: J, max: usize) -> Added<J> {
        if let Some(key) = job.key()
            && self.keys.contains_key(&key)
            && let Some(slot) = self.jobs.iter_mut().find(|queued| queued.same(&job))
        {
            if !job.newer(slot) {
                return Added::Replaced(job);
            }
            return Added::Replaced(std::mem::replace(slot, job));
        }
        if self.jobs.len() >= max {
            return Added::Full(job);
        }
        if let Some(key) = job.key() {
            *self.keys.entry(key).or_default() += 1;
        }
        self.jobs.push_back(job);
        Added::Queued
    }

    /// The next job, its key counted out.
    fn pop(&mut self) -> Option<J> {
        let job = self.jobs.pop_front()?;
        if let Some(key) = job.key()
            && let std::collections::hash_map::Entry::Occupied(mut count) = self.keys.entry(key)
        {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        Some(job)
    }

    /// A push of user `who` (hashed) was told at `now` to wait until `until`: once
    /// [`HOLD_AFTER`] different users' were within [`WAIT_WINDOW`], the origin is held
    /// until then. Whether it is.
    pub(super) fn told_to_wait(&mut self, who: u64, now: Instant, until: Instant) -> bool {
        self.waits
            .retain(|&(w, at)| w != who && now.saturating_duration_since(at) < WAIT_WINDOW);
        self.waits.push_back((who, now));
        while self.waits.len() > HOLD_AFTER {
            self.waits.pop_front();
        }
        let hold = self.waits.len() >= HOLD_AFTER;
        if hold {
            self.hold(until);
        }
        hold
    }

    /// A worker between jobs: takes the next job, unless the queue is empty or the
    /// origin has more workers than its target, when it stops. While the origin is
    /// held, all but one stop, and that one waits the hold out.
    pub(super) fn next(&mut self, limits: Limits, cap: Option<usize>) -> Next<J> {
        if let Some(until) = self.held_until
            && self.workers <= 1
        {
            return Next::Wait(until);
        }
        if self.workers <= self.target(limits, cap)
            && let Some(job) = self.pop()
        {
            return Next::Job(job);
        }
        self.workers = self.workers.saturating_sub(1);
        Next::Stop {
            empty: self.workers == 0 && self.jobs.is_empty(),
        }
    }
}

impl<J, S> OriginQueue<J, S> {
    /// How many workers the origin gets now: its protocol's limit, or `cap` if lower
    /// (while the cores are saturated; over HTTP/2, at least
    /// [`SATURATED_HTTP2_IN_FLIGHT`]), and always one; one while it is held.
    pub(super) fn target(&self, limits: Limits, cap: Option<usize>) -> usize {
        if self.held_until.is_some() {
            return 1;
        }
        let (limit, cap) = if self.http2 {
            (limits.http2, cap.map(|c| c.max(SATURATED_HTTP2_IN_FLIGHT)))
        } else {
            (limits.http1, cap)
        };
        cap.map_or(limit, |cap| limit.min(cap)).max(1)
    }

    /// Takes a worker for a new job if the target allows one more.
    pub(super) fn add_worker(&mut self, limits: Limits, cap: Option<usize>) -> bool {
        let start = self.workers < self.target(limits, cap);
        if start {
            self.workers += 1;
        }
        start
    }

    /// A worker between jobs, on a connection that speaks HTTP/2 or not (`None`: it
    /// has none): how many more workers to start for the waiting jobs, up to the
    /// target. The worker takes one of them itself next, so the others get a worker
    /// each. Workers over the target stop as they finish ([`OriginQueue::next`]).
    pub(super) fn rebalance(
        &mut self,
        http2: Option<bool>,
        limits: Limits,
        cap: Option<usize>,
    ) -> usize {
        if let Some(http2) = http2 {
            self.http2 = http2;
        }
        let others = self.jobs.len().saturating_sub(1);
        let wanted = self.target(limits, cap).min(self.workers + others);
        let more = wanted.saturating_sub(self.workers);
        self.workers += more;
        more
    }

    /// Holds the origin until `until`, or longer if it is held longer already.
    pub(super) fn hold(&mut self, until: Instant) {
        self.held_until = self.held_until.max(Some(until));
    }

    /// Whether the origin is held (its hold may be over: see
    /// [`release`](Self::release)). A worker reads the clock only when it is, so a
    /// job costs no clock read for it.
    pub(super) fn is_held(&self) -> bool {
        self.held_until.is_some()
    }

    /// Ends a hold that is over at `now`.
    pub(super) fn release(&mut self, now: Instant) {
        if self.held_until.is_some_and(|until| until <= now) {
            self.held_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: Limits = Limits {
        http2: 64,
        http1: 8,
    };

    /// While the cores are saturated: two workers for the origin.
    const SATURATED: Option<usize> = Some(2);

    /// Numbered jobs: those from 100 up coalesce by their number modulo 10.
    impl Keyed for u32 {
        fn key(&self) -> Option<u64> {
            (*self >= 100).then(|| u64::from(*self % 10))
        }
        fn same(&self, other: &Self) -> bool {
            self.key().is_some() && self.key() == other.key()
        }
        fn newer(&self, other: &Self) -> bool {
            self > other
        }
    }

    /// A queue of numbered jobs; what connection it shares does not matter here.
    type Queue = OriginQueue<u32, ()>;

    /// A queue with `jobs` waiting and `workers` running.
    fn queue(jobs: usize, workers: usize, http2: bool) -> Queue {
        Queue {
            jobs: (0..jobs).map(|n| n as u32).collect(),
            workers,
            http2,
            ..Queue::default()
        }
    }

    /// Whether a worker between jobs stops (or else takes a job or waits).
    fn stops(q: &mut Queue, limits: Limits, cap: Option<usize>) -> bool {
        matches!(q.next(limits, cap), Next::Stop { .. })
    }

    /// How many of 100 new jobs start a worker.
    fn starts(q: &mut Queue, limits: Limits, cap: Option<usize>) -> usize {
        (0..100).filter(|_| q.add_worker(limits, cap)).count()
    }

    #[test]
    fn an_origin_starts_at_the_http1_limit() {
        assert_eq!(starts(&mut queue(0, 0, false), LIMITS, None), 8);
    }

    #[test]
    fn an_answer_in_http2_adds_workers_for_the_waiting_jobs() {
        // 8 running, 100 waiting: up to 64 in all.
        let mut q = queue(100, 8, false);
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 56);
        assert_eq!(q.workers, 64);
        // Said again: nothing more.
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 0);
        // Few waiting: only as many as they need, the asking worker taking one.
        let mut q = queue(3, 8, false);
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 2);
        assert_eq!(q.workers, 10);
    }

    #[test]
    fn a_worker_between_jobs_takes_the_next_one_itself() {
        // A lone push: its worker takes it, and no other worker starts to find none.
        let mut q = queue(1, 1, false);
        assert_eq!(q.rebalance(Some(true), LIMITS, None), 0);
        assert!(matches!(q.next(LIMITS, None), Next::Job(0)));
        assert!(matches!(q.next(LIMITS, None), Next::Stop { empty: true }));
        // Nothing waiting: nothing started, and the worker stops.
        let mut q = queue(0, 1, true);
        assert_eq!(q.rebalance(None, LIMITS, None), 0);
        assert!(matches!(q.next(LIMITS, None), Next::Stop { empty: true }));
        // Two waiting: one more worker, for the other, and the asking one takes one.
        let mut q = queue(2, 1, true);
        assert_eq!(q.rebalance(None, LIMITS, None), 1);
        assert_eq!(q.workers, 2);
        assert!(matches!(q.next(LIMITS, None), Next::Job(0)));
        assert_eq!(q.jobs.len(), 1);
    }

    #[test]
    fn after_a_switch_back_to_http1_the_workers_over_the_limit_retire() {
        let mut q = queue(100, 64, true);
        assert_eq!(q.rebalance(Some(false), LIMITS, None), 0);
        let retired = (0..64).filter(|_| stops(&mut q, LIMITS, None)).count();
        assert_eq!(retired, 56);
        assert_eq!(q.workers, 8);
        // At the limit, a worker goes on while there are jobs, and stops without.
        assert!(matches!(q.next(LIMITS, None), Next::Job(_)));
        q.jobs.clear();
        assert!(matches!(q.next(LIMITS, None), Next::Stop { empty: false }));
        assert_eq!(q.workers, 7);
    }

    #[test]
    fn saturated_cores_cap_an_origins_workers() {
        assert_eq!(starts(&mut queue(0, 0, false), LIMITS, SATURATED), 2);
        // A limit below the cap stays the limit.
        let limits = Limits { http1: 1, ..LIMITS };
        assert_eq!(starts(&mut queue(0, 0, false), limits, SATURATED), 1);
    }

    #[test]
    fn saturated_cores_leave_an_http2_origin_its_streams_in_flight_together() {
        // An answer in HTTP/2 while saturated: workers up to the HTTP/2 floor, not
        // the share of two; a worker without a connection changes nothing.
        let mut q = queue(100, 2, false);
        assert_eq!(
            q.rebalance(Some(true), LIMITS, SATURATED),
            SATURATED_HTTP2_IN_FLIGHT - 2
        );
        assert_eq!(q.rebalance(None, LIMITS, SATURATED), 0);
        assert_eq!(q.workers, SATURATED_HTTP2_IN_FLIGHT);
        assert_eq!(q.target(LIMITS, SATURATED), SATURATED_HTTP2_IN_FLIGHT);
        // New jobs start workers up to the floor too.
        assert_eq!(
            starts(&mut queue(0, 0, true), LIMITS, SATURATED),
            SATURATED_HTTP2_IN_FLIGHT
        );
        // A share above the floor stands; the HTTP/2 limit bounds both.
        let q = queue(0, 0, true);
        assert_eq!(q.target(LIMITS, Some(40)), 40);
        let low = Limits { http2: 4, ..LIMITS };
        assert_eq!(q.target(low, SATURATED), 4);
        // Back to HTTP/1.1: its share again, the extra workers retiring as they finish.
        let mut q = queue(100, SATURATED_HTTP2_IN_FLIGHT, true);
        assert_eq!(q.rebalance(Some(false), LIMITS, SATURATED), 0);
        let retired = (0..SATURATED_HTTP2_IN_FLIGHT)
            .filter(|_| stops(&mut q, LIMITS, SATURATED))
            .count();
        assert_eq!(retired, SATURATED_HTTP2_IN_FLIGHT - 2);
    }

    #[test]
    fn workers_retire_to_the_cap_while_saturated_and_return_when_spare() {
        let mut q = queue(100, 8, false);
        let retired = (0..8).filter(|_| stops(&mut q, LIMITS, SATURATED)).count();
        assert_eq!(retired, 6);
        assert_eq!(q.workers, 2);
        // Time to spare again: the waiting jobs get workers up to the limit.
        assert_eq!(q.rebalance(None, LIMITS, None), 6);
        assert_eq!(q.workers, 8);
    }

    #[test]
    fn waiting_jobs_always_keep_a_worker() {
        assert_eq!(starts(&mut queue(0, 0, false), LIMITS, Some(0)), 1);
        let mut q = queue(5, 1, true);
        assert!(!stops(&mut q, LIMITS, Some(0)));
    }

    #[test]
    fn the_last_worker_stops_with_the_last_job_and_the_queue_can_go() {
        let mut q = queue(1, 1, false);
        assert!(matches!(q.next(LIMITS, None), Next::Job(_)));
        assert!(matches!(q.next(LIMITS, None), Next::Stop { empty: true }));
        assert_eq!(q.workers, 0);
    }

    #[test]
    fn a_newer_push_takes_the_place_of_the_same_one_waiting_and_the_queue_has_a_bound() {
        let mut q = queue(0, 0, false);
        assert!(matches!(q.add(101, 4), Added::Queued));
        assert!(matches!(q.add(5, 4), Added::Queued));
        // 111 carries the same push as 101: it takes its place, not a new one.
        assert!(matches!(q.add(111, 4), Added::Replaced(101)));
        assert_eq!(q.jobs, [111, 5]);
        assert!(matches!(q.add(6, 4), Added::Queued));
        assert!(matches!(q.add(102, 4), Added::Queued));
        // Full: a new push is handed back, the same one still coalesces.
        assert!(matches!(q.add(7, 4), Added::Full(7)));
        assert!(matches!(q.add(112, 4), Added::Replaced(102)));
        // An older one (a retry) than the one waiting: it is the one handed back.
        assert!(matches!(q.add(101, 4), Added::Replaced(101)));
        // Once taken, it no longer coalesces.
        q.workers = 1;
        assert!(matches!(q.next(LIMITS, None), Next::Job(111)));
        assert!(matches!(q.add(121, 4), Added::Queued));
        assert_eq!(q.jobs, [5, 6, 112, 121]);
    }

    #[test]
    fn an_origin_is_held_once_several_subscriptions_are_told_to_wait() {
        let now = Instant::now();
        let until = now + Duration::from_secs(300);
        let mut q = queue(10, 4, false);
        // One subscription, again and again: its own limit, not the service's.
        for _ in 0..5 {
            assert!(!q.told_to_wait(1, now, until));
        }
        assert!(!q.told_to_wait(2, now, until));
        assert!(!q.is_held());
        // A third within the window: the service's.
        assert!(q.told_to_wait(3, now + Duration::from_secs(10), until));
        assert!(q.is_held());
        // Answers older than the window do not count.
        let mut q = queue(10, 4, false);
        q.told_to_wait(1, now, until);
        q.told_to_wait(2, now, until);
        assert!(!q.told_to_wait(3, now + WAIT_WINDOW, until));
    }

    #[test]
    fn a_held_origin_keeps_one_worker_that_waits_the_hold_out() {
        let now = Instant::now();
        let until = now + Duration::from_secs(1);
        let mut q = queue(100, 8, false);
        q.hold(until);
        // A shorter hold does not shorten it.
        q.hold(now);
        // No new workers, none added for the waiting jobs: all but one stop.
        assert_eq!(starts(&mut q, LIMITS, None), 0);
        assert_eq!(q.rebalance(None, LIMITS, None), 0);
        let stopped = (0..8).filter(|_| stops(&mut q, LIMITS, None)).count();
        assert_eq!(stopped, 7);
        assert_eq!(q.workers, 1);
        assert!(matches!(q.next(LIMITS, None), Next::Wait(u) if u == until));
        // With no job left it waits too, so that the queue keeps the hold.
        q.jobs.clear();
        assert!(matches!(q.next(LIMITS, None), Next::Wait(_)));
        assert_eq!(starts(&mut q, LIMITS, None), 0);
        // Not over yet: held still. Over: the limit again, and the jobs go.
        q.release(until - Duration::from_millis(1));
        assert!(q.is_held());
        q.release(until);
        assert!(!q.is_held());
        assert_eq!(starts(&mut q, LIMITS, None), 7);
        q.jobs.push_back(7);
        assert!(matches!(q.next(LIMITS, None), Next::Job(_)));
    }
}
