//! The receiving side of a queue: long polls, and what the consumer and the operator's tools
//! do to a message before a job owns it (delete, hand back, hold while it waits, send). Once a
//! transcoder or an ECS task has taken a job, its message is the job's [`MessageLease`]'s.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use super::{delete, set_visibility, Extend, MessageLease, QueueError, QueueMessageRef};

/// SQS never returns more than this many messages per receive.
pub const MAX_BATCH: usize = 10;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Queue, receipt handle, id and receive count (1 when SQS does not say): what a
    /// transcoder needs to own the message.
    pub message: QueueMessageRef,
    /// The body: an S3 notification, we hope.
    pub body: String,
    /// When SQS first accepted it, in milliseconds since the Unix epoch: only asked for by
    /// [`Inbox::receive_held`], `None` otherwise.
    pub sent_timestamp_ms: Option<i64>,
}

/// The queue the consumer polls.
#[derive(Debug, Clone)]
pub struct Inbox {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Inbox {
    /// The queue at `queue_url`.
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { sqs, queue_url }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// Keeps `message` invisible, renewing `visibility` every third of it, until the lease is
    /// settled (deleted or handed back) or dropped (someone else owns the message now).
    pub fn hold(&self, message: &QueueMessageRef, visibility: Duration) -> MessageLease {
        MessageLease::start(
            self.sqs.clone(),
            message.clone(),
            visibility,
            Extend::Always,
        )
    }

    fn error(&self, operation: &'static str, e: &dyn std::error::Error) -> QueueError {
        QueueError::new(operation, &self.queue_url, e)
    }

    /// Long-polls for up to `max` messages (at most 10), waiting up to `wait` for the first.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        self.receive_with(max, wait, None).await
    }

    /// As [`Inbox::receive`], but each message is hidden for `hold` rather than the queue's
    /// visibility timeout, and comes with its `SentTimestamp`: for looking at a queue (the
    /// dead-letter queue) rather than working from it.
    pub async fn receive_held(
        &self,
        max: usize,
        wait: Duration,
        hold: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        self.receive_with(max, wait, Some(hold)).await
    }

    async fn receive_with(
        &self,
        max: usize,
        wait: Duration,
        hold: Option<Duration>,
    ) -> Result<Vec<Received>, QueueError> {
        let max = max.clamp(1, MAX_BATCH) as i32;
        let mut request = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount);
        if let Some(hold) = hold {
            request = request
                .visibility_timeout(hold.as_secs().min(43_200) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp);
        }
        let output = request
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage", &e))?;
        let mut received = Vec::new();
        for m in output.messages.unwrap_or_default() {
            // SQS always sends both; a message without a handle could not be deleted anyway.
            let (Some(message_id), Some(receipt_handle)) = (m.message_id, m.receipt_handle) else {
                continue;
            };
            let attribute = |name| m.attributes.as_ref().and_then(|a| a.get(&name));
            let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let sent_timestamp_ms =
                attribute(MessageSystemAttributeName::SentTimestamp).and_then(|t| t.parse().ok());
            received.push(Received {
                message: QueueMessageRef {
                    queue_url: self.queue_url.clone(),
                    receipt_handle,
                    message_id,
                    receive_count,
                },
                body: m.body.unwrap_or_default(),
                sent_timestamp_ms,
            });
        }
        Ok(received)
    }

    /// Deletes a message the consumer is finished with (a test event, an ignored event, an
    /// upload the filters skip).
    pub async fn delete(&self, message: &QueueMessageRef) -> Result<(), QueueError> {
        delete(&self.sqs, message).await
    }

    /// Makes a message visible again after `after` (zero: at once). Used to hand back what no
    /// one took, and to keep a message for a task that is starting.
    pub async fn set_visibility(
        &self,
        message: &QueueMessageRef,
        after: Duration,
    ) -> Result<(), QueueError> {
        set_visibility(&self.sqs, message, after).await
    }

    /// Hands a message back at once, logging (not returning) a failure: the message then comes
    /// back by itself when its visibility timeout ends, so nothing is lost either way.
    pub async fn hand_back(&self, message: &QueueMessageRef) {
        match self.set_visibility(message, Duration::ZERO).await {
            Ok(()) => tracing::info!(message_id = %message.message_id, "message handed back"),
            Err(error) => tracing::warn!(
                message_id = %message.message_id, %error,
                "could not hand the message back; it returns when its visibility times out"
            ),
        }
    }

    /// Sends a new message to this queue; returns the new message's id.
    pub async fn send(&self, body: String) -> Result<String, QueueError> {
        let output = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| self.error("SendMessage", &e))?;
        Ok(output.message_id.unwrap_or_default())
    }

    /// The queue's `RedrivePolicy` attribute (JSON naming its dead-letter queue), if it has one.
    pub async fn redrive_policy(&self) -> Result<Option<String>, QueueError> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes", &e))?;
        Ok(output
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
            .filter(|policy| !policy.trim().is_empty()))
    }

    /// The queue called `name` in the same account and region, through the same client. Its
    /// URL is this one's with the name swapped: SQS URLs end in `/ACCOUNT/NAME`, and a
    /// dead-letter queue must be in its source queue's account and region. (No GetQueueUrl:
    /// one permission fewer for every role that reads a dead-letter queue.)
    pub fn sibling(&self, name: &str) -> Inbox {
        let base = self
            .queue_url
            .rsplit_once('/')
            .map_or(self.queue_url.as_str(), |(base, _)| base);
        Inbox::new(self.sqs.clone(), format!("{base}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sibling_queue_shares_the_account_and_region() {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        let sqs = aws_sdk_sqs::Client::from_conf(config);
        for (url, want) in [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/vod-uploads",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/vod-uploads-dlq",
            ),
            (
                "http://127.0.0.1:5000/123456789012/uploads",
                "http://127.0.0.1:5000/123456789012/vod-uploads-dlq",
            ),
        ] {
            let inbox = Inbox::new(sqs.clone(), url.to_string());
            assert_eq!(inbox.sibling("vod-uploads-dlq").url(), want);
        }
    }
}
