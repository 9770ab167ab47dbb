//! A transcoding job: what it reports while it runs, how it fails, its pipeline, and the ways
//! of running it (local files; S3, optionally owning a queue message).

mod abandoned;
mod cloud;
mod error;
mod events;
mod local;
mod owner;
mod queued;
mod transcode;

pub use crate::publish::{MANIFEST, MASTER_PLAYLIST};
pub use abandoned::{settle_abandoned, Abandoned};
pub use cloud::{run_cloud_job, CloudDone, CloudJob, Delivery, KEEP_REPLACED};
pub use error::JobError;
pub use events::{JobEvent, Stage};
pub use local::{run_local, LocalJob};
pub use owner::{current_holder, Holder, LeaseSettings, OwnerError, PrefixLease, LEASE, LEASE_TTL};
pub use queued::{report_end, run_owned_job, JobOutcome};
pub use transcode::{encode_prepared, prepare, transcode, Prepared, Rendition, Transcoded};
