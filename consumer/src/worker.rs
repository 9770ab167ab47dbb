//! The poll loop: receive as many messages as there are free slots, decide each one's fate,
//! and repeat until shutdown. [`Worker::try_process_one`] is one step, so tests can drive the
//! loop a step at a time.

use std::sync::Arc;
use std::time::Duration;

use common::backoff::Backoff;
use common::storage::{default_output, S3Object};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dispatch::{Dispatcher, Handover, Job};
use crate::event::{decode_message, single_upload_notification, Decoded, Filters, Upload};
use crate::in_flight::{Claim, InFlight};
use crate::queue::{Held, Inbox, QueueError, Received, UploadQueue, MAX_BATCH};
use common::queue::Settlement;

/// While no slot is free, the loop looks again at least this often.
const NO_CAPACITY_RECHECK: Duration = Duration::from_secs(5);
/// The longest a refused job waits in the consumer for a runner before its message goes back
/// to the queue (and that delivery counts toward the redrive limit).
pub const PARK_LIMIT: Duration = Duration::from_secs(15 * 60);
/// The visibility a waiting job's message is kept at, renewed every third of it.
const PARK_VISIBILITY: Duration = Duration::from_secs(60);

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No free slot: nothing was received.
    NoCapacity,
    /// The long poll ended with no message.
    Empty,
    /// This many messages were received and each was dealt with.
    Handled(usize),
    /// Shutdown came during the long poll.
    Stopped,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Deleted: nothing to do (a test event, an event that is not an upload, a skipped upload).
    Deleted,
    /// A transcoder or task owns it now.
    HandedOver,
    /// It carried several uploads: each went back to the queue as its own message.
    Split(usize),
    /// Refused or failed to dispatch for [`PARK_LIMIT`], or shutdown came while it waited:
    /// handed back.
    HandedBack,
    /// Not an S3 event: left alone, so the redrive policy moves it to the dead-letter queue.
    LeftForRedrive,
}

/// Where outputs go when the consumer names them.
#[derive(Debug, Clone)]
pub struct OutputRoot {
    /// OUTPUT_BUCKET.
    pub bucket: String,
    /// OUTPUT_PREFIX.
    pub prefix: String,
}

/// The consumer's loop.
pub struct Worker<D, Q = Inbox> {
    inbox: Q,
    dispatcher: D,
    filters: Filters,
    output: Option<OutputRoot>,
    wait: Duration,
    in_flight: Arc<InFlight>,
}

impl<D: Dispatcher, Q: UploadQueue> Worker<D, Q> {
    /// A worker taking messages from `inbox` to `dispatcher`, long-polling for `wait`.
    pub fn new(
        inbox: Q,
        dispatcher: D,
        filters: Filters,
        output: Option<OutputRoot>,
        wait: Duration,
        in_flight: Arc<InFlight>,
    ) -> Self {
        Self {
            inbox,
            dispatcher,
            filters,
            output,
            wait,
            in_flight,
        }
    }

