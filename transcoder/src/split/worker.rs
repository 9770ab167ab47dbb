//! Encoding one range, every rung (and with CMAF every audio track): on a peer for a
//! coordinator (`EncodeRange`), or on the coordinator itself. The segments are uploaded here;
//! the coordinator publishes playlists.

use std::path::Path;
use std::time::Instant;

use super::command::input_window;
use super::command::{range_args, RangePlan};
use super::master::range_folders;
use super::plan::Range;
use super::source::fetch_for_range;
use super::stitch::{RangeOutput, RungOutput, SegmentOut};
use crate::config::{EncodeSettings, Limits, SegmentFormat};
use crate::encode::{run_encoder, INIT_SEGMENT, MEDIA_PLAYLIST};
use crate::hls;
use crate::input::SourceInput;
use crate::ladder::Rung;
use crate::probe::{self, Rational, SourceInfo};
use crate::publish::upload_segments;
use crate::storage::{OutputSink, S3Object, S3Prefix, S3Store};
use crate::transcode::{JobError, JobEvent, Stage};

/// One range of a coordinator's job.
#[derive(Debug, Clone)]
pub struct RangeJob {
    /// The coordinator's job, for logs.
    pub job_id: String,
    /// The upload.
    pub source: S3Object,
    /// The ETag the coordinator read; other bytes are refused.
    pub source_etag: Option<String>,
    /// The coordinator's output prefix.
    pub output: S3Prefix,
    /// How every range encodes.
    pub settings: EncodeSettings,
    /// Output frame rate.
    pub fps: Rational,
    /// The coordinator's ladder.
    pub ladder: Vec<Rung>,
    /// What to encode.
    pub range: Range,
}

