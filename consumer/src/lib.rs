//! The consumer library: the parts of the SQS consumer that can be tested without AWS. For now
//! that is [`event`], which turns one SQS message body (an S3 upload notification, bare or
//! wrapped by SNS or EventBridge) into what it means; the long-poll loop and the dispatchers
//! that act on it come later and live beside it.

#![warn(missing_docs)]

pub mod event;
