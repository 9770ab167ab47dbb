//! A transcoding job: what it reports while it runs, how it fails, and its pipeline.

mod error;
mod events;
mod local;
mod transcode;

pub use error::JobError;
pub use events::{JobEvent, Stage};
pub use local::{run_local, LocalJob};
pub use transcode::{transcode, Rendition, Transcoded};