/// On a peer: downloads the source, checks it is the coordinator's, probes it and encodes the
/// range.
pub async fn run_range_job(
    store: &S3Store,
    job: &RangeJob,
    limits: &Limits,
    work_root: Option<&Path>,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<RangeOutput, JobError> {
    events(JobEvent::Stage(Stage::Download));
    let started = Instant::now();
    let mut builder = tempfile::Builder::new();
    builder.prefix("transcoder-range-");
    let work = match work_root {
        Some(root) => builder.tempdir_in(root),
        None => builder.tempdir(),
    }
    .map_err(JobError::output(work_root.unwrap_or(Path::new("TMPDIR"))))?;
    let input = work.path().join("source");
    // Only the bytes the coordinator read: a range of a replaced upload would corrupt the
    // stream. And of an MP4 only what this range reads.
    let (object, fetched) = fetch_for_range(
        store,
        &job.source,
        job.source_etag.as_deref(),
        &input,
        input_window(&job.range),
        limits.max_input_bytes,
    )
    .await?;
    events(JobEvent::Stage(Stage::Probe));
    let input = SourceInput::File(input);
    let source = probe::probe(&input, &job.settings, limits).await?;
    tracing::info!(
        range = job.range.index,
        seconds = started.elapsed().as_secs_f64(),
        bytes = fetched,
        of = object.size,
        "range source ready"
    );
    let out = work.path().join("out");
    let sink = store.sink(job.output.clone());
    encode_range(&input, &source, job, &out, &sink, events).await
}

/// Encodes `job.range` of the local `input` into `work_dir`, uploads its segments to `sink`
/// and returns them.
pub async fn encode_range<S: OutputSink>(
    input: &SourceInput,
    source: &SourceInfo,
    job: &RangeJob,
    work_dir: &Path,
    sink: &S,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<RangeOutput, JobError> {
    let cmaf = job.settings.segments == SegmentFormat::Cmaf;
    // A CMAF range encodes each audio track of the source as its own rendition too.
    let folders = range_folders(&job.ladder, source, job.settings.segments);
    for folder in &folders {
        let dir = work_dir.join(folder);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(JobError::output(&dir))?;
    }
    let plan = RangePlan {
        source,
        ladder: &job.ladder,
        fps: job.fps,
        settings: &job.settings,
        range: &job.range,
    };
    let expected_s = plan.seconds();
    events(JobEvent::Stage(Stage::Encode));
    tracing::info!(
        range = job.range.index,
        start_s = job.range.start_s,
        seconds = expected_s,
        "encoding a range"
    );
    let args = range_args(&input.url(), input.protocol(), &plan);
    let encoding = Instant::now();
    run_encoder(
        &job.settings,
        &args,
        work_dir,
        Some(input),
        expected_s,
        |p| events(JobEvent::Progress(p)),
    )
    .await?;
    let encode_s = encoding.elapsed().as_secs_f64();

    let mut rungs = Vec::with_capacity(folders.len());
    for folder in &folders {
        rungs.push(list_segments(work_dir, folder).await?);
    }
    let decoded_s = rungs[..job.ladder.len()]
        .iter()
        .map(|r| r.segments.iter().map(|s| s.duration_s).sum::<f64>())
        .fold(f64::INFINITY, f64::min);
    // As for a single pass: a range that comes out short (or empty: the source ended before
    // it) is a truncated or broken source.
    if expected_s - decoded_s > f64::max(1.0, 0.02 * expected_s) {
        return Err(JobError::Incomplete {
            decoded_s: f64::from(job.range.start_s) + decoded_s,
            expected_s: f64::from(job.range.start_s) + expected_s,
        });
    }
    let (video, audio) = rungs.split_at_mut(job.ladder.len());
    for rung in video {
        let dir = work_dir.join(&rung.name);
        if cmaf {
            // Where each segment's keyframe ends, for the rung's I-frame playlist.
            let listed: Vec<(String, f64)> = rung
                .segments
                .iter()
                .map(|s| (s.uri.clone(), s.duration_s))
                .collect();
            let frames = hls::iframes_of(&dir, &listed).await?;
            for (segment, frame) in rung.segments.iter_mut().zip(frames) {
                segment.first_frame_end = frame.length;
            }
        }
        let first = dir.join(&rung.segments[0].uri);
        let init = dir.join(INIT_SEGMENT);
        let segments = job.settings.segments;
        rung.codecs = hls::rung_codec_string(segments, &job.settings.ffmpeg, &init, &first).await?;
        if source.audio.is_some() {
            rung.codecs = format!("{},{}", rung.codecs, hls::AAC_LC);
        }
    }
    for track in audio {
        track.codecs = hls::AAC_LC.to_string();
    }
    let output = RangeOutput {
        index: job.range.index,
        rungs,
    };

    events(JobEvent::Stage(Stage::Upload));
    // Every object the range wrote, with range 0's init segments (`segment_objects`).
    upload_segments(sink, work_dir, output.segment_objects().collect()).await?;
    // What the split benchmark reads to tell encoding from a range's other costs.
    tracing::info!(
        range = job.range.index,
        encode_s,
        upload_s = encoding.elapsed().as_secs_f64() - encode_s,
        "range encoded"
    );
    Ok(output)
}

/// A rung's segments as ffmpeg listed them, with their sizes; none when ffmpeg wrote no
/// playlist (the source ended before the range).
async fn list_segments(work_dir: &Path, folder: &str) -> Result<RungOutput, JobError> {
    let dir = work_dir.join(folder);
    let listed = hls::read_media_playlist(&dir.join(MEDIA_PLAYLIST))
        .await?
        .map(|p| p.segments)
        .unwrap_or_default();
    let mut segments = Vec::with_capacity(listed.len());
    for segment in &listed {
        let file = dir.join(&segment.uri);
        let bytes = tokio::fs::metadata(&file)
            .await
            .map_err(JobError::output(&file))?
            .len();
        segments.push(SegmentOut {
            uri: segment.uri.clone(),
            duration_s: f64::from(segment.duration),
            bytes,
            first_frame_end: 0,
        });
    }
    Ok(RungOutput {
        name: folder.to_string(),
        codecs: String::new(),
        segments,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A range job with rungs named `names`, for tests of what surrounds a range.
    pub(crate) fn job_with_rungs(names: &[&str]) -> RangeJob {
        RangeJob {
            job_id: "j".into(),
            source: S3Object {
                bucket: "raw".into(),
                key: "k.mp4".into(),
            },
            source_etag: None,
            output: S3Prefix::new("out", "p/"),
            settings: EncodeSettings::default(),
            fps: Rational { num: 30, den: 1 },
            ladder: names
                .iter()
                .map(|n| Rung {
                    name: (*n).into(),
                    width: 640,
                    height: 360,
                    maxrate_kbps: 800,
                    bufsize_kbps: 1600,
                    audio_kbps: 96,
                })
                .collect(),
            range: Range {
                index: 0,
                start_s: 0,
                end_s: None,
                first_frame: 0,
                end_frame: None,
                first_segment: 0,
            },
        }
    }
}
