//! Evidence that a job moves. Whatever makes progress (an event, a chunk of the download, a
//! look at a prefix another job holds) beats it; the queue heartbeat extends a message's
//! visibility only while it keeps beating, so a job stuck where no watchdog looks (an S3 call
//! that never answers) gives its upload back instead of holding it for SQS's 12 hours.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A shared counter of signs of progress, and whether the job has reached its last step.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    beats: Arc<AtomicU64>,
    publishing: Arc<AtomicBool>,
}

impl Liveness {
    /// A sign of progress.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// How many so far; only changes matter.
    pub fn count(&self) -> u64 {
        self.beats.load(Ordering::Relaxed)
    }

    /// The version is complete and is being made the published one. From here a stop lets
    /// the job finish (a few S3 calls) rather than take a switch back halfway: withdrawing
    /// the master of a version just switched would unpublish a finished video.
    pub fn mark_publishing(&self) {
        self.beat();
        self.publishing.store(true, Ordering::SeqCst);
    }

    /// True once [`Liveness::mark_publishing`] was called.
    pub fn is_publishing(&self) -> bool {
        self.publishing.load(Ordering::SeqCst)
    }
}
