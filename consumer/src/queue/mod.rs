//! The queue, as the consumer uses it: SQS itself is `transcoder::queue`'s (one wrapper and one
//! error type for both programs); the retry policy for a failing service is here.

mod backoff;

pub use backoff::Backoff;
pub use transcoder::queue::{Inbox, QueueError, Received, MAX_BATCH};
