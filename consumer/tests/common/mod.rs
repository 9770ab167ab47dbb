//! The consumer's integration harness: a whole pipeline on moto (raw and output buckets, the
//! upload queue with its dead-letter queue and the S3 notification, a status queue, ECS with a
//! Fargate-ready subnet), the real `consumer` binary, and a fault-injecting proxy for ECS.
#![allow(dead_code)] // each test file uses its own subset

pub mod ecs_proxy;
pub mod outage;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
pub use testkit::cloud::*;
pub use testkit::*;

pub const RAW: &str = "raw";
pub const OUT: &str = "out";
#[allow(unused_imports)]
pub use testkit::ecs::{CLUSTER, TASK_FAMILY};

/// moto with everything a pipeline needs, and clients on it.
pub struct Stack {
    pub moto: Moto,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub notify_url: String,
    /// The environment for every process (AWS on moto, OUTPUT_BUCKET/PREFIX, fast preset).
    pub env: Vec<(&'static str, String)>,
}

impl Stack {
    /// The buckets, the queue (visibility `visibility_s`, to the DLQ after `max_receives`),
    /// the status queue, and the S3 notification from `raw` to the queue.
    pub async fn start(visibility_s: u32, max_receives: u32) -> Self {
        let moto = Moto::start();
        let s3 = moto.s3().await;
        let sqs = moto.sqs().await;
        let ecs = aws_sdk_ecs::Client::new(&moto.config().await);
        create_bucket(&s3, RAW).await;
        create_bucket(&s3, OUT).await;
        let dlq_url = create_queue(&sqs, "uploads-dlq").await;
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = format!(
            "{{\"deadLetterTargetArn\":\"{dlq_arn}\",\"maxReceiveCount\":\"{max_receives}\"}}"
        );
        let queue_url = sqs
            .create_queue()
            .queue_name("uploads")
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_s.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let notify_url = create_queue(&sqs, "job-status").await;
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        let notification = NotificationConfiguration::builder()
            .queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn(queue_arn)
                    .events(Event::from("s3:ObjectCreated:*"))
                    .build()
                    .unwrap(),
            )
            .build();
        s3.put_bucket_notification_configuration()
            .bucket(RAW)
            .notification_configuration(notification)
            .send()
            .await
            .unwrap();
        let mut env = moto.env();
        env.push(("OUTPUT_BUCKET", OUT.into()));
        env.push(("OUTPUT_PREFIX", "hls/".into()));
        env.push(("TRANSCODER_PRESET", "ultrafast".into()));
        // A killed transcoder's hold on its prefix lapses in seconds, not the default 90 s.
        env.push(("TRANSCODER_PREFIX_LEASE_SECONDS", "15".into()));
        Self {
            moto,
            s3,
            sqs,
            ecs,
            queue_url,
            dlq_url,
            notify_url,
            env,
        }
    }

