//! Between range jobs and results and their `transcoder.v1` messages.

use proto::v1;
use tonic::Status;

use super::plan::Range;
use super::stitch::{RangeOutput, RungOutput, SegmentOut};
use super::worker::RangeJob;
use crate::config::{EncodeSettings, SegmentFormat, X264_PRESETS};
use crate::ladder::Rung;
use crate::probe::Rational;
use crate::storage::{S3Object, S3Prefix};

/// The request a coordinator sends for `job`.
pub fn range_request(job: &RangeJob) -> v1::RangeRequest {
    let r = &job.range;
    v1::RangeRequest {
        job_id: job.job_id.clone(),
        source: Some(v1::S3Object {
            bucket: job.source.bucket.clone(),
            key: job.source.key.clone(),
        }),
        source_etag: job.source_etag.clone().unwrap_or_default(),
        output: Some(v1::S3Prefix {
            bucket: job.output.bucket.clone(),
            prefix: job.output.prefix.clone(),
        }),
        preset: job.settings.preset.clone(),
        crf: u32::from(job.settings.crf),
        segment_seconds: job.settings.segment_seconds,
        // Peers older than the opening read this as their keyframe grid: on segment boundaries
        // only, as this version encodes.
        keyframe_seconds: job.settings.segment_seconds,
        opening_seconds: job.settings.opening_seconds,
        cmaf: job.settings.segments == SegmentFormat::Cmaf,
        fps_num: job.fps.num,
        fps_den: job.fps.den,
        rungs: job
            .ladder
            .iter()
            .map(|rung| v1::RungSpec {
                name: rung.name.clone(),
                width: rung.width,
                height: rung.height,
                maxrate_kbps: rung.maxrate_kbps,
                bufsize_kbps: rung.bufsize_kbps,
                audio_kbps: rung.audio_kbps,
            })
            .collect(),
        range: Some(v1::TimeRange {
            index: r.index,
            start_seconds: r.start_s,
            end_seconds: r.end_s,
            first_frame: r.first_frame,
            end_frame: r.end_frame,
            first_segment: r.first_segment,
        }),
    }
}

/// The job a peer runs for `request`, with its own binaries and limits; a request that does
/// not make sense is refused before anything runs.
pub fn range_job(request: v1::RangeRequest, base: &EncodeSettings) -> Result<RangeJob, Status> {
    let bad = |what: &str| Status::invalid_argument(what.to_string());
    let source = request.source.ok_or_else(|| bad("source is required"))?;
    let output = request.output.ok_or_else(|| bad("output is required"))?;
    let range = request.range.ok_or_else(|| bad("range is required"))?;
    if source.bucket.is_empty() || source.key.is_empty() || output.bucket.is_empty() {
        return Err(bad("source and output need a bucket"));
    }
    if !X264_PRESETS.contains(&request.preset.as_str()) || request.crf > 51 {
        return Err(bad("unknown preset or crf"));
    }
    if request.segment_seconds == 0 || request.fps_num == 0 || request.fps_den == 0 {
        return Err(bad("segment seconds and the frame rate must be positive"));
    }
    let odd =
        |r: &v1::RungSpec| r.width == 0 || r.height == 0 || r.width % 2 == 1 || r.height % 2 == 1;
    if request.rungs.is_empty() || request.rungs.iter().any(odd) {
        return Err(bad("rungs must have even, non-zero sizes"));
    }
    let settings = EncodeSettings {
        preset: request.preset,
        crf: request.crf as u8,
        segment_seconds: request.segment_seconds,
        opening_seconds: request.opening_seconds,
        rungs: Vec::new(),
        // As the coordinator writes, whatever this server writes for its own jobs.
        segments: match request.cmaf {
            true => SegmentFormat::Cmaf,
            false => SegmentFormat::Ts,
        },
        ..base.clone()
    };
    Ok(RangeJob {
        job_id: request.job_id,
        source: S3Object {
            bucket: source.bucket,
            key: source.key,
        },
        source_etag: (!request.source_etag.is_empty()).then_some(request.source_etag),
        output: S3Prefix::new(&output.bucket, &output.prefix),
        settings,
        fps: Rational {
            num: request.fps_num,
            den: request.fps_den,
        },
        ladder: request
            .rungs
            .into_iter()
            .map(|r| Rung {
                name: safe_rung_name(&r.name),
                width: r.width,
                height: r.height,
                maxrate_kbps: r.maxrate_kbps,
                bufsize_kbps: r.bufsize_kbps,
                audio_kbps: r.audio_kbps,
            })
            .collect(),
        range: Range {
            index: range.index,
            start_s: range.start_seconds,
            end_s: range.end_seconds,
            first_frame: range.first_frame,
            end_frame: range.end_frame,
            first_segment: range.first_segment,
        },
    })
}

/// A rung name becomes a folder and an object name: digits and a `p` only.
fn safe_rung_name(name: &str) -> String {
    let digits: String = name.chars().filter(char::is_ascii_digit).take(5).collect();
    format!("{digits}p")
}

/// A peer's result as the coordinator keeps it.
pub fn range_output(index: u32, done: v1::RangeDone) -> RangeOutput {
    RangeOutput {
        index,
        rungs: done
            .rungs
            .into_iter()
            .map(|r| RungOutput {
                name: r.name,
                codecs: r.codecs,
                segments: r
                    .segments
                    .into_iter()
                    .map(|s| SegmentOut {
                        uri: s.uri,
                        duration_s: s.duration_seconds,
                        bytes: s.bytes,
                        first_frame_end: s.first_frame_end,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The last message of a range a peer finished.
pub fn range_done(output: &RangeOutput) -> v1::RangeEvent {
    v1::RangeEvent {
        event: Some(v1::range_event::Event::Done(v1::RangeDone {
            rungs: output
                .rungs
                .iter()
                .map(|r| v1::RungSegments {
                    name: r.name.clone(),
                    codecs: r.codecs.clone(),
                    segments: r
                        .segments
                        .iter()
                        .map(|s| v1::Segment {
                            uri: s.uri.clone(),
                            duration_seconds: s.duration_s,
                            bytes: s.bytes,
                            first_frame_end: s.first_frame_end,
                        })
                        .collect(),
                })
                .collect(),
        })),
    }
}
