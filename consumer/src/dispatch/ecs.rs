//! One ECS Fargate task per job: RunTask with the job in the container's environment, which
//! `transcoder run` reads (JOB_SOURCE, JOB_QUEUE_URL, JOB_RECEIPT_HANDLE...).
//!
//! Before RunTask the message is made invisible long enough for a task to start and take it
//! over (Fargate needs 30 to 90 s to pull and start); from the task's first heartbeat on, the
//! task owns it. A `failures[]` answer (no Spot capacity in the zone, typically) or throttling
//! is retried with backoff, Spot falling back to on-demand FARGATE after two tries; when every
//! attempt fails, the job waits in the consumer (its message held) and is tried again, and only
//! after the worker's park limit does its message go back to the queue: never lost.

use std::time::Duration;

use aws_sdk_ecs::types::TaskOverride;
use common::backoff::Backoff;
use common::status::StatusConfig;
use common::tasks::{LaunchError, TaskLauncher, TaskPlacement};

use super::{DispatchError, Dispatcher, Handover, Job};
use crate::queue::{Inbox, MAX_BATCH};

/// Tags the tasks, so `aws ecs list-tasks --started-by` finds ours.
pub const STARTED_BY: &str = "vod-consumer";

/// How to start tasks.
#[derive(Debug, Clone)]
pub struct EcsSettings {
    /// Where the tasks run.
    pub placement: TaskPlacement,
    /// RunTask attempts per job.
    pub attempts: u32,
    /// Visibility given to the message while the task starts.
    pub startup: Duration,
    /// The first retry's delay ceiling, doubling up to `backoff_max`; each delay is drawn
    /// between half its ceiling and the ceiling ([`Backoff`]).
    pub backoff_base: Duration,
    /// The largest delay ceiling.
    pub backoff_max: Duration,
    /// Passed on to the task, which reports the job's end itself.
    pub status: StatusConfig,
}

/// Starts ECS tasks.
#[derive(Debug, Clone)]
pub struct EcsLauncher {
    tasks: TaskLauncher,
    inbox: Inbox,
    settings: EcsSettings,
}

impl EcsLauncher {
    /// A launcher using `ecs`; `inbox` is the queue the jobs' messages come from.
    pub fn new(ecs: aws_sdk_ecs::Client, inbox: Inbox, settings: EcsSettings) -> Self {
        Self {
            tasks: TaskLauncher::new(ecs, settings.placement.clone()),
            inbox,
            settings,
        }
    }

    /// The container overrides that carry `job` to `transcoder run`.
    pub fn overrides(&self, job: &Job) -> Result<TaskOverride, DispatchError> {
        let env = job_environment(job, &self.settings.status);
        self.tasks.overrides(None, &env).map_err(DispatchError)
    }
}

impl Dispatcher for EcsLauncher {
    fn free_slots(&self) -> usize {
        // ECS scales out by itself; a batch at a time keeps RunTask within its rate limit.
        MAX_BATCH
    }

    async fn slots_changed(&self, timeout: Duration) {
        tokio::time::sleep(timeout.min(Duration::from_millis(100))).await;
    }

