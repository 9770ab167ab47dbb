//! Probing a source with ffprobe, and refusing what must not be encoded before any encoding.
//!
//! Uploads are hostile until proven otherwise. ffprobe (and later ffmpeg) may only read the
//! one file, through the `file` protocol, with a demuxer from [`SELF_CONTAINED_DEMUXERS`]: a
//! file that is really an HLS playlist, a concat script or an image sequence is refused by
//! libavformat before it opens a single reference.

mod ffprobe_json;
mod source;

use std::process::Stdio;
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

use crate::config::{EncodeSettings, Limits};
use crate::input::SourceInput;
pub use ffprobe_json::parse_ffprobe_json;
pub use source::{
    checked_language, AudioStream, DynamicRange, Rational, SourceInfo, SubtitleStream, VideoStream,
    MAX_AUDIO_TRACKS,
};

/// Demuxers whose files hold their media inside themselves. libavformat's `format_whitelist`
/// matches any of a demuxer's names, so `mov` admits `mov,mp4,m4a,3gp,3g2,mj2` and `matroska`
/// admits `matroska,webm`. Playlists (hls, dash), scripts (concat), image sequences (image2)
/// and everything else are refused.
pub const SELF_CONTAINED_DEMUXERS: &str = "mov,matroska,avi,mpegts,mpeg,flv,asf,ogg,mxf";

/// A probe that takes longer than this is a hostile file, not a slow disk.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a source cannot be probed or is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A zero-byte file.
    #[error("the file is empty")]
    Empty,
    /// Over the configured size limit.
    #[error("the file is {size} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Size of the source.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// ffprobe could not read it as media at all.
    #[error("not a media file: {detail}")]
    NotMedia {
        /// What ffprobe said.
        detail: String,
    },
    /// A container that is refused because it is not self-contained video.
    #[error("{}", describe_refused(.demuxer))]
    RefusedContainer {
        /// The demuxer libavformat detected.
        demuxer: String,
    },
    /// Readable media without a video to transcode.
    #[error("not a video: {detail}")]
    NoVideo {
        /// What there is instead.
        detail: String,
    },
    /// A single picture.
    #[error("not a video: a still image")]
    StillImage,
    /// A video ffmpeg has no decoder for.
    #[error("the video codec {codec} cannot be decoded")]
    UnsupportedCodec {
        /// Codec name as ffprobe reports it.
        codec: String,
    },
    /// Neither the stream nor the container states a duration.
    #[error("the video has no duration (a live stream or a broken file)")]
    NoDuration,
    /// Over the pixel limit (a decompression bomb or a needlessly huge picture).
    #[error("the picture is {width}x{height}, over the limit of {max} pixels")]
    TooManyPixels {
        /// Width as stored or displayed, whichever is larger.
        width: u32,
        /// Height as stored or displayed, whichever is larger.
        height: u32,
        /// The configured limit.
        max: u64,
    },
    /// Over the duration limit.
    #[error("the video lasts {duration_s:.0} s, over the limit of {max_s:.0} s")]
    TooLong {
        /// Duration of the source.
        duration_s: f64,
        /// The configured limit.
        max_s: f64,
    },
    /// Probing did not finish in time: a busy machine as likely as a hostile file, so it is
    /// retried (a file that always hangs ends in the dead-letter queue, not in a verdict).
    #[error("probing took longer than {}s", PROBE_TIMEOUT.as_secs())]
    Timeout,
    /// The source could not be read from disk.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// ffprobe could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program we tried to run.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Anything else that is our fault, not the file's.
    #[error("{0}")]
    Internal(String),
}

impl ProbeError {
    /// True when the file itself is the problem: retrying can never help.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            Self::Io { .. } | Self::Spawn { .. } | Self::Internal(_) | Self::Timeout
        )
    }
}

fn describe_refused(demuxer: &str) -> String {
    let first = demuxer.split(',').next().unwrap_or(demuxer);
    match first {
        "hls" | "dash" => {
            format!(
                "not a video: an {} playlist that refers to other files",
                first.to_uppercase()
            )
        }
        "concat" | "ffconcat" => "not a video: a concat script that refers to other files".into(),
        "image2" | "gif" | "webp" => "not a video: an image or image sequence".into(),
        "mp3" | "wav" | "flac" | "aac" | "aiff" | "w64" | "amr" | "ape" | "wv" => {
            format!("not a video: an audio file ({first})")
        }
        name if name.ends_with("_pipe") => "not a video: a still image".into(),
        _ => format!("not a video container we accept (detected {first})"),
    }
}

