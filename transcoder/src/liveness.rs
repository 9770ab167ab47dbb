//! Evidence that a job moves. Whatever makes progress (an event, a chunk of the download, a
//! look at a prefix another job holds) beats it; the queue heartbeat extends a message's
//! visibility only while it keeps beating, so a job stuck where no watchdog looks (an S3 call
//! that never answers) gives its upload back instead of holding it for SQS's 12 hours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A shared counter of signs of progress.
#[derive(Debug, Clone, Default)]
pub struct Liveness(Arc<AtomicU64>);

impl Liveness {
    /// A sign of progress.
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// How many so far; only changes matter.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
