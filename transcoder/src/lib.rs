//! The transcoder: probe a source, compute an adaptive-bitrate ladder that never upscales,
//! encode every rung to HLS with one ffmpeg process that decodes the source once, and publish
//! the renditions, a poster and a `manifest.json` record, master playlist last.
//!
//! A folder per concern, stacked one way (docs/architecture.md, "Module ladder"; a test keeps
//! it so): [`cli`] on top; [`serve`] (the gRPC warm transcoder); [`job`] (running a job from
//! local files or S3, owning its queue message); [`split`] (long sources across peers);
//! [`publish`] (outputs in a safe order, while encoding too) and [`rpc`] (the gRPC wire for
//! both ends); [`transcode`] (the pipeline, its events and errors); [`encode`], [`hls`],
//! [`aws`], [`status`]; [`probe`], [`ladder`], [`storage`] (S3, local folders, the prefix
//! lease), [`queue`] (SQS for both programs); and at the bottom [`child`], [`config`],
//! [`input`] (a file, or a stream fed while it downloads), [`liveness`], [`manifest`],
//! [`telemetry`], [`backoff`].
#![warn(missing_docs)]

// What the consumer shares lives in `common`; the transcoder uses it under the same names.
pub use common::{backoff, liveness, manifest, queue, rpc, status, storage, tasks, telemetry};

pub mod aws;
pub mod child;
pub mod cli;
pub mod config;
pub mod dash;
pub mod encode;
#[cfg(test)]
mod fuzz;
pub mod hls;
pub mod input;
pub mod job;
pub mod ladder;
pub mod preview;
pub mod probe;
pub mod publish;
pub mod serve;
pub mod split;
pub mod transcode;
