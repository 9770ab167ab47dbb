//! Which worker takes which range next.
//!
//! Ranges wait in one backlog in index order, because the stream is published only from the
//! first range on: the earliest waiting range is the one a viewer waits for, so it goes out
//! first, and a range that comes back goes back into its place. A range that failed on a
//! worker is not given to that worker again while some worker has not tried it, so one bad
//! machine cannot use up a range's attempts; once every worker has failed it, any may take it.
//!
//! [`Backlog`] makes these choices and nothing else, so they are tested without tasks;
//! [`Queue`] shares it between the workers' loops and wakes them when a range comes back or
//! the job ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::plan::Range;

/// Who encodes a range.
#[derive(Debug, Clone, PartialEq)]
pub enum Worker {
    /// This transcoder.
    Local,
    /// A peer, by URL.
    Peer(String),
    /// One of the job's range-task slots: each range it takes runs on a new ECS task.
    Task(u32),
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => write!(f, "local"),
            Self::Peer(url) => write!(f, "{url}"),
            Self::Task(slot) => write!(f, "ecs task slot {slot}"),
        }
    }
}

/// A range waiting for a worker, with the workers it already failed on.
#[derive(Debug)]
pub struct Waiting {
    /// The range.
    pub range: Range,
    /// Workers it failed on, once per failure.
    pub failed_on: Vec<Worker>,
}

/// Ranges not yet taken, earliest first.
#[derive(Debug)]
pub struct Backlog {
    waiting: VecDeque<Waiting>,
    /// How many workers the job has: a range failed this often may go to any of them.
    workers: usize,
}

impl Backlog {
    /// Every range of a job run by `workers` workers, none failed yet.
    pub fn new(ranges: &[Range], workers: usize) -> Self {
        let waiting = ranges
            .iter()
            .map(|&range| Waiting {
                range,
                failed_on: Vec::new(),
            })
            .collect();
        Self { waiting, workers }
    }

    /// The earliest range `worker` has not failed yet (any, once every worker has).
    pub fn take(&mut self, worker: &Worker) -> Option<Waiting> {
        let at = self
            .waiting
            .iter()
            .position(|w| !w.failed_on.contains(worker) || w.failed_on.len() >= self.workers)?;
        self.waiting.remove(at)
    }

    /// Returns a range to the backlog in its place by index.
    pub fn put_back(&mut self, entry: Waiting) {
        // In order, so the earliest range (the one the stream waits for) goes out first.
        let at = self
            .waiting
            .partition_point(|w| w.range.index < entry.range.index);
        self.waiting.insert(at, entry);
    }
}

/// The backlog shared by the workers' loops.
pub struct Queue {
    backlog: Mutex<Backlog>,
    more: Notify,
    finished: AtomicBool,
}

impl Queue {
    /// A queue of `ranges` for `workers` workers.
    pub fn new(ranges: &[Range], workers: usize) -> Self {
        Self {
            backlog: Mutex::new(Backlog::new(ranges, workers)),
            more: Notify::new(),
            finished: false.into(),
        }
    }

    /// See [`Backlog::take`].
    pub fn take(&self, worker: &Worker) -> Option<Waiting> {
        self.backlog.lock().expect("not poisoned").take(worker)
    }

    /// Puts a range back (see [`Backlog::put_back`]) and wakes the workers waiting for one.
    pub fn put_back(&self, entry: Waiting) {
        self.backlog.lock().expect("not poisoned").put_back(entry);
        self.more.notify_waiters();
    }

    /// Ends the job for every worker: they stop at their next look.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.more.notify_waiters();
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Completes at the next `put_back` or `finish` after this call, even if awaited later:
    /// take it before looking, so a wake-up between the look and the wait is not lost.
    pub fn notified(&self) -> Notified<'_> {
        self.more.notified()
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::probe::Rational;
    use crate::split::plan::{plan_ranges, SplitShape};