    /// The environment for the consumer: the processes' plus the queues.
    pub fn consumer_env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = self.env.clone();
        env.push(("QUEUE_URL", self.queue_url.clone()));
        env.push(("NOTIFY_QUEUE_URL", self.notify_url.clone()));
        env.push(("POLL_WAIT_SECONDS", "1".into()));
        env.push(("TRANSCODER_HEALTH_SECONDS", "1".into()));
        env.extend(extra.iter().cloned());
        env
    }

    /// `n` warm transcoders (with `server_args`) and a consumer in `grpc` mode using them.
    pub fn warm_pipeline(&self, n: usize, server_args: &[&str]) -> (Vec<Server>, Consumer) {
        let servers: Vec<Server> = (0..n)
            .map(|_| Server::start(&self.env, server_args))
            .collect();
        let endpoints: Vec<&str> = servers.iter().map(|s| s.endpoint.as_str()).collect();
        let consumer = Consumer::start(&self.consumer_env(&[
            ("DISPATCH_MODE", "grpc".into()),
            ("TRANSCODER_ENDPOINTS", endpoints.join(",")),
        ]));
        (servers, consumer)
    }

    /// An ECS cluster with both Fargate capacity providers, the one-shot task definition, and
    /// a subnet Fargate's awsvpc accepts (moto needs DNS hostnames on its VPC). Returns the
    /// consumer's ECS settings.
    pub async fn ecs_setup(&self) -> Vec<(&'static str, String)> {
        testkit::ecs::fargate_cluster(&self.ecs, &self.moto.endpoint).await
    }

    /// Uploads a fresh test clip as `key`; returns its bytes' path's folder (kept alive).
    pub async fn upload_clip(&self, key: &str, seconds: f64) -> testkit::TempDir {
        let dir = scratch();
        let path = dir.path().join("clip.mp4");
        make_clip(&path, "testsrc2=s=640x360:r=30", seconds, true, &[]);
        upload(&self.s3, RAW, key, &path).await;
        dir
    }

    /// Keeps `warm` busy with a job submitted straight to it (as someone else would: not
    /// through the consumer), from an upload of `seconds` under `direct/`, and returns once it
    /// encodes, that upload's own notification drained from the queue. Wait on the `submit`
    /// returned.
    pub async fn busy_with_a_direct_job(
        &self,
        warm: &Server,
        seconds: f64,
    ) -> (std::process::Child, testkit::TempDir) {
        self.direct_job_busying(warm, warm, seconds).await
    }

    /// Submits an upload of `seconds` under `direct/` straight to `to`, and returns once
    /// `busy` (`to` itself, or a peer `to` splits the job with) encodes, that upload's own
    /// notification drained from the queue. Wait on the `submit` returned.
    pub async fn direct_job_busying(
        &self,
        to: &Server,
        busy: &Server,
        seconds: f64,
    ) -> (std::process::Child, testkit::TempDir) {
        let clip = self.upload_clip("direct/long.mp4", seconds).await;
        let submit = std::process::Command::new(transcoder_binary())
            .args(["submit", "--endpoint", &to.endpoint])
            .arg("s3://raw/direct/long.mp4")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        eventually(
            "the direct job to encode",
            Duration::from_secs(180),
            || async { !busy.ffmpeg_children().is_empty() },
        )
        .await;
        self.drain_queue(&self.queue_url).await;
        (submit, clip)
    }

    /// Looks every `every` while `busy()` holds, asserting each time that `consumer` has
    /// neither received from the uploads queue (`what` says while what) nor handed a job over;
    /// returns how many looks it took.
    pub async fn looks_with_nothing_received(
        &self,
        consumer: &Consumer,
        every: Duration,
        what: &str,
        mut busy: impl FnMut() -> bool,
    ) -> u32 {
        let mut looked = 0;
        while busy() {
            assert_eq!(self.counts(&self.queue_url).await.1, 0, "received {what}");
            assert!(consumer.logged("job handed over").is_empty());
            looked += 1;
            tokio::time::sleep(every).await;
        }
        looked
    }

    /// The manifest under `prefix` of the output bucket, once it exists.
    pub async fn manifest(&self, prefix: &str) -> Option<Value> {
        let out = self
            .s3
            .get_object()
            .bucket(OUT)
            .key(format!("{prefix}manifest.json"))
            .send()
            .await
            .ok()?;
        serde_json::from_slice(&out.body.collect().await.ok()?.to_vec()).ok()
    }

    /// Waits until the manifest under `prefix` says `status`.
    pub async fn wait_for_status(&self, prefix: &str, status: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.manifest(prefix).await {
                if m["status"] == status {
                    return m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {status} manifest under {prefix} after {timeout:?}: {:?}",
                self.manifest(prefix).await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// (visible, in flight) messages on `url`.
    pub async fn counts(&self, url: &str) -> (u64, u64) {
        testkit::cloud::queue_counts(&self.sqs, url).await
    }

    /// Waits until `url` holds no message, visible or in flight.
    pub async fn wait_until_empty(&self, url: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts(url).await;
            if counts == (0, 0) {
                return;
            }
            assert!(Instant::now() < deadline, "{url} still holds {counts:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The end every test wants: the uploads queue empty (nothing visible, nothing in flight)
    /// and nothing in the dead-letter queue.
    pub async fn assert_drained(&self) {
        self.wait_until_empty(&self.queue_url, Duration::from_secs(10))
            .await;
        assert_eq!(
            self.counts(&self.dlq_url).await,
            (0, 0),
            "dead-letter queue"
        );
    }

    /// Every message on `url` now (received and deleted), as JSON where it parses.
    pub async fn drain_queue(&self, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for m in messages {
                bodies.push(m.body.clone().unwrap_or_default());
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Downloads every object under `prefix` of the output bucket into `dir`.
    pub async fn download_prefix(&self, prefix: &str, dir: &Path) {
        testkit::cloud::download_prefix(&self.s3, OUT, prefix, dir).await
    }

    /// Checks the HLS under `prefix` plays: the master parses, every video variant playlist it
    /// names parses, and ffprobe reads video from each variant through the playlists (the
    /// audio-only variant and I-frame playlists are other tests' business).
    pub async fn assert_playable(&self, prefix: &str) {
        let dir = scratch();
        self.download_prefix(prefix, dir.path()).await;
        let master = master_playlist(&dir.path().join("master.m3u8"));
        let video: Vec<_> = master
            .variants
            .iter()
            .filter(|v| !v.is_i_frame && v.resolution.is_some())
            .collect();
        assert!(!video.is_empty(), "{prefix}: no variants");
        for variant in video {
            let playlist = dir.path().join(&variant.uri);
            let media = media_playlist(&playlist);
            assert!(media.end_list, "{}: not a VOD playlist", variant.uri);
            let video = stream(&playlist, "video")
                .unwrap_or_else(|| panic!("{prefix}{}: no video", variant.uri));
            let (w, h) = (
                video["width"].as_u64().unwrap(),
                video["height"].as_u64().unwrap(),
            );
            let res = variant.resolution.unwrap();
            assert_eq!((w, h), (res.width, res.height), "{}", variant.uri);
        }
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    attrs.attributes.unwrap()[&QueueAttributeName::QueueArn].clone()
}

/// A running `consumer`, killed when dropped. Its stderr (the log, JSON lines) is collected.
pub struct Consumer {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Consumer {
    /// Starts the consumer binary with `env`.
    pub fn start(env: &[(&'static str, String)]) -> Self {
        let mut child = Command::new(workspace_binary("consumer"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if std::env::var_os("CONSUMER_TEST_LOG").is_some() {
                    eprintln!("consumer: {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    /// The log lines so far, parsed.
    pub fn log(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }

    /// The raw log, for assertion messages.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "consumer did not stop:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True while `pid` runs (a zombie counts as gone: it has exited).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Sends `SIG<name>` to `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `check` holds, polling.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The consumer binary's path, for tests that run it themselves.
pub fn consumer_binary() -> PathBuf {
    workspace_binary("consumer")
}