/// Probes `input` and checks it against `limits`. Reads only that file or stream.
pub async fn probe(
    input: &SourceInput,
    settings: &EncodeSettings,
    limits: &Limits,
) -> Result<SourceInfo, ProbeError> {
    let io_err = |source| ProbeError::Io {
        path: input.url().to_string_lossy().into_owned(),
        source,
    };
    let size = input.size().await.map_err(io_err)?;
    if size == 0 {
        return Err(ProbeError::Empty);
    }
    if size > limits.max_input_bytes {
        return Err(ProbeError::TooLarge {
            size,
            max: limits.max_input_bytes,
        });
    }

    let mut command = crate::child::tool_command(&settings.ffprobe);
    command
        .args(["-hide_banner", "-v", "error"])
        .args(["-protocol_whitelist", input.protocol()])
        .args(["-format_whitelist", SELF_CONTAINED_DEMUXERS])
        .args(["-print_format", "json", "-show_format", "-show_streams"])
        .arg(input.url())
        .stdin(input.stdin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_error = |source| ProbeError::Spawn {
        program: settings.ffprobe.display().to_string(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    // Dropped with the probe: a stream stops being fed when ffprobe ends or times out.
    let _feeding = input.feed(&mut child).map(AbortOnDropHandle::new);
    let output = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| ProbeError::Timeout)?
        .map_err(spawn_error)?;
    if !output.status.success() {
        return Err(classify_ffprobe_failure(
            &output.status,
            &String::from_utf8_lossy(&output.stderr),
        ));
    }

    let info = parse_ffprobe_json(&output.stdout)?;
    check(&info, limits)?;
    Ok(info)
}

/// Turns a failed ffprobe run into the reason a user can act on. A signal or a machine out of
/// memory or disk says nothing about the file: those are ours to retry.
fn classify_ffprobe_failure(status: &std::process::ExitStatus, stderr: &str) -> ProbeError {
    if let Some(signal) = crate::child::killing_signal(status) {
        return ProbeError::Internal(format!("ffprobe was killed by signal {signal}"));
    }
    if crate::child::ran_out_of_resources(stderr) {
        let line = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return ProbeError::Internal(format!("ffprobe ran out of resources: {line}"));
    }
    for line in stderr.lines() {
        // "[hls @ 0x55d656d234c0] Format not on whitelist 'mov,...'"
        if line.contains("Format not on whitelist") {
            let demuxer = line
                .strip_prefix('[')
                .and_then(|rest| rest.split(" @ ").next())
                .unwrap_or("unknown");
            return ProbeError::RefusedContainer {
                demuxer: demuxer.to_string(),
            };
        }
    }
    // An MP4 whose index (moov) was to come at the end: the upload was cut short.
    if stderr.contains("moov atom not found") {
        return ProbeError::NotMedia {
            detail: "truncated (the MP4 index is missing; was the upload cut short?)".into(),
        };
    }
    // "file:/tmp/x.mp4: Invalid data found when processing input": keep the reason, not the path.
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("unreadable");
    let detail = last.rsplit(": ").next().unwrap_or(last).trim();
    ProbeError::NotMedia {
        detail: detail.to_lowercase(),
    }
}

/// The limits and the refusals that need the probed facts.
fn check(info: &SourceInfo, limits: &Limits) -> Result<(), ProbeError> {
    let v = &info.video;
    if v.frame_count == Some(1) || matches!(v.codec.as_str(), "png" | "bmp" | "tiff" | "webp") {
        return Err(ProbeError::StillImage);
    }
    let width = v.coded_width.max(v.display_width);
    let height = v.coded_height.max(v.display_height);
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ProbeError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    if info.duration_s > limits.max_duration_s {
        return Err(ProbeError::TooLong {
            duration_s: info.duration_s,
            max_s: limits.max_duration_s,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_refusals_name_what_the_file_really_is() {
        let cases = [
            (
                "[hls @ 0x55d656d234c0] Format not on whitelist 'mov'\nfile:/x: Invalid argument",
                "an HLS playlist",
            ),
            (
                "[concat @ 0x562efb19b4c0] Format not on whitelist 'mov'",
                "a concat script",
            ),
            (
                "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found\nfile:/x: Invalid data found when processing input",
                "truncated",
            ),
            (
                "[png_pipe @ 0x1] Format not on whitelist 'mov'",
                "still image",
            ),
            (
                "[image2 @ 0x1] Format not on whitelist 'mov'",
                "image sequence",
            ),
            ("[tty @ 0x1] Format not on whitelist 'mov'", "detected tty"),
            ("[mp3 @ 0x1] Format not on whitelist 'mov'", "an audio file (mp3)"),
        ];
        for (stderr, want) in cases {
            let message = classify_ffprobe_failure(&exited(1), stderr).to_string();
            assert!(message.contains(want), "{stderr:?} gave {message:?}");
        }
    }

    #[test]
    fn unreadable_files_keep_ffprobe_reason_without_the_path() {
        let err = classify_ffprobe_failure(
            &exited(1),
            "file:/tmp/secret/place.mp4: Invalid data found when processing input\n",
        );
        assert_eq!(
            err.to_string(),
            "not a media file: invalid data found when processing input"
        );
        assert!(err.is_invalid_input());
    }

    /// A wait status as the kernel reports it: `exited(1)` for exit code 1.
    fn exited(code: i32) -> std::process::ExitStatus {
        std::os::unix::process::ExitStatusExt::from_raw(code << 8)
    }

    /// Killed by `signal`.
    fn killed(signal: i32) -> std::process::ExitStatus {
        std::os::unix::process::ExitStatusExt::from_raw(signal)
    }

    #[test]
    fn only_evidence_about_the_file_makes_a_probe_failure_invalid() {
        const DECODE: &str = "file:/x.mp4: Invalid data found when processing input";
        let cases = [
            (exited(1), DECODE, true),
            // The OOM killer, a stop, a crash: whatever ffprobe printed before.
            (killed(9), DECODE, false),
            (killed(15), "", false),
            (killed(11), "", false),
            // The machine ran out of memory or files.
            (
                exited(1),
                "[mov,mp4 @ 0x1] Cannot allocate memory\nfile:/x.mp4: Cannot allocate memory",
                false,
            ),
            (exited(1), "file:/x.mp4: Too many open files", false),
        ];
        for (status, stderr, want) in cases {
            let err = classify_ffprobe_failure(&status, stderr);
            assert_eq!(err.is_invalid_input(), want, "{status:?} {stderr:?}: {err}");
        }
        assert!(
            !ProbeError::Timeout.is_invalid_input(),
            "a timeout is retried"
        );
    }
}
