//! The one place that answers: is this failure the source's fault (exit 2, `invalid_input`,
//! never retried) or not (exit 1, `internal`, worth retrying)?

use crate::encode::{EncodeError, RunError};
use crate::hls::HlsError;
use crate::manifest::ErrorKind;
use crate::probe::ProbeError;
use crate::storage::StorageError;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Probing failed or the source was refused.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The encode failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// ffmpeg ended early: the file is cut short or partly undecodable.
    #[error("the video is truncated or partly undecodable: {decoded_s:.1} s of {expected_s:.1} s could be decoded")]
    Incomplete {
        /// Seconds that made it into the output.
        decoded_s: f64,
        /// Seconds the source declares.
        expected_s: f64,
    },
    /// Reading the source or publishing the outputs failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading back our own output failed.
    #[error(transparent)]
    Hls(#[from] HlsError),
    /// A job split into ranges failed: a range could not be decoded, or kept failing.
    #[error("{message}")]
    Split {
        /// What happened, with the range and the worker.
        message: String,
        /// True when the source is the problem.
        invalid_input: bool,
    },
    /// The output prefix could not be held, or was lost to another job.
    #[error(transparent)]
    Owner(#[from] crate::storage::OwnerError),
    /// The job's queue message was deleted by a twin, or came back to the queue before the
    /// heartbeat could extend it: the upload is someone else's now.
    #[error("lost the queue message {message_id}: another delivery owns this upload now")]
    MessageLost {
        /// The message.
        message_id: String,
    },
    /// Nothing moved for the stall limit (no event, no download progress): stuck somewhere
    /// no other watchdog looks, such as an S3 call that never answers.
    #[error("the job showed no progress for {seconds} s and was stopped; it will be tried again")]
    Stalled {
        /// The stall limit.
        seconds: u64,
    },
    /// A subtitle file was uploaded on its own, and there is no video of its name to
    /// republish with it (yet: the video's own job will read it), or this transcoder cannot.
    #[error("{0}")]
    SidecarAlone(String),
    /// Writing the outputs into place failed.
    #[error("writing {path}: {source}")]
    Output {
        /// What we were writing.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl JobError {
    /// Permanent (the source) or retryable (everything else).
    pub fn kind(&self) -> ErrorKind {
        let invalid = match self {
            Self::Probe(e) => e.is_invalid_input(),
            Self::Encode(e) => e.is_invalid_input(),
            Self::Incomplete { .. } | Self::SidecarAlone(_) => true,
            Self::Storage(e) => e.is_invalid_input(),
            Self::Split { invalid_input, .. } => *invalid_input,
            Self::Hls(_)
            | Self::Output { .. }
            | Self::Owner(_)
            | Self::MessageLost { .. }
            | Self::Stalled { .. } => false,
        };
        if invalid {
            ErrorKind::InvalidInput
        } else {
            ErrorKind::Internal
        }
    }

    /// Whether an encode of a stream may have failed for reading a stream (ffmpeg gave up on
    /// what it read), and so deserves a second encode from the file. A killed or stalled
    /// ffmpeg, a full disk or a failed upload would fail the same way again, and is reported
    /// as it is.
    pub fn may_come_from_reading_a_stream(&self) -> bool {
        match self {
            Self::Incomplete { .. } | Self::Hls(_) => true,
            Self::Encode(
                EncodeError::Undecodable { .. } | EncodeError::LongerThanDeclared { .. },
            ) => true,
            Self::Encode(EncodeError::Ffmpeg(RunError::Exited {
                signal: None,
                stderr_tail,
                ..
            })) => !crate::child::ran_out_of_resources(stderr_tail),
            _ => false,
        }
    }

    /// A wrapper for output I/O errors that names the path.
    pub fn output(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Output {
            path: path.display().to_string(),
            source,
        }
    }
}
