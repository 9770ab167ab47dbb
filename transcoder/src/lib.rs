//! The transcoder: probe a source, compute an adaptive-bitrate ladder that never upscales,
//! encode every rung to HLS with one ffmpeg process that decodes the source once, and publish
//! the renditions, a poster and a `manifest.json` record, master playlist last.
//!
//! A folder per concern: [`probe`] (what the source is, and refusing what it must not be),
//! [`ladder`], [`encode`] (the ffmpeg command and its progress), [`hls`] (measuring what was
//! written, the master playlist, growing media playlists), [`job`] (the pipeline and its
//! errors), [`publish`] (outputs in a safe order, while encoding too), [`manifest`],
//! [`storage`] (S3 and local folders), [`liveness`] (signs that a job moves), [`queue`] (owning
//! an SQS message), [`serve`] (the gRPC warm transcoder), [`split`] (long sources across
//! peers), [`status`] (telling the outside a job ended), [`backoff`] (how long to wait before
//! trying again, for the consumer too), and [`cli`] for the binary.
#![warn(missing_docs)]

pub mod aws;
pub mod backoff;
pub mod child;
pub mod cli;
pub mod config;
pub mod encode;
#[cfg(test)]
mod fuzz;
pub mod hls;
pub mod job;
pub mod ladder;
pub mod liveness;
pub mod manifest;
pub mod probe;
pub mod publish;
pub mod queue;
pub mod rpc;
pub mod serve;
pub mod split;
pub mod status;
pub mod storage;
pub mod telemetry;
pub mod transcode;
