//! `transcoder run`: one job and exit, as an ECS task runs it. The job comes from the
//! environment (container overrides) or the command line (command overrides).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::progress_view::ProgressView;
use super::{
    cannot_start, report_failure, shutdown_signal, CloudArgs, JobArgs, StatusArgs, EXIT_DONE,
    EXIT_RETRYABLE,
};
use crate::aws::Aws;
use crate::job::{report_end, run_owned_job, CloudJob, JobOutcome};
use crate::queue::QueueMessageRef;
use crate::status::StatusReporter;
use crate::storage::{default_output, S3Object, S3Prefix};

/// Arguments of `transcoder run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The upload: s3://BUCKET/KEY.
    #[arg(long, env = "JOB_SOURCE", value_parser = S3Object::parse)]
    pub source: S3Object,
    /// Where the outputs go: s3://BUCKET/PREFIX/ (default: OUTPUT_BUCKET, OUTPUT_PREFIX and the
    /// source key without its extension).
    #[arg(long, env = "JOB_OUTPUT", value_parser = S3Prefix::parse)]
    pub output: Option<S3Prefix>,
    /// The SQS queue the job's message came from (with --receipt-handle: the task owns it).
    #[arg(long, env = "JOB_QUEUE_URL", requires = "receipt_handle")]
    pub queue_url: Option<String>,
    /// The receipt handle of the job's message.
    #[arg(
        long,
        env = "JOB_RECEIPT_HANDLE",
        requires = "queue_url",
        hide_env_values = true
    )]
    pub receipt_handle: Option<String>,
    /// The message id, for logs.
    #[arg(long, env = "JOB_MESSAGE_ID", default_value = "")]
    pub message_id: String,
    /// How many times SQS has delivered the message, this delivery included (0: unknown).
    #[arg(long, env = "JOB_RECEIVE_COUNT", default_value_t = 0)]
    pub receive_count: u32,
    /// Job id (default: a new UUID).
    #[arg(long, env = "JOB_ID")]
    pub job_id: Option<String>,
    /// Seconds the job gets to finish after SIGTERM before it is stopped and its message
    /// handed back (under the task's stopTimeout: Spot gives two minutes). A second signal
    /// stops it at once.
    #[arg(long, env = "TRANSCODER_DRAIN_SECONDS", default_value_t = 100)]
    pub drain_seconds: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cloud: CloudArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub status: StatusArgs,
}

/// Runs the job; SIGTERM (a Spot interruption) gives it the drain period to finish, then stops
/// it and hands its message back.
pub async fn run(args: RunArgs) -> ExitCode {
    let output = match (&args.output, &args.cloud.output.output_bucket) {
        (Some(output), _) => output.clone(),
        (None, Some(bucket)) => {
            default_output(&args.source.key, bucket, &args.cloud.output.output_prefix)
        }
        (None, None) => {
            eprintln!("transcoder: error: give --output (JOB_OUTPUT) or set OUTPUT_BUCKET");
            return ExitCode::from(EXIT_RETRYABLE);
        }
    };
    let aws = Aws::from_env().await;
    let split = match args.cloud.split.settings(&aws.ecs) {
        Ok(split) => split,
        Err(e) => return cannot_start(e),
    };
    let job = CloudJob {
        job_id: args
            .job_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        source: args.source.clone(),
        output,
        settings: args.job.settings(),
        limits: args.job.limits.limits(),
        work_root: args.cloud.work_dir.clone(),
        split,
        version: crate::storage::new_version_name(),
        keep_replaced: args.cloud.publish.keep_replaced(),
        lease: args.cloud.publish.lease(),
        delivery: args.receipt_handle.as_ref().map(|_| crate::job::Delivery {
            receive_count: args.receive_count,
            max_receive_count: args.cloud.queue.max_receive_count,
        }),
    };
    let message = match (&args.queue_url, &args.receipt_handle) {
        (Some(queue_url), Some(receipt_handle)) => Some(QueueMessageRef {
            queue_url: queue_url.clone(),
            receipt_handle: receipt_handle.clone(),
            message_id: args.message_id.clone(),
            receive_count: args.receive_count,
        }),
        _ => None,
    };

    // A stop (Spot's notice, a deploy) lets a job that is nearly done finish: redoing it
    // elsewhere costs the whole encode again.
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let drain = Duration::from_secs(args.drain_seconds);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!(
            drain_s = drain.as_secs(),
            "stop requested: the job may finish within the drain period"
        );
        tokio::select! {
            _ = tokio::time::sleep(drain) => {}
            _ = shutdown_signal() => {}
        }
        on_signal.cancel();
    });
    let view = ProgressView::new();
    let outcome = run_owned_job(
        &aws.s3,
        &aws.sqs,
        &job,
        message,
        Duration::from_secs(args.cloud.queue.visibility_extension_seconds),
        &|event| view.show(&event),
        &cancel,
    )
    .await;
    view.finish();
    if let Some(finish) = outcome.finish(job.output.url(crate::job::MASTER_PLAYLIST)) {
        let reporter = StatusReporter::new(args.status.config(), aws.sqs.clone(), aws.s3.clone());
        report_end(&reporter, &job, finish).await;
    }
    match outcome {
        JobOutcome::Done(done) => {
            let note = if done.already_done {
                " (already published for this ETag)"
            } else {
                ""
            };
            println!(
                "done: {}{note}",
                job.output.url(crate::job::MASTER_PLAYLIST)
            );
            ExitCode::from(EXIT_DONE)
        }
        JobOutcome::Failed(error) => report_failure(error.kind(), &error.to_string()),
        JobOutcome::Cancelled => {
            eprintln!("transcoder: error: stopped by a signal; the message was handed back");
            ExitCode::from(EXIT_RETRYABLE)
        }
    }
}
