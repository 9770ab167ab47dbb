//! Handing ranges to workers: one loop per worker takes the next range it may take (see
//! `queue`), encodes it here or on its peer, and reports the result to the coordinator, which
//! alone decides what a failure means (see `retry`). The one answer a loop handles itself is a
//! busy peer's: the range goes straight back for another worker, uncounted, as nothing went
//! wrong.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::coordinator::SplitJob;
use super::peers::{encode_remote, expand_peers, Peers, RangeFailure};
use super::queue::{Queue, Waiting, Worker};
use super::retry::Rest;
use super::stitch::RangeOutput;
use super::tasks::{encode_on_task, TaskRunners};
use super::worker::{encode_range, RangeJob};
use crate::input::SourceInput;
use crate::manifest::ErrorKind;
use crate::transcode::JobEvent;

/// A range's result, with who produced it and how long it took them (the benchmark reads it).
pub struct Report {
    /// The range as it was taken, with the workers it failed on before.
    pub entry: Waiting,
    /// Who encoded it.
    pub worker: Worker,
    /// Its segments, or why there are none.
    pub result: Result<RangeOutput, RangeFailure>,
    /// Wall-clock time from taking the range to its result.
    pub took: Duration,
}

/// This transcoder first, then one worker per peer address (see `expand_peers`), then the
/// range-task slots.
pub async fn workers(peers: &Peers, tasks: Option<&TaskRunners>) -> Vec<Worker> {
    let mut workers = vec![Worker::Local];
    workers.extend(
        expand_peers(&peers.endpoints)
            .await
            .into_iter()
            .map(Worker::Peer),
    );
    workers.extend((0..tasks.map_or(0, |t| t.count)).map(Worker::Task));
    workers
}

/// One worker's loop: take a range, encode it here or on its peer, report, repeat, resting
/// between ranges as `Rest` says; until the queue is finished or the coordinator stops
/// listening.
pub async fn work(
    job: &SplitJob<'_>,
    worker: Worker,
    queue: Arc<Queue>,
    report: mpsc::UnboundedSender<Report>,
) {
    let mut rest = Rest::default();
    loop {
        // Made before looking, so a wake-up between the look and the wait is not lost.
        let notified = queue.notified();
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
        let started = Instant::now();
        let result = match &worker {
            Worker::Local => encode_here(job, &range_job).await,
            Worker::Peer(url) => {
                let token = job.peers.auth_token.as_deref();
                encode_remote(url, token, &range_job, &job.liveness).await
            }
            Worker::Task(_) => match job.tasks {
                Some(tasks) => {
                    encode_on_task(tasks, job.dest.version(), &range_job, &job.liveness).await
                }
                None => Err(RangeFailure::Unavailable("no range tasks".into())),
            },
        };
        let succeeded = result.is_ok();
        if let Err(RangeFailure::Unavailable(why)) = &result {
            tracing::error!(%worker, error = %why, "this worker can take no range of the job");
            queue.put_back(entry);
            return;
        }
        if result == Err(RangeFailure::Busy) {
            queue.put_back(entry);
        } else if report
            .send(Report {
                entry,
                worker: worker.clone(),
                result,
                took: started.elapsed(),
            })
            .is_err()
        {
            return;
        }
        if let Some(pause) = rest.after(&worker, succeeded) {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Where range `index` is encoded on this transcoder.
pub fn range_folder(work_dir: &std::path::Path, index: u32) -> std::path::PathBuf {
    work_dir.join(format!("range-{index:05}"))
}

/// Encodes a range on this transcoder, in a folder of its own that is emptied after.
async fn encode_here(
    job: &SplitJob<'_>,
    range_job: &RangeJob,
) -> Result<RangeOutput, RangeFailure> {
    let dir = range_folder(job.work_dir, range_job.range.index);
    let moving = |_: JobEvent| job.liveness.beat();
    // The first range reads from the start, so it can read a source still downloading; the
    // others seek into it, and wait for the whole file.
    let streamed = range_job.range.index == 0
        && matches!(job.first_input, SourceInput::Streamed(_))
        && !job.first_stream_failed.load(Ordering::Relaxed);
    let input = if streamed {
        job.first_input.clone()
    } else {
        if let Err(error) = job.whole.clone().wait().await {
            return Err(RangeFailure::Failed(error.to_string()));
        }
        SourceInput::File(job.input.to_path_buf())
    };
    let result = encode_range(
        &input,
        &job.prepared.source,
        range_job,
        &dir,
        job.dest.version(),
        &moving,
    )
    .await;
    // Its segments are uploaded; the disk is for the next range. The first range's stays: the
    // coordinator's live publisher may still be reading it.
    if range_job.range.index != 0 {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    if let Err(error) = &result {
        if streamed && error.may_come_from_reading_a_stream() {
            // Not the source's verdict yet: it is tried again from the file.
            job.first_stream_failed.store(true, Ordering::Relaxed);
            return Err(RangeFailure::Failed(format!(
                "reading the source as a stream: {error}; the next try reads the file"
            )));
        }
    }
    result.map_err(|error| match error.kind() {
        ErrorKind::InvalidInput => RangeFailure::Invalid(error.to_string()),
        ErrorKind::Internal => RangeFailure::Failed(error.to_string()),
    })
}
