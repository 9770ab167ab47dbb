//! Starting a one-shot task with RunTask, following it with DescribeTasks, stopping it.

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    KeyValuePair, NetworkConfiguration, TaskOverride,
};

use super::placement::{CapacityProvider, TaskPlacement};

/// ECS refuses RunTask overrides larger than this (the JSON of `overrides`).
pub const MAX_OVERRIDES_BYTES: usize = 8192;
/// Spot attempts before falling back to FARGATE.
const SPOT_ATTEMPTS: u32 = 2;

/// Why one RunTask call did not start a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// Worth another attempt: `failures[]` (no capacity), throttling, a server or network error.
    Retry(String),
    /// Another attempt would fail the same way (no such cluster, bad parameters, no right).
    Permanent(String),
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(m) | Self::Permanent(m) => write!(f, "{m}"),
        }
    }
}

/// A task as DescribeTasks last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Provisioning, pending or running.
    Going,
    /// Stopped: why, as ECS says it (`stoppedReason`, the container's exit code).
    Stopped(String),
}

/// Starts tasks of one placement.
#[derive(Debug, Clone)]
pub struct TaskLauncher {
    ecs: aws_sdk_ecs::Client,
    placement: TaskPlacement,
}

impl TaskLauncher {
    /// A launcher that starts tasks where `placement` says.
    pub fn new(ecs: aws_sdk_ecs::Client, placement: TaskPlacement) -> Self {
        Self { ecs, placement }
    }

    /// The container overrides giving the task `command` (when set) and `env`: refused when
    /// over ECS's size limit.
    pub fn overrides(
        &self,
        command: Option<&[&str]>,
        env: &[(&str, String)],
    ) -> Result<TaskOverride, String> {
        let size = overrides_json_size(&self.placement.container_name, command, env);
        if size > MAX_OVERRIDES_BYTES {
            return Err(format!(
                "the task's overrides are {size} bytes, over ECS's limit of {MAX_OVERRIDES_BYTES}"
            ));
        }
        let environment = env
            .iter()
            .map(|(name, value)| KeyValuePair::builder().name(*name).value(value).build())
            .collect();
        Ok(TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name(&self.placement.container_name)
                    .set_command(command.map(|c| c.iter().map(|s| s.to_string()).collect()))
                    .set_environment(Some(environment))
                    .build(),
            )
            .build())
    }

    /// The provider for attempt `n` (from 1): Spot falls back to FARGATE after two tries.
    pub fn provider_for(&self, attempt: u32) -> CapacityProvider {
        match self.placement.capacity_provider {
            CapacityProvider::FargateSpot if attempt > SPOT_ATTEMPTS => CapacityProvider::Fargate,
            configured => configured,
        }
    }

    /// One RunTask call: the new task's ARN. `client_token` makes the SDK's own retries of
    /// this call start one task at most; give each attempt its own.
    pub async fn run_task(
        &self,
        provider: CapacityProvider,
        overrides: &TaskOverride,
        started_by: &str,
        client_token: &str,
    ) -> Result<String, LaunchError> {
        let p = &self.placement;
        let network = AwsVpcConfiguration::builder()
            .set_subnets(Some(p.subnets.clone()))
            .set_security_groups(Some(p.security_groups.clone()))
            .assign_public_ip(if p.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| LaunchError::Permanent(e.to_string()))?;
        let strategy = CapacityProviderStrategyItem::builder()
            .capacity_provider(provider.as_str())
            .weight(1)
            .build()
            .map_err(|e| LaunchError::Permanent(e.to_string()))?;
        let result = self
            .ecs
            .run_task()
            .cluster(&p.cluster)
            .task_definition(&p.task_definition)
            .count(1)
            .capacity_provider_strategy(strategy)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(network)
                    .build(),
            )
            .overrides(overrides.clone())
            .started_by(started_by)
            .client_token(client_token)
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
                    LaunchError::Retry(text)
                } else {
                    LaunchError::Permanent(text)
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
        Err(LaunchError::Retry(if reasons.is_empty() {
            "RunTask started no task and gave no reason".into()
        } else {
            format!("RunTask failures: {}", reasons.join("; "))
        }))
    }

    /// Whether task `arn` still goes, and why it stopped when it has.
    pub async fn state(&self, arn: &str) -> Result<TaskState, String> {
        let output = self
            .ecs
            .describe_tasks()
            .cluster(&self.placement.cluster)
            .tasks(arn)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        let Some(task) = output.tasks().first() else {
            // ECS forgets stopped tasks after about an hour.
            return Ok(TaskState::Stopped("ECS no longer knows the task".into()));
        };
        if task.last_status() != Some("STOPPED") {
            return Ok(TaskState::Going);
        }
        let exit = task
            .containers()
            .iter()
            .find(|c| c.name() == Some(self.placement.container_name.as_str()))
            .and_then(|c| c.exit_code())
            .map(|code| format!(", exit code {code}"))
            .unwrap_or_default();
        Ok(TaskState::Stopped(format!(
            "{}{exit}",
            task.stopped_reason().unwrap_or("stopped")
        )))
    }

    /// Asks ECS to stop task `arn` (SIGTERM, then SIGKILL after its stop timeout).
    pub async fn stop(&self, arn: &str, reason: &str) -> Result<(), String> {
        self.ecs
            .stop_task()
            .cluster(&self.placement.cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DisplayErrorContext(&e).to_string())
    }
}

/// The size ECS counts: the overrides as JSON.
pub fn overrides_json_size(
    container: &str,
    command: Option<&[&str]>,
    env: &[(&str, String)],
) -> usize {
    let environment: Vec<_> = env
        .iter()
        .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
        .collect();
    let mut container = serde_json::json!({ "name": container, "environment": environment });
    if let Some(command) = command {
        container["command"] = serde_json::json!(command);
    }
    serde_json::json!({ "containerOverrides": [container] })
        .to_string()
        .len()
}
