//! A job on S3: download the source, transcode into a version folder of its own while
//! publishing what is finished, then switch the prefix's stable names to that version
//! (`publish::versions`). The same for a warm transcoder (`serve`) and a one-shot ECS task
//! (`run`); message ownership is `queued`'s.

use std::path::PathBuf;
use std::time::Duration;

use tracing::Instrument;

use super::fetch::Fetch;
use super::late_sidecar::video_of_sidecar;
use super::sidecars::{fetch_sidecars, list_sidecars, sidecar_sources};
use super::{JobError, JobEvent, Stage};
use crate::config::{EncodeSettings, Limits, SegmentFormat};
use crate::encode::POSTER;
use crate::input::SourceInput;
use crate::liveness::Liveness;
use crate::manifest::{ErrorKind, Manifest, SourceRecord, Status};
use crate::publish::{
    publish_master, publish_renditions, retire_replaced, version_of, Destination, LivePublisher,
    MANIFEST, MASTER_PLAYLIST,
};
use crate::split::{
    plan_ranges, Coordinator, Range, RangeJob, SplitJob, SplitSettings, SplitShape,
};
use crate::storage::{
    sidecar_name, LeaseSettings, ObjectKind, OutputSink, PrefixLease, S3Object, S3Prefix, S3Sink,
    S3Store,
};
use crate::transcode::{encode_prepared, prepare, Prepared, Transcoded};

/// What to transcode and where to.
#[derive(Debug, Clone)]
pub struct CloudJob {
    /// Unique per attempt.
    pub job_id: String,
    /// The upload.
    pub source: S3Object,
    /// Where the outputs go.
    pub output: S3Prefix,
    /// How to encode.
    pub settings: EncodeSettings,
    /// What to refuse.
    pub limits: Limits,
    /// Where work folders are made (the system's temporary folder when `None`).
    pub work_root: Option<PathBuf>,
    /// When to split a long source across peers.
    pub split: SplitSettings,
    /// This attempt's version folder under `output` (`storage::new_version_name`).
    pub version: String,
    /// How long a replaced version is kept for players still reading it.
    pub keep_replaced: Duration,
    /// How the output prefix is held against other jobs.
    pub lease: LeaseSettings,
    /// Which delivery of its queue message this is, when the job owns one.
    pub delivery: Option<Delivery>,
}

/// Which delivery of its queue message a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// SQS's receive count, this delivery included; 0 when unknown.
    pub receive_count: u32,
    /// The queue's redrive `maxReceiveCount`, when configured.
    pub max_receive_count: Option<u32>,
}

impl Delivery {
    /// How a failure of this delivery is recorded: `failed` when the file is at fault (the
    /// message is deleted); otherwise `retrying`, or `dead_lettered` on the last delivery.
    pub fn failure_status(delivery: Option<Self>, kind: ErrorKind) -> Status {
        match (kind, delivery) {
            (ErrorKind::InvalidInput, _) | (_, None) => Status::Failed,
            (ErrorKind::Internal, Some(d)) => match d.max_receive_count {
                Some(max) if d.receive_count >= max => Status::DeadLettered,
                _ => Status::Retrying,
            },
        }
    }
}

/// How long a replaced version stays by default: a day covers any viewing session that
/// loaded the old master, at the cost of one more copy of the video for a day.
pub const KEEP_REPLACED: Duration = Duration::from_secs(24 * 3600);

/// How a cloud job ended well.
#[derive(Debug, Clone)]
pub struct CloudDone {
    /// The `done` record.
    pub manifest: Manifest,
    /// True when an earlier job had published the same source (same ETag): nothing was done.
    pub already_done: bool,
}

