//! Owning an SQS message while its job runs (CONTRACT.md, message ownership).
//!
//! A [`MessageLease`] keeps the message invisible with a heartbeat from a small task of its
//! own, which stops when the lease is dropped or settled. The job's outcome settles it: delete
//! when published or permanently failed, hand back (visibility 0) otherwise, so it comes back
//! at once and the redrive policy counts the attempt.

use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The job is done or can never succeed: the message is finished with.
    Delete,
    /// The job failed for a reason worth retrying: the message comes back now.
    HandBack,
}

/// Holds a message invisible while its job runs.
#[derive(Debug)]
pub struct MessageLease {
    sqs: aws_sdk_sqs::Client,
    message: QueueMessageRef,
    heartbeat: JoinHandle<()>,
    lost: CancellationToken,
}

impl MessageLease {
    /// Starts the heartbeat: every third of `extension`, the message's visibility is set to
    /// `extension` from now, so two heartbeats can fail before another consumer sees it.
    pub fn start(sqs: aws_sdk_sqs::Client, message: QueueMessageRef, extension: Duration) -> Self {
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat(
            sqs.clone(),
            message.clone(),
            extension,
            lost.clone(),
        ));
        Self {
            sqs,
            message,
            heartbeat,
            lost,
        }
    }

    /// Resolves when the message is no longer this job's: deleted by a twin, or visible
    /// again because the heartbeat could not reach SQS in time. The job must then stop: the
    /// message (and so the upload) belongs to whoever receives it next.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }

    /// Stops the heartbeat and deletes the message or hands it back.
    pub async fn settle(self, how: Settlement) -> Result<(), QueueError> {
        self.heartbeat.abort();
        let m = &self.message;
        let err = |operation: &'static str| {
            move |e: &dyn std::error::Error| QueueError {
                operation,
                queue_url: m.queue_url.clone(),
                message: DisplayErrorContext(e).to_string(),
            }
        };
        match how {
            Settlement::Delete => {
                self.sqs
                    .delete_message()
                    .queue_url(&m.queue_url)
                    .receipt_handle(&m.receipt_handle)
                    .send()
                    .await
                    .map_err(|e| err("DeleteMessage")(&e))?;
            }
            Settlement::HandBack => {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&m.queue_url)
                    .receipt_handle(&m.receipt_handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map_err(|e| err("ChangeMessageVisibility")(&e))?;
            }
        }
        tracing::info!(message_id = %m.message_id, settlement = ?how, "message settled");
        Ok(())
    }
}

/// SQS answers a receipt handle from an earlier delivery with InvalidParameterValue.
fn receipt_expired(e: &impl ProvideErrorMetadata) -> bool {
    e.code() == Some("InvalidParameterValue")
        && e.message()
            .is_some_and(|m| m.contains("receipt handle has expired"))
}

impl Drop for MessageLease {
    fn drop(&mut self) {
        // A lease dropped without settling (a crash path) stops extending; the message then
        // comes back when its current visibility runs out.
        self.heartbeat.abort();
    }
}

/// SQS error codes that mean this receipt no longer holds the message.
const GONE: [&str; 4] = [
    "ReceiptHandleIsInvalid",
    "AWS.SimpleQueueService.MessageNotInflight",
    "MessageNotInflight",
    "AWS.SimpleQueueService.NonExistentQueue",
];

async fn heartbeat(
    sqs: aws_sdk_sqs::Client,
    message: QueueMessageRef,
    extension: Duration,
    lost: CancellationToken,
) {
    let period = extension / 3;
    let seconds = i32::try_from(extension.as_secs().max(1)).unwrap_or(i32::MAX);
    let mut held_until = tokio::time::Instant::now() + extension;
    loop {
        let result = sqs
            .change_message_visibility()
            .queue_url(&message.queue_url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await;
        let sent_at = tokio::time::Instant::now();
        match result {
            Ok(_) => {
                held_until = sent_at + extension;
                tracing::debug!(message_id = %message.message_id, seconds, "visibility extended")
            }
            Err(e) if e.code().is_some_and(|c| GONE.contains(&c)) || receipt_expired(&e) => {
                tracing::error!(
                    message_id = %message.message_id, error = %DisplayErrorContext(&e),
                    "the message is no longer this job's: stopping"
                );
                lost.cancel();
                return;
            }
            // Keep trying: a passing network fault must not cost the job its message, until
            // the visibility last set has run out and another consumer may hold it.
            Err(e) => {
                tracing::warn!(
                    message_id = %message.message_id,
                    error = %DisplayErrorContext(&e),
                    "could not extend the message's visibility"
                );
                if sent_at >= held_until {
                    tracing::error!(message_id = %message.message_id,
                        "the message's visibility ran out before it could be extended: stopping");
                    lost.cancel();
                    return;
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}
