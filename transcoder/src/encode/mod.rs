//! Encoding the whole ladder with one ffmpeg process.

mod audio;
mod command;
mod ffmpeg;
mod progress;
mod schedule;
mod tone_map;
mod trickplay;

use std::path::Path;

use crate::config::{EncodeSettings, SegmentFormat};
use crate::input::SourceInput;
use crate::ladder::Rung;
use crate::probe::{Rational, SourceInfo};
pub use audio::{audio_tracks, AudioTrack};
pub use command::{
    audio_rendition_args, ffmpeg_args, filter_graph, hls_output_args, input_guards,
    rung_encoder_args, segment_pattern, EncodePlan, KeyframeGrid, CMAF_SEGMENT_PATTERN,
    INIT_SEGMENT, MEDIA_PLAYLIST, POSTER, SEGMENT_PATTERN,
};
pub use ffmpeg::{Deadlines, LineVerdict, RunError};
pub use progress::{parse_progress_line, Progress, ProgressLine, ProgressTracker};
pub use schedule::{Schedule, CUT_EVERY};
pub use tone_map::{bt709_tags, tone_map_chain};
pub use trickplay::{Trickplay, SPRITE_PATTERN, THUMBNAILS, TRICKPLAY_FOLDER};

/// ffmpeg's exit code when `-max_error_rate` is crossed.
const EXIT_TOO_MANY_DECODE_ERRORS: i32 = 69;

/// Why an encode failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The source cannot be decoded: encrypted, corrupt, or not what its header claims.
    #[error("the video cannot be decoded ({detail})")]
    Undecodable {
        /// The last thing ffmpeg said.
        detail: String,
    },
    /// The source decodes longer than it declares (a header that lies about the length): the
    /// limits were checked against the declared length, so the encode stops here.
    #[error("the video decodes longer than it declares: past {decoded_s:.0} s of a declared {declared_s:.0} s")]
    LongerThanDeclared {
        /// What the source declares.
        declared_s: f64,
        /// How far the encode had got when it was stopped.
        decoded_s: f64,
    },
    /// ffmpeg failed on a source that looked valid: ours to retry or fix.
    #[error(transparent)]
    Ffmpeg(#[from] RunError),
    /// The work folder could not be prepared.
    #[error("preparing the work folder: {0}")]
    Io(#[from] std::io::Error),
}

impl EncodeError {
    /// True when the file itself is the problem.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::Undecodable { .. } | Self::LongerThanDeclared { .. }
        )
    }
}

/// Encodes `input` into `work_dir` (one folder per rung, plus the poster), reporting progress.
pub async fn encode(
    input: &SourceInput,
    source: &SourceInfo,
    ladder: &[Rung],
    fps: Rational,
    settings: &EncodeSettings,
    work_dir: &Path,
    on_progress: impl FnMut(Progress),
) -> Result<(), EncodeError> {
    for rung in ladder {
        tokio::fs::create_dir_all(work_dir.join(&rung.name)).await?;
    }
    tokio::fs::create_dir_all(work_dir.join(TRICKPLAY_FOLDER)).await?;
    if settings.segments == SegmentFormat::Cmaf {
        for track in audio_tracks(source) {
            tokio::fs::create_dir_all(work_dir.join(&track.folder)).await?;
        }
    }
    let plan = EncodePlan {
        source,
        ladder,
        fps,
        settings,
    };
    let args = ffmpeg_args(&input.url(), input.protocol(), &plan);
    let longest = Some(longest_believable(source.duration_s));
    run_encoder_bounded(
        settings,
        &args,
        work_dir,
        Some(input),
        source.duration_s,
        longest,
        on_progress,
    )
    .await
}

/// How far past its declared length a source may decode before it is taken for a liar: a
/// little slack for streams that end a frame or an audio packet late.
fn longest_believable(declared_s: f64) -> f64 {
    declared_s + (declared_s * 0.1).max(5.0)
}

/// Runs an encoding ffmpeg command in `work_dir`, feeding it `input` when that is a stream,
/// reporting progress over `duration_s` seconds of output, and tells a source that cannot be
/// decoded from a failure of ours.
pub async fn run_encoder(
    settings: &EncodeSettings,
    args: &[std::ffi::OsString],
    work_dir: &Path,
    input: Option<&SourceInput>,
    duration_s: f64,
    on_progress: impl FnMut(Progress),
) -> Result<(), EncodeError> {
    run_encoder_bounded(
        settings,
        args,
        work_dir,
        input,
        duration_s,
        None,
        on_progress,
    )
    .await
}

