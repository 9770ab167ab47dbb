//! What a running job tells whoever watches it (a progress bar, a gRPC stream, a log).

use crate::encode::Progress;

/// The stages a job goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Fetching the source from S3 into the work folder.
    Download,
    /// Reading the source's streams and checking it against the limits.
    Probe,
    /// Running ffmpeg.
    Encode,
    /// Uploading what the encode did not already publish: the last segments, the final
    /// playlists and the poster.
    Upload,
    /// Putting the master playlist and the final manifest in place.
    Publish,
}

impl Stage {
    /// Lowercase name, as logs and clients show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Probe => "probe",
            Self::Encode => "encode",
            Self::Upload => "upload",
            Self::Publish => "publish",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A new stage started.
    Stage(Stage),
    /// The encode moved.
    Progress(Progress),
    /// The stream became playable while the encode goes on: the master playlist is published.
    Playable {
        /// Where the master playlist is (`s3://...` or a path).
        master: String,
    },
}
