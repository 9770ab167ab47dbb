//! `transcoder run-range`: one range of a split job and exit, as a range task runs it. The
//! coordinator that started the task gives the range (RANGE_JOB) and where to leave the result
//! (RANGE_RESULT); the task does what a warm peer does for `EncodeRange`, then writes the
//! result there (see `split::tasks`).

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::Args;
use prost::Message;

use super::progress_view::ProgressView;
use super::{shutdown_signal, JobArgs, EXIT_DONE, EXIT_INVALID_INPUT, EXIT_RETRYABLE};
use crate::aws::Aws;
use crate::split::tasks::{write_result, TaskResult};
use crate::split::{convert, run_range_job, RangeJob};
use crate::storage::S3Object;

/// Arguments of `transcoder run-range`.
#[derive(Debug, Args)]
pub struct RunRangeArgs {
    /// The range, as its coordinator's RunTask gives it: a RangeRequest (proto/transcoder.proto)
    /// in protobuf, base64.
    #[arg(long, env = "RANGE_JOB", hide_env_values = true)]
    pub range_job: String,
    /// Where the result goes for the coordinator to read: s3://BUCKET/KEY, inside the range's
    /// output folder.
    #[arg(long, env = "RANGE_RESULT", value_parser = S3Object::parse)]
    pub range_result: S3Object,
    /// Folder for work files (the range's bytes of the source, its segments before upload).
    #[arg(long, env = "TRANSCODER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
}

/// Runs the range, writes its result, and exits 0 (done), 2 (the source is at fault) or 1.
pub async fn run(args: RunRangeArgs) -> ExitCode {
    let job = match decode(&args) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("transcoder: error: {e}");
            return ExitCode::from(EXIT_RETRYABLE);
        }
    };
    // The result goes beside the range's segments, never elsewhere.
    let Some(result_name) = args
        .range_result
        .key
        .strip_prefix(&job.output.prefix)
        .filter(|name| args.range_result.bucket == job.output.bucket && !name.is_empty())
    else {
        eprintln!(
            "transcoder: error: RANGE_RESULT must lie in the range's output folder {}",
            job.output.url("")
        );
        return ExitCode::from(EXIT_RETRYABLE);
    };
    let aws = Aws::from_env().await;
    let view = ProgressView::new();
    let limits = args.job.limits.limits();
    let show = |event: crate::job::JobEvent| view.show(&event);
    let outcome = tokio::select! {
        outcome = run_range_job(&aws.s3, &job, &limits, args.work_dir.as_deref(), &show) => outcome,
        // Spot's notice: the coordinator hands the range to another worker at once.
        () = shutdown_signal() => {
            view.finish();
            let stopped = TaskResult::Failed {
                invalid_input: false,
                message: "the range task was stopped".into(),
            };
            let _ = write_result(&aws.s3.sink(job.output.clone()), result_name, &stopped).await;
            eprintln!("transcoder: error: stopped by a signal");
            return ExitCode::from(EXIT_RETRYABLE);
        }
    };
    view.finish();
    let (result, code) = match outcome {
        Ok(output) => (
            TaskResult::Done {
                rungs: output.rungs,
            },
            EXIT_DONE,
        ),
        Err(error) => {
            let invalid_input = error.kind() == crate::manifest::ErrorKind::InvalidInput;
            eprintln!("transcoder: error: {error}");
            (
                TaskResult::Failed {
                    invalid_input,
                    message: error.to_string(),
                },
                if invalid_input {
                    EXIT_INVALID_INPUT
                } else {
                    EXIT_RETRYABLE
                },
            )
        }
    };
    if let Err(e) = write_result(&aws.s3.sink(job.output.clone()), result_name, &result).await {
        eprintln!("transcoder: error: cannot leave the range's result: {e}");
        return ExitCode::from(EXIT_RETRYABLE);
    }
    if code == EXIT_DONE {
        println!("done: range {}", job.range.index);
    }
    ExitCode::from(code)
}

/// The range the environment describes, checked as a peer checks an `EncodeRange` call.
fn decode(args: &RunRangeArgs) -> Result<RangeJob, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(args.range_job.trim())
        .map_err(|e| format!("RANGE_JOB is not base64: {e}"))?;
    let request = proto::v1::RangeRequest::decode(bytes.as_slice())
        .map_err(|e| format!("RANGE_JOB is not a RangeRequest: {e}"))?;
    convert::range_job(request, &args.job.settings())
        .map_err(|status| format!("RANGE_JOB: {}", status.message()))
}