    async fn dispatch(&self, job: Job) -> Result<Handover, DispatchError> {
        let overrides = self.overrides(&job)?;
        // Cover the retries and the task's start; the task's own heartbeat takes over.
        self.inbox
            .set_visibility(&job.message, self.settings.startup)
            .await
            .map_err(|e| DispatchError(format!("cannot keep the message for the task: {e}")))?;
        let mut backoff = Backoff::new(self.settings.backoff_base, self.settings.backoff_max);
        let mut last = String::new();
        for attempt in 1..=self.settings.attempts {
            let provider = self.tasks.provider_for(attempt);
            let token = client_token(&job.job_id, attempt);
            match self
                .tasks
                .run_task(provider, &overrides, STARTED_BY, &token)
                .await
            {
                Ok(task_arn) => {
                    tracing::info!(job_id = %job.job_id, message_id = %job.message.message_id,
                        %task_arn, capacity_provider = provider.as_str(), attempt, "task started");
                    return Ok(Handover::Taken { by: task_arn });
                }
                Err(LaunchError::Permanent(why)) => {
                    return Err(DispatchError(format!("RunTask refused: {why}")))
                }
                Err(LaunchError::Retry(why)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(job_id = %job.job_id, capacity_provider = provider.as_str(),
                        attempt, error = %why, retry_in_ms = delay.as_millis() as u64,
                        "no task started");
                    last = why;
                    if attempt < self.settings.attempts {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        Err(DispatchError(format!(
            "no task started after {} attempts: {last}",
            self.settings.attempts
        )))
    }

    async fn drain(&self, _grace: Duration) {
        // Tasks own their messages; nothing of ours is running.
    }
}

/// RunTask's idempotency token for attempt `attempt` of one delivery's job: the SDK's retries
/// of that attempt send it again, so a lost response never starts a second task; the next
/// attempt sends a new one, or ECS would answer it with the earlier attempt's result (a Spot
/// retry would get the same "no capacity"). A job id is new for every delivery.
fn client_token(job_id: &str, attempt: u32) -> String {
    format!("{job_id}-{attempt}")
}

/// The environment `transcoder run` reads for `job`.
pub fn job_environment(job: &Job, status: &StatusConfig) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("JOB_SOURCE", job.source.to_string()),
        ("JOB_QUEUE_URL", job.message.queue_url.clone()),
        ("JOB_RECEIPT_HANDLE", job.message.receipt_handle.clone()),
        ("JOB_MESSAGE_ID", job.message.message_id.clone()),
        ("JOB_RECEIVE_COUNT", job.message.receive_count.to_string()),
        ("JOB_ID", job.job_id.clone()),
    ];
    if let Some(output) = &job.output {
        env.push(("JOB_OUTPUT", output.url("")));
    }
    if let Some(url) = &status.notify_queue_url {
        env.push(("NOTIFY_QUEUE_URL", url.clone()));
    }
    if status.delete_source {
        env.push(("DELETE_SOURCE", "true".into()));
    }
    env
}

#[cfg(test)]
mod tests {
    use common::queue::QueueMessageRef;
    use common::storage::{S3Object, S3Prefix};

    use super::*;

    fn job(key: &str) -> Job {
        Job {
            job_id: "4b1f0f2e-0000-4000-8000-000000000000".into(),
            source: S3Object {
                bucket: "raw".into(),
                key: key.into(),
            },
            output: Some(S3Prefix::new("out", "hls/a b")),
            message: QueueMessageRef {
                queue_url: "https://sqs.eu-west-1.amazonaws.com/123456789012/uploads".into(),
                // Real receipt handles run to about 1 KiB.
                receipt_handle: "AQEB".repeat(256),
                message_id: "m-1".into(),
                receive_count: 2,
            },
        }
    }

    #[test]
    fn the_environment_is_what_transcoder_run_reads() {
        let status = StatusConfig {
            notify_queue_url: Some("https://sqs/notify".into()),
            delete_source: true,
        };
        let env = job_environment(&job("up/a b.mp4"), &status);
        let names: Vec<&str> = env.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "JOB_SOURCE",
                "JOB_QUEUE_URL",
                "JOB_RECEIPT_HANDLE",
                "JOB_MESSAGE_ID",
                "JOB_RECEIVE_COUNT",
                "JOB_ID",
                "JOB_OUTPUT",
                "NOTIFY_QUEUE_URL",
                "DELETE_SOURCE"
            ]
        );
        assert_eq!(env[0].1, "s3://raw/up/a b.mp4");
        assert_eq!(env[4].1, "2");
        assert_eq!(env[6].1, "s3://out/hls/a b/");
        let quiet = job_environment(&job("k"), &StatusConfig::default());
        assert_eq!(quiet.len(), 7);
    }

    #[test]
    fn the_longest_key_fits_the_overrides_limit() {
        // S3 keys are at most 1,024 bytes; the worst case for JSON is a key of control
        // characters, each escaped as \u00XX (six bytes).
        let worst = "\u{1}".repeat(1024);
        let env = job_environment(&job(&worst), &StatusConfig::default());
        let size = common::tasks::launch::overrides_json_size("transcoder", None, &env);
        assert!(size > 6 * 1024, "{size}");
        assert!(size <= common::tasks::MAX_OVERRIDES_BYTES, "{size}");
    }
}
