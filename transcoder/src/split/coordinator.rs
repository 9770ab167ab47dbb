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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::command::poster_args;
use super::dispatch::{self, Report};
use super::master::{master_playlist, renditions, rung_playlist};
use super::peers::Peers;
use super::plan::Range;
use super::progress::{job_progress, range_seconds};
use super::queue::Queue;
use super::retry::{split_error, AfterFailure, Attempts};
use super::stitch::{joined_playlist, RangeOutput};
use super::worker::RangeJob;
use crate::encode::{run_encoder, POSTER};
use crate::job::{JobError, JobEvent, Prepared, Transcoded};
use crate::manifest::Manifest;
use crate::probe::file_url;
use crate::publish::{announce_playable, retract, with_retries, Destination, MASTER_PLAYLIST};
use crate::storage::{ObjectKind, OutputSink, S3Sink};

/// What a split job needs.
pub struct SplitJob<'a> {
    /// Where outputs go: the version folder, and the prefix's stable names. Peers write into
    /// the version folder too (the template's `output`).
    pub dest: &'a Destination<S3Sink>,
    /// The source, downloaded.
    pub input: &'a Path,
    /// A folder for this transcoder's ranges and the poster.
    pub work_dir: &'a Path,
    /// The probed source and its ladder.
    pub prepared: &'a Prepared,
    /// A template for every range (its `range` is replaced).
    pub template: RangeJob,
    /// The peers.
    pub peers: &'a Peers,
    /// The ranges, in order from 0.
    pub ranges: Vec<Range>,
}

/// Runs a split job and publishes its outputs as its ranges land.
pub struct Coordinator<'a> {
    job: SplitJob<'a>,
    published: Published,
}

/// What has been published so far.
struct Published {
    record: Manifest,
    /// Finished ranges by index.
    done: BTreeMap<u32, RangeOutput>,
    /// Ranges from the first that are in the EVENT playlists.
    leading: usize,
    /// Object names this job published, for `retract`.
    objects: Vec<String>,
}

impl<'a> Coordinator<'a> {
    /// A coordinator for `job`, updating `record` once the stream is playable.
    pub fn new(job: SplitJob<'a>, record: Manifest) -> Self {
        Self {
            job,
            published: Published {
                record,
                done: BTreeMap::new(),
                leading: 0,
                objects: Vec::new(),
            },
        }
    }

    /// The record as last written.
    pub fn record(&self) -> &Manifest {
        &self.published.record
    }

    /// Runs every range and publishes the joined stream, master last.
    pub async fn run(
        &mut self,
        events: &(dyn Fn(JobEvent) + Send + Sync),
    ) -> Result<Transcoded, JobError> {
        let job = &self.job;
        let published = &mut self.published;
        let workers = dispatch::workers(job.peers).await;
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
            };
            let Some(Report {
                entry,
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
            match result {
                Ok(output) => {
                    tracing::info!(
                        range = index,
                        %worker,
                        media_s = range_seconds(&entry.range, source_s),
                        wall_s = took.as_secs_f64(),
                        "range done"
                    );
                    published.add(output);
                    let done = published.done.keys().map(|i| &job.ranges[*i as usize]);
                    events(JobEvent::Progress(job_progress(done, source_s)));
                    if let Err(error) = published.grow(job, events).await {
                        break Err(error);
                    }
                    if published.done.len() == job.ranges.len() {
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
                            let mut entry = entry;
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
        let names: Vec<&String> = self.published.objects.iter().collect();
        retract(self.job.dest, &names).await;
    }
}

/// The poster, from the source at a tenth of its length, as a single pass picks it.
async fn make_poster(job: &SplitJob<'_>) -> Result<(), JobError> {
    let args = poster_args(&file_url(job.input), job.prepared, &job.template.settings);
    run_encoder(&job.template.settings, &args, job.work_dir, 1.0, |_| {}).await?;
    Ok(())
}

impl Published {
    fn add(&mut self, output: RangeOutput) {
        for rung in &output.rungs {
            for segment in &rung.segments {
                self.objects.push(format!("{}/{}", rung.name, segment.uri));
            }
        }
        self.done.insert(output.index, output);
    }

    /// The finished ranges from the first, in order.
    fn leading_ranges(&self) -> Vec<RangeOutput> {
        (0..).map_while(|i| self.done.get(&i).cloned()).collect()
    }

    /// Grows the EVENT playlists to the finished ranges from the first; with the first range,
    /// publishes the master.
    async fn grow(
        &mut self,
        job: &SplitJob<'_>,
        events: &(dyn Fn(JobEvent) + Send + Sync),
    ) -> Result<(), JobError> {
        let leading = self.leading_ranges();
        if leading.len() <= self.leading || leading.len() == job.ranges.len() {
            // Nothing new, or everything: the VOD playlists come in `finish`.
            return Ok(());
        }
        for rung in &job.prepared.ladder {
            self.put(
                job,
                &rung_playlist(&rung.name),
                joined_playlist(&leading, &rung.name, false),
            )
            .await?;
        }
        if self.leading == 0 {
            let master = master_playlist(job.prepared, &leading, None).into_bytes();
            announce_playable(job.dest, master, &mut self.record, events).await?;
            self.objects.push(MASTER_PLAYLIST.to_string());
        }
        self.leading = leading.len();
        Ok(())
    }

    /// Every range is in: VOD playlists, the poster, then the measured master.
    async fn finish(&mut self, job: &SplitJob<'_>) -> Result<Transcoded, JobError> {
        let all = self.leading_ranges();
        for rung in &job.prepared.ladder {
            self.put(
                job,
                &rung_playlist(&rung.name),
                joined_playlist(&all, &rung.name, true),
            )
            .await?;
        }
        let poster = job.work_dir.join(POSTER);
        with_retries(POSTER, || {
            job.dest
                .version()
                .put_file(POSTER, &poster, ObjectKind::Image)
        })
        .await?;
        self.objects.push(POSTER.to_string());
        let renditions = renditions(job.prepared, &all);
        let master = master_playlist(job.prepared, &all, Some(&renditions));
        self.put(job, MASTER_PLAYLIST, master.clone().into_bytes())
            .await?;
        Ok(Transcoded {
            source: job.prepared.source.clone(),
            fps: job.prepared.fps,
            renditions,
            master,
        })
    }

    async fn put(&mut self, job: &SplitJob<'_>, name: &str, body: Vec<u8>) -> Result<(), JobError> {
        with_retries(name, || {
            job.dest
                .version()
                .put_bytes(name, body.clone(), ObjectKind::Playlist)
        })
        .await?;
        self.objects.push(name.to_string());
        Ok(())
    }
}
