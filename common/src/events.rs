//! What a running job tells whoever watches it (a progress bar, a gRPC stream, a log).

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

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Share of the source encoded, 0 to 100.
    pub percent: f64,
    /// Seconds of output written so far.
    pub out_time_s: f64,
    /// Frames encoded so far.
    pub frame: u64,
    /// Frames per second, when ffmpeg has measured it.
    pub fps: Option<f64>,
    /// Encode speed as a multiple of real time, when measured.
    pub speed: Option<f64>,
    /// Seconds left at the current speed, when it can be estimated.
    pub eta_s: Option<f64>,
    /// True for ffmpeg's last report.
    pub finished: bool,
}
