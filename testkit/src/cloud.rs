//! The cloud half of the harness: moto's server on a free loopback port, real
//! `transcoder serve` processes, and SDK clients pointed at moto.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// A moto server, killed when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// moto_server: `MOTO_SERVER` (scripts/test.sh sets it), else where scripts/lib/deps.sh
/// installs it by default, else `PATH`.
fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return path.into();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let default = Path::new(&home).join(".cache/vod-pipeline/moto-venv/bin/moto_server");
        if default.exists() {
            return default;
        }
    }
    "moto_server".into()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts moto on `port` (a test that starts it late, after its clients) and waits until
    /// it answers.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (scripts/test.sh installs it and sets MOTO_SERVER)");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on {address}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            endpoint: format!("http://{address}"),
        }
    }

    /// The environment a process needs to use this moto as its AWS.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            // Nothing on this machine must try the instance metadata endpoint.
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// SDK configuration pointed at this moto.
    pub async fn config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await
    }

    /// An S3 client (path-style, as emulators need).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// An SQS client.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config().await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `transcoder serve`, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl Server {
    /// Starts `transcoder serve --listen 127.0.0.1:0 extra...` with `env`, and waits for its
    /// "listening on" line.
    pub fn start(env: &[(&str, String)], extra: &[&str]) -> Self {
        let mut child = Command::new(crate::transcoder_binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        // Keep reading, so a later line never meets a closed pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        let address = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve printed {first:?}"))
            .to_string();
        Self {
            child,
            endpoint: format!("http://{address}"),
        }
    }

    /// Process ids of this server's ffmpeg children.
    pub fn ffmpeg_children(&self) -> Vec<u32> {
        children_named(self.child.id(), "ffmpeg")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Children of `parent` whose command name is `name`, from /proc.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let ppid = tail
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// Runs `transcoder ARGS` with `env` and returns its output.
pub fn transcoder(env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    Command::new(crate::transcoder_binary())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Creates `bucket`.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
}

/// Uploads the local file `path` as `bucket/key`.
pub async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, path: &Path) {
    let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
        .await
        .unwrap();
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .unwrap();
}

/// Every key under `prefix` in `bucket`.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            keys.push(object.key().unwrap().to_string());
        }
    }
    keys.sort();
    keys
}

/// The body of `bucket/key`.
pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().to_vec()
}

/// Downloads every object under `prefix` of `bucket` into `dir`, by its name under the prefix.
/// An object gone between the listing and its download (a job's prefix lease, released just
/// after its `done` record) is skipped.
pub async fn download_prefix(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, dir: &Path) {
    for key in list_keys(s3, bucket, prefix).await {
        let got = s3.get_object().bucket(bucket).key(&key).send().await;
        let body = match got {
            Ok(out) => out.body.collect().await.unwrap().to_vec(),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => continue,
            Err(e) => panic!("GetObject {bucket}/{key}: {e:?}"),
        };
        let path = dir.join(key.strip_prefix(prefix).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
    }
}

/// moto with a `raw` and an `out` bucket, an S3 client, and the environment for the processes
/// (`OUTPUT_BUCKET=out`).
pub async fn moto_with_buckets() -> (Moto, aws_sdk_s3::Client, Vec<(&'static str, String)>) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    create_bucket(&s3, "raw").await;
    create_bucket(&s3, "out").await;
    let mut env = moto.env();
    env.push(("OUTPUT_BUCKET", "out".into()));
    (moto, s3, env)
}

/// Sends a message to `queue_url` and receives it (invisible for `visibility_s`), as a consumer
/// would before handing the job over.
pub async fn received_message(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    visibility_s: i32,
) -> aws_sdk_sqs::types::Message {
    sqs.send_message()
        .queue_url(queue_url)
        .message_body("{\"job\":1}")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .visibility_timeout(visibility_s)
        .send()
        .await
        .unwrap();
    received.messages()[0].clone()
}

/// How many messages one receive on `queue_url` gets now (each then hidden for the queue's
/// visibility timeout): what another consumer would see.
pub async fn visible_messages(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .send()
        .await
        .unwrap();
    received.messages().len()
}

/// (visible, in flight) messages on `queue_url`: (0, 0) once every message is deleted.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName::{
        ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
    };
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes.unwrap_or_default();
    let get = |name| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        get(ApproximateNumberOfMessages),
        get(ApproximateNumberOfMessagesNotVisible),
    )
}

/// Creates the queue `name` and returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    let created = sqs.create_queue().queue_name(name).send().await.unwrap();
    created.queue_url().unwrap().to_string()
}
