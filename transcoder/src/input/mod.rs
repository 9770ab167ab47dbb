//! What ffmpeg and ffprobe read a source from: a finished local file, or a stream that we feed
//! them on stdin while the source is still downloading (`Streamed`), so that an encode starts
//! before the download ends. Either way they read only bytes we wrote: a `file:` path we chose
//! or `pipe:0`, never a URL and never a name taken from the upload.

mod mp4_order;
mod mp4_span;
mod stream;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

pub use mp4_order::{
    faststart_order, read_head, HeadVerdict, LayoutError, Piece, MAX_HEAD_BYTES, MAX_TAIL_BYTES,
};
pub use mp4_span::{byte_span, first_media, moov_location, probe_span};
pub use stream::{Arrival, Downloaded, Streamed};

/// Where a tool reads the source from.
#[derive(Debug, Clone)]
pub enum SourceInput {
    /// A complete local file.
    File(PathBuf),
    /// Bytes fed on stdin, in an order a demuxer that cannot seek can read.
    Streamed(Arc<Streamed>),
}

impl SourceInput {
    /// The input as ffmpeg's `-i` takes it: an absolute `file:` URL (a path is never parsed
    /// as a protocol or an option), or `pipe:0`.
    pub fn url(&self) -> OsString {
        match self {
            Self::File(path) => file_url(path),
            Self::Streamed(_) => OsString::from("pipe:0"),
        }
    }

    /// The one protocol the tool may use (`-protocol_whitelist`).
    pub fn protocol(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Streamed(_) => "pipe",
        }
    }

    /// The source's size in bytes.
    pub async fn size(&self) -> std::io::Result<u64> {
        match self {
            Self::File(path) => Ok(tokio::fs::metadata(path).await?.len()),
            Self::Streamed(streamed) => Ok(streamed.size()),
        }
    }

    /// What the tool's stdin is: nothing for a file, a pipe for a stream.
    pub fn stdin(&self) -> Stdio {
        match self {
            Self::File(_) => Stdio::null(),
            Self::Streamed(_) => Stdio::piped(),
        }
    }

    /// Starts feeding a started tool, when the input is a stream: the task ends when every
    /// byte is written, when the tool stops reading, or when the download fails (the tool
    /// then sees the stream end, and the job reports the download's error).
    pub fn feed(&self, child: &mut tokio::process::Child) -> Option<tokio::task::JoinHandle<()>> {
        let Self::Streamed(streamed) = self else {
            return None;
        };
        let stdin = child.stdin.take()?;
        let streamed = Arc::clone(streamed);
        Some(tokio::spawn(async move {
            if let Err(error) = streamed.feed(stdin).await {
                // The tool saw the stream end early; its output comes out short, and the
                // job reads the file instead (see `JobError::may_come_from_reading_a_stream`).
                tracing::warn!(%error, "stopped feeding the source");
            }
        }))
    }
}

/// `file:` + an absolute path: ffmpeg then never reads the name as another protocol
/// (`concat:a|b`, `http://`), whatever characters it holds.
pub fn file_url(path: &Path) -> OsString {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut url = OsString::from("file:");
    url.push(absolute.as_os_str());
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_url_is_absolute_and_prefixed() {
        let url = file_url(Path::new("clip.mp4"));
        let url = url.to_string_lossy();
        assert!(
            url.starts_with("file:/") && url.ends_with("/clip.mp4"),
            "{url}"
        );
    }
}
