//! Running a long job as ranges across this transcoder and its peers, and publishing the
//! joined stream as the ranges land.
//!
//! Ranges wait in one queue, in order. This transcoder takes the first (short) one itself, so
//! that the stream is playable soon; every peer takes the next free range. A peer that is busy
//! puts its range back; a range that fails goes back for another worker, up to
//! `RANGE_ATTEMPTS` times; a source that cannot be decoded fails the job at once. Whenever the
//! finished ranges from the first one grow, the EVENT playlists grow; with the first range the
//! master is published. The job is done only when every range is, and a job that fails takes
//! back what it published, so a lost range never leaves a broken stream behind.
//!
//! This file only joins the pieces: `queue` says who takes which range, `dispatch` runs the
//! workers, `retry` says what a failure means, `progress` what the job's progress is, and
//! `published` writes what `landed` and `master` say the stream is.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::command::{poster_args, trickplay_args};
use super::dispatch::{self, range_folder, Report};
use super::master::range_folders;
use super::peers::{Peers, RangeFailure};
use super::plan::Range;
use super::progress::{job_progress, range_seconds};
use super::published::Published;
use super::queue::Queue;
use super::retry::{split_error, AfterFailure, Attempts};
use super::stitch::RangeOutput;
use super::tasks::TaskRunners;
use super::worker::RangeJob;

use crate::encode::{run_encoder, TRICKPLAY_FOLDER};
use crate::input::{file_url, Downloaded, SourceInput};
use crate::liveness::Liveness;
use crate::manifest::Manifest;
use crate::publish::{Destination, LivePublisher};
use crate::storage::S3Sink;
use crate::transcode::{JobError, JobEvent, Prepared, Transcoded};

/// What a split job needs.
pub struct SplitJob<'a> {
    /// Where outputs go: the version folder, and the prefix's stable names. Peers write into
    /// the version folder too (the template's `output`).
    pub dest: &'a Destination<S3Sink>,
    /// The source, downloaded.
    pub input: &'a Path,
    /// What the first range reads: the source as a stream while it downloads, or the file.
    pub first_input: SourceInput,
    /// Set when the first range failed reading the stream: a retry reads the file, as a single
    /// pass does (an MP4 whose layout defeats reading in order is slower, never failed).
    pub first_stream_failed: AtomicBool,
    /// The whole file, which every other range and the poster wait for (they seek).
    pub whole: Downloaded,
    /// A folder for this transcoder's ranges and the poster.
    pub work_dir: &'a Path,
    /// The probed source and its ladder.
    pub prepared: &'a Prepared,
    /// A template for every range (its `range` is replaced).
    pub template: RangeJob,
    /// The peers.
    pub peers: &'a Peers,
    /// Range tasks, when configured.
    pub tasks: Option<&'a TaskRunners>,
    /// Beaten whenever a range shows progress (its encode here, a peer's progress, a task
    /// still running): the job moves while its ranges do, though its own progress moves only
    /// when one lands, and its message is held that long.
    pub liveness: Liveness,
    /// The ranges, in order from 0.
    pub ranges: Vec<Range>,
}

/// Runs a split job and publishes its outputs as its ranges land.
pub struct Coordinator<'a> {
    job: SplitJob<'a>,
    published: Published,
}

impl<'a> Coordinator<'a> {
    /// A coordinator for `job`, updating `record` once the stream is playable.
    pub fn new(job: SplitJob<'a>, record: Manifest) -> Self {
        Self {
            job,
            published: Published::new(record),
        }
    }

    /// The record as last written.
    pub fn record(&self) -> &Manifest {
        self.published.record()
    }

