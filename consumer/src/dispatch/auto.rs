//! `auto` mode: a warm transcoder when one is free (no start-up time, no per-task cost), an
//! ECS task when every warm one is busy, so a burst of uploads never waits for the warm pool.

use std::time::Duration;

use super::{DispatchError, Dispatcher, Handover, Job};

/// Warm first, then overflow.
pub struct Auto<W, O> {
    warm: W,
    overflow: O,
}

impl<W: Dispatcher, O: Dispatcher> Auto<W, O> {
    /// Tries `warm`, then `overflow`.
    pub fn new(warm: W, overflow: O) -> Self {
        Self { warm, overflow }
    }
}

impl<W: Dispatcher, O: Dispatcher> Dispatcher for Auto<W, O> {
    fn free_slots(&self) -> usize {
        self.warm.free_slots().max(self.overflow.free_slots())
    }

    async fn slots_changed(&self, timeout: Duration) {
        tokio::select! {
            () = self.warm.slots_changed(timeout) => {}
            () = self.overflow.slots_changed(timeout) => {}
        }
    }

    async fn dispatch(&self, job: Job) -> Result<Handover, DispatchError> {
        if self.warm.free_slots() > 0 {
            match self.warm.dispatch(job.clone()).await {
                Ok(Handover::Taken { by }) => return Ok(Handover::Taken { by }),
                Ok(Handover::Busy) => {}
                Err(e) => {
                    tracing::warn!(job_id = %job.job_id, error = %e, "warm pool failed; using overflow")
                }
            }
        }
        tracing::info!(job_id = %job.job_id, "every warm transcoder is busy; starting a task");
        self.overflow.dispatch(job).await
    }

    async fn drain(&self, grace: Duration) {
        tokio::join!(self.warm.drain(grace), self.overflow.drain(grace));
    }
}
