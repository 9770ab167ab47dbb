//! The server's slots (`--max-jobs`; a job or a range takes one), told to the world through the
//! gRPC health service under [`CAPACITY_SERVICE`]: SERVING while one is free, NOT_SERVING while
//! all are taken or the server drains. A dispatcher that reads it sends nothing to a
//! transcoder busy with work it did not send (a split job's ranges, a direct `submit`),
//! instead of learning it from a refusal. The overall status (`""`) stays the liveness that
//! the image's health check reads.

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::rpc::CAPACITY_SERVICE;

/// The slots, and a poke for whoever publishes their state.
#[derive(Debug, Clone)]
pub struct Capacity {
    slots: Arc<Semaphore>,
    max: usize,
    changed: Arc<Notify>,
}

/// One slot taken; freed (and the change told) when dropped.
#[derive(Debug)]
pub struct Taken {
    permit: Option<OwnedSemaphorePermit>,
    changed: Arc<Notify>,
}

impl Drop for Taken {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.changed.notify_one();
    }
}

impl Capacity {
    /// `max` slots, all free.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            changed: Arc::new(Notify::new()),
        }
    }

    /// A free slot, or RESOURCE_EXHAUSTED so that the caller tries elsewhere.
    pub fn take(&self) -> Result<Taken, Status> {
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!("busy: already running {} job(s)", self.max))
        })?;
        self.changed.notify_one();
        Ok(Taken {
            permit: Some(permit),
            changed: self.changed.clone(),
        })
    }

    /// Publishes the slots' state on `health` at every change, until the process ends;
    /// NOT_SERVING for good once `closed` says the server drains.
    pub fn publish(&self, health: HealthReporter, closed: impl Fn() -> bool + Send + 'static) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let status = match this.slots.available_permits() > 0 && !closed() {
                    true => ServingStatus::Serving,
                    false => ServingStatus::NotServing,
                };
                health.set_service_status(CAPACITY_SERVICE, status).await;
                this.changed.notified().await;
            }
        });
    }

    /// Tells the publisher to look again (the server began to drain).
    pub fn poke(&self) {
        self.changed.notify_one();
    }
}
