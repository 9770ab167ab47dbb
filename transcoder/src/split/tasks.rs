//! Ranges on one-shot ECS tasks: when the warm pool is small, a coordinator starts a Fargate
//! task per range (RunTask of the job task definition, `transcoder run-range` with the range in
//! its environment), and reads the range's result from an object the task writes into the
//! job's version folder. DescribeTasks tells a task that stopped without one; a range whose
//! coordinator goes away has its task stopped.
//!
//! The task runs what a peer runs for `EncodeRange` ([`super::run_range_job`]): it downloads
//! only its range's bytes, encodes, uploads the segments into the version folder, and writes
//! [`TaskResult`] as `ranges/NNNNN-NONCE.json` there.

use std::time::Duration;

use base64::Engine;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::convert;
use super::peers::{is_what_was_asked, RangeFailure};
use super::stitch::{RangeOutput, RungOutput};
use super::worker::RangeJob;
use crate::backoff::Backoff;
use crate::liveness::Liveness;
use crate::storage::{ObjectKind, OutputSink, S3Sink};
use crate::tasks::launch::TaskState;
use crate::tasks::{LaunchError, TaskLauncher};

/// Tags the range tasks, so `aws ecs list-tasks --started-by vod-split` finds them.
pub const STARTED_BY: &str = "vod-split";
/// The task's subcommand.
pub const COMMAND: &str = "run-range";
/// The range, as the peers' `RangeRequest` in protobuf, base64.
pub const RANGE_JOB_VAR: &str = "RANGE_JOB";
/// Where the task writes its [`TaskResult`]: `s3://BUCKET/KEY`.
pub const RANGE_RESULT_VAR: &str = "RANGE_RESULT";
/// How often a running task is looked at.
const POLL: Duration = Duration::from_secs(2);
/// RunTask calls per range before the range goes back as failed (Spot, then on-demand).
const LAUNCH_ATTEMPTS: u32 = 4;

/// How a split job starts range tasks.
#[derive(Debug, Clone)]
pub struct TaskRunners {
    /// Starts them.
    pub launcher: TaskLauncher,
    /// Ranges on tasks at once.
    pub count: u32,
}

/// What a range task leaves for its coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskResult {
    /// Its segments are uploaded.
    Done {
        /// Every rung's segments, as a peer returns them.
        rungs: Vec<RungOutput>,
    },
    /// It failed.
    Failed {
        /// The source is at fault: no retry can help.
        invalid_input: bool,
        /// Why.
        message: String,
    },
}

/// The range's environment for `transcoder run-range`.
pub fn task_environment(job: &RangeJob, result_url: &str) -> Vec<(&'static str, String)> {
    let request = convert::range_request(job).encode_to_vec();
    vec![
        (
            RANGE_JOB_VAR,
            base64::engine::general_purpose::STANDARD.encode(request),
        ),
        (RANGE_RESULT_VAR, result_url.to_string()),
    ]
}

/// Runs `job` on a task of its own and waits for its segments. `version` is the job's version
/// folder, where the task writes them and its result. A task ECS says still runs beats
/// `liveness` (the task's own encode has its stall and time limits).
pub async fn encode_on_task(
    runners: &TaskRunners,
    version: &S3Sink,
    job: &RangeJob,
    liveness: &Liveness,
) -> Result<RangeOutput, RangeFailure> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let result_name = format!("ranges/{:05}-{nonce}.json", job.range.index);
    let env = task_environment(job, &version.prefix().url(&result_name));
    let overrides = runners
        .launcher
        .overrides(Some(&[COMMAND]), &env)
        .map_err(RangeFailure::Unavailable)?;
    let arn = launch(&runners.launcher, &overrides, &nonce).await?;
    tracing::info!(range = job.range.index, task = %arn, "range task started");
    let mut running = RunningTask {
        launcher: runners.launcher.clone(),
        arn: Some(arn.clone()),
    };
    let outcome = follow(&runners.launcher, version, &result_name, &arn, liveness).await;
    running.arn = None;
    let _ = version.delete(&result_name).await;
    let who = format!("task {arn}");
    match outcome? {
        TaskResult::Done { rungs } => {
            let output = RangeOutput {
                index: job.range.index,
                rungs,
            };
            if is_what_was_asked(&output, job) {
                Ok(output)
            } else {
                Err(RangeFailure::Failed(format!(
                    "{who}: rungs or segment names not as asked"
                )))
            }
        }
        TaskResult::Failed {
            invalid_input: true,
            message,
        } => Err(RangeFailure::Invalid(format!("{who}: {message}"))),
        TaskResult::Failed { message, .. } => {
            Err(RangeFailure::Failed(format!("{who}: {message}")))
        }
    }
}

