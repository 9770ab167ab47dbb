//! Putting a job's outputs where players read them, in an order that never lets a reader see
//! a playlist naming a missing object: [`live`] while ffmpeg encodes (cloud jobs), [`finish`]
//! once it is done (every job), each call retried through [`retry`].

mod early;
mod finish;
mod live;
mod retry;
mod versions;

pub use early::{
    announce_playable, early_layout, estimated_audio_bandwidth, estimated_bandwidth, retract,
};
pub use finish::{publish_master, publish_renditions, upload_segments};
pub use live::LivePublisher;
pub use retry::with_retries;
pub use versions::{
    plan_retirement, rebase_playlist, retire_replaced, version_of, Destination, Retirement,
};

/// The master playlist's name under the output root.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
pub use crate::manifest::MANIFEST;

/// Segments uploaded at once: enough to fill a link to S3, few enough to stay polite.
const UPLOAD_CONCURRENCY: usize = 8;