    /// Three ranges: 0..8, 8..68 and 68 to the end.
    fn ranges() -> Vec<Range> {
        let shape = SplitShape {
            segment_seconds: 4,
            workers: 2,
            first_range_s: 8,
            opening_seconds: 1,
        };
        plan_ranges(120.0, Rational { num: 30, den: 1 }, shape)
    }

    fn peer(n: u32) -> Worker {
        Worker::Peer(format!("http://10.0.0.{n}:50051"))
    }

    fn index(entry: Option<Waiting>) -> Option<u32> {
        entry.map(|w| w.range.index)
    }

    #[test]
    fn workers_take_the_ranges_in_order_until_none_is_left() {
        let mut backlog = Backlog::new(&ranges(), 2);
        assert_eq!(index(backlog.take(&Worker::Local)), Some(0));
        assert_eq!(index(backlog.take(&peer(1))), Some(1));
        assert_eq!(index(backlog.take(&Worker::Local)), Some(2));
        assert_eq!(index(backlog.take(&peer(1))), None);
    }

    #[test]
    fn a_single_range_goes_to_the_first_worker_that_asks() {
        let single = &ranges()[..1];
        let mut backlog = Backlog::new(single, 3);
        assert_eq!(index(backlog.take(&peer(2))), Some(0));
        assert_eq!(index(backlog.take(&Worker::Local)), None);
    }

    #[test]
    fn a_range_put_back_goes_out_before_later_ones() {
        let mut backlog = Backlog::new(&ranges(), 2);
        let first = backlog.take(&Worker::Local).unwrap();
        let second = backlog.take(&peer(1)).unwrap();
        // A busy peer hands its range back after the first: order holds either way.
        backlog.put_back(second);
        backlog.put_back(first);
        assert_eq!(index(backlog.take(&peer(1))), Some(0));
        assert_eq!(index(backlog.take(&peer(1))), Some(1));
        assert_eq!(index(backlog.take(&peer(1))), Some(2));
    }

    #[test]
    fn a_failed_range_goes_to_a_worker_that_has_not_failed_it() {
        let mut backlog = Backlog::new(&ranges(), 3);
        let _ = backlog.take(&Worker::Local).unwrap();
        let mut failed = backlog.take(&peer(1)).unwrap();
        failed.failed_on.push(peer(1));
        backlog.put_back(failed);
        // The peer it failed on skips it for the next range; another worker takes it first.
        assert_eq!(index(backlog.take(&peer(1))), Some(2));
        assert_eq!(index(backlog.take(&peer(2))), Some(1));
    }

    #[test]
    fn once_every_worker_failed_a_range_any_may_take_it_again() {
        let mut backlog = Backlog::new(&ranges()[..1], 2);
        let mut entry = backlog.take(&peer(1)).unwrap();
        entry.failed_on.push(peer(1));
        backlog.put_back(entry);
        assert_eq!(index(backlog.take(&peer(1))), None, "only failed on it");

        let mut entry = backlog.take(&Worker::Local).unwrap();
        entry.failed_on.push(Worker::Local);
        backlog.put_back(entry);
        assert_eq!(
            index(backlog.take(&peer(1))),
            Some(0),
            "every worker failed it"
        );
    }

    #[test]
    fn a_waiting_worker_wakes_when_a_range_comes_back_and_when_the_job_ends() {
        let queue = Queue::new(&ranges()[..1], 2);
        let entry = queue.take(&Worker::Local).unwrap();
        assert!(queue.take(&peer(1)).is_none());

        let notified = queue.notified();
        queue.put_back(entry);
        assert!(notified.now_or_never().is_some(), "woken by the range");
        assert_eq!(index(queue.take(&peer(1))), Some(0));

        let notified = queue.notified();
        assert!(!queue.is_finished());
        queue.finish();
        assert!(notified.now_or_never().is_some(), "woken by the end");
        assert!(queue.is_finished());
    }
}