/// Runs the job, holding the output prefix against every other job (`owner`). On failure
/// the `failed` manifest has been written when S3 allowed it; a job that lost the prefix
/// writes nothing more.
pub async fn run_cloud_job(
    store: &S3Store,
    job: &CloudJob,
    liveness: &Liveness,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<CloudDone, JobError> {
    let span = tracing::info_span!("job", job_id = %job.job_id, source = %job.source);
    run_owning_prefix(store, job, liveness, events)
        .instrument(span)
        .await
}

async fn run_owning_prefix(
    store: &S3Store,
    job: &CloudJob,
    liveness: &Liveness,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<CloudDone, JobError> {
    let sink = store.sink(job.output.clone());
    // A subtitle file uploaded on its own republishes its video (`late_sidecar`); one without
    // a video writes nothing at all.
    let record = match sidecar_name(&job.source.key) {
        Some(_) => published_manifest(&sink).await,
        None => None,
    };
    let video = video_of_sidecar(
        &job.source,
        &job.output,
        job.settings.segments,
        record.as_ref(),
    )?;
    let resolved = video.map(|source| CloudJob {
        source,
        ..job.clone()
    });
    let job = resolved.as_ref().unwrap_or(job);
    // A source that is gone writes nothing at all, not even a lease: its message is dropped.
    events(JobEvent::Stage(Stage::Download));
    let head = store.head(&job.source).await?;
    let mut lease =
        PrefixLease::acquire(&sink, &job.job_id, &job.version, job.lease, liveness).await?;
    let mut record = None;
    // Dropping `run` on a lost lease kills its ffmpeg and stops its uploads.
    let result = tokio::select! {
        result = run(store, &sink, job, head, liveness, events, &mut record) => result,
        lost = lease.hold() => return Err(lost.into()),
    };
    if let (Err(error), Some(manifest)) = (&result, record) {
        let status = Delivery::failure_status(job.delivery, error.kind());
        let failed =
            manifest.ended_with(status, error.kind(), error.to_string().replace('\n', " | "));
        if let Err(write_error) = sink
            .put_bytes(MANIFEST, failed.to_json(), ObjectKind::Json)
            .await
        {
            tracing::warn!(%write_error, "could not record the failure");
        }
    }
    lease.release().await;
    result
}

async fn run(
    store: &S3Store,
    sink: &S3Sink,
    job: &CloudJob,
    head: crate::storage::ObjectInfo,
    liveness: &Liveness,
    events: &(dyn Fn(JobEvent) + Send + Sync),
    record: &mut Option<Manifest>,
) -> Result<CloudDone, JobError> {
    // Subtitle sidecars are part of what a CMAF job transcodes: listed before the check below,
    // so that one added since the last job makes the same video worth transcoding again.
    let sidecars = match job.settings.segments {
        SegmentFormat::Cmaf => list_sidecars(store, &job.source).await,
        SegmentFormat::Ts => Vec::new(),
    };
    let source = SourceRecord {
        bucket: Some(job.source.bucket.clone()),
        key: job.source.key.clone(),
        etag: head.etag.clone(),
        size: Some(head.size),
        sidecars: sidecar_sources(&sidecars),
    };

    // A second delivery of a job already published for these very bytes (same bucket, key,
    // ETag and size, and the same sidecars) does no work.
    let previous = published_manifest(sink).await;
    let previous_replaced = previous
        .as_ref()
        .map(|p| p.replaced_versions.clone())
        .unwrap_or_default();
    if let Some(previous) = previous {
        if previous.status == Status::Done
            && previous.source.etag.is_some()
            && previous.source == source
        {
            tracing::info!(previous_job = %previous.job_id, "already published for this ETag");
            return Ok(CloudDone {
                manifest: previous,
                already_done: true,
            });
        }
    }

    // What the stable master serves now stays served until this job's version is complete.
    let live_master = sink.get_bytes(MASTER_PLAYLIST).await?;
    let dest = Destination::versioned(
        sink.clone(),
        sink.folder(&job.version),
        &job.version,
        live_master.is_none(),
    );
    let mut manifest = Manifest::processing(job.job_id.clone(), source);
    manifest.attempts = job.delivery.map(|d| d.receive_count).filter(|&n| n > 0);
    manifest.version = Some(job.version.clone());
    manifest.published_version = live_master.as_deref().and_then(version_of);
    manifest.replaced_versions = previous_replaced;
    *record = Some(manifest.clone());
    sink.put_bytes(MANIFEST, manifest.to_json(), ObjectKind::Json)
        .await?;

    let mut builder = tempfile::Builder::new();
    builder.prefix("transcoder-job-");
    let work = match &job.work_root {
        Some(root) => builder.tempdir_in(root),
        None => builder.tempdir(),
    }
    .map_err(JobError::output(
        job.work_root
            .as_deref()
            .unwrap_or(std::path::Path::new("TMPDIR")),
    ))?;
    // A fixed local name: object keys are never used as local paths.
    let input = work.path().join("source");
    let out = work.path().join("out");
    tokio::fs::create_dir(&out)
        .await
        .map_err(JobError::output(&out))?;
    let mut fetch = Fetch::start(
        store,
        &job.source,
        &head,
        &input,
        job.limits.max_input_bytes,
        liveness,
    )
    .await;
    let (source_input, mut prepared) = prepare_fetched(&mut fetch, job, events).await?;
    prepared.sidecars = fetch_sidecars(store, &job.source, &sidecars, work.path()).await;
    let ranges = split_ranges(job, &prepared);
    let (transcoded, record) = if ranges.len() > 1 {
        let template = RangeJob {
            job_id: job.job_id.clone(),
            source: job.source.clone(),
            // Peers download only these bytes, as this job does.
            source_etag: head.etag.clone(),
            // Peers write their segments into this job's version folder.
            output: dest.version().prefix().clone(),
            settings: job.settings.clone(),
            fps: prepared.fps,
            ladder: prepared.ladder.clone(),
            range: ranges[0],
        };
        let split = SplitJob {
            dest: &dest,
            input: &input,
            // The first range reads as the single pass does, from the stream when there is one;
            // the others and the poster seek, and wait for the whole file.
            first_input: source_input,
            first_stream_failed: Default::default(),
            whole: fetch.whole(),
            work_dir: &out,
            prepared: &prepared,
            template,
            peers: &job.split.peers,
            tasks: job.split.tasks.as_ref(),
            liveness: liveness.clone(),
            ranges,
        };
        let mut coordinator = Coordinator::new(split, manifest);
        let result = match coordinator.run(events).await {
            // Nothing is done from a source that did not arrive whole.
            Ok(transcoded) => fetch
                .finished()
                .await
                .map(|_| transcoded)
                .map_err(Into::into),
            Err(error) => Err(error),
        };
        match result {
            Ok(transcoded) => (transcoded, coordinator.record().clone()),
            Err(error) => {
                coordinator.retract().await;
                return Err(error);
            }
        }
    } else {
        one_pass(
            &dest,
            &out,
            &mut fetch,
            source_input,
            prepared,
            job,
            manifest,
            events,
        )
        .await?
    };
    liveness.mark_publishing();
    dest.switch(&transcoded).await?;
    let mut renditions = transcoded.records();
    for rendition in &mut renditions {
        rendition.playlist = dest.from_root(&rendition.playlist);
        rendition.iframe_playlist = rendition
            .iframe_playlist
            .as_deref()
            .map(|p| dest.from_root(p));
    }
    let mut done = record.done(renditions, MASTER_PLAYLIST, POSTER);
    transcoded.describe_source(&mut done, |name| dest.from_root(name));
    done.published_version = Some(job.version.clone());
    done.replaced_versions = retire_replaced(
        sink,
        &job.version,
        &done.replaced_versions,
        job.keep_replaced,
    )
    .await;
    sink.put_bytes(MANIFEST, done.to_json(), ObjectKind::Json)
        .await?;
    Ok(CloudDone {
        manifest: done,
        already_done: false,
    })
}

/// The ranges of a job worth splitting: a source longer than the threshold, with peers or
/// range tasks to share it. Fewer than two ranges means one pass.
fn split_ranges(job: &CloudJob, prepared: &super::Prepared) -> Vec<Range> {
    let split = &job.split;
    let long = split
        .min_seconds
        .is_some_and(|min| prepared.source.duration_s > min);
    // Ranges seek into the source: only containers with an index seek exactly (MPEG-TS and
    // program streams would need a margin before every cut).
    let format = &prepared.source.format_name;
    let seekable = format.contains("mov") || format.contains("matroska");
    if !long || !seekable || split.helpers() == 0 {
        return Vec::new();
    }
    plan_ranges(
        prepared.source.duration_s,
        prepared.fps,
        SplitShape {
            segment_seconds: job.settings.segment_seconds,
            workers: split.helpers() + 1,
            first_range_s: split.first_range_seconds,
            opening_seconds: job.settings.opening_seconds,
        },
    )
}

/// Probes the source as a stream when `fetch` offers one, else once it is downloaded. A stream
/// that cannot be probed is probed again as the downloaded file, whose verdict is the one the
/// source gets: the stream only ever makes a job faster.
async fn prepare_fetched(
    fetch: &mut Fetch,
    job: &CloudJob,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<(SourceInput, Prepared), JobError> {
    if let Some(streamed) = fetch.streamed().cloned() {
        match prepare(&streamed, &job.settings, &job.limits, events).await {
            Ok(prepared) => return Ok((streamed, prepared)),
            Err(error) => {
                tracing::info!(%error, "could not probe the source as a stream; probing the downloaded file");
            }
        }
    }
    fetch.finished().await?;
    let file = fetch.file();
    let prepared = prepare(&file, &job.settings, &job.limits, events).await?;
    Ok((file, prepared))
}

/// The single pass: encodes while publishing. An encode of a stream that fails is done again
/// from the downloaded file, after taking back what it published: a source whose layout defeats
/// reading it in order (an MP4 whose audio and video are far apart) is slower, never failed.
#[allow(clippy::too_many_arguments)]
async fn one_pass(
    dest: &Destination<S3Sink>,
    out: &std::path::Path,
    fetch: &mut Fetch,
    input: SourceInput,
    prepared: Prepared,
    job: &CloudJob,
    record: Manifest,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<(Transcoded, Manifest), JobError> {
    let streamed = matches!(input, SourceInput::Streamed(_));
    let live_publisher = || {
        LivePublisher::new(
            dest.clone(),
            out.to_path_buf(),
            &prepared,
            &job.settings,
            record.clone(),
        )
    };
    let mut live = live_publisher();
    let first =
        encode_and_publish(&mut live, fetch, &input, out, prepared.clone(), job, events).await;
    let error = match first {
        Ok(transcoded) => return Ok((transcoded, live.record().clone())),
        Err(error) => error,
    };
    live.retract().await;
    if !(streamed && error.may_come_from_reading_a_stream()) {
        return Err(error);
    }
    // A download that failed is the error to report; a complete one gets a second encode.
    fetch.finished().await?;
    tracing::warn!(%error, "the encode of the streamed source failed; encoding the downloaded file");
    tokio::fs::remove_dir_all(out)
        .await
        .and_then(|()| std::fs::create_dir(out))
        .map_err(JobError::output(out))?;
    let mut live = live_publisher();
    let file = fetch.file();
    match encode_and_publish(&mut live, fetch, &file, out, prepared, job, events).await {
        Ok(transcoded) => Ok((transcoded, live.record().clone())),
        Err(error) => {
            live.retract().await;
            Err(error)
        }
    }
}

/// Encodes while `live` publishes, then publishes the rest and the measured master, once the
/// download has ended well.
async fn encode_and_publish(
    live: &mut LivePublisher<S3Sink>,
    fetch: &mut Fetch,
    input: &SourceInput,
    out: &std::path::Path,
    prepared: Prepared,
    job: &CloudJob,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Transcoded, JobError> {
    let stop_watching = tokio_util::sync::CancellationToken::new();
    let transcoded = {
        let encode = encode_prepared(input, out, prepared, &job.settings, events);
        tokio::pin!(encode);
        let watching = live.watch(events, &stop_watching);
        tokio::pin!(watching);
        tokio::select! {
            biased;
            result = &mut encode => {
                // The watcher finishes the playlist it may be writing before the final ones.
                stop_watching.cancel();
                (&mut watching).await?;
                result?
            }
            // `watch` returns first only when an upload fails for good; the encode is then
            // dropped, which kills ffmpeg.
            watched = &mut watching => {
                watched?;
                unreachable!("the watcher stops only when told, after the encode")
            }
        }
    };
    // A stream ends early when its download fails: nothing is published from a source that did
    // not arrive whole. Then the source is no longer needed; free the disk before the last
    // uploads.
    let downloaded = fetch.finished().await?;
    tracing::info!(bytes = downloaded.size, "source downloaded and encoded");
    let _ = tokio::fs::remove_file(fetch.file_path()).await;

    events(JobEvent::Stage(Stage::Upload));
    let sink = live.sink();
    publish_renditions(sink, out, &transcoded, live.published_objects()).await?;
    events(JobEvent::Stage(Stage::Publish));
    publish_master(sink, &transcoded).await?;
    Ok(transcoded)
}

/// The manifest at the output prefix, if there is a readable one.
async fn published_manifest(sink: &impl OutputSink) -> Option<Manifest> {
    match sink.get_bytes(MANIFEST).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
        Ok(None) => None,
        Err(e) => {
            // Not fatal: without it we redo the work, which is correct, only slower.
            tracing::warn!(error = %e, "could not read the existing manifest");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_recorded_by_fault_and_delivery() {
        let on = |receive_count, max_receive_count| {
            Some(Delivery {
                receive_count,
                max_receive_count,
            })
        };
        let cases = [
            (ErrorKind::InvalidInput, on(5, Some(5)), Status::Failed),
            (ErrorKind::Internal, None, Status::Failed),
            (ErrorKind::Internal, on(1, Some(5)), Status::Retrying),
            (ErrorKind::Internal, on(4, None), Status::Retrying),
            (ErrorKind::Internal, on(0, Some(5)), Status::Retrying),
            (ErrorKind::Internal, on(5, Some(5)), Status::DeadLettered),
        ];
        for (kind, delivery, want) in cases {
            assert_eq!(
                Delivery::failure_status(delivery, kind),
                want,
                "{kind:?} {delivery:?}"
            );
        }
    }
}
