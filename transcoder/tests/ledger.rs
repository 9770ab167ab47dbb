//! The ledger's scenarios against moto with real processes: re-uploads never break a published
//! video (versioned outputs), one job per output prefix (the S3 lease), and `DELETE_SOURCE`
//! never deleting bytes a job did not publish.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cloud::*;
use common::*;

const RAW: &str = "raw";
const OUT: &str = "out";
const PREFIX: &str = "hls/clip/";

async fn setup() -> (Moto, aws_sdk_s3::Client, Vec<(&'static str, String)>) {
    let (moto, s3, mut env) = moto_with_buckets().await;
    env.push(("OUTPUT_PREFIX", "hls/".into()));
    env.push(("TRANSCODER_PRESET", "ultrafast".into()));
    (moto, s3, env)
}

async fn upload_clip(s3: &aws_sdk_s3::Client, key: &str, video: &str, seconds: f64) {
    let dir = scratch();
    let path = dir.path().join("clip.mp4");
    make_clip(&path, video, seconds, true, &[]);
    upload(s3, RAW, key, &path).await;
}

async fn upload_bytes(s3: &aws_sdk_s3::Client, key: &str, bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("upload");
    std::fs::write(&path, bytes).unwrap();
    upload(s3, RAW, key, &path).await;
}

async fn record(s3: &aws_sdk_s3::Client) -> serde_json::Value {
    serde_json::from_slice(&get(s3, OUT, &format!("{PREFIX}manifest.json")).await).unwrap()
}

/// Asserts that the stable master resolves, through every media playlist, to segments that
/// exist, and returns the version it serves.
async fn assert_published(s3: &aws_sdk_s3::Client) -> String {
    let keys = list_keys(s3, OUT, PREFIX).await;
    let master = get(s3, OUT, &format!("{PREFIX}master.m3u8")).await;
    let master = m3u8_rs::parse_master_playlist_res(&master).unwrap();
    assert!(!master.variants.is_empty());
    for variant in &master.variants {
        let text = get(s3, OUT, &format!("{PREFIX}{}", variant.uri)).await;
        let playlist = m3u8_rs::parse_media_playlist_res(&text).unwrap();
        assert!(playlist.end_list, "{} is complete", variant.uri);
        let folder = variant.uri.rsplit_once('/').unwrap().0;
        for segment in &playlist.segments {
            let key = format!("{PREFIX}{folder}/{}", segment.uri);
            assert!(keys.contains(&key), "{key} is listed and missing");
        }
    }
    master.variants[0]
        .uri
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Starts `transcoder run` with `env`, as ECS starts a task, and returns once it encodes.
async fn run_until_encoding(env: &[(&str, String)]) -> std::process::Child {
    let task = Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("run")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while children_named(task.id(), "ffmpeg").is_empty() {
        assert!(Instant::now() < deadline, "the encode never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task
}

fn submit(env: &[(&str, String)], endpoint: &str) -> std::process::Output {
    transcoder(
        env,
        &["submit", "--endpoint", endpoint, "s3://raw/clip.mp4"],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reupload_switches_versions_atomically_and_a_bad_one_never_touches_the_published() {
    let (_moto, s3, env) = setup().await;
    // Replaced versions go at the next publish: no grace in this test.
    let mut server_env = env.clone();
    server_env.push(("TRANSCODER_KEEP_REPLACED_SECONDS", "0".into()));
    let server = Server::start(&server_env, &[]);

    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=30", 3.0).await;
    let first = submit(&env, &server.endpoint);
    assert!(first.status.success(), "{}", describe(&first));
    let v1 = assert_published(&s3).await;
    assert_eq!(record(&s3).await["version"], v1.as_str());

    // Garbage under the same key: invalid, recorded as such, and the video still plays v1.
    upload_bytes(&s3, "clip.mp4", b"#EXTM3U\nnot a video at all\n").await;
    let bad = submit(&env, &server.endpoint);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert_eq!(
        assert_published(&s3).await,
        v1,
        "the published video is untouched"
    );
    let failed = record(&s3).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["published_version"], v1.as_str(), "{failed}");
    let failed_version = failed["version"].as_str().unwrap();
    assert!(
        list_keys(&s3, OUT, &format!("{PREFIX}{failed_version}/"))
            .await
            .is_empty(),
        "an invalid upload leaves no version behind"
    );

    // Good new bytes: a new version, switched in one step; v1 recorded as replaced.
    upload_clip(&s3, "clip.mp4", "testsrc=s=640x360:r=25", 3.0).await;
    let second = submit(&env, &server.endpoint);
    assert!(second.status.success(), "{}", describe(&second));
    let v2 = assert_published(&s3).await;
    assert_ne!(v1, v2);
    let done = record(&s3).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["published_version"], v2.as_str());
    assert_eq!(
        done["replaced_versions"][0]["version"],
        v1.as_str(),
        "{done}"
    );
    assert!(
        !list_keys(&s3, OUT, &format!("{PREFIX}{v1}/"))
            .await
            .is_empty(),
        "kept for now"
    );
    // No name is reused, so a cached segment can never be mixed into the new version.
    let keys = list_keys(&s3, OUT, PREFIX).await;
    let segments = |v: &str| {
        keys.iter()
            .filter(|k| k.starts_with(&format!("{PREFIX}{v}/")) && k.ends_with(".m4s"))
            .count()
    };
    assert!(segments(&v1) > 0 && segments(&v2) > 0);

    // A third publish finds v1 past its (zero) grace and deletes it.
    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=24", 2.0).await;
    let third = submit(&env, &server.endpoint);
    assert!(third.status.success(), "{}", describe(&third));
    let v3 = assert_published(&s3).await;
    assert!(
        list_keys(&s3, OUT, &format!("{PREFIX}{v1}/"))
            .await
            .is_empty(),
        "v1 retired"
    );
    let done = record(&s3).await;
    assert_eq!(done["published_version"], v3.as_str());
    assert_eq!(
        done["replaced_versions"][0]["version"],
        v2.as_str(),
        "{done}"
    );
}

/// Writes a lease at the prefix as another job would, valid for `seconds`.
async fn hold_prefix(s3: &aws_sdk_s3::Client, holder: &str, seconds: i64) {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    let body = serde_json::json!({
        "job_id": holder,
        "version": "_v20260101T000000Z-00000000",
        "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap(),
    });
    s3.put_object()
        .bucket(OUT)
        .key(format!("{PREFIX}lease.json"))
        .body(body.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_waits_for_the_prefix_holder_and_one_that_loses_the_prefix_stops_at_once() {
    let (_moto, s3, env) = setup().await;
    let mut server_env = env.clone();
    server_env.push(("TRANSCODER_PREFIX_LEASE_SECONDS", "3".into()));
    let server = Server::start(&server_env, &[]);
    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=30", 20.0).await;

    // Another job holds the prefix: this one waits, writing nothing, until the hold lapses.
    hold_prefix(&s3, "the-other-job", 6).await;
    let endpoint = server.endpoint.clone();
    let waiting_env = env.clone();
    let job = std::thread::spawn(move || submit(&waiting_env, &endpoint));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        list_keys(&s3, OUT, PREFIX).await,
        [format!("{PREFIX}lease.json")],
        "nothing written while another job holds the prefix"
    );
    // Once the encode runs, the prefix is taken over from under it: it must stop at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.ffmpeg_children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the job never started after the hold lapsed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ours: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, &format!("{PREFIX}lease.json")).await).unwrap();
    assert_ne!(ours["job_id"], "the-other-job");
    hold_prefix(&s3, "the-usurper", 600).await;
    let taken_at = Instant::now();
    let run = job.join().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", describe(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("lost the output prefix"),
        "{}",
        describe(&run)
    );
    assert!(
        taken_at.elapsed() < Duration::from_secs(10),
        "stopped within a renewal"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.ffmpeg_children().is_empty() {
        assert!(Instant::now() < deadline, "its ffmpeg is gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It wrote nothing after losing it: no `failed` record over the new holder's prefix.
    let after = list_keys(&s3, OUT, PREFIX).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(after, list_keys(&s3, OUT, PREFIX).await);
    assert_eq!(record(&s3).await["status"], "processing");
    let lease: serde_json::Value =
        serde_json::from_slice(&get(&s3, OUT, &format!("{PREFIX}lease.json")).await).unwrap();
    assert_eq!(
        lease["job_id"], "the-usurper",
        "the new holder's lease is left alone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_source_keeps_a_reupload_that_landed_during_the_job() {
    let (_moto, s3, env) = setup().await;
    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=30", 8.0).await;
    let mut run_env = env.clone();
    run_env.push(("JOB_SOURCE", "s3://raw/clip.mp4".into()));
    run_env.push(("DELETE_SOURCE", "true".into()));
    let mut task = run_until_encoding(&run_env).await;
    // The user uploads new bytes while the first job encodes the old ones.
    upload_clip(&s3, "clip.mp4", "testsrc=s=640x360:r=25", 2.0).await;
    let reuploaded = s3
        .head_object()
        .bucket(RAW)
        .key("clip.mp4")
        .send()
        .await
        .unwrap();
    assert!(task.wait().unwrap().success());
    let kept = s3.head_object().bucket(RAW).key("clip.mp4").send().await;
    let kept = kept.expect("the re-upload is still there for its own job");
    assert_eq!(kept.e_tag(), reuploaded.e_tag());

    // Once its own job is done, that one is deleted.
    let mut again = Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("run")
        .envs(run_env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(again.wait().unwrap().success());
    assert!(
        list_keys(&s3, RAW, "").await.is_empty(),
        "the source went once published"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_message_is_taken_from_it_stops_at_once_and_writes_nothing_more() {
    let (moto, s3, env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "uploads").await;
    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=30", 30.0).await;
    let message = received_message(&sqs, &queue_url, 30).await;
    let receipt = message.receipt_handle().unwrap().to_string();
    let mut run_env = env.clone();
    run_env.extend([
        ("JOB_SOURCE", "s3://raw/clip.mp4".to_string()),
        ("JOB_QUEUE_URL", queue_url.clone()),
        ("JOB_RECEIPT_HANDLE", receipt.clone()),
        ("JOB_MESSAGE_ID", message.message_id().unwrap().to_string()),
        ("TRANSCODER_VISIBILITY_EXTENSION_SECONDS", "3".to_string()),
        ("TRANSCODER_PRESET", "medium".to_string()),
    ]);
    let mut task = run_until_encoding(&run_env).await;
    // A twin finished the upload and deleted the message.
    sqs.delete_message()
        .queue_url(&queue_url)
        .receipt_handle(&receipt)
        .send()
        .await
        .unwrap();
    let taken_at = Instant::now();
    let status = loop {
        if let Some(status) = task.try_wait().unwrap() {
            break status;
        }
        assert!(
            taken_at.elapsed() < Duration::from_secs(10),
            "still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(task.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lost the queue message"), "{stderr}");
    let record = record(&s3).await;
    assert_eq!(
        record["status"], "processing",
        "no failed record over the twin's: {record}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retryable_failure_is_recorded_retrying_and_on_the_last_delivery_dead_lettered() {
    let (moto, s3, env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "uploads").await;
    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=30", 30.0).await;
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("an upload")
        .send()
        .await
        .unwrap();
    for (delivery, want) in [(1, "retrying"), (2, "dead_lettered")] {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .visibility_timeout(60)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        let message = received
            .messages()
            .first()
            .unwrap_or_else(|| panic!("delivery {delivery}: nothing to receive"));
        let mut run_env = env.clone();
        run_env.extend([
            ("JOB_SOURCE", "s3://raw/clip.mp4".to_string()),
            ("JOB_QUEUE_URL", queue_url.clone()),
            (
                "JOB_RECEIPT_HANDLE",
                message.receipt_handle().unwrap().to_string(),
            ),
            ("JOB_RECEIVE_COUNT", delivery.to_string()),
            ("QUEUE_MAX_RECEIVE_COUNT", "2".to_string()),
            ("TRANSCODER_PRESET", "medium".to_string()),
        ]);
        let task = run_until_encoding(&run_env).await;
        // The OOM killer takes the encoder: the machine's fault, not the file's.
        for pid in children_named(task.id(), "ffmpeg") {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
        }
        let output = task.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        let record = record(&s3).await;
        assert_eq!(record["status"], want, "{record}");
        assert_eq!(record["attempts"], delivery, "{record}");
        assert_eq!(record["error"]["kind"], "internal");
        assert_eq!(
            queue_counts(&sqs, &queue_url).await,
            (1, 0),
            "handed back at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_transcodes_exactly_the_bytes_it_recorded() {
    use transcoder::liveness::Liveness;
    use transcoder::storage::{S3Object, S3Store, StorageError};
    let (moto, s3, _env) = setup().await;
    upload_bytes(&s3, "clip.mp4", b"first bytes").await;
    let store = S3Store::new(&moto.config().await);
    let object = S3Object::parse("s3://raw/clip.mp4").unwrap();
    let read = store.head(&object).await.unwrap();
    // The user replaces the upload between the job's look and its download.
    upload_bytes(&s3, "clip.mp4", b"second bytes").await;
    let dir = scratch();
    let got = store
        .download(
            &object,
            read.etag.as_deref(),
            &dir.path().join("s"),
            1 << 20,
            &Liveness::default(),
            &|_| {},
        )
        .await;
    let error = got.expect_err("the recorded ETag no longer matches");
    assert!(
        matches!(error, StorageError::SourceChanged { .. }),
        "{error}"
    );
    assert!(
        !error.is_invalid_input(),
        "worth retrying, on the new bytes"
    );
    let now = store.head(&object).await.unwrap();
    let fresh = store
        .download(
            &object,
            now.etag.as_deref(),
            &dir.path().join("s"),
            1 << 20,
            &Liveness::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("s")).unwrap(),
        b"second bytes"
    );
    assert_eq!(fresh.etag, now.etag);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_stuck_where_no_watchdog_looks_gives_its_message_back() {
    let (moto, s3, env) = setup().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "uploads").await;
    upload_clip(&s3, "clip.mp4", "testsrc2=s=640x360:r=30", 2.0).await;
    let message = received_message(&sqs, &queue_url, 30).await;
    // S3 that takes connections and never answers: no event, no byte, no error, ever.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut run_env = env.clone();
    run_env.extend([
        (
            "AWS_ENDPOINT_URL_S3",
            format!("http://{}", black_hole.local_addr().unwrap()),
        ),
        ("JOB_SOURCE", "s3://raw/clip.mp4".to_string()),
        ("JOB_QUEUE_URL", queue_url.clone()),
        (
            "JOB_RECEIPT_HANDLE",
            message.receipt_handle().unwrap().to_string(),
        ),
        ("TRANSCODER_VISIBILITY_EXTENSION_SECONDS", "3".to_string()),
        ("TRANSCODER_STALL_SECONDS", "3".to_string()),
    ]);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("run")
        .envs(run_env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("showed no progress for 3 s"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped in {:?}",
        started.elapsed()
    );
    // The upload is not held for SQS's 12 hours: its message is back for another try.
    assert_eq!(queue_counts(&sqs, &queue_url).await, (1, 0));
}
