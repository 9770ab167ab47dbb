//! The `Transcoder` service: one job per call, up to a fixed number at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::v1::transcoder_server::Transcoder;
use proto::v1::{self, transcode_event::Event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use super::capacity::{Capacity, Taken};
use crate::aws::Aws;
use crate::config::{EncodeSettings, Limits, X264_PRESETS};
use crate::job::{
    report_end, run_owned_job, CloudJob, JobEvent, JobOutcome, MANIFEST, MASTER_PLAYLIST,
};
use crate::ladder::RUNG_SIZES;
use crate::manifest::ErrorKind;
use crate::queue::QueueMessageRef;
use crate::rpc::convert;
use crate::split::{self, SplitSettings};
use crate::status::{StatusConfig, StatusReporter};
use crate::storage::{default_output, S3Object, S3Prefix};

/// Events buffered per call; progress beyond this is dropped for a slow reader, never queued.
pub(super) const EVENT_BUFFER: usize = 64;
/// Slots progress never takes, so the few stage changes of a job always fit.
const RESERVED_FOR_STAGES: usize = 8;

/// What every job on this server shares.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Default encoding; requests may override the preset, CRF and rungs.
    pub settings: EncodeSettings,
    /// What to refuse.
    pub limits: Limits,
    /// Jobs run at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_jobs: usize,
    /// Default output bucket (`OUTPUT_BUCKET`), for requests that name no output.
    pub output_bucket: Option<String>,
    /// Default output prefix (`OUTPUT_PREFIX`).
    pub output_prefix: String,
    /// How long each heartbeat keeps an owned message invisible.
    pub visibility_extension: Duration,
    /// The queue's redrive `maxReceiveCount`, when known.
    pub max_receive_count: Option<u32>,
    /// Where work folders are made.
    pub work_root: Option<PathBuf>,
    /// When to split long jobs across peers.
    pub split: SplitSettings,
    /// How long replaced versions are kept.
    pub keep_replaced: std::time::Duration,
    /// How jobs hold their output prefix.
    pub lease: crate::storage::LeaseSettings,
}

/// The service.
#[derive(Clone)]
pub struct TranscoderService {
    pub(super) aws: Aws,
    pub(super) config: Arc<ServiceConfig>,
    pub(super) capacity: Capacity,
    /// Cancelled when a drain runs out of time: every running job stops and hands back.
    pub(super) stop_jobs: CancellationToken,
    pub(super) jobs: TaskTracker,
}

impl TranscoderService {
    /// A service running jobs with `aws`.
    pub fn new(
        aws: Aws,
        config: ServiceConfig,
        stop_jobs: CancellationToken,
        jobs: TaskTracker,
    ) -> Self {
        Self {
            aws,
            capacity: Capacity::new(config.max_jobs),
            config: Arc::new(config),
            stop_jobs,
            jobs,
        }
    }

    /// Refuses calls once shutdown has begun.
    fn check_open(&self) -> Result<(), Status> {
        if self.stop_jobs.is_cancelled() || self.jobs.is_closed() {
            return Err(Status::unavailable("shutting down"));
        }
        Ok(())
    }

    /// One of the `max_jobs` slots (a range takes one like a job), or RESOURCE_EXHAUSTED so
    /// that the caller tries elsewhere.
    fn take_slot(&self) -> Result<Taken, Status> {
        self.capacity.take()
    }

    /// Turns a request into a job, or says what is wrong with it.
    fn job_from(
        &self,
        request: v1::TranscodeRequest,
    ) -> Result<(CloudJob, Option<QueueMessageRef>, StatusConfig), Status> {
        let source = request
            .source
            .ok_or_else(|| Status::invalid_argument("source is required"))?;
        if source.bucket.is_empty() || source.key.is_empty() {
            return Err(Status::invalid_argument("source needs a bucket and a key"));
        }
        let output = match request.output {
            Some(out) if !out.bucket.is_empty() => S3Prefix::new(&out.bucket, &out.prefix),
            _ => {
                let bucket = self.config.output_bucket.as_deref().ok_or_else(|| {
                    Status::invalid_argument("no output given and the server has no OUTPUT_BUCKET")
                })?;
                default_output(&source.key, bucket, &self.config.output_prefix)
            }
        };
        let mut settings = self.config.settings.clone();
        if let Some(o) = request.overrides {
            if !o.preset.is_empty() {
                if !X264_PRESETS.contains(&o.preset.as_str()) {
                    return Err(Status::invalid_argument(format!(
                        "unknown preset {:?}",
                        o.preset
                    )));
                }
                settings.preset = o.preset;
            }
            if let Some(crf) = o.crf {
                settings.crf = u8::try_from(crf)
                    .ok()
                    .filter(|c| *c <= 51)
                    .ok_or_else(|| Status::invalid_argument("crf must be 0 to 51"))?;
            }
            if let Some(bad) = o.rungs.iter().find(|r| !RUNG_SIZES.contains(r)) {
                return Err(Status::invalid_argument(format!(
                    "unknown rung {bad}; use {RUNG_SIZES:?}"
                )));
            }
            settings.rungs = o.rungs;
        }
        let report = request
            .report
            .map_or_else(StatusConfig::default, |r| StatusConfig {
                notify_queue_url: Some(r.notify_queue_url).filter(|u| !u.is_empty()),
                delete_source: r.delete_source,
            });
        let message = request
            .message
            .filter(|m| !m.queue_url.is_empty() && !m.receipt_handle.is_empty());
        let job_id = if request.job_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.job_id
        };
        let job = CloudJob {
            job_id,
            source: S3Object {
                bucket: source.bucket,
                key: source.key,
            },
            output,
            settings,
            limits: self.config.limits,
            work_root: self.config.work_root.clone(),
            split: self.config.split.clone(),
            version: crate::storage::new_version_name(),
            keep_replaced: self.config.keep_replaced,
            lease: self.config.lease,
            delivery: message.as_ref().map(|m| crate::job::Delivery {
                receive_count: m.receive_count,
                max_receive_count: self.config.max_receive_count,
            }),
        };
        let message = message.map(|m| QueueMessageRef {
            queue_url: m.queue_url,
            receipt_handle: m.receipt_handle,
            message_id: m.message_id,
            receive_count: m.receive_count,
        });
        Ok((job, message, report))
    }
}

