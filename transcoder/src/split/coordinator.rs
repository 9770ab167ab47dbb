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

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use super::command::poster_args;
use super::peers::{encode_remote, expand_peers, Peers, RangeFailure};
use super::plan::Range;
use super::stitch::{joined_playlist, joined_stats, RangeOutput};
use super::worker::{encode_range, RangeJob};
use crate::encode::{run_encoder, Progress, MEDIA_PLAYLIST, POSTER};
use crate::hls::{self, Variant};
use crate::job::{JobError, JobEvent, Prepared, Rendition, Transcoded};
use crate::manifest::{ErrorKind, Manifest};
use crate::probe::file_url;
use crate::publish::{
    announce_playable, estimated_bandwidth, retract, with_retries, Destination, MASTER_PLAYLIST,
};
use crate::storage::{ObjectKind, OutputSink, S3Sink};

/// Tries per range before the job fails: a range failing this often is not a worker's bad
/// luck.
const RANGE_ATTEMPTS: u32 = 3;
/// How long a busy or failing peer first rests before it takes a range again.
const PEER_PAUSE: Duration = Duration::from_secs(2);
/// The longest rest, for a peer that keeps failing.
const PEER_PAUSE_MAX: Duration = Duration::from_secs(30);

/// Who encodes a range.
#[derive(Debug, Clone, PartialEq)]
enum Worker {
    /// This transcoder.
    Local,
    /// A peer, by URL.
    Peer(String),
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => write!(f, "local"),
            Self::Peer(url) => write!(f, "{url}"),
        }
    }
}

/// A range waiting for a worker, with the workers it already failed on.
struct Waiting {
    range: Range,
    failed_on: Vec<Worker>,
}

/// Ranges not yet taken, shared by the workers.
struct Queue {
    waiting: Mutex<VecDeque<Waiting>>,
    more: Notify,
    finished: std::sync::atomic::AtomicBool,
    workers: usize,
}

impl Queue {
    fn new(ranges: &[Range], workers: usize) -> Self {
        let waiting = ranges
            .iter()
            .map(|&range| Waiting {
                range,
                failed_on: Vec::new(),
            })
            .collect();
        Self {
            waiting: Mutex::new(waiting),
            more: Notify::new(),
            finished: false.into(),
            workers,
        }
    }

    /// The earliest range `worker` has not failed yet (any, once every worker has).
    fn take(&self, worker: &Worker) -> Option<Waiting> {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        let at = waiting
            .iter()
            .position(|w| !w.failed_on.contains(worker) || w.failed_on.len() >= self.workers)?;
        waiting.remove(at)
    }

    fn put_back(&self, entry: Waiting) {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        // In order, so the earliest range (the one the stream waits for) goes out first.
        let at = waiting.partition_point(|w| w.range.index < entry.range.index);
        waiting.insert(at, entry);
        drop(waiting);
        self.more.notify_waiters();
    }

    fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.more.notify_waiters();
    }

    fn is_finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }
}

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

impl SplitJob<'_> {
    fn range_seconds(&self, index: u32) -> f64 {
        let range = &self.ranges[index as usize];
        let end = range
            .end_s
            .map_or(self.prepared.source.duration_s, f64::from);
        end - f64::from(range.start_s)
    }
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

