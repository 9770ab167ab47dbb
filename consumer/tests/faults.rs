//! Faults around a job, with moto, real transcoders and the real consumer: each job still ends
//! `done` exactly once, or `failed` with a reason, and the queues end as the redrive policy
//! says.

mod common;

use std::time::Duration;

use common::*;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

async fn remove_bucket(stack: &Stack, bucket: &str) {
    for key in list_keys(&stack.s3, bucket, "").await {
        stack
            .s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    stack
        .s3
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_output_bucket_vanishing_mid_job_is_retried_then_dead_lettered_never_done() {
    let stack = Stack::start(30, 2).await;
    let (servers, consumer) = stack.warm_pipeline(1, &[]);
    let server = &servers[0];
    let _clip = stack.upload_clip("vanish.mp4", 20.0).await;
    eventually("the encode to start", JOB_TIMEOUT, || async {
        !server.ffmpeg_children().is_empty()
    })
    .await;
    // The bucket goes away under the job: its writes fail, after the SDK's own retries.
    remove_bucket(&stack, OUT).await;

    // Each delivery is a real attempt that fails with the reason; after the redrive policy's
    // two receives the message rests in the dead-letter queue, for an operator to redrive.
    eventually(
        "the message in the dead-letter queue",
        JOB_TIMEOUT,
        || async { stack.counts(&stack.dlq_url).await.0 == 1 },
    )
    .await;
    let failures = consumer.logged("job failed");
    assert_eq!(failures.len(), 2, "{}", consumer.log_text());
    for failed in &failures {
        assert_eq!(failed["fields"]["kind"], "Internal", "{failed}");
        let error = failed["fields"]["error"].as_str().unwrap();
        assert!(error.contains("NoSuchBucket"), "{failed}");
    }
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(10))
        .await;
    // Nothing was published, let alone `done`.
    create_bucket(&stack.s3, OUT).await;
    assert!(list_keys(&stack.s3, OUT, "").await.is_empty());
    assert!(consumer.logged("job done").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_always_fails_ends_in_the_dead_letter_queue_after_the_maximum_receives() {
    let stack = Stack::start(3, 2).await;
    // A transcoder whose output bucket does not exist: every attempt fails, worth retrying.
    let mut env = stack.env.clone();
    env.retain(|(k, _)| *k != "OUTPUT_BUCKET");
    env.push(("OUTPUT_BUCKET", "no-such-bucket".into()));
    let server = Server::start(&env, &[]);
    let mut consumer_env = stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        ("TRANSCODER_ENDPOINTS", server.endpoint.clone()),
    ]);
    // The consumer names no output: the transcoder's own (missing) bucket is used.
    consumer_env.retain(|(k, _)| *k != "OUTPUT_BUCKET");
    let consumer = Consumer::start(&consumer_env);
    let _clip = stack.upload_clip("doomed.mp4", 2.0).await;

    eventually(
        "the message in the dead-letter queue",
        JOB_TIMEOUT,
        || async { stack.counts(&stack.dlq_url).await.0 == 1 },
    )
    .await;
    let dead = stack.drain_queue(&stack.dlq_url).await;
    assert!(dead[0].contains("doomed.mp4"), "{dead:?}");
    // Exactly the redrive policy's two receives, each a real attempt, then no loop.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let attempts = consumer.logged("job handed over").len();
    assert_eq!(attempts, 2, "{}", consumer.log_text());
    assert_eq!(consumer.logged("job failed").len(), 2);
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(10))
        .await;
    assert!(list_keys(&stack.s3, OUT, "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_deleted_before_its_turn_is_dropped_and_the_consumer_goes_on() {
    let stack = Stack::start(30, 3).await;
    let server = Server::start(&stack.env, &[]);
    // Uploaded and deleted before any consumer runs: the notification outlives the object.
    let _gone = stack.upload_clip("gone.mp4", 2.0).await;
    stack
        .s3
        .delete_object()
        .bucket(RAW)
        .key("gone.mp4")
        .send()
        .await
        .unwrap();
    let consumer = Consumer::start(&stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        ("TRANSCODER_ENDPOINTS", server.endpoint.clone()),
    ]));
    let _next = stack.upload_clip("next.mp4", 2.0).await;
    stack
        .wait_for_status("hls/next/", "done", JOB_TIMEOUT)
        .await;

    let failed = consumer.logged("job failed");
    assert_eq!(failed.len(), 1, "{}", consumer.log_text());
    assert_eq!(failed[0]["fields"]["kind"], "InvalidInput");
    assert!(
        failed[0]["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{}",
        failed[0]
    );
    // No record is written for a source that is gone (it could overwrite a done one after
    // DELETE_SOURCE), and its message is not retried.
    assert!(list_keys(&stack.s3, OUT, "hls/gone/").await.is_empty());
    stack.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_unreachable_for_15_seconds_under_load_every_job_still_ends_done_once() {
    let stack = Stack::start(20, 5).await;
    // The transcoders and the consumer reach "AWS" through a proxy the test can cut.
    let outage = common::outage::Outage::start(&stack.moto.endpoint);
    let mut env = stack.env.clone();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", outage.endpoint.clone()));
    let servers = [Server::start(&env, &[]), Server::start(&env, &[])];
    let mut consumer_env = stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        (
            "TRANSCODER_ENDPOINTS",
            format!("{},{}", servers[0].endpoint, servers[1].endpoint),
        ),
    ]);
    consumer_env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    consumer_env.push(("AWS_ENDPOINT_URL", outage.endpoint.clone()));
    let consumer = Consumer::start(&consumer_env);

    let keys: Vec<String> = (0..6).map(|i| format!("load/clip-{i}.mp4")).collect();
    let dir = scratch();
    let clip = dir.path().join("clip.mp4");
    make_clip(&clip, "testsrc2=s=640x360:r=30", 8.0, true, &[]);
    for key in &keys {
        upload(&stack.s3, RAW, key, &clip).await;
    }
    eventually("both transcoders to be encoding", JOB_TIMEOUT, || async {
        servers.iter().all(|s| !s.ffmpeg_children().is_empty())
    })
    .await;

    outage.begin();
    tokio::time::sleep(Duration::from_secs(15)).await;
    outage.end();

    for i in 0..keys.len() {
        stack
            .wait_for_status(
                &format!("hls/load/clip-{i}/"),
                "done",
                Duration::from_secs(300),
            )
            .await;
    }
    stack.assert_drained().await;
    // Done exactly once each: one transcode per upload published (a repeat delivery after a
    // lost delete finds it already done and does no work).
    let published: Vec<String> = consumer
        .logged("job done")
        .iter()
        .filter(|l| l["fields"]["already_done"] == false)
        .map(|l| l["fields"]["master_playlist"].as_str().unwrap().to_string())
        .collect();
    let mut unique = published.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{published:#?}");
    assert_eq!(
        published.len(),
        keys.len(),
        "published twice: {published:#?}"
    );
    // The outage was felt and recovered from without help.
    assert!(
        !consumer.logged("cannot receive from the queue").is_empty()
            || !consumer.logged("job failed").is_empty(),
        "{}",
        consumer.log_text()
    );
    for i in 0..keys.len() {
        stack.assert_playable(&format!("hls/load/clip-{i}/")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_notification_of_a_running_job_starts_no_second_transcode() {
    let stack = Stack::start(30, 3).await;
    let servers = [
        Server::start(&stack.env, &[]),
        Server::start(&stack.env, &[]),
    ];
    let consumer = Consumer::start(&stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        (
            "TRANSCODER_ENDPOINTS",
            format!("{},{}", servers[0].endpoint, servers[1].endpoint),
        ),
    ]));
    let _clip = stack.upload_clip("twice.mp4", 8.0).await;
    // S3 delivers at least once: the same event again, as a second message.
    let head = stack
        .s3
        .head_object()
        .bucket(RAW)
        .key("twice.mp4")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    let duplicate = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": RAW}, "object": {"key": "twice.mp4", "size": 1, "eTag": etag}},
    }]});
    stack
        .sqs
        .send_message()
        .queue_url(&stack.queue_url)
        .message_body(duplicate.to_string())
        .send()
        .await
        .unwrap();

    stack
        .wait_for_status("hls/twice/", "done", JOB_TIMEOUT)
        .await;
    stack.assert_drained().await;
    assert_eq!(
        consumer.logged("job handed over").len(),
        1,
        "one transcode: {}",
        consumer.log_text()
    );
    assert_eq!(
        consumer
            .logged("a job for these very bytes is running; deleting this duplicate notification")
            .len(),
        1
    );
}
