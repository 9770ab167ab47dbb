//! Encoding one range, every rung: on a peer for a coordinator (`EncodeRange`), or on the
//! coordinator itself. The segments are uploaded here; the coordinator publishes playlists.

use std::path::Path;
use std::time::Instant;

use super::command::input_window;
use super::command::{range_args, RangePlan};
use super::plan::Range;
use super::source::fetch_for_range;
use super::stitch::{RangeOutput, RungOutput, SegmentOut};
use crate::config::{EncodeSettings, Limits};
use crate::encode::{run_encoder, MEDIA_PLAYLIST};
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
    for rung in &job.ladder {
        let dir = work_dir.join(&rung.name);
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

    let mut rungs = Vec::with_capacity(job.ladder.len());
    for rung in &job.ladder {
        rungs.push(list_segments(work_dir, rung).await?);
    }
    let decoded_s = rungs
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
    for rung in &mut rungs {
        let first = work_dir.join(&rung.name).join(&rung.segments[0].uri);
        rung.codecs = hls::video_codec_string(&job.settings.ffmpeg, &first).await?;
        if source.audio.is_some() {
            rung.codecs = format!("{},{}", rung.codecs, hls::AAC_LC);
        }
    }
    let output = RangeOutput {
        index: job.range.index,
        rungs,
    };

    events(JobEvent::Stage(Stage::Upload));
    let objects: Vec<String> = output
        .rungs
        .iter()
        .flat_map(|r| r.segments.iter().map(|s| format!("{}/{}", r.name, s.uri)))
        .collect();
    upload_segments(sink, work_dir, objects).await?;
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
async fn list_segments(work_dir: &Path, rung: &Rung) -> Result<RungOutput, JobError> {
    let dir = work_dir.join(&rung.name);
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
        });
    }
    Ok(RungOutput {
        name: rung.name.clone(),
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
