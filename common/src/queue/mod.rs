//! SQS, the one wrapper both programs use (docs/contract.md, message ownership): the
//! receiving side ([`Inbox`]: the consumer, `consumer dead-letters`) and the owning side
//! ([`MessageLease`]: a job's heartbeat and settlement), with one error type.

mod inbox;
mod lease;

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;

pub use inbox::{Inbox, Received, MAX_BATCH};
pub use lease::{Extend, LeaseEnd, MessageLease, Settlement};

/// The message a job came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessageRef {
    /// Queue URL.
    pub queue_url: String,
    /// The receipt handle of this delivery.
    pub receipt_handle: String,
    /// The message id, for logs.
    pub message_id: String,
    /// How many times SQS has delivered it, this delivery included; 0 when unknown.
    pub receive_count: u32,
}

/// An SQS call that failed.
#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} on {queue_url}: {message}")]
pub struct QueueError {
    operation: &'static str,
    queue_url: String,
    message: String,
}

impl QueueError {
    fn new(operation: &'static str, queue_url: &str, e: &dyn std::error::Error) -> Self {
        Self {
            operation,
            queue_url: queue_url.to_string(),
            message: DisplayErrorContext(e).to_string(),
        }
    }
}

/// Deletes `message`: its upload is dealt with.
async fn delete(sqs: &aws_sdk_sqs::Client, message: &QueueMessageRef) -> Result<(), QueueError> {
    sqs.delete_message()
        .queue_url(&message.queue_url)
        .receipt_handle(&message.receipt_handle)
        .send()
        .await
        .map_err(|e| QueueError::new("DeleteMessage", &message.queue_url, &e))?;
    Ok(())
}

/// Makes `message` visible again after `after` (zero: at once; at most SQS's 12 hours).
async fn set_visibility(
    sqs: &aws_sdk_sqs::Client,
    message: &QueueMessageRef,
    after: Duration,
) -> Result<(), QueueError> {
    let seconds = after.as_secs().min(43_200) as i32;
    sqs.change_message_visibility()
        .queue_url(&message.queue_url)
        .receipt_handle(&message.receipt_handle)
        .visibility_timeout(seconds)
        .send()
        .await
        .map_err(|e| QueueError::new("ChangeMessageVisibility", &message.queue_url, &e))?;
    Ok(())
}
