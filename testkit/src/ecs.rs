//! ECS on moto: a Fargate cluster with the one-shot transcoder's task definition, and a stand-in
//! for the ECS agent.
//!
//! [`EcsAgentHarness`] is a test harness, named as one. moto records the tasks RunTask starts
//! but runs no container, so the harness watches the cluster and runs each new task's container
//! as a host process: `transcoder` with the task definition's command unless the RunTask's
//! overrides give one, under the definition's environment, the overrides' on top, and the
//! emulator's endpoint and credentials. When the process exits, the harness stops the task with
//! the exit code in its reason, as ECS reports an essential container's end. At most `runners`
//! tasks run at once; the others wait, as tasks wait for capacity.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, NetworkMode, Task};

/// The cluster's name.
pub const CLUSTER: &str = "vod";
/// The one-shot transcoder's task definition family.
pub const TASK_FAMILY: &str = "transcoder-job";

/// An ECS cluster with both Fargate capacity providers, the one-shot task definition (command
/// `run`, as the stack's), and a subnet Fargate's awsvpc accepts (moto needs DNS hostnames on
/// its VPC). Its tasks run until StopTask, as ECS's run until their container exits (moto
/// otherwise walks a task to STOPPED after four DescribeTasks). Returns the `ECS_*` settings
/// that start tasks there.
pub async fn fargate_cluster(
    ecs: &aws_sdk_ecs::Client,
    endpoint: &str,
) -> Vec<(&'static str, String)> {
    moto_api_post(
        endpoint,
        "/moto-api/state-manager/set-transition",
        r#"{"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000000}}"#,
    );
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .capacity_providers("FARGATE")
        .capacity_providers("FARGATE_SPOT")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family(TASK_FAMILY)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("2048")
        .memory("4096")
        .container_definitions(
            ContainerDefinition::builder()
                .name("transcoder")
                .image("vod/transcoder:latest")
                .command("run")
                .essential(true)
                // moto sums container memory and fails on a container without it.
                .memory(4096)
                .cpu(2048)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let subnet = fargate_subnet(endpoint);
    vec![
        ("ECS_CLUSTER", CLUSTER.into()),
        ("ECS_TASK_DEFINITION", TASK_FAMILY.into()),
        ("ECS_CONTAINER_NAME", "transcoder".into()),
        ("ECS_SUBNETS", subnet),
        ("ECS_SECURITY_GROUPS", String::new()),
    ]
}

/// A POST to moto's own API (`/moto-api/...`).
fn moto_api_post(endpoint: &str, path: &str, body: &str) {
    let address = endpoint.strip_prefix("http://").unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 20"), "{path}: {response}");
}

/// One EC2 Query API call to moto, by hand: the tests need three EC2 calls, not the whole
/// EC2 SDK crate. moto reads the service from the credential scope and checks no signature.
fn ec2_query(endpoint: &str, params: &str) -> String {
    let address = endpoint.strip_prefix("http://").unwrap();
    let body = format!("{params}&Version=2016-11-15");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{params}: {response}");
    response
}

/// The text of the first `<tag>` in `xml`.
fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap() + open.len();
    let end = start + xml[start..].find('<').unwrap();
    xml[start..end].to_string()
}

/// A subnet in a VPC with DNS hostnames on, which moto's Fargate RunTask needs.
fn fargate_subnet(endpoint: &str) -> String {
    let vpc = xml_value(
        &ec2_query(endpoint, "Action=CreateVpc&CidrBlock=10.20.0.0%2F16"),
        "vpcId",
    );
    ec2_query(
        endpoint,
        &format!("Action=ModifyVpcAttribute&VpcId={vpc}&EnableDnsHostnames.Value=true"),
    );
    xml_value(
        &ec2_query(
            endpoint,
            &format!("Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.20.1.0%2F24"),
        ),
        "subnetId",
    )
}

/// What the harness did with one task.
#[derive(Debug, Clone, Default)]
pub struct TaskRun {
    /// The task.
    pub arn: String,
    /// Its `startedBy`.
    pub started_by: String,
    /// The container's command line after `transcoder`.
    pub command: Vec<String>,
    /// The RunTask overrides' environment (the task definition's is under it).
    pub overrides: BTreeMap<String, String>,
    /// When its process started and ended, and how it exited.
    pub started: Option<Instant>,
    pub ended: Option<Instant>,
    pub exit_code: Option<i32>,
    /// Its stderr (the log).
    pub stderr: String,
}

/// The stand-in for the ECS agent (see the module's documentation); stops every process it
/// started when dropped.
pub struct EcsAgentHarness {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    runs: Arc<Mutex<Vec<TaskRun>>>,
}

