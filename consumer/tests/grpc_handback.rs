//! What the consumer does when a warm job cannot finish: a transcoder that dies mid-job, and
//! the consumer's own shutdown. Either way the message goes back and nothing is lost.

mod common;

use std::time::Duration;

use common::*;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// The index of the server whose ffmpeg runs, once one does.
async fn the_encoding_one(servers: &[Server]) -> usize {
    let encoding = || servers.iter().position(|s| !s.ffmpeg_children().is_empty());
    eventually("a transcoder to encode", JOB_TIMEOUT, || {
        let found = encoding().is_some();
        async move { found }
    })
    .await;
    encoding().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transcoder_killed_mid_job_loses_nothing_the_other_one_finishes() {
    let mut stack = Stack::start(30, 3).await;
    // The transcoders want a token, and the consumer sends it on every call.
    stack.env.push(("TRANSCODER_AUTH_TOKEN", "s3cret".into()));
    let (mut servers, consumer) = stack.warm_pipeline(2, &[]);
    let _clip = stack.upload_clip("long.mp4", 30.0).await;

    // SIGKILL: no drain, no hand-back from the transcoder itself. Its heartbeat stops with it,
    // and so does its ffmpeg (killed with its parent, and its progress pipe is broken too): no
    // orphan encoder.
    let victim = servers.remove(the_encoding_one(&servers).await);
    let orphans = victim.ffmpeg_children();
    drop(victim);
    // Well before the encode would have ended by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while orphans.iter().any(|pid| running(*pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "ffmpeg {orphans:?} outlived its transcoder"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let done = stack
        .wait_for_status("hls/long/", "done", JOB_TIMEOUT)
        .await;
    assert_eq!(done["source"]["key"], "long.mp4");
    stack.assert_playable("hls/long/").await;
    assert_eq!(
        consumer
            .logged("lost the job's stream; handing its message back")
            .len(),
        1,
        "{}",
        consumer.log_text()
    );
    // The second delivery went to the survivor at once, not after the 30 s visibility.
    let handed = consumer.logged("job handed over");
    assert_eq!(handed.len(), 2);
    assert_eq!(handed[1]["fields"]["by"], servers[0].endpoint);
    stack.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_transcoder_is_given_up_by_keepalive_and_the_other_one_finishes() {
    // SIGSTOP: the process is there, its sockets stay open and its kernel still answers TCP,
    // but it sends nothing and answers no HTTP/2 PING. Without keepalives the consumer would
    // wait on its progress stream for ever.
    let stack = Stack::start(30, 3).await;
    let (mut servers, consumer) = stack.warm_pipeline(2, &[]);
    let _clip = stack.upload_clip("frozen.mp4", 30.0).await;
    let frozen = servers.remove(the_encoding_one(&servers).await);
    signal(frozen.child.id(), "STOP");
    for pid in frozen.ffmpeg_children() {
        signal(pid, "STOP");
    }
    let since = std::time::Instant::now();

    let done = stack
        .wait_for_status("hls/frozen/", "done", JOB_TIMEOUT)
        .await;
    assert_eq!(done["source"]["key"], "frozen.mp4");
    stack.assert_playable("hls/frozen/").await;
    let handed = consumer.logged("job handed over");
    assert_eq!(handed.len(), 2, "{}", consumer.log_text());
    assert_eq!(handed[1]["fields"]["by"], servers[0].endpoint);
    // Given up within the keepalive's bound (interval + timeout, 30 s), not the job's length.
    let given_up = consumer.logged("lost the job's stream; handing its message back");
    assert_eq!(given_up.len(), 1, "{}", consumer.log_text());
    assert!(since.elapsed() < JOB_TIMEOUT, "took {:?}", since.elapsed());
    signal(frozen.child.id(), "CONT");
    drop(frozen);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_waits_for_running_jobs_and_leaves_the_rest_to_their_transcoders() {
    let stack = Stack::start(60, 3).await;
    let server = Server::start(&stack.env, &[]);
    // By name, as ECS service discovery gives it: the pool resolves it to addresses.
    let by_name = server.endpoint.replace("127.0.0.1", "localhost");
    let env = stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        ("TRANSCODER_ENDPOINTS", by_name),
    ]);

    // A grace period long enough: the running job finishes, then the consumer exits 0.
    let mut patient = env.clone();
    patient.push(("SHUTDOWN_GRACE_SECONDS", "120".into()));
    let consumer = Consumer::start(&patient);
    let _short = stack.upload_clip("short.mp4", 6.0).await;
    eventually("the job to start", JOB_TIMEOUT, || async {
        !server.ffmpeg_children().is_empty()
    })
    .await;
    let status = consumer.terminate(JOB_TIMEOUT);
    assert!(status.success(), "{status:?}");
    let done = stack.manifest("hls/short/").await.unwrap();
    assert_eq!(
        done["status"], "done",
        "the consumer exited before its job ended"
    );
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(10))
        .await;

    // A grace period too short: the consumer exits, and the job goes on without it. Its
    // transcoder owns the message, finishes the work and reports it as the consumer would
    // have: a consumer restart costs no work and loses no report.
    stack.drain_queue(&stack.notify_url).await;
    let mut hasty = env.clone();
    hasty.push(("SHUTDOWN_GRACE_SECONDS", "1".into()));
    let consumer = Consumer::start(&hasty);
    // Long enough to be still encoding when the consumer, with its 1 s grace, has exited.
    let _long = stack.upload_clip("long.mp4", 120.0).await;
    eventually("the long job to start", JOB_TIMEOUT, || async {
        !server.ffmpeg_children().is_empty()
    })
    .await;
    let status = consumer.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        !server.ffmpeg_children().is_empty(),
        "the job goes on without the consumer"
    );
    assert_eq!(stack.counts(&stack.queue_url).await, (0, 1), "still owned");
    let done = stack
        .wait_for_status("hls/long/", "done", JOB_TIMEOUT)
        .await;
    assert_eq!(done["attempts"], 1, "one delivery, no second start: {done}");
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(10))
        .await;
    let events: Vec<serde_json::Value> = stack
        .drain_queue(&stack.notify_url)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["key"].as_str(), events[0]["status"].as_str()),
        (Some("long.mp4"), Some("done"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_waits_out_a_missing_queue_and_recovers_by_itself() {
    // The consumer starts before its queue's service exists: every receive fails.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let queue_url = format!("{endpoint}/123456789012/uploads");
    let env: Vec<(&'static str, String)> = vec![
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("QUEUE_URL", queue_url.clone()),
        ("POLL_WAIT_SECONDS", "1".into()),
        ("DISPATCH_MODE", "grpc".into()),
        // Nothing listens there either: no slot is free until a transcoder comes.
        (
            "TRANSCODER_ENDPOINTS",
            format!("http://127.0.0.1:{}", free_port()),
        ),
        ("TRANSCODER_HEALTH_SECONDS", "1".into()),
    ];
    let consumer = Consumer::start(&env);
    // With no transcoder, the consumer must not even receive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(consumer.logged("cannot receive from the queue").is_empty());
    assert!(consumer.logged("consumer started")[0]["fields"]["free_slots"] == 0);

    // A transcoder comes up; the consumer finds no queue and backs off, more each time.
    let moto = Moto::start_on(port);
    let sqs = moto.sqs().await;
    let stack_env = {
        let mut env = moto.env();
        env.push(("OUTPUT_BUCKET", OUT.into()));
        env
    };
    let server = Server::start(&stack_env, &[]);
    drop(consumer);
    let mut env = env;
    env.retain(|(k, _)| *k != "TRANSCODER_ENDPOINTS");
    env.push(("TRANSCODER_ENDPOINTS", server.endpoint.clone()));
    let consumer = Consumer::start(&env);
    eventually("receive errors", Duration::from_secs(30), || async {
        consumer.logged("cannot receive from the queue").len() >= 3
    })
    .await;
    let failures: Vec<u64> = consumer
        .logged("cannot receive from the queue")
        .iter()
        .map(|l| l["fields"]["failures"].as_u64().unwrap())
        .collect();
    assert!(
        failures.windows(2).all(|w| w[1] == w[0] + 1),
        "{failures:?}"
    );

    // The queue appears: the consumer recovers by itself and deletes S3's test event.
    let url = create_queue(&sqs, "uploads").await;
    assert_eq!(url, queue_url);
    sqs.send_message()
        .queue_url(&url)
        .message_body(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-21T10:00:00.000Z","Bucket":"raw","RequestId":"r","HostId":"h"}"#)
        .send()
        .await
        .unwrap();
    eventually(
        "the test event to be handled",
        Duration::from_secs(90),
        || async { !consumer.logged("s3:TestEvent; deleting it").is_empty() },
    )
    .await;
    assert_eq!(consumer.logged("the queue answers again").len(), 1);
    assert!(consumer.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transcoder_killed_after_going_public_leaves_nothing_half_done() {
    let stack = Stack::start(30, 3).await;
    let (mut servers, consumer) = stack.warm_pipeline(2, &[]);
    // Five rungs of 1080p: the stream is public (an early master, EVENT playlists) seconds
    // into an encode that goes on for a while after.
    let dir = scratch();
    let clip = dir.path().join("big.mp4");
    make_clip(&clip, "testsrc2=s=1920x1080:r=30", 12.0, true, &[]);
    upload(&stack.s3, RAW, "big.mp4", &clip).await;

    let deadline = std::time::Instant::now() + JOB_TIMEOUT;
    let public = loop {
        if let Some(line) = consumer.logged("playable").first() {
            break line["span"]["transcoder"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "never playable");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let victim = servers.iter().position(|s| s.endpoint == public).unwrap();
    drop(servers.remove(victim));
    // What a player sees now: an unfinished stream (EVENT playlists, no end), never a `done`
    // record or a VOD playlist naming segments that do not exist.
    let published_before = list_keys(&stack.s3, OUT, "hls/big/").await;
    assert!(published_before.contains(&"hls/big/master.m3u8".to_string()));
    let record = stack.manifest("hls/big/").await.unwrap();
    let version = record["version"].as_str().unwrap();
    let playlist = get(
        &stack.s3,
        OUT,
        &format!("hls/big/{version}/1080p/index.m3u8"),
    )
    .await;
    let playlist = m3u8_rs::parse_media_playlist_res(&playlist).unwrap();
    assert!(
        !playlist.end_list,
        "the killed job's playlists are unfinished"
    );
    for segment in &playlist.segments {
        let key = format!("hls/big/{version}/1080p/{}", segment.uri);
        assert!(published_before.contains(&key), "{key} listed, missing");
    }
    assert_eq!(record["status"], "processing", "never a partial done");

    // The survivor redoes the job from the start and publishes it whole, once.
    let done = stack.wait_for_status("hls/big/", "done", JOB_TIMEOUT).await;
    assert_eq!(done["renditions"].as_array().unwrap().len(), 5);
    stack.assert_playable("hls/big/").await;
    let handed = consumer.logged("job handed over");
    assert_eq!(handed.len(), 2);
    assert_eq!(handed[1]["fields"]["by"], servers[0].endpoint);
    stack.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transcoder_full_with_work_it_was_not_sent_gets_nothing_and_no_delivery_burns() {
    // Two receives and a message goes to the dead-letter queue: nothing may cost one.
    let stack = Stack::start(30, 2).await;
    let warm = Server::start(&stack.env, &["--max-jobs", "1"]);
    let (mut submit, _long) = stack.busy_with_a_direct_job(&warm, 60.0).await;

    let consumer =
        Consumer::start(&stack.consumer_env(&[("TRANSCODER_ENDPOINTS", warm.endpoint.clone())]));
    let _clip = stack.upload_clip("queued.mp4", 2.0).await;
    // The transcoder's capacity status says it is full: the consumer does not even receive
    // the upload, which waits in the queue for any consumer with room.
    let looked = stack
        .looks_with_nothing_received(&consumer, Duration::from_millis(250), "while full", || {
            submit.try_wait().unwrap().is_none()
        })
        .await;
    assert!(looked >= 8, "the direct job ran for {looked} looks only");
    let done = stack
        .wait_for_status("hls/queued/", "done", JOB_TIMEOUT)
        .await;
    assert_eq!(done["attempts"], 1, "one delivery: {done}");
    assert!(submit.wait().unwrap().success());
    assert!(
        consumer
            .logged("every transcoder is busy; the job waits here for one")
            .is_empty(),
        "never refused"
    );
    assert_eq!(consumer.logged("job handed over").len(), 1);
    stack.assert_drained().await;
}

/// A range of another transcoder's split job takes a slot as a job does: the peer's capacity
/// status says full while it encodes one, and the consumer does not receive for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_busy_with_a_split_range_looks_full_and_gets_nothing() {
    let stack = Stack::start(30, 2).await;
    let peer = Server::start(&stack.env, &["--max-jobs", "1"]);
    let mut coordinator_env = stack.env.clone();
    coordinator_env.push(("TRANSCODER_PEERS", peer.endpoint.clone()));
    coordinator_env.push(("SPLIT_MIN_SECONDS", "20".into()));
    let coordinator = Server::start(&coordinator_env, &[]);
    // 240 s cut for two workers: the peer gets one range of about two minutes.
    let (mut submit, _long) = stack.direct_job_busying(&coordinator, &peer, 240.0).await;

    // The consumer knows only the peer, and starts while the range encodes there.
    let consumer =
        Consumer::start(&stack.consumer_env(&[("TRANSCODER_ENDPOINTS", peer.endpoint.clone())]));
    let _clip = stack.upload_clip("queued.mp4", 2.0).await;
    let looked = stack
        .looks_with_nothing_received(
            &consumer,
            Duration::from_millis(100),
            "while the peer encodes a range",
            || !peer.ffmpeg_children().is_empty(),
        )
        .await;
    // At least 3 s: the consumer, polling every second and checking health every second,
    // would have received within 2 s had the peer looked free.
    assert!(looked >= 30, "the range ran for {looked} looks only");
    let done = stack
        .wait_for_status("hls/queued/", "done", JOB_TIMEOUT)
        .await;
    assert_eq!(done["attempts"], 1, "one delivery: {done}");
    assert!(
        consumer
            .logged("every transcoder is busy; the job waits here for one")
            .is_empty(),
        "never refused"
    );
    assert!(submit.wait().unwrap().success());
    stack
        .wait_for_status("hls/direct/long/", "done", JOB_TIMEOUT)
        .await;
    stack.assert_drained().await;
}