#[tonic::async_trait]
impl Transcoder for TranscoderService {
    type TranscodeStream = ReceiverStream<Result<v1::TranscodeEvent, Status>>;
    type EncodeRangeStream = ReceiverStream<Result<v1::RangeEvent, Status>>;

    async fn encode_range(
        &self,
        request: Request<v1::RangeRequest>,
    ) -> Result<Response<Self::EncodeRangeStream>, Status> {
        self.check_open()?;
        let job = split::convert::range_job(request.into_inner(), &self.config.settings)?;
        let permit = self.take_slot()?;
        Ok(Response::new(self.start_range(job, permit)))
    }

    async fn transcode(
        &self,
        request: Request<v1::TranscodeRequest>,
    ) -> Result<Response<Self::TranscodeStream>, Status> {
        self.check_open()?;
        let (job, message, report) = self.job_from(request.into_inner())?;
        // A job that owns its queue message outlives its caller (a consumer restart must not
        // cost the work); one without is stopped when its caller goes away.
        let owns_message = message.is_some();
        let permit = self.take_slot()?;

        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let accepted = v1::TranscodeEvent {
            event: Some(Event::Accepted(v1::Accepted {
                job_id: job.job_id.clone(),
            })),
        };
        tx.try_send(Ok(accepted)).expect("a new channel has room");

        let cancel = self.stop_jobs.child_token();
        let service = self.clone();
        self.jobs.spawn(async move {
            let _permit = permit;
            // The caller going away (its stream dropped) stops a job without a message.
            let watcher = (!owns_message).then(|| {
                let (tx, cancel) = (tx.clone(), cancel.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = tx.closed() => cancel.cancel(),
                        () = cancel.cancelled() => {}
                    }
                })
            });
            let events = {
                let tx = tx.clone();
                move |event: JobEvent| {
                    // Progress is lossy by nature: for a slow reader it is dropped, and it
                    // leaves room for the stage changes, which are not.
                    let progress = matches!(event, JobEvent::Progress(_));
                    if progress && tx.capacity() <= RESERVED_FOR_STAGES {
                        return;
                    }
                    let _ = tx.try_send(Ok(convert::event_to_proto(event)));
                }
            };
            let sink_url = |name: &str| job.output.url(name);
            let outcome = run_owned_job(
                &service.aws.s3,
                &service.aws.sqs,
                &job,
                message,
                service.config.visibility_extension,
                &events,
                &cancel,
            )
            .await;
            let finish = outcome.finish(sink_url(MASTER_PLAYLIST));
            let last = match outcome {
                JobOutcome::Done(done) => {
                    convert::completed(
                        &done.manifest,
                        done.already_done,
                        sink_url(MASTER_PLAYLIST),
                        sink_url(MANIFEST),
                    )
                }
                JobOutcome::Failed(error) => convert::failed(error.kind(), error.to_string()),
                JobOutcome::Cancelled => convert::failed(
                    ErrorKind::Internal,
                    "the job was stopped before it finished".into(),
                ),
            };
            let caller_gone = tx.send(Ok(last)).await.is_err();
            if let Some(watcher) = watcher {
                watcher.abort();
            }
            // Its caller would have reported it; it went away, so the report is ours.
            if let (true, Some(finish)) = (caller_gone && owns_message, finish) {
                tracing::info!(job_id = %job.job_id, "the caller went away; reporting the job's end");
                let reporter =
                    StatusReporter::new(report, service.aws.sqs.clone(), service.aws.s3.clone());
                report_end(&reporter, &job, finish).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
