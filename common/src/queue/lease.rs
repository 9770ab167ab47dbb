//! Owning an SQS message while its job runs: a [`MessageLease`] keeps the message invisible
//! with a heartbeat from a small task of its own, which stops when the lease is dropped or
//! settled. The job's outcome settles it: delete when published or permanently failed, hand
//! back (visibility 0) otherwise, so it comes back at once and the redrive policy counts the
//! attempt.

use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{delete, set_visibility, QueueError, QueueMessageRef};
use crate::liveness::Liveness;

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
    stalled: CancellationToken,
}

/// Why a lease ended before its job settled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The message is no longer this job's (see [`MessageLease::ended`]).
    Lost,
    /// The job showed no sign of progress for the stall limit: the heartbeat stopped
    /// extending, and the job must stop and hand the message back.
    Stalled,
}

/// When a heartbeat may extend: always, or only while a job's [`Liveness`] keeps beating.
#[derive(Debug, Clone)]
pub enum Extend {
    /// A message that waits for a runner (the consumer's): nothing to watch.
    Always,
    /// A running job's message: extended only while `liveness` moved within `stall`.
    WhileMoving {
        /// The job's signs of progress.
        liveness: Liveness,
        /// The longest time without one.
        stall: Duration,
    },
}

impl MessageLease {
    /// Starts the heartbeat: every third of `extension`, the message's visibility is set to
    /// `extension` from now, so two heartbeats can fail before another consumer sees it.
    pub fn start(
        sqs: aws_sdk_sqs::Client,
        message: QueueMessageRef,
        extension: Duration,
        extend: Extend,
    ) -> Self {
        let (lost, stalled) = (CancellationToken::new(), CancellationToken::new());
        let beat = Heartbeat {
            sqs: sqs.clone(),
            message: message.clone(),
            extension,
            extend,
            lost: lost.clone(),
            stalled: stalled.clone(),
        };
        Self {
            sqs,
            message,
            heartbeat: tokio::spawn(beat.run()),
            lost,
            stalled,
        }
    }

    /// Resolves when the lease ends before its job settles it. [`LeaseEnd::Lost`]: deleted by
    /// a twin, or visible again because the heartbeat could not reach SQS in time; the job
    /// must stop and leave the message alone, it belongs to whoever receives it next.
    /// [`LeaseEnd::Stalled`]: see there.
    pub async fn ended(&self) -> LeaseEnd {
        tokio::select! {
            () = self.lost.cancelled() => LeaseEnd::Lost,
            () = self.stalled.cancelled() => LeaseEnd::Stalled,
        }
    }

    /// Stops the heartbeat and deletes the message or hands it back.
    pub async fn settle(self, how: Settlement) -> Result<(), QueueError> {
        self.heartbeat.abort();
        let m = &self.message;
        match how {
            Settlement::Delete => delete(&self.sqs, m).await?,
            Settlement::HandBack => set_visibility(&self.sqs, m, Duration::ZERO).await?,
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

struct Heartbeat {
    sqs: aws_sdk_sqs::Client,
    message: QueueMessageRef,
    extension: Duration,
    extend: Extend,
    lost: CancellationToken,
    stalled: CancellationToken,
}

impl Heartbeat {
    async fn run(self) {
        let message = &self.message;
        let period = self.extension / 3;
        let seconds = i32::try_from(self.extension.as_secs().max(1)).unwrap_or(i32::MAX);
        let mut held_until = tokio::time::Instant::now() + self.extension;
        let mut seen = (u64::MAX, tokio::time::Instant::now());
        loop {
            if let Extend::WhileMoving { liveness, stall } = &self.extend {
                let now = tokio::time::Instant::now();
                if liveness.count() != seen.0 {
                    seen = (liveness.count(), now);
                } else if now - seen.1 >= *stall {
                    tracing::error!(message_id = %message.message_id, stall_s = stall.as_secs(),
                        "the job shows no progress: no more visibility for it");
                    self.stalled.cancel();
                    return;
                }
            }
            let sent_at = tokio::time::Instant::now();
            // An SQS call that never answers is a failed one: the heartbeat must not hang.
            let call = self
                .sqs
                .change_message_visibility()
                .queue_url(&message.queue_url)
                .receipt_handle(&message.receipt_handle)
                .visibility_timeout(seconds)
                .send();
            match tokio::time::timeout(period, call).await {
                Ok(Ok(_)) => {
                    held_until = sent_at + self.extension;
                    tracing::debug!(message_id = %message.message_id, seconds, "visibility extended")
                }
                Ok(Err(e))
                    if e.code().is_some_and(|c| GONE.contains(&c)) || receipt_expired(&e) =>
                {
                    tracing::error!(
                        message_id = %message.message_id, error = %DisplayErrorContext(&e),
                        "the message is no longer this job's: stopping"
                    );
                    self.lost.cancel();
                    return;
                }
                // Keep trying: a passing network fault must not cost the job its message,
                // until the visibility last set has run out and another consumer may hold it.
                failed => {
                    let error = match failed {
                        Ok(Err(e)) => DisplayErrorContext(&e).to_string(),
                        _ => "no answer in time".to_string(),
                    };
                    tracing::warn!(message_id = %message.message_id, %error,
                        "could not extend the message's visibility");
                    if tokio::time::Instant::now() >= held_until {
                        tracing::error!(message_id = %message.message_id,
                            "the message's visibility ran out before it could be extended: stopping");
                        self.lost.cancel();
                        return;
                    }
                }
            }
            tokio::time::sleep(period.saturating_sub(sent_at.elapsed())).await;
        }
    }
}
