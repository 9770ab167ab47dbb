//! The ways of running a transcoding job: on local files, or from S3 to S3, optionally owning
//! a queue message, one pass or split across peers, with the output prefix held by one job at
//! a time. The pipeline, its events and its errors are `transcode`'s, re-exported here.

mod cloud;
mod fetch;
mod late_sidecar;
mod local;
mod queued;
mod sidecars;

pub use crate::publish::{MANIFEST, MASTER_PLAYLIST};
pub use crate::transcode::{
    encode_prepared, prepare, transcode, JobError, JobEvent, Prepared, Rendition, Stage, Transcoded,
};
pub use cloud::{run_cloud_job, CloudDone, CloudJob, Delivery, KEEP_REPLACED};
pub use local::{run_local, LocalJob};
pub use queued::{report_end, run_owned_job, JobOutcome};
