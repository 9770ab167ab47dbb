//! A cloud job that may own a queue message, and may be cancelled (the caller went away, or
//! the server is shutting down). The outcome decides the message's fate (docs/contract.md): deleted
//! when published or permanently failed, handed back otherwise.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cloud::{run_cloud_job, CloudDone, CloudJob, Delivery};
use super::{JobError, JobEvent};
use crate::liveness::Liveness;
use crate::manifest::{ErrorKind, Manifest, Status};
use crate::publish::{version_of, MANIFEST, MASTER_PLAYLIST};
use crate::queue::{Extend, LeaseEnd, MessageLease, QueueMessageRef, Settlement};
use crate::status::{Finish, FinishedJob, StatusReporter};
use crate::storage::{ObjectKind, OutputSink, OwnerError, S3Sink, S3Store};

/// How long a stopping job may spend withdrawing its master and recording the stop: shutdown
/// must stay prompt.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a job stopped after its switch began may take to finish publishing (a poster, a
/// master, a record and the clean-up of replaced versions).
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// How a job ended.
#[derive(Debug)]
pub enum JobOutcome {
    /// Published (or already published before). Boxed: the manifest is large beside the
    /// other variants.
    Done(Box<CloudDone>),
    /// Failed; the error says whether permanently.
    Failed(JobError),
    /// Stopped before it finished; its message (if any) was handed back.
    Cancelled,
}

impl JobOutcome {
    /// True when the job lost its message, or its prefix to another job (most often a later
    /// delivery of the same message, after this one was frozen): the upload is another
    /// delivery's now, to settle and to report.
    fn lost_ownership(&self) -> bool {
        matches!(
            self,
            JobOutcome::Failed(
                JobError::MessageLost { .. } | JobError::Owner(OwnerError::Lost { .. })
            )
        )
    }

    /// How the job ended for the status report (`status`), with its master at
    /// `master_playlist`; `None` when it is not this run's to report: stopped before it
    /// finished, or its upload another delivery's now, which will report.
    pub fn finish(&self, master_playlist: String) -> Option<Finish> {
        if self.lost_ownership() {
            return None;
        }
        match self {
            JobOutcome::Done(done) => Some(Finish::Done {
                master_playlist,
                already_done: done.already_done,
                source_etag: done.manifest.source.etag.clone(),
            }),
            JobOutcome::Cancelled => None,
            JobOutcome::Failed(error) => Some(Finish::Failed {
                kind: error.kind(),
                message: error.to_string(),
            }),
        }
    }
}

/// Sends `job`'s end to the outside as `reporter` is configured (status event, DELETE_SOURCE).
pub async fn report_end(reporter: &StatusReporter, job: &CloudJob, finish: Finish) {
    reporter
        .report(&FinishedJob {
            job_id: job.job_id.clone(),
            source: job.source.clone(),
            finish,
        })
        .await;
}