impl EcsAgentHarness {
    /// Watches `cluster` on the emulator `config` points at, running at most `runners` tasks
    /// at once, each with `env` (the emulator's endpoint and credentials) under its own.
    pub fn start(
        config: aws_config::SdkConfig,
        cluster: &str,
        runners: usize,
        env: Vec<(String, String)>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(Mutex::new(Vec::new()));
        let watcher = Watcher {
            ecs: aws_sdk_ecs::Client::new(&config),
            cluster: cluster.to_string(),
            runners,
            env,
            runs: runs.clone(),
        };
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(watcher.watch(&stopping));
        });
        Self {
            stop,
            thread: Some(thread),
            runs,
        }
    }

    /// Every task seen so far, in the order they started.
    pub fn runs(&self) -> Vec<TaskRun> {
        self.runs.lock().unwrap().clone()
    }

    /// The most task processes that ran at the same time.
    pub fn most_at_once(&self) -> usize {
        let runs = self.runs();
        runs.iter()
            .filter_map(|r| r.started)
            .map(|at| {
                runs.iter()
                    .filter(|r| {
                        r.started.is_some_and(|s| s <= at) && r.ended.is_none_or(|e| e > at)
                    })
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

impl Drop for EcsAgentHarness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Watcher {
    ecs: aws_sdk_ecs::Client,
    cluster: String,
    runners: usize,
    env: Vec<(String, String)>,
    runs: Arc<Mutex<Vec<TaskRun>>>,
}

/// A task process: its place in `runs`, and the process.
struct Running {
    index: usize,
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Watcher {
    async fn watch(&self, stop: &AtomicBool) {
        let mut seen = HashSet::new();
        let mut waiting: VecDeque<Task> = VecDeque::new();
        let mut running: Vec<Running> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            self.reap(&mut running).await;
            self.discover(&mut seen, &mut waiting).await;
            while running.len() < self.runners {
                let Some(task) = waiting.pop_front() else {
                    break;
                };
                if let Some(started) = self.run(&task).await {
                    running.push(started);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for mut task in running {
            let _ = task.child.kill();
            let _ = task.child.wait();
        }
    }

    /// Tasks RunTask started since the last look.
    async fn discover(&self, seen: &mut HashSet<String>, waiting: &mut VecDeque<Task>) {
        let Ok(listed) = self.ecs.list_tasks().cluster(&self.cluster).send().await else {
            return;
        };
        let new: Vec<String> = listed
            .task_arns()
            .iter()
            .filter(|arn| !seen.contains(*arn))
            .cloned()
            .collect();
        if new.is_empty() {
            return;
        }
        let Ok(described) = self
            .ecs
            .describe_tasks()
            .cluster(&self.cluster)
            .set_tasks(Some(new))
            .send()
            .await
        else {
            return;
        };
        for task in described.tasks() {
            let arn = task.task_arn().unwrap_or_default().to_string();
            if seen.insert(arn) {
                waiting.push_back(task.clone());
            }
        }
    }

    /// Starts `task`'s container as ECS would.
    async fn run(&self, task: &Task) -> Option<Running> {
        let definition = self
            .ecs
            .describe_task_definition()
            .task_definition(task.task_definition_arn().unwrap_or_default())
            .send()
            .await
            .ok()?
            .task_definition?;
        let container = definition.container_definitions().first()?.clone();
        let container_override = task.overrides().and_then(|o| {
            o.container_overrides()
                .iter()
                .find(|c| c.name() == container.name())
                .cloned()
        });
        let command: Vec<String> = match &container_override {
            Some(o) if !o.command().is_empty() => o.command().to_vec(),
            _ => container.command().to_vec(),
        };
        let pair = |kv: &aws_sdk_ecs::types::KeyValuePair| {
            (
                kv.name().unwrap_or_default().to_string(),
                kv.value().unwrap_or_default().to_string(),
            )
        };
        let overrides: BTreeMap<String, String> = container_override
            .as_ref()
            .map(|o| o.environment().iter().map(pair).collect())
            .unwrap_or_default();
        let mut child = Command::new(crate::transcoder_binary())
            .args(&command)
            .envs(self.env.iter().cloned())
            .envs(container.environment().iter().map(pair))
            .envs(overrides.clone())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let mut pipe = child.stderr.take()?;
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        let mut runs = self.runs.lock().unwrap();
        runs.push(TaskRun {
            arn: task.task_arn().unwrap_or_default().to_string(),
            started_by: task.started_by().unwrap_or_default().to_string(),
            command,
            overrides,
            started: Some(Instant::now()),
            ..TaskRun::default()
        });
        Some(Running {
            index: runs.len() - 1,
            child,
            stderr: Some(stderr),
        })
    }

    /// Stops the tasks whose process ended, as ECS does when an essential container exits.
    async fn reap(&self, running: &mut Vec<Running>) {
        let mut still = Vec::new();
        for mut task in running.drain(..) {
            let Ok(Some(status)) = task.child.try_wait() else {
                still.push(task);
                continue;
            };
            let stderr = task
                .stderr
                .take()
                .and_then(|t| t.join().ok())
                .unwrap_or_default();
            let arn = {
                let mut runs = self.runs.lock().unwrap();
                let run = &mut runs[task.index];
                run.ended = Some(Instant::now());
                run.exit_code = status.code();
                run.stderr = stderr;
                run.arn.clone()
            };
            let reason = format!(
                "Essential container in task exited (exit code {})",
                status.code().map_or("none".to_string(), |c| c.to_string())
            );
            let _ = self
                .ecs
                .stop_task()
                .cluster(&self.cluster)
                .task(arn)
                .reason(reason)
                .send()
                .await;
        }
        *running = still;
    }
}