    /// Runs until `shutdown`, then drains the dispatcher within `grace`.
    pub async fn run(&self, shutdown: CancellationToken, grace: Duration) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        while !shutdown.is_cancelled() {
            match self.try_process_one(&shutdown).await {
                Ok(Outcome::NoCapacity) => tokio::select! {
                    () = self.dispatcher.slots_changed(NO_CAPACITY_RECHECK) => {}
                    () = shutdown.cancelled() => {}
                },
                Ok(Outcome::Stopped) => {}
                Ok(Outcome::Empty | Outcome::Handled(_)) => {
                    if backoff.failures() > 0 {
                        tracing::info!(failures = backoff.failures(), "the queue answers again");
                    }
                    backoff.reset();
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::error!(%error, failures = backoff.failures(),
                        retry_in_ms = delay.as_millis() as u64, "cannot receive from the queue");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
        tracing::info!("stopped receiving");
        self.dispatcher.drain(grace).await;
        tracing::info!("consumer stopped");
    }

    /// One step: receive up to the free slots (at most 10) and deal with every message.
    /// Shutdown interrupts the long poll, never the handling of received messages.
    pub async fn try_process_one(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, QueueError> {
        let free = self.dispatcher.free_slots();
        if free == 0 {
            return Ok(Outcome::NoCapacity);
        }
        let received = tokio::select! {
            received = self.inbox.receive(free.min(MAX_BATCH), self.wait) => received?,
            () = shutdown.cancelled() => return Ok(Outcome::Stopped),
        };
        if received.is_empty() {
            return Ok(Outcome::Empty);
        }
        let count = received.len();
        futures::future::join_all(received.into_iter().map(|m| self.handle(m, shutdown))).await;
        Ok(Outcome::Handled(count))
    }

    /// Decides one message's fate.
    pub async fn handle(&self, received: Received, shutdown: &CancellationToken) -> Fate {
        let span = tracing::info_span!("message", message_id = %received.message.message_id,
            receive_count = received.message.receive_count);
        async {
            match decode_message(&received.body) {
                Err(error) => {
                    tracing::warn!(%error, "not an S3 upload notification; leaving it to the redrive policy");
                    Fate::LeftForRedrive
                }
                Ok(Decoded::TestEvent) => {
                    tracing::info!("s3:TestEvent; deleting it");
                    self.delete(&received).await
                }
                Ok(Decoded::Ignored { reason }) => {
                    tracing::info!(%reason, "not an upload; deleting it");
                    self.delete(&received).await
                }
                Ok(Decoded::Uploads(uploads)) => self.uploads(&received, uploads, shutdown).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn uploads(
        &self,
        received: &Received,
        uploads: Vec<Upload>,
        shutdown: &CancellationToken,
    ) -> Fate {
        let mut kept: Vec<Upload> = uploads
            .into_iter()
            .filter(|u| match self.filters.check(u) {
                Ok(()) => true,
                Err(why) => {
                    tracing::info!(bucket = %u.bucket, key = %u.key, %why, "upload skipped");
                    false
                }
            })
            .collect();
        match kept.len() {
            0 => self.delete(received).await,
            1 => self.dispatch(received, kept.remove(0), shutdown).await,
            n => self.split(received, &kept, n).await,
        }
    }

    /// One message per upload, so that each job owns a message of its own.
    async fn split(&self, received: &Received, uploads: &[Upload], n: usize) -> Fate {
        for upload in uploads {
            if let Err(error) = self.inbox.send(single_upload_notification(upload)).await {
                // Those already sent are duplicates when this one returns; the transcoder's
                // ETag check makes their second run a no-op.
                tracing::warn!(%error, "could not split the message; handing it back");
                self.inbox.hand_back(&received.message).await;
                return Fate::HandedBack;
            }
        }
        tracing::info!(uploads = n, "message split into one per upload");
        match self.delete(received).await {
            Fate::Deleted => Fate::Split(n),
            other => other,
        }
    }

    async fn dispatch(
        &self,
        received: &Received,
        upload: Upload,
        shutdown: &CancellationToken,
    ) -> Fate {
        let message_id = &received.message.message_id;
        let claim = self.in_flight.claim(
            &upload.bucket,
            &upload.key,
            upload.etag.as_deref(),
            message_id,
        );
        if let Claim::Duplicate { of } = claim {
            tracing::info!(bucket = %upload.bucket, key = %upload.key, running_message_id = %of,
                "a job for these very bytes is running; deleting this duplicate notification");
            return self.delete(received).await;
        }
        let output = self
            .output
            .as_ref()
            .map(|o| default_output(&upload.key, &o.bucket, &o.prefix));
        let source = S3Object {
            bucket: upload.bucket,
            key: upload.key,
        };
        // A new job id for each try: ECS takes it as RunTask's idempotency token, and would
        // answer a retry with the first try's failure.
        let job = || Job {
            job_id: uuid::Uuid::new_v4().to_string(),
            output: output.clone(),
            source: source.clone(),
            message: received.message.clone(),
        };
        let fate = match self.try_dispatch(job()).await {
            Some(fate) => fate,
            None => self.wait_for_a_runner(received, job, shutdown).await,
        };
        if fate != Fate::HandedOver {
            self.in_flight.release(message_id);
        }
        fate
    }

    /// One try: `Some(HandedOver)` when someone took the job, `None` when nobody could.
    async fn try_dispatch(&self, job: Job) -> Option<Fate> {
        let (job_id, source) = (job.job_id.clone(), job.source.to_string());
        match self.dispatcher.dispatch(job).await {
            Ok(Handover::Taken { by }) => {
                tracing::info!(%job_id, %source, %by, "job handed over");
                Some(Fate::HandedOver)
            }
            Ok(Handover::Busy) => {
                tracing::info!(%job_id, %source, "every transcoder is busy; the job waits here for one");
                None
            }
            Err(error) => {
                // It waits here to try again (`wait_for_a_runner`).
                tracing::warn!(%job_id, %source, %error, "could not hand the job over");
                None
            }
        }
    }

    /// A job nobody could take waits here, its message kept invisible, until a runner takes it:
    /// handing the message back would count a delivery toward the redrive limit for a refusal,
    /// and a pool busy for a minute would send good uploads to the dead-letter queue. After
    /// [`PARK_LIMIT`], or at shutdown, the message goes back to the queue.
    async fn wait_for_a_runner(
        &self,
        received: &Received,
        job: impl Fn() -> Job,
        shutdown: &CancellationToken,
    ) -> Fate {
        let held = self.inbox.hold(&received.message, PARK_VISIBILITY);
        let started = tokio::time::Instant::now();
        let mut pause = Backoff::new(Duration::from_secs(2), Duration::from_secs(30));
        while started.elapsed() < PARK_LIMIT {
            tokio::select! {
                () = async {
                    tokio::time::sleep(pause.next_delay()).await;
                    while self.dispatcher.free_slots() == 0 {
                        self.dispatcher.slots_changed(NO_CAPACITY_RECHECK).await;
                    }
                } => {}
                () = shutdown.cancelled() => break,
            }
            if let Some(fate) = self.try_dispatch(job()).await {
                // The runner owns the message now: stop extending it, without settling.
                drop(held);
                return fate;
            }
        }
        tracing::warn!(
            waited_s = started.elapsed().as_secs(),
            "no runner took the job; handing its message back"
        );
        if let Err(error) = held.settle(Settlement::HandBack).await {
            tracing::warn!(%error, "could not hand the message back; it returns when its visibility runs out");
        }
        Fate::HandedBack
    }

    async fn delete(&self, received: &Received) -> Fate {
        match self.inbox.delete(&received.message).await {
            Ok(()) => Fate::Deleted,
            Err(error) => {
                // It comes back and is judged the same way again: nothing is lost.
                tracing::warn!(%error, "could not delete the message");
                Fate::LeftForRedrive
            }
        }
    }
}
