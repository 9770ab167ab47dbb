//! Turning one source file into an HLS ladder in a local folder, whoever runs it: the pipeline
//! (probe, ladder, one encode, the facts measured from what was written), what it reports while
//! it runs, and how it fails. It knows nothing of S3, queues or peers: `publish`, `split` and
//! `job` build on it.

mod error;
mod pipeline;
mod sidecar;
mod subtitles;

pub use common::events::{JobEvent, Stage};
pub use error::JobError;
pub use pipeline::{
    encode_prepared, measured_master, prepare, transcode, AudioOutput, Prepared, Rendition,
    Transcoded,
};
pub use sidecar::{local_sidecars, sidecar_of, Sidecar, SidecarFormat, MAX_SIDECAR_BYTES};
pub use subtitles::{write_subtitles, SubtitleOutput, SUBTITLE_FILE};
