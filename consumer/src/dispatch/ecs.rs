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

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    KeyValuePair, NetworkConfiguration, TaskOverride,
};
use common::backoff::Backoff;
use common::status::StatusConfig;

use super::{DispatchError, Dispatcher, Handover, Job};
use crate::queue::{Inbox, MAX_BATCH};

/// Fargate capacity providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CapacityProvider {
    /// Spot capacity: cheaper, interruptible.
    FargateSpot,
    /// On-demand capacity.
    Fargate,
}

impl CapacityProvider {
    /// The name ECS knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FargateSpot => "FARGATE_SPOT",
            Self::Fargate => "FARGATE",
        }
    }
}

/// ECS refuses RunTask overrides larger than this (the JSON of `overrides`).
pub const MAX_OVERRIDES_BYTES: usize = 8192;
/// Spot attempts before falling back to FARGATE.
const SPOT_ATTEMPTS: u32 = 2;
/// Tags the tasks, so `aws ecs list-tasks --started-by` finds ours.
pub const STARTED_BY: &str = "vod-consumer";

/// How to start tasks.
#[derive(Debug, Clone)]
pub struct EcsSettings {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task definition of the one-shot transcoder.
    pub task_definition: String,
    /// Its container that runs `transcoder run`.
    pub container_name: String,
    /// awsvpc subnets.
    pub subnets: Vec<String>,
    /// awsvpc security groups.
    pub security_groups: Vec<String>,
    /// Spot or on-demand.
    pub capacity_provider: CapacityProvider,
    /// A public IP for the task.
    pub assign_public_ip: bool,
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
    ecs: aws_sdk_ecs::Client,
    inbox: Inbox,
    settings: EcsSettings,
}

/// Why one RunTask attempt did not start a task.
enum AttemptError {
    /// Worth another attempt: `failures[]`, throttling, a server or network error.
    Retry(String),
    /// Another attempt would fail the same way (no such cluster, bad parameters, no right).
    Permanent(String),
}

impl EcsLauncher {
    /// A launcher using `ecs`; `inbox` is the queue the jobs' messages come from.
    pub fn new(ecs: aws_sdk_ecs::Client, inbox: Inbox, settings: EcsSettings) -> Self {
        Self {
            ecs,
            inbox,
            settings,
        }
    }

    /// The container overrides that carry `job` to `transcoder run`.
    pub fn overrides(&self, job: &Job) -> Result<TaskOverride, DispatchError> {
        let env = job_environment(job, &self.settings.status);
        let size = overrides_json_size(&self.settings.container_name, &env);
        if size > MAX_OVERRIDES_BYTES {
            return Err(DispatchError(format!(
                "the job's overrides are {size} bytes, over ECS's limit of {MAX_OVERRIDES_BYTES}"
            )));
        }
        let environment = env
            .into_iter()
            .map(|(name, value)| KeyValuePair::builder().name(name).value(value).build())
            .collect();
        Ok(TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name(&self.settings.container_name)
                    .set_environment(Some(environment))
                    .build(),
            )
            .build())
    }

    async fn run_task(
        &self,
        job: &Job,
        attempt: u32,
        provider: CapacityProvider,
        overrides: &TaskOverride,
    ) -> Result<String, AttemptError> {
        let s = &self.settings;
        let network = AwsVpcConfiguration::builder()
            .set_subnets(Some(s.subnets.clone()))
            .set_security_groups(Some(s.security_groups.clone()))
            .assign_public_ip(if s.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| AttemptError::Permanent(e.to_string()))?;
        let strategy = CapacityProviderStrategyItem::builder()
            .capacity_provider(provider.as_str())
            .weight(1)
            .build()
            .map_err(|e| AttemptError::Permanent(e.to_string()))?;
        let result = self
            .ecs
            .run_task()
            .cluster(&s.cluster)
            .task_definition(&s.task_definition)
            .count(1)
            .capacity_provider_strategy(strategy)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(network)
                    .build(),
            )
            .overrides(overrides.clone())
            .started_by(STARTED_BY)
            .client_token(client_token(&job.job_id, attempt))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                let text = DisplayErrorContext(&e).to_string();
                let code = e.code().unwrap_or_default();
                let retry = matches!(
                    code,
                    "ThrottlingException" | "ServerException" | "ServiceUnavailable"
                ) || e.as_service_error().is_none();
                return Err(if retry {
                    AttemptError::Retry(text)
                } else {
                    AttemptError::Permanent(text)
                });
            }
        };
        if let Some(arn) = output.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(arn.to_string());
        }
        let reasons: Vec<String> = output
            .failures()
            .iter()
            .map(|f| {
                format!(
                    "{}{}",
                    f.reason().unwrap_or("unknown reason"),
                    f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
                )
            })
            .collect();
        Err(AttemptError::Retry(if reasons.is_empty() {
            "RunTask started no task and gave no reason".into()
        } else {
            format!("RunTask failures: {}", reasons.join("; "))
        }))
    }

    /// The provider for attempt `n` (from 1): Spot falls back to FARGATE after two tries.
    fn provider_for(&self, attempt: u32) -> CapacityProvider {
        match self.settings.capacity_provider {
            CapacityProvider::FargateSpot if attempt > SPOT_ATTEMPTS => CapacityProvider::Fargate,
            configured => configured,
        }
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
            let provider = self.provider_for(attempt);
            match self.run_task(&job, attempt, provider, &overrides).await {
                Ok(task_arn) => {
                    tracing::info!(job_id = %job.job_id, message_id = %job.message.message_id,
                        %task_arn, capacity_provider = provider.as_str(), attempt, "task started");
                    return Ok(Handover::Taken { by: task_arn });
                }
                Err(AttemptError::Permanent(why)) => {
                    return Err(DispatchError(format!("RunTask refused: {why}")))
                }
                Err(AttemptError::Retry(why)) => {
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

/// The size ECS counts: the overrides as JSON.
fn overrides_json_size(container: &str, env: &[(&str, String)]) -> usize {
    let environment: Vec<_> = env
        .iter()
        .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
        .collect();
    serde_json::json!({
        "containerOverrides": [{ "name": container, "environment": environment }]
    })
    .to_string()
    .len()
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
        let size = overrides_json_size("transcoder", &env);
        assert!(size > 6 * 1024, "{size}");
        assert!(size <= MAX_OVERRIDES_BYTES, "{size}");
    }
}
