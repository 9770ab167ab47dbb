//! The queue behind the consumer's loop, as one small trait: SQS ([`Inbox`]) when it runs, a
//! [`MemoryQueue`](super::MemoryQueue) when a test drives the loop a step at a time. Only what
//! the loop itself does to a message is here; once a job is handed over its message is the
//! runner's.

use std::future::Future;
use std::time::Duration;

use common::queue::{Inbox, MessageLease, QueueError, QueueMessageRef, Received, Settlement};

/// A queue of upload notifications, as the loop uses it.
pub trait UploadQueue: Send + Sync {
    /// What [`UploadQueue::hold`] gives: the message kept invisible until settled or dropped.
    type Hold: Held;

    /// Long-polls for up to `max` messages, waiting up to `wait` for the first.
    fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Received>, QueueError>> + Send;

    /// Deletes a message the consumer is finished with.
    fn delete(
        &self,
        message: &QueueMessageRef,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Makes a message visible again at once; a failure is logged, not returned (the message
    /// comes back anyway when its visibility runs out).
    fn hand_back(&self, message: &QueueMessageRef) -> impl Future<Output = ()> + Send;

    /// Sends a new message; returns its id.
    fn send(&self, body: String) -> impl Future<Output = Result<String, QueueError>> + Send;

    /// Keeps `message` invisible, `visibility` at a time, while its job waits for a runner.
    fn hold(&self, message: &QueueMessageRef, visibility: Duration) -> Self::Hold;
}

/// A message held while its job waits. Dropped unsettled (a runner took the job), it stops
/// being extended and is the runner's.
pub trait Held: Send {
    /// Deletes the message or hands it back.
    fn settle(self, how: Settlement) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl UploadQueue for Inbox {
    type Hold = MessageLease;

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        Inbox::receive(self, max, wait).await
    }

    async fn delete(&self, message: &QueueMessageRef) -> Result<(), QueueError> {
        Inbox::delete(self, message).await
    }

    async fn hand_back(&self, message: &QueueMessageRef) {
        Inbox::hand_back(self, message).await
    }

    async fn send(&self, body: String) -> Result<String, QueueError> {
        Inbox::send(self, body).await
    }

    fn hold(&self, message: &QueueMessageRef, visibility: Duration) -> MessageLease {
        Inbox::hold(self, message, visibility)
    }
}

impl Held for MessageLease {
    async fn settle(self, how: Settlement) -> Result<(), QueueError> {
        MessageLease::settle(self, how).await
    }
}