/// A range's result, with who produced it and how long it took them (the benchmark reads it).
type Report = (Waiting, Worker, Result<RangeOutput, RangeFailure>, Duration);

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
        let mut workers = vec![Worker::Local];
        workers.extend(
            expand_peers(&job.peers.endpoints)
                .await
                .into_iter()
                .map(Worker::Peer),
        );
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
                .map(|w| work(job, w, queue.clone(), tx.clone())),
        );
        drop(tx);
        tokio::pin!(work);
        // The poster is one frame: made beside the ranges, awaited at the end.
        let poster = make_poster(job);
        tokio::pin!(poster);
        let mut poster_made = None;

        let mut attempts: BTreeMap<u32, u32> = BTreeMap::new();
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
            let Some((entry, worker, result, took)) = message else {
                break Err(split_error(
                    "every worker stopped before the job was done",
                    false,
                ));
            };
            match result {
                Ok(output) => {
                    tracing::info!(
                        range = entry.range.index,
                        %worker,
                        media_s = job.range_seconds(entry.range.index),
                        wall_s = took.as_secs_f64(),
                        "range done"
                    );
                    published.add(output);
                    let seconds: f64 = published.done.keys().map(|i| job.range_seconds(*i)).sum();
                    events(JobEvent::Progress(progress(
                        seconds / job.prepared.source.duration_s.max(0.001),
                    )));
                    if let Err(error) = published.grow(job, events).await {
                        break Err(error);
                    }
                    if published.done.len() == job.ranges.len() {
                        break Ok(());
                    }
                }
                Err(RangeFailure::Invalid(message)) => break Err(split_error(&message, true)),
                Err(failure) => {
                    let index = entry.range.index;
                    let tries = attempts.entry(index).or_insert(0);
                    *tries += 1;
                    tracing::warn!(range = index, %worker, attempt = *tries, error = %failure, "range failed");
                    if *tries >= RANGE_ATTEMPTS {
                        break Err(split_error(
                            &format!(
                                "range {index} failed {RANGE_ATTEMPTS} times; last: {failure}"
                            ),
                            false,
                        ));
                    }
                    let mut entry = entry;
                    entry.failed_on.push(worker);
                    queue.put_back(entry);
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

/// One worker's loop: take a range, encode it here or on its peer, report, repeat. A peer
/// that is busy or failing rests, longer each time in a row, so a dead one does not keep
/// taking ranges from the living.
async fn work(
    job: &SplitJob<'_>,
    worker: Worker,
    queue: Arc<Queue>,
    report: mpsc::UnboundedSender<Report>,
) {
    let mut pause = PEER_PAUSE;
    loop {
        // Made before looking, so a wake-up between the look and the wait is not lost.
        let notified = queue.more.notified();
        if queue.is_finished() {
            return;
        }
        let Some(entry) = queue.take(&worker) else {
            // Nothing for this worker now; a failed range may come back.
            notified.await;
            continue;
        };
        let mut range_job = job.template.clone();
        range_job.range = entry.range;
        let started = std::time::Instant::now();
        let result = match &worker {
            Worker::Local => encode_here(job, &range_job).await,
            Worker::Peer(url) => {
                encode_remote(url, job.peers.auth_token.as_deref(), &range_job).await
            }
        };
        let ok = result.is_ok();
        if result == Err(RangeFailure::Busy) {
            queue.put_back(entry);
        } else if report
            .send((entry, worker.clone(), result, started.elapsed()))
            .is_err()
        {
            return;
        }
        if ok || worker == Worker::Local {
            pause = PEER_PAUSE;
        } else {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(PEER_PAUSE_MAX);
        }
    }
}

async fn encode_here(
    job: &SplitJob<'_>,
    range_job: &RangeJob,
) -> Result<RangeOutput, RangeFailure> {
    let dir = job
        .work_dir
        .join(format!("range-{:05}", range_job.range.index));
    let quiet = |_: JobEvent| {};
    let result = encode_range(
        job.input,
        &job.prepared.source,
        range_job,
        &dir,
        job.dest.version(),
        &quiet,
    )
    .await;
    // Its segments are uploaded; the disk is for the next range.
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result.map_err(|error| match error.kind() {
        ErrorKind::InvalidInput => RangeFailure::Invalid(error.to_string()),
        ErrorKind::Internal => RangeFailure::Failed(error.to_string()),
    })
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
            let name = format!("{}/{MEDIA_PLAYLIST}", rung.name);
            self.put(job, &name, joined_playlist(&leading, &rung.name, false))
                .await?;
        }
        if self.leading == 0 {
            let master = master(job, &leading, None).into_bytes();
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
            let name = format!("{}/{MEDIA_PLAYLIST}", rung.name);
            self.put(job, &name, joined_playlist(&all, &rung.name, true))
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
        let renditions: Vec<Rendition> = job
            .prepared
            .ladder
            .iter()
            .map(|rung| Rendition {
                rung: rung.clone(),
                stats: joined_stats(&all, &rung.name),
                codecs: codecs_of(&all, &rung.name),
                playlist: format!("{}/{MEDIA_PLAYLIST}", rung.name),
            })
            .collect();
        let master = master(job, &all, Some(&renditions));
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

/// The master: measured bandwidths when `measured` is given, estimates from the caps
/// otherwise.
fn master(job: &SplitJob<'_>, ranges: &[RangeOutput], measured: Option<&[Rendition]>) -> String {
    let has_audio = job.prepared.source.audio.is_some();
    let variants: Vec<Variant> = job
        .prepared
        .ladder
        .iter()
        .enumerate()
        .map(|(i, rung)| {
            let (bandwidth, average) = match measured {
                Some(r) => (r[i].stats.peak_bps, r[i].stats.average_bps),
                None => {
                    let estimate = estimated_bandwidth(rung, has_audio);
                    (estimate, estimate)
                }
            };
            Variant {
                uri: format!("{}/{MEDIA_PLAYLIST}", rung.name),
                bandwidth,
                average_bandwidth: average,
                width: rung.width,
                height: rung.height,
                codecs: codecs_of(ranges, &rung.name),
                frame_rate: job.prepared.fps.as_f64(),
            }
        })
        .collect();
    hls::render_master(&variants)
}

/// The codecs of rung `name`, as its first range's segments carry them.
fn codecs_of(ranges: &[RangeOutput], name: &str) -> String {
    ranges
        .first()
        .and_then(|r| r.rungs.iter().find(|rung| rung.name == name))
        .map(|rung| rung.codecs.clone())
        .unwrap_or_default()
}

/// The whole job's progress when `fraction` of the source is encoded.
fn progress(fraction: f64) -> Progress {
    Progress {
        percent: (fraction * 100.0).clamp(0.0, 100.0),
        out_time_s: 0.0,
        frame: 0,
        fps: None,
        speed: None,
        eta_s: None,
        finished: fraction >= 1.0,
    }
}

fn split_error(message: &str, invalid_input: bool) -> JobError {
    JobError::Split {
        message: message.to_string(),
        invalid_input,
    }
}