    /// Runs every range and publishes the joined stream, master last.
    pub async fn run(
        &mut self,
        events: &(dyn Fn(JobEvent) + Send + Sync),
    ) -> Result<Transcoded, JobError> {
        let job = &self.job;
        let published = &mut self.published;
        let workers = dispatch::workers(job.peers, job.tasks).await;
        let queue = Arc::new(Queue::new(&job.ranges, workers.len()));
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        tracing::info!(
            ranges = job.ranges.len(),
            workers = workers.len(),
            "splitting the job"
        );
        let work = futures::future::join_all(
            workers
                .into_iter()
                .map(|w| dispatch::work(job, w, queue.clone(), tx.clone())),
        );
        drop(tx);
        tokio::pin!(work);
        // The poster is one frame: made beside the ranges, awaited at the end.
        let poster = make_poster(job);
        tokio::pin!(poster);
        let mut poster_made = None;
        // The first range, encoded here, is published as it grows, as a single pass is: the
        // stream is playable after its first segments, not after the whole range.
        let stop_live = CancellationToken::new();
        let watching = {
            let mut live = LivePublisher::new(
                job.dest.clone(),
                range_folder(job.work_dir, 0),
                job.prepared,
                &job.template.settings,
                published.record().clone(),
            );
            let stop = stop_live.clone();
            async move {
                let result = live.watch(events, &stop).await;
                (live, result)
            }
        };
        tokio::pin!(watching);
        let mut live_done = false;

        let source_s = job.prepared.source.duration_s;
        let mut attempts = Attempts::default();
        let outcome = loop {
            let message = tokio::select! {
                message = rx.recv() => message,
                made = &mut poster, if poster_made.is_none() => {
                    poster_made = Some(made);
                    continue;
                }
                // Workers stop only once the queue is finished; this keeps them polled.
                _ = &mut work => None,
                // It returns by itself only on a failed upload (stopping, it is awaited below).
                (live, Err(error)) = &mut watching, if !live_done => {
                    live_done = true;
                    published.adopt(&live);
                    break Err(error);
                }
            };
            let Some(Report {
                mut entry,
                worker,
                result,
                took,
            }) = message
            else {
                break Err(split_error(
                    "every worker stopped before the job was done",
                    false,
                ));
            };
            let index = entry.range.index;
            let result = result.and_then(|output| with_every_folder(job, output));
            match result {
                Ok(output) => {
                    if index == 0 && !live_done {
                        // Its playlists are the joined stream's from now on.
                        stop_live.cancel();
                        let (live, result) = (&mut watching).await;
                        live_done = true;
                        published.adopt(&live);
                        if let Err(error) = result {
                            break Err(error);
                        }
                    }
                    tracing::info!(
                        range = index,
                        %worker,
                        media_s = range_seconds(&entry.range, source_s),
                        wall_s = took.as_secs_f64(),
                        "range done"
                    );
                    published.add(output);
                    let done = published.landed().indexes();
                    let done = done.map(|i| &job.ranges[i as usize]);
                    events(JobEvent::Progress(job_progress(done, source_s)));
                    if let Err(error) = published.grow(job, events).await {
                        break Err(error);
                    }
                    if published.landed().count() == job.ranges.len() {
                        break Ok(());
                    }
                }
                Err(failure) => {
                    let next = attempts.after_failure(index, &failure);
                    if let Some(attempt) = next.attempt() {
                        tracing::warn!(range = index, %worker, attempt, error = %failure, "range failed");
                    }
                    match next {
                        AfterFailure::TryElsewhere { .. } => {
                            entry.failed_on.push(worker);
                            queue.put_back(entry);
                        }
                        AfterFailure::Invalid(error) | AfterFailure::GiveUp { error, .. } => {
                            break Err(error)
                        }
                    }
                }
            }
        };
        queue.finish();
        if !live_done {
            // A job that failed first takes back what the live publisher put out too.
            stop_live.cancel();
            let (live, _) = (&mut watching).await;
            published.adopt(&live);
        }
        outcome?;
        match poster_made {
            Some(made) => made?,
            None => poster.await?,
        }
        published.finish(job).await
    }

    /// After a failure: removes what this job published (see `publish::retract`), so a lost
    /// range never leaves a broken stream.
    pub async fn retract(&self) {
        self.published.retract(&self.job).await;
    }
}

/// `output` when it has every folder the job's ranges write (a peer that probed the source
/// otherwise, or wrote another format, would leave holes in the joined stream).
fn with_every_folder(job: &SplitJob<'_>, output: RangeOutput) -> Result<RangeOutput, RangeFailure> {
    let (prepared, segments) = (job.prepared, job.template.settings.segments);
    let want = range_folders(&prepared.ladder, &prepared.source, segments);
    let got: Vec<&str> = output.rungs.iter().map(|r| r.name.as_str()).collect();
    if got == want {
        Ok(output)
    } else {
        Err(RangeFailure::Failed(format!(
            "range {} came back with folders {got:?}, not {want:?}",
            output.index
        )))
    }
}

/// The poster, from the source at a tenth of its length, as a single pass picks it; then the
/// seek preview's sprites from the source's keyframes.
async fn make_poster(job: &SplitJob<'_>) -> Result<(), JobError> {
    job.whole
        .clone()
        .wait()
        .await
        .map_err(JobError::output(job.input))?;
    let settings = &job.template.settings;
    let args = poster_args(&file_url(job.input), job.prepared, settings);
    run_encoder(settings, &args, job.work_dir, None, 1.0, |_| {}).await?;
    let sprites = job.work_dir.join(TRICKPLAY_FOLDER);
    tokio::fs::create_dir_all(&sprites)
        .await
        .map_err(JobError::output(&sprites))?;
    let args = trickplay_args(&file_url(job.input), job.prepared, settings);
    let duration_s = job.prepared.source.duration_s;
    run_encoder(settings, &args, job.work_dir, None, duration_s, |_| {}).await?;
    Ok(())
}