/// [`run_encoder`], stopped as [`EncodeError::LongerThanDeclared`] once its output passes
/// `longest_s` seconds: the limits were checked against what the source declares, and a
/// header that says 10 s over hours of samples must not fill the disk.
async fn run_encoder_bounded(
    settings: &EncodeSettings,
    args: &[std::ffi::OsString],
    work_dir: &Path,
    input: Option<&SourceInput>,
    duration_s: f64,
    longest_s: Option<f64>,
    mut on_progress: impl FnMut(Progress),
) -> Result<(), EncodeError> {
    tracing::debug!(?args, "starting ffmpeg");
    let mut tracker = ProgressTracker::new(duration_s);
    let deadlines = Deadlines {
        stall: settings.stall,
        wall: settings.encode_wall(duration_s),
    };
    let mut furthest = f64::NEG_INFINITY;
    let result = ffmpeg::run(&settings.ffmpeg, args, work_dir, input, deadlines, |line| {
        let report = tracker.feed(line);
        // The output's position, not the percentage (which stops at 99.9), says both whether
        // the run moves and whether it has passed what the source declares.
        let position = tracker.out_time_s();
        if let Some(longest) = longest_s.filter(|l| position > *l) {
            return LineVerdict::Stop(format!("its output passed {longest:.0} s"));
        }
        let reported = report.is_some();
        if let Some(progress) = report {
            on_progress(progress);
        }
        if position > furthest || reported {
            furthest = furthest.max(position);
            LineVerdict::Moved
        } else {
            LineVerdict::Same
        }
    })
    .await;
    match result {
        // The only stop asked for above: the output passed what the source declares.
        Err(RunError::Stopped { .. }) => Err(EncodeError::LongerThanDeclared {
            declared_s: duration_s,
            decoded_s: tracker.out_time_s(),
        }),
        Err(RunError::Exited {
            code,
            signal,
            stderr_tail,
        }) if looks_undecodable(code, signal, &stderr_tail) => Err(EncodeError::Undecodable {
            detail: first_decode_error(&stderr_tail),
        }),
        other => Ok(other?),
    }
}

/// Only evidence about the file makes it invalid. A run ended by a signal (an OOM kill, a
/// stop) or by the machine running out of disk or memory is ours to retry, whatever the
/// decoder said before. Otherwise ffmpeg says "too many decode errors" with its exit code, or a
/// failed run whose last words include decode errors failed because of the input, even when
/// what finally stopped it was downstream (an encrypted AAC stream decodes as garbage with 20
/// channels, and the resampler is what gives up).
fn looks_undecodable(code: Option<i32>, signal: Option<i32>, stderr_tail: &str) -> bool {
    if signal.is_some() || code.is_none() || crate::child::ran_out_of_resources(stderr_tail) {
        return false;
    }
    code == Some(EXIT_TOO_MANY_DECODE_ERRORS)
        || stderr_tail.lines().any(|line| {
            line.contains("Invalid data found when processing input")
                || line.contains("Error while decoding stream")
        })
}

/// The first decoder complaint in the tail: closer to the cause than what failed last.
fn first_decode_error(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with('['))
        .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no detail");
    // "[h264 @ 0x55...] error while decoding MB 2 0" -> "h264: error while decoding MB 2 0"
    match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((who, what)) => format!("{}: {what}", who.split(" @ ").next().unwrap_or(who)),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endings of ffmpeg runs (exit code, signal, the last stderr lines, in ffmpeg 5.1's
    /// words): only evidence about the file is invalid input.
    #[test]
    fn only_evidence_about_the_file_makes_it_invalid() {
        const DECODE: &str =
            "Error while decoding stream #0:0: Invalid data found when processing input";
        let cases = [
            // -max_error_rate crossed: the file.
            (Some(69), None, "anything", true),
            (Some(1), None, DECODE, true),
            (Some(1), None, "[libx264 @ 0x1] some encoder failure", false),
            // A full disk, even after a decode error: the machine.
            (
                Some(1),
                None,
                "Error while decoding stream #0:0: Invalid data found when processing input\n\
                 [hls @ 0x560] Failed to open file '720p/seg_00012.ts.tmp'\n\
                 av_interleaved_write_frame(): No space left on device\n\
                 Error writing trailer of 720p/index.m3u8: No space left on device",
                false,
            ),
            (
                Some(1),
                None,
                "Error while decoding stream #0:0: Invalid data found when processing input\n\
                 [libx264 @ 0x1] malloc of size 4194304 failed\n\
                 Error while filtering: Cannot allocate memory",
                false,
            ),
            (
                Some(1),
                None,
                "Could not open file : Too many open files",
                false,
            ),
            // An encrypted AAC stream: decode errors, then the resampler gives up.
            (
                Some(1),
                None,
                "Error while decoding stream #0:1: Invalid data found when processing input\n\
                 [auto_aresample_0 @ 0x1] Failed to configure output pad on auto_aresample_0\n\
                 Error configuring filter graph",
                true,
            ),
            // Killed: the OOM killer (SIGKILL), a stop (SIGTERM), a crash (SIGSEGV); the tail
            // may hold decode errors from before.
            (None, Some(9), DECODE, false),
            (None, Some(15), DECODE, false),
            (None, Some(11), "", false),
            (None, None, "", false),
        ];
        for (code, signal, tail, want) in cases {
            assert_eq!(
                looks_undecodable(code, signal, tail),
                want,
                "{code:?} {signal:?} {tail:?}"
            );
        }
    }

    #[test]
    fn the_first_decoder_complaint_is_kept_without_its_pointer() {
        assert_eq!(
            first_decode_error(
                "Error while decoding stream #0:0\n[h264 @ 0x557241e2e300] error while decoding MB 2 0\n[aac @ 0x1] later"
            ),
            "h264: error while decoding MB 2 0"
        );
        assert_eq!(first_decode_error("only this"), "only this");
        assert_eq!(first_decode_error(""), "no detail");
    }
}
