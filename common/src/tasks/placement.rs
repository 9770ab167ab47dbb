//! Where a one-shot task runs, from the `ECS_*` settings (docs/contract.md).

use clap::Args;

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

/// How to start a one-shot transcoder task.
#[derive(Debug, Clone, Args)]
pub struct TaskPlacementArgs {
    /// The ECS cluster (name or ARN).
    #[arg(long, env = "ECS_CLUSTER")]
    pub cluster: Option<String>,
    /// The one-shot transcoder's task definition (family, family:revision or ARN).
    #[arg(long, env = "ECS_TASK_DEFINITION")]
    pub task_definition: Option<String>,
    /// The container in that task definition that runs the transcoder.
    #[arg(long, env = "ECS_CONTAINER_NAME", default_value = "transcoder")]
    pub container_name: String,
    /// Comma-separated subnet ids for the task's network interface (awsvpc).
    #[arg(long, env = "ECS_SUBNETS", value_delimiter = ',')]
    pub subnets: Vec<String>,
    /// Comma-separated security group ids for the task.
    #[arg(long, env = "ECS_SECURITY_GROUPS", value_delimiter = ',')]
    pub security_groups: Vec<String>,
    /// Capacity provider: FARGATE_SPOT (about 70% cheaper, may be interrupted; the work is then
    /// handed back) or FARGATE.
    #[arg(long, env = "ECS_CAPACITY_PROVIDER", value_enum, default_value_t = CapacityProvider::FargateSpot)]
    pub capacity_provider: CapacityProvider,
    /// Give the task a public IP (needed in a public subnet without a NAT gateway or VPC
    /// endpoints, to pull the image and reach S3).
    #[arg(long, env = "ECS_ASSIGN_PUBLIC_IP", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true")]
    pub assign_public_ip: bool,
}

/// Where a one-shot task runs, every required setting given.
#[derive(Debug, Clone)]
pub struct TaskPlacement {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task definition of the one-shot transcoder.
    pub task_definition: String,
    /// Its container that runs the transcoder.
    pub container_name: String,
    /// awsvpc subnets.
    pub subnets: Vec<String>,
    /// awsvpc security groups.
    pub security_groups: Vec<String>,
    /// Spot or on-demand.
    pub capacity_provider: CapacityProvider,
    /// A public IP for the task.
    pub assign_public_ip: bool,
}

impl TaskPlacementArgs {
    /// What is missing to start a task, one line each (empty when nothing is).
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.cluster.is_none() {
            missing.push("ECS_CLUSTER (--cluster) is required");
        }
        if self.task_definition.is_none() {
            missing.push("ECS_TASK_DEFINITION (--task-definition) is required");
        }
        if self.subnets.iter().all(|s| s.trim().is_empty()) {
            missing.push("ECS_SUBNETS (--subnets) is required: Fargate tasks use awsvpc");
        }
        missing
    }

    /// The placement, once [`Self::missing`] is empty.
    pub fn placement(&self) -> TaskPlacement {
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        TaskPlacement {
            cluster: self.cluster.clone().unwrap_or_default(),
            task_definition: self.task_definition.clone().unwrap_or_default(),
            container_name: self.container_name.clone(),
            subnets: list(&self.subnets),
            security_groups: list(&self.security_groups),
            capacity_provider: self.capacity_provider,
            assign_public_ip: self.assign_public_ip,
        }
    }
}