/// RunTask, retried with a short backoff, Spot giving way to on-demand. A refusal that would
/// repeat (no right, no such cluster) makes task runners unavailable to this job.
async fn launch(
    launcher: &TaskLauncher,
    overrides: &aws_sdk_ecs::types::TaskOverride,
    nonce: &str,
) -> Result<String, RangeFailure> {
    let mut last = String::new();
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(16));
    for attempt in 1..=LAUNCH_ATTEMPTS {
        let provider = launcher.provider_for(attempt);
        let token = format!("{nonce}-{attempt}");
        match launcher
            .run_task(provider, overrides, STARTED_BY, &token)
            .await
        {
            Ok(arn) => return Ok(arn),
            Err(LaunchError::Permanent(why)) => {
                return Err(RangeFailure::Unavailable(format!("RunTask refused: {why}")))
            }
            Err(LaunchError::Retry(why)) => {
                tracing::warn!(attempt, capacity_provider = provider.as_str(), error = %why, "no range task started");
                last = why;
                if attempt < LAUNCH_ATTEMPTS {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
    Err(RangeFailure::Failed(format!(
        "no range task started after {LAUNCH_ATTEMPTS} attempts: {last}"
    )))
}

/// Waits for the task's result, or for the task to stop without one.
async fn follow(
    launcher: &TaskLauncher,
    version: &S3Sink,
    result_name: &str,
    arn: &str,
    liveness: &Liveness,
) -> Result<TaskResult, RangeFailure> {
    let read = || async {
        match version.get_bytes(result_name).await {
            Ok(Some(bytes)) => {
                Some(serde_json::from_slice::<TaskResult>(&bytes).map_err(|e| {
                    RangeFailure::Failed(format!("task {arn}: unreadable result: {e}"))
                }))
            }
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(%error, "reading a range task's result");
                None
            }
        }
    };
    loop {
        tokio::time::sleep(POLL).await;
        if let Some(result) = read().await {
            return result;
        }
        match launcher.state(arn).await {
            Ok(TaskState::Going) => liveness.beat(),
            // The result may have landed between the two looks.
            Ok(TaskState::Stopped(why)) => {
                return read().await.unwrap_or_else(|| {
                    Err(RangeFailure::Failed(format!(
                        "task {arn} stopped without a result: {why}"
                    )))
                })
            }
            Err(error) => tracing::warn!(task = %arn, %error, "cannot describe a range task"),
        }
    }
}

/// A task this coordinator still waits for: stopped if the wait is dropped (the job failed
/// or was stopped), so no task encodes for nobody.
struct RunningTask {
    launcher: TaskLauncher,
    arn: Option<String>,
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        let Some(arn) = self.arn.take() else {
            return;
        };
        let launcher = self.launcher.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = launcher
                    .stop(&arn, "its split job no longer waits for it")
                    .await
                {
                    tracing::warn!(task = %arn, %error, "cannot stop a range task");
                }
            });
        }
    }
}

/// Writes the task's result where its coordinator looks.
pub async fn write_result(
    sink: &S3Sink,
    name: &str,
    result: &TaskResult,
) -> Result<(), crate::storage::StorageError> {
    let bytes = serde_json::to_vec(result).expect("a result serializes");
    sink.put_bytes(name, bytes, ObjectKind::Json).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_fits_the_task_overrides_with_room() {
        let job =
            crate::split::worker::tests::job_with_rungs(&["1080p", "720p", "480p", "360p", "240p"]);
        let env = task_environment(
            &job,
            &format!("s3://{}/{}", "b".repeat(63), "k".repeat(1024)),
        );
        let size = crate::tasks::launch::overrides_json_size("transcoder", Some(&[COMMAND]), &env);
        assert!(size < crate::tasks::MAX_OVERRIDES_BYTES / 2, "{size}");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&env[0].1)
            .unwrap();
        let request = proto::v1::RangeRequest::decode(decoded.as_slice()).unwrap();
        assert_eq!(request.rungs.len(), 5);
    }

    #[test]
    fn a_result_reads_back_as_written() {
        let failed = TaskResult::Failed {
            invalid_input: true,
            message: "truncated".into(),
        };
        let json = serde_json::to_string(&failed).unwrap();
        assert!(json.contains(r#""status":"failed""#), "{json}");
        assert_eq!(serde_json::from_str::<TaskResult>(&json).unwrap(), failed);
    }
}
