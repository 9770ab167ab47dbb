//! A transcoding job: what it reports while it runs, how it fails, its pipeline, and the ways
//! of running it (local files; S3, optionally owning a queue message).

mod cloud;
mod error;
mod events;
mod local;
mod publish;
mod queued;
mod transcode;

pub use cloud::{run_cloud_job, CloudDone, CloudJob};
pub use error::JobError;
pub use events::{JobEvent, Stage};
pub use local::{run_local, LocalJob};
pub use publish::{MANIFEST, MASTER_PLAYLIST};
pub use queued::{run_owned_job, JobOutcome};
pub use transcode::{transcode, Rendition, Transcoded};
