//! The consumer: long-polls an SQS queue of S3 upload notifications and hands each upload to
//! a warm transcoder over gRPC or to a one-shot ECS task, which then owns the message.
//!
//! A folder per concern: [`event`] (what a message body means, pure), [`queue`] (receiving and
//! the consumer's few actions on a message), [`dispatch`] (the warm pool, ECS, and `auto`),
//! [`worker`] (the poll loop, one step at a time), [`in_flight`] (no second transcode for a
//! duplicate notification), [`config`] and [`app`] (assembly), and beside the service the
//! operator's [`dead_letters`] tool and sweep. `docs/architecture.md` draws the module ladder
//! and explains the decisions.

#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod dead_letters;
pub mod dispatch;
pub mod event;
pub mod in_flight;
pub mod queue;
pub mod worker;
