//! The cloud worker against moto's S3 and SQS with real processes: `transcoder serve` driven
//! by `transcoder submit`, and `transcoder run` owning a real SQS message.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cloud::*;
use common::*;

const RAW: &str = "raw";
const OUT: &str = "out";

/// moto, the two buckets, and `env` for the processes (outputs under `hls/`, fast preset).
async fn setup() -> (Moto, aws_sdk_s3::Client, Vec<(&'static str, String)>) {
    let (moto, s3, mut env) = moto_with_buckets().await;
    env.push(("OUTPUT_PREFIX", "hls/".into()));
    env.push(("TRANSCODER_PRESET", "ultrafast".into()));
    (moto, s3, env)
}

async fn upload_clip(s3: &aws_sdk_s3::Client, key: &str, seconds: f64) {
    let dir = scratch();
    let path = dir.path().join("clip.mp4");
    make_clip(&path, "testsrc2=s=640x360:r=30", seconds, true, &[]);
    upload(s3, RAW, key, &path).await;
}

/// The environment an ECS task gets for a job: the source and the message it owns.
fn task_env(
    source: &str,
    queue_url: &str,
    message: &aws_sdk_sqs::types::Message,
) -> [(&'static str, String); 4] {
    [
        ("JOB_SOURCE", source.to_string()),
        ("JOB_QUEUE_URL", queue_url.to_string()),
        (
            "JOB_RECEIPT_HANDLE",
            message.receipt_handle().unwrap().to_string(),
        ),
        ("JOB_MESSAGE_ID", message.message_id().unwrap().to_string()),
    ]
}

/// Starts `transcoder run` with `env`, as ECS starts the task; stderr is kept for the test.
fn spawn_run(env: &[(&str, String)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("run")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `transcoder run` and sends it SIGTERM (ECS's stop, Spot's notice) once its ffmpeg
/// runs; returns the task and its encoders' pids.
async fn run_then_sigterm(env: &[(&str, String)]) -> (std::process::Child, Vec<u32>) {
    let task = spawn_run(env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while children_named(task.id(), "ffmpeg").is_empty() {
        assert!(Instant::now() < deadline, "the encode never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let encoder = children_named(task.id(), "ffmpeg");
    let sent = Command::new("kill")
        .args(["-TERM", &task.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    (task, encoder)
}

async fn content_type(s3: &aws_sdk_s3::Client, key: &str) -> (String, String) {
    let head = s3.head_object().bucket(OUT).key(key).send().await.unwrap();
    (
        head.content_type().unwrap_or_default().to_string(),
        head.cache_control().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_transcodes_an_awkward_key_into_s3_with_the_right_headers() {
    let (_moto, s3, env) = setup().await;
    let key = "uploads/my clip+1 été.mp4";
    upload_clip(&s3, key, 4.0).await;
    let server = Server::start(&env, &[]);

    let source = format!("s3://{RAW}/{key}");
    let run = transcoder(&env, &["submit", "--endpoint", &server.endpoint, &source]);
    assert!(run.status.success(), "{}", describe(&run));

    // Progress arrives in order and climbs; stages come in pipeline order.
    let stdout = String::from_utf8(run.stdout).unwrap();
    let stages: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("stage "))
        .collect();
    assert_eq!(
        stages,
        ["download", "probe", "encode", "upload", "publish"],
        "{stdout}"
    );
    let percents: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("progress "))
        .map(|l| l.split('%').next().unwrap().trim().parse().unwrap())
        .collect();
    assert!(
        !percents.is_empty() && percents.windows(2).all(|w| w[0] < w[1]),
        "{percents:?}"
    );
    assert!(stdout.contains("accepted job "), "{stdout}");

    let prefix = "hls/uploads/my clip+1 été/";
    assert!(
        stdout.contains(&format!("done: s3://{OUT}/{prefix}master.m3u8")),
        "{stdout}"
    );
    let keys = list_keys(&s3, OUT, "").await;
    assert!(
        keys.iter().all(|k| k.starts_with(prefix)),
        "nothing outside the prefix: {keys:?}"
    );
    // Stable names at the prefix; the rungs in the job's version folder.
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, &format!("{prefix}manifest.json")).await).unwrap();
    let version = manifest["version"].as_str().unwrap().to_string();
    assert_eq!(manifest["published_version"], version.as_str());
    for (name, want_type) in [
        ("master.m3u8".to_string(), "application/vnd.apple.mpegurl"),
        (
            format!("{version}/360p/index.m3u8"),
            "application/vnd.apple.mpegurl",
        ),
        (format!("{version}/360p/seg_00000.m4s"), "video/mp4"),
        (format!("{version}/240p/init.mp4"), "video/mp4"),
        (format!("{version}/audio/seg_00000.m4s"), "video/mp4"),
        ("manifest.mpd".to_string(), "application/dash+xml"),
        ("poster.jpg".to_string(), "image/jpeg"),
        ("thumbnails.vtt".to_string(), "text/vtt"),
        (format!("{version}/trickplay/sprite_000.jpg"), "image/jpeg"),
        ("manifest.json".to_string(), "application/json"),
    ] {
        let (ty, cache) = content_type(&s3, &format!("{prefix}{name}")).await;
        assert_eq!(ty, want_type, "{name}");
        if name.ends_with(".m4s") || name.ends_with(".mp4") {
            assert!(cache.contains("immutable"), "{name}: {cache}");
        }
    }

    // The published master parses and names playlists that exist: two rungs, their I-frame
    // playlists, and the audio-only variant.
    let master = get(&s3, OUT, &format!("{prefix}master.m3u8")).await;
    let master = m3u8_rs::parse_master_playlist_res(&master).unwrap();
    let rungs = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && v.resolution.is_some());
    assert_eq!(rungs.count(), 2);
    assert_eq!(master.variants.len(), 5);
    for v in &master.variants {
        assert!(v.uri.starts_with(&format!("{version}/")), "{}", v.uri);
        assert!(keys.contains(&format!("{prefix}{}", v.uri)), "{}", v.uri);
    }
    assert!(
        keys.iter().filter(|k| !k.contains(&version)).all(|k| [
            "master.m3u8",
            "manifest.mpd",
            "poster.jpg",
            "thumbnails.vtt",
            "manifest.json",
            "lease.json"
        ]
        .iter()
        .any(|stable| *k == format!("{prefix}{stable}"))),
        "only stable names outside the version: {keys:?}"
    );
    assert!(!keys
        .iter()
        .any(|k| k.contains(&version) && k.ends_with("manifest.json")));
    assert_eq!(manifest["status"], "done");
    assert_eq!(manifest["source"]["bucket"], RAW);
    assert_eq!(manifest["source"]["key"], key);
    assert!(manifest["source"]["etag"].is_string());

    // The same bytes again: no work, and the client is told so.
    let again = transcoder(&env, &["submit", "--endpoint", &server.endpoint, &source]);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already published"),
        "{}",
        describe(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_upload_ends_failed_with_exit_2() {
    let (_moto, s3, env) = setup().await;
    let dir = scratch();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a video").unwrap();
    upload(&s3, RAW, "notes.mp4", &text).await;
    let server = Server::start(&env, &[]);

    let run = transcoder(
        &env,
        &[
            "submit",
            "--endpoint",
            &server.endpoint,
            "s3://raw/notes.mp4",
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr).lines().count(),
        1,
        "{}",
        describe(&run)
    );
    let keys = list_keys(&s3, OUT, "").await;
    assert_eq!(
        keys,
        ["hls/notes/manifest.json"],
        "the lease released, nothing else"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, "hls/notes/manifest.json").await).unwrap();
    assert_eq!(manifest["status"], "failed");
    assert_eq!(manifest["error"]["kind"], "invalid_input");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_token_is_refused_and_writes_nothing() {
    let (_moto, s3, env) = setup().await;
    upload_clip(&s3, "a.mp4", 2.0).await;
    let server = Server::start(&env, &["--auth-token", "right-token"]);
    for token in [None, Some("wrong-token")] {
        let mut args = vec!["submit", "--endpoint", &server.endpoint, "s3://raw/a.mp4"];
        if let Some(t) = token {
            args.extend(["--auth-token", t]);
        }
        let run = transcoder(&env, &args);
        assert_eq!(run.status.code(), Some(1), "{token:?}: {}", describe(&run));
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("refused"),
            "{}",
            describe(&run)
        );
    }
    assert!(list_keys(&s3, OUT, "").await.is_empty(), "nothing written");
    let ok = transcoder(
        &env,
        &[
            "submit",
            "--endpoint",
            &server.endpoint,
            "s3://raw/a.mp4",
            "--auth-token",
            "right-token",
        ],
    );
    assert!(ok.status.success(), "{}", describe(&ok));
}

/// Starts `transcoder submit` in the background and waits until its job is encoding.
fn submit_until_encoding(
    env: &[(&str, String)],
    endpoint: &str,
    source: &str,
) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .args(["submit", "--endpoint", endpoint, source])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "stage encode" => break,
            Some(Ok(_)) => {}
            other => panic!("submit ended before encoding: {other:?}"),
        }
    }
    // Keep draining so the client never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_server_refuses_and_a_vanished_client_stops_ffmpeg() {
    let (_moto, s3, mut env) = setup().await;
    // A long job at a slow preset, so it is surely still running while we act.
    upload_clip(&s3, "long.mp4", 30.0).await;
    upload_clip(&s3, "short.mp4", 2.0).await;
    env.retain(|(k, _)| *k != "TRANSCODER_PRESET");
    let server = Server::start(&env, &["--max-jobs", "1", "--preset", "medium"]);

    let mut first = submit_until_encoding(&env, &server.endpoint, "s3://raw/long.mp4");
    let second = transcoder(
        &env,
        &[
            "submit",
            "--endpoint",
            &server.endpoint,
            "s3://raw/short.mp4",
        ],
    );
    assert_eq!(second.status.code(), Some(1), "{}", describe(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("busy"),
        "{}",
        describe(&second)
    );

    assert!(
        !server.ffmpeg_children().is_empty(),
        "the first job's ffmpeg runs"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.ffmpeg_children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "ffmpeg still running after the client went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The slot is free again once the stopped job has recorded its end (a few S3 calls after
    // its ffmpeg is gone): the next job is accepted and completes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let third = loop {
        let third = transcoder(
            &env,
            &[
                "submit",
                "--endpoint",
                &server.endpoint,
                "s3://raw/short.mp4",
                "--preset",
                "ultrafast",
            ],
        );
        let busy = String::from_utf8_lossy(&third.stderr).contains("busy");
        if !busy || Instant::now() > deadline {
            break third;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(third.status.success(), "{}", describe(&third));
    assert!(!list_keys(&s3, OUT, "hls/long/")
        .await
        .contains(&"hls/long/master.m3u8".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_keeps_a_message_invisible_past_its_timeout_and_deletes_it_when_done() {
    let (moto, s3, mut env) = setup().await;
    let sqs = moto.sqs().await;
    let queue = sqs
        .create_queue()
        .queue_name("uploads")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "2",
        )
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    // Long enough at this preset to outlast the 2 s visibility timeout several times.
    upload_clip(&s3, "clip.mp4", 45.0).await;
    let message = &received_message(&sqs, &queue_url, 2).await;

    env.retain(|(k, _)| *k != "TRANSCODER_PRESET");
    env.extend(task_env("s3://raw/clip.mp4", &queue_url, message));
    env.extend([
        ("TRANSCODER_PRESET", "medium".to_string()),
        ("TRANSCODER_VISIBILITY_EXTENSION_SECONDS", "3".to_string()),
    ]);
    let mut task = spawn_run(&env);

    // Another consumer polls all along: it must never see the message while the job runs.
    let started = Instant::now();
    let mut polls = 0;
    let status = loop {
        if let Some(status) = task.try_wait().unwrap() {
            break status;
        }
        assert!(
            visible_messages(&sqs, &queue_url).await == 0,
            "the message became visible after {:?}",
            started.elapsed()
        );
        polls += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(task.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "run failed: {stderr}");
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "the job must outlast the 2 s timeout at least twice to show anything: {:?}",
        started.elapsed()
    );
    assert!(polls >= 4, "{polls} polls");

    // Published, and the message is gone for good.
    assert!(list_keys(&s3, OUT, "hls/clip/")
        .await
        .contains(&"hls/clip/master.m3u8".to_string()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        visible_messages(&sqs, &queue_url).await,
        0,
        "the message was deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_records_a_permanent_failure_and_deletes_its_message() {
    let (moto, s3, mut env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "q").await;
    let dir = scratch();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    upload(&s3, RAW, "junk.mov", &junk).await;
    let message = received_message(&sqs, &queue_url, 30).await;
    let handle = message.receipt_handle().unwrap().to_string();
    env.extend([
        ("JOB_SOURCE", "s3://raw/junk.mov".to_string()),
        ("JOB_QUEUE_URL", queue_url.clone()),
        ("JOB_RECEIPT_HANDLE", handle),
    ]);
    let run = transcoder(&env, &["run"]);
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, "hls/junk/manifest.json").await).unwrap();
    assert_eq!(manifest["status"], "failed");
    assert_eq!(queue_counts(&sqs, &queue_url).await, (0, 0), "deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_on_the_grpc_port() {
    let (_moto, s3, env) = setup().await;
    upload_clip(&s3, "tls.mp4", 2.0).await;
    let dir = scratch();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = Server::start(&env, &["--tls-cert", cert, "--tls-key", key]);

    let tls_endpoint = server
        .endpoint
        .replace("http://127.0.0.1", "https://localhost");
    let run = transcoder(
        &env,
        &[
            "submit",
            "--endpoint",
            &tls_endpoint,
            "--ca-cert",
            cert,
            "s3://raw/tls.mp4",
        ],
    );
    assert!(run.status.success(), "{}", describe(&run));

    // Without trusting the certificate, or in plain text, the client gets nowhere.
    let untrusted = transcoder(
        &env,
        &["submit", "--endpoint", &tls_endpoint, "s3://raw/tls.mp4"],
    );
    assert_eq!(untrusted.status.code(), Some(1), "{}", describe(&untrusted));
    let plain = transcoder(
        &env,
        &["submit", "--endpoint", &server.endpoint, "s3://raw/tls.mp4"],
    );
    assert_eq!(plain.status.code(), Some(1), "{}", describe(&plain));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_stopped_by_sigterm_without_a_drain_hands_its_message_back_at_once() {
    // A Spot interruption: ECS sends SIGTERM, then SIGKILL two minutes later.
    let (moto, s3, mut env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "uploads").await;
    upload_clip(&s3, "spot.mp4", 30.0).await;
    // Hidden for 5 minutes: only a hand-back makes it visible again within the test.
    let message = &received_message(&sqs, &queue_url, 300).await;
    env.extend(task_env("s3://raw/spot.mp4", &queue_url, message));
    // No drain: the job cannot finish in time, so it must hand back at once.
    env.push(("TRANSCODER_DRAIN_SECONDS", "0".into()));
    let (mut task, encoder) = run_then_sigterm(&env).await;
    let signalled = Instant::now();
    let status = task.wait().unwrap();
    let stopped_in = signalled.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(task.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "worth retrying: {stderr}");
    assert!(stderr.contains("the message was handed back"), "{stderr}");
    assert!(
        stopped_in < Duration::from_secs(10),
        "well inside Spot's two minutes: {stopped_in:?}"
    );
    assert!(
        encoder
            .iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()),
        "ffmpeg stopped with the job"
    );

    // Visible again now, not in five minutes, and nothing was published as done.
    assert_eq!(
        visible_messages(&sqs, &queue_url).await,
        1,
        "the message is back at once"
    );
    assert!(!list_keys(&s3, OUT, "hls/spot/")
        .await
        .contains(&"hls/spot/master.m3u8".to_string()));
    // And its record says so, rather than `processing` for ever.
    let record: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, "hls/spot/manifest.json").await).unwrap();
    assert_eq!(record["status"], "cancelled", "{record}");
    assert!(record["master_playlist"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_stopped_by_sigterm_finishes_a_job_that_fits_in_the_drain() {
    // The same notice for a job that is nearly done: it finishes and publishes, rather than
    // being redone from the start elsewhere.
    let (moto, s3, mut env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "uploads").await;
    upload_clip(&s3, "nearly.mp4", 4.0).await;
    let message = &received_message(&sqs, &queue_url, 300).await;
    env.extend(task_env("s3://raw/nearly.mp4", &queue_url, message));
    let (mut task, _) = run_then_sigterm(&env).await;
    let status = task.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(task.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let record: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, "hls/nearly/manifest.json").await).unwrap();
    assert_eq!(record["status"], "done");
    assert_eq!(
        queue_counts(&sqs, &queue_url).await,
        (0, 0),
        "deleted, not back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_during_the_switch_lets_the_job_finish_publishing() {
    // SIGTERM with no drain stops a job at once, except once it has begun to switch the stable
    // names to its version: stopped there, the stable poster would be new, the master old and
    // the record `cancelled`. The switch's first write, the stable poster, is held 3 s so the
    // signal lands inside it.
    let (moto, s3, mut env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "uploads").await;
    upload_clip(&s3, "switch.mp4", 4.0).await;
    let message = &received_message(&sqs, &queue_url, 300).await;
    env.extend(task_env("s3://raw/switch.mp4", &queue_url, message));
    env.push(("TRANSCODER_DRAIN_SECONDS", "0".into()));
    let proxy = testkit::held_request::HeldRequest::start(
        &moto.endpoint,
        &format!("PUT /{OUT}/hls/switch/poster.jpg?"),
        Duration::from_secs(3),
    );
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    let mut task = spawn_run(&env);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !proxy.arrived() {
        if let Some(status) = task.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(task.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("ended before the switch ({status}): {stderr}");
        }
        assert!(Instant::now() < deadline, "the switch never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Command::new("kill")
        .args(["-TERM", &task.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = task.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(task.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "finished: {stderr}");

    let record: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, "hls/switch/manifest.json").await).unwrap();
    assert_eq!(record["status"], "done", "{record}");
    let version = record["version"].as_str().unwrap();
    assert_eq!(record["published_version"], version, "{record}");
    let master = String::from_utf8(get(&s3, OUT, "hls/switch/master.m3u8").await).unwrap();
    let master = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
    assert!(!master.variants.is_empty());
    for variant in &master.variants {
        assert!(
            variant.uri.starts_with(&format!("{version}/")),
            "the stable master serves the new version: {}",
            variant.uri
        );
    }
    assert_eq!(
        visible_messages(&sqs, &queue_url).await,
        0,
        "the message was deleted, not handed back"
    );
    let in_flight = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        in_flight.attributes().unwrap()
            [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
        "0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cmaf_job_publishes_dash_beside_hls_and_a_later_ts_job_takes_it_down() {
    let (_moto, s3, env) = setup().await;
    upload_clip(&s3, "talk.mp4", 4.0).await;
    // A WebVTT sidecar uploaded beside the video, and a file that only looks like one.
    let sidecars = scratch();
    let vtt = sidecars.path().join("talk.de.vtt");
    std::fs::write(
        &vtt,
        "WEBVTT\n\n00:00.500 --> 00:02.000\nHallo aus der Datei\n",
    )
    .unwrap();
    upload(&s3, RAW, "talk.de.vtt", &vtt).await;
    upload(&s3, RAW, "talk.de.vtt.exe", &vtt).await;
    let prefix = "hls/talk/";
    let cmaf = Server::start(&env, &["--segments", "cmaf"]);
    let run = transcoder(
        &env,
        &["submit", "--endpoint", &cmaf.endpoint, "s3://raw/talk.mp4"],
    );
    assert!(run.status.success(), "{}", describe(&run));
    drop(cmaf);

    let record: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, &format!("{prefix}manifest.json")).await).unwrap();
    let version = record["version"].as_str().unwrap().to_string();
    // Init segments went up with the segments, typed as MP4; the manifest at the stable name
    // reaches into the version folder through its paths.
    for (name, want_type) in [
        ("manifest.mpd".to_string(), "application/dash+xml"),
        (format!("{version}/360p/init.mp4"), "video/mp4"),
        (format!("{version}/360p/seg_00000.m4s"), "video/mp4"),
        (format!("{version}/audio/init.mp4"), "video/mp4"),
        (format!("{version}/audio/seg_00000.m4s"), "video/mp4"),
        (format!("{version}/subs/subtitles.vtt"), "text/vtt"),
        (
            format!("{version}/subs/index.m3u8"),
            "application/vnd.apple.mpegurl",
        ),
    ] {
        assert_eq!(
            content_type(&s3, &format!("{prefix}{name}")).await.0,
            want_type,
            "{name}"
        );
    }
    let mpd = String::from_utf8(get(&s3, OUT, &format!("{prefix}manifest.mpd")).await).unwrap();
    assert!(
        mpd.contains(&format!("initialization=\"{version}/360p/init.mp4\"")),
        "{mpd}"
    );
    let master = String::from_utf8(get(&s3, OUT, &format!("{prefix}master.m3u8")).await).unwrap();
    assert!(
        master.contains(&format!("URI=\"{version}/audio/index.m3u8\"")),
        "{master}"
    );
    let subtitles = format!(
        "TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"de\",LANGUAGE=\"de\",DEFAULT=NO,\
         AUTOSELECT=YES,FORCED=NO,URI=\"{version}/subs/index.m3u8\""
    );
    assert!(master.contains(&subtitles), "{master}");
    assert!(
        mpd.contains(&format!("<BaseURL>{version}/subs/subtitles.vtt</BaseURL>")),
        "{mpd}"
    );
    assert_eq!(record["subtitles"].as_array().unwrap().len(), 1);
    // The record's paths reach into the version folder, as the stable master's do.
    assert_eq!(
        record["audio"][0]["playlist"],
        format!("{version}/audio/index.m3u8")
    );
    assert_eq!(
        record["renditions"][0]["iframe_playlist"],
        format!("{version}/360p/iframes.m3u8")
    );
    assert_eq!(record["dash_manifest"], "manifest.mpd");
    assert_eq!(
        record["subtitles"][0]["playlist"],
        format!("{version}/subs/index.m3u8")
    );
    let cues = get(&s3, OUT, &format!("{prefix}{version}/subs/subtitles.vtt")).await;
    assert!(String::from_utf8(cues)
        .unwrap()
        .contains("Hallo aus der Datei"));

    // What a player at the prefix gets, read by ffmpeg's DASH and HLS demuxers.
    let dir = scratch();
    testkit::cloud::download_prefix(&s3, OUT, prefix, dir.path()).await;
    let mpd_path = std::fs::canonicalize(dir.path().join("manifest.mpd")).unwrap();
    for playlist in [mpd_path, dir.path().join("master.m3u8")] {
        assert_eq!(frames_read(&playlist, "v:0"), 120, "{playlist:?}");
        let streams = ffprobe(&playlist, &["-allowed_extensions", "ALL", "-show_streams"]);
        let kinds: Vec<&str> = streams["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["codec_type"].as_str())
            .collect();
        // ffmpeg's HLS demuxer skips subtitle renditions; its DASH one reads them.
        let is_mpd = playlist.extension().is_some_and(|e| e == "mpd");
        assert!(
            kinds.contains(&"audio") && (!is_mpd || kinds.contains(&"subtitle")),
            "{playlist:?}: {kinds:?}"
        );
    }

    // A new upload, published as MPEG-TS: the DASH manifest would outlive the CMAF version's
    // folder, so it goes.
    upload_clip(&s3, "talk.mp4", 3.0).await;
    let ts = Server::start(&env, &["--segments", "ts"]);
    let run = transcoder(
        &env,
        &["submit", "--endpoint", &ts.endpoint, "s3://raw/talk.mp4"],
    );
    assert!(run.status.success(), "{}", describe(&run));
    let keys = list_keys(&s3, OUT, prefix).await;
    assert!(!keys.contains(&format!("{prefix}manifest.mpd")), "{keys:?}");
    assert!(keys.contains(&format!("{prefix}master.m3u8")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_uploaded_after_its_video_republishes_it_and_one_without_a_video_writes_nothing()
{
    let (_moto, s3, env) = setup().await;
    let cmaf = Server::start(&env, &["--segments", "cmaf"]);
    let submit = |key: &str| {
        transcoder(
            &env,
            &[
                "submit",
                "--endpoint",
                &cmaf.endpoint,
                &format!("s3://raw/{key}"),
            ],
        )
    };
    let record = |s3| async move {
        let bytes = get(s3, OUT, "hls/late/manifest.json").await;
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };

    upload_clip(&s3, "late.mp4", 3.0).await;
    let run = submit("late.mp4");
    assert!(run.status.success(), "{}", describe(&run));
    let first = record(&s3).await;
    assert_eq!(
        first["subtitles"].as_array().map_or(0, Vec::len),
        0,
        "{first}"
    );

    // The sidecar's own job is the video's again: a new version, with the subtitles.
    let dir = scratch();
    let srt = dir.path().join("late.fr.srt");
    std::fs::write(
        &srt,
        "1\n00:00:00,500 --> 00:00:02,000\nBonjour, en retard\n",
    )
    .unwrap();
    upload(&s3, RAW, "late.fr.srt", &srt).await;
    let run = submit("late.fr.srt");
    assert!(run.status.success(), "{}", describe(&run));
    let second = record(&s3).await;
    assert_eq!(second["status"], "done", "{second}");
    assert_ne!(second["version"], first["version"], "{second}");
    assert_eq!(second["source"]["key"], "late.mp4", "{second}");
    assert_eq!(
        second["source"]["sidecars"][0]["key"], "late.fr.srt",
        "{second}"
    );
    assert_eq!(second["subtitles"][0]["language"], "fr", "{second}");
    let version = second["version"].as_str().unwrap();
    let cues = get(&s3, OUT, &format!("hls/late/{version}/subs/subtitles.vtt")).await;
    assert!(String::from_utf8(cues)
        .unwrap()
        .contains("Bonjour, en retard"));
    let master = String::from_utf8(get(&s3, OUT, "hls/late/master.m3u8").await).unwrap();
    assert!(master.contains("LANGUAGE=\"fr\""), "{master}");

    // Its second delivery finds the video published with it: nothing more is done.
    let run = submit("late.fr.srt");
    assert!(run.status.success(), "{}", describe(&run));
    assert_eq!(record(&s3).await["version"], second["version"]);

    // A transcoder writing MPEG-TS cannot publish subtitles: it says so and changes nothing.
    let ts = Server::start(&env, &["--segments", "ts"]);
    let run = transcoder(
        &env,
        &["submit", "--endpoint", &ts.endpoint, "s3://raw/late.fr.srt"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(describe(&run).contains("CMAF"), "{}", describe(&run));
    assert_eq!(record(&s3).await["version"], second["version"]);

    // A sidecar whose video has no record yet (the video's own job will read it) writes
    // nothing at all: no record, no lease.
    upload(&s3, RAW, "nobody.en.srt", &srt).await;
    let run = submit("nobody.en.srt");
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(
        describe(&run).contains("no video of its name"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        list_keys(&s3, OUT, "hls/nobody").await,
        Vec::<String>::new()
    );
}
