//! What the transcoder and the consumer share, in one place that both use: SQS ([`queue`]: the
//! inbox and a job's message lease), S3 ([`storage`]: objects, keys, the prefix lease) and the
//! job's record ([`manifest`], [`abandoned`]), the gRPC wire ([`rpc`]: endpoints, the client,
//! message conversions) and the job's [`events`], telling the outside a job ended
//! ([`status`]), the settings both read ([`args`]), retries ([`backoff`]), signs that a job
//! moves ([`liveness`]), logging ([`telemetry`]), shutdown signals ([`signal`]) and one-shot ECS
//! tasks ([`tasks`]).
//!
//! Stacked one way like the binaries' own modules (docs/architecture.md, "Module ladder").
#![warn(missing_docs)]

pub mod abandoned;
pub mod args;
pub mod backoff;
pub mod events;
pub mod liveness;
pub mod manifest;
pub mod queue;
pub mod rpc;
pub mod signal;
pub mod status;
pub mod storage;
pub mod tasks;
pub mod telemetry;