/// Runs `job`, owning `message` while it runs when there is one.
pub async fn run_owned_job(
    store: &S3Store,
    sqs: &aws_sdk_sqs::Client,
    job: &CloudJob,
    message: Option<QueueMessageRef>,
    visibility_extension: Duration,
    events: &(dyn Fn(JobEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> JobOutcome {
    let message_id = message.as_ref().map(|m| m.message_id.clone());
    // Every event is a sign of progress; the heartbeat extends the message only while they
    // keep coming (or the job waits for its prefix, or downloads).
    let liveness = Liveness::default();
    let moving = |event: JobEvent| {
        liveness.beat();
        events(event)
    };
    let lease = message.map(|m| {
        let extend = Extend::WhileMoving {
            liveness: liveness.clone(),
            stall: job.settings.stall,
        };
        MessageLease::start(sqs.clone(), m, visibility_extension, extend)
    });
    let ended = async {
        match &lease {
            Some(lease) => lease.ended().await,
            None => std::future::pending().await,
        }
    };
    let sink = store.sink(job.output.clone());
    let outcome_of = |result: Result<CloudDone, JobError>| match result {
        Ok(done) => JobOutcome::Done(Box::new(done)),
        Err(error) => JobOutcome::Failed(error),
    };
    let mut run = Box::pin(run_cloud_job(store, job, &liveness, &moving));
    enum First {
        Ended(JobOutcome),
        LeaseEnded(LeaseEnd),
        Stop,
    }
    let first = tokio::select! {
        result = &mut run => First::Ended(outcome_of(result)),
        end = ended => First::LeaseEnded(end),
        () = cancel.cancelled() => First::Stop,
    };
    // Dropping the job future kills its ffmpeg (kill_on_drop): done before anything slow.
    let outcome = match first {
        First::Ended(outcome) => outcome,
        // Stops at once and writes nothing more: the next delivery's job owns the upload.
        First::LeaseEnded(LeaseEnd::Lost) => {
            drop(run);
            JobOutcome::Failed(JobError::MessageLost {
                message_id: message_id.unwrap_or_default(),
            })
        }
        First::LeaseEnded(LeaseEnd::Stalled) => {
            drop(run);
            let error = JobError::Stalled {
                seconds: job.settings.stall.as_secs(),
            };
            let status = Delivery::failure_status(job.delivery, error.kind());
            let (kind, message) = (error.kind(), error.to_string());
            stop(&sink, job, |record| {
                record.ended_with(status, kind, message)
            })
            .await;
            JobOutcome::Failed(error)
        }
        // Past the switch a stop lets the job finish publishing (see `Liveness`).
        First::Stop if liveness.is_publishing() => {
            match tokio::time::timeout(FINISH_TIMEOUT, &mut run).await {
                Ok(result) => outcome_of(result),
                Err(_) => {
                    drop(run);
                    stop(&sink, job, Manifest::cancelled).await;
                    JobOutcome::Cancelled
                }
            }
        }
        First::Stop => {
            drop(run);
            stop(&sink, job, Manifest::cancelled).await;
            JobOutcome::Cancelled
        }
    };
    // A job whose upload is another delivery's now leaves the message alone: settling it
    // with this delivery's receipt would disturb the delivery that has it. If it is still this
    // one's, it comes back when the visibility last set runs out.
    if let Some(lease) = lease.filter(|_| !outcome.lost_ownership()) {
        let how = match &outcome {
            JobOutcome::Done(_) => Settlement::Delete,
            JobOutcome::Failed(e) if e.kind() == ErrorKind::InvalidInput => Settlement::Delete,
            JobOutcome::Failed(_) | JobOutcome::Cancelled => Settlement::HandBack,
        };
        if let Err(error) = lease.settle(how).await {
            // Deleting failed: the message comes back and the ETag check makes the next
            // delivery a no-op. Handing back failed: it comes back when its visibility ends.
            tracing::error!(%error, "could not settle the queue message");
        }
    }
    match &outcome {
        JobOutcome::Done(done) => tracing::info!(already_done = done.already_done, "job done"),
        JobOutcome::Failed(e) => tracing::warn!(kind = ?e.kind(), error = %e, "job failed"),
        JobOutcome::Cancelled => tracing::warn!("job cancelled"),
    }
    outcome
}

/// After a job was stopped from outside: takes back its early master and turns its own
/// `processing` record into `ending`'s, within [`WITHDRAW_TIMEOUT`] (S3 may be what hangs).
async fn stop(sink: &S3Sink, job: &CloudJob, ending: impl FnOnce(Manifest) -> Manifest) {
    let stopping = async {
        withdraw_master(sink, &job.version).await;
        record_stop(sink, &job.job_id, ending).await;
    };
    if tokio::time::timeout(WITHDRAW_TIMEOUT, stopping)
        .await
        .is_err()
    {
        tracing::warn!("could not withdraw the master or record the stop in time");
    }
}

/// A job stopped midway may have published an early master whose EVENT playlists will never
/// end: remove it so that no new viewer starts a stream that stops. Its version's own, and
/// the stable one only while that serves this version (nothing else was out when it began):
/// a published video stays published.
async fn withdraw_master(root: &S3Sink, version: &str) {
    let ours = match root.get_bytes(MASTER_PLAYLIST).await {
        Ok(Some(master)) => version_of(&master).as_deref() == Some(version),
        _ => false,
    };
    if ours && root.delete(MASTER_PLAYLIST).await.is_err() {
        tracing::warn!("could not withdraw the early master playlist of a stopped job");
    }
    if root.folder(version).delete(MASTER_PLAYLIST).await.is_err() {
        tracing::warn!("could not withdraw the stopped version's master playlist");
    }
}

/// Turns this job's `processing` record into `cancelled`, so that a stopped job's record never
/// says it is still running. Only our own record: a job stopped before it wrote one leaves
/// the prefix's record (an earlier job's) as it is.
async fn record_stop(sink: &S3Sink, job_id: &str, ending: impl FnOnce(Manifest) -> Manifest) {
    let ours = match sink.get_bytes(MANIFEST).await {
        Ok(Some(bytes)) => serde_json::from_slice::<Manifest>(&bytes)
            .ok()
            .filter(|m| m.job_id == job_id && m.status == Status::Processing),
        _ => None,
    };
    if let Some(record) = ours {
        if sink
            .put_bytes(MANIFEST, ending(record).to_json(), ObjectKind::Json)
            .await
            .is_err()
        {
            tracing::warn!("could not record that the job was stopped");
        }
    }
}
