//! Handing a job to whoever will run it. The one place behaviour really varies, so the one
//! trait: [`WarmPool`] sends it to a warm transcoder over gRPC, [`EcsLauncher`] starts an ECS
//! task for it, and [`Auto`] tries the first and falls back on the second.
//!
//! Either way the job's message changes hands: once `dispatch` returns [`Handover::Taken`], the
//! transcoder (or task) owns the message and deletes it when the job is published
//! (docs/contract.md, message ownership). Until then it is the consumer's, and a job nobody took
//! goes back to the queue.

mod auto;
mod ecs;
mod follow;
mod pool;

use std::future::Future;
use std::time::Duration;

pub use auto::Auto;
use common::queue::QueueMessageRef;
use common::storage::{S3Object, S3Prefix};
pub use common::tasks::{CapacityProvider, MAX_OVERRIDES_BYTES};
pub use ecs::{job_environment, EcsLauncher, EcsSettings, STARTED_BY};
pub use follow::FollowContext;
pub use pool::{PoolSettings, WarmPool};

/// One upload to transcode, and the message it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// A new id per dispatch; the transcoder's manifest and logs carry it.
    pub job_id: String,
    /// The upload.
    pub source: S3Object,
    /// Where the outputs go; `None` lets the transcoder use its own OUTPUT_BUCKET/PREFIX.
    pub output: Option<S3Prefix>,
    /// The message the job owns once taken.
    pub message: QueueMessageRef,
}

/// What became of a dispatched job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Someone owns the job and its message now; `by` names them for the log.
    Taken {
        /// The transcoder's address, or the ECS task's ARN.
        by: String,
    },
    /// Every runner was busy: the message is still the consumer's.
    Busy,
}

/// Why a job could not be handed over; the message is still the consumer's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DispatchError(pub String);

/// Runs jobs somewhere.
pub trait Dispatcher: Send + Sync {
    /// How many more jobs could be taken right now; the consumer never receives more messages
    /// than this, so a message never waits in the consumer while its visibility runs out.
    fn free_slots(&self) -> usize;

    /// Resolves when `free_slots` may have grown (a job ended, a transcoder came back), or
    /// after `timeout` at the latest.
    fn slots_changed(&self, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// Hands `job` over.
    fn dispatch(&self, job: Job) -> impl Future<Output = Result<Handover, DispatchError>> + Send;

    /// Shutdown: lets followed jobs finish within `grace`, then stops the rest and hands
    /// their messages back.
    fn drain(&self, grace: Duration) -> impl Future<Output = ()> + Send;
}
