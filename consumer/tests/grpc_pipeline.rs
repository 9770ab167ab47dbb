//! The whole pipeline in `grpc` mode on moto: uploads to the raw bucket reach warm
//! transcoders through S3's own notification and the real consumer binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use serde_json::Value;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn uploads_become_hls_through_warm_transcoders_and_nothing_is_left_behind() {
    // A short visibility and two receives before the DLQ, so the garbage message gets there
    // within the test; transcoders keep their jobs' messages with heartbeats.
    let stack = Stack::start(3, 2).await;
    let first = Server::start(&stack.env, &[]);
    let second = Server::start(&stack.env, &[]);
    let garbage = "this is not an S3 event";
    stack
        .sqs
        .send_message()
        .queue_url(&stack.queue_url)
        .message_body(garbage)
        .send()
        .await
        .unwrap();
    let endpoints = format!("{},{}", first.endpoint, second.endpoint);
    let consumer = Consumer::start(&stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        ("TRANSCODER_ENDPOINTS", endpoints),
    ]));

    // Awkward keys: spaces, '+', non-ASCII, deep folders.
    let keys = [
        ("plain.mp4", "hls/plain/"),
        (
            "deep/a/b/c/d/my clip+1 été.mp4",
            "hls/deep/a/b/c/d/my clip+1 été/",
        ),
        (
            "日本語 フォルダ/ファイル+名.mov",
            "hls/日本語 フォルダ/ファイル+名/",
        ),
    ];
    let clips = scratch();
    let plain = clips.path().join("plain.mp4");
    make_clip(&plain, "testsrc2=s=640x360:r=30", 3.0, true, &[]);
    for (key, _) in keys {
        upload(&stack.s3, RAW, key, &plain).await;
    }
    let junk = clips.path().join("broken.mp4");
    std::fs::write(
        &junk,
        b"\x00\x00\x00\x18ftypmp42 and then nothing a decoder wants",
    )
    .unwrap();
    upload(&stack.s3, RAW, "broken.mp4", &junk).await;

    for (key, prefix) in keys {
        let manifest = stack.wait_for_status(prefix, "done", JOB_TIMEOUT).await;
        assert_eq!(manifest["source"]["key"], key);
        assert_eq!(manifest["source"]["bucket"], RAW);
        stack.assert_playable(prefix).await;
    }
    let failed = stack
        .wait_for_status("hls/broken/", "failed", JOB_TIMEOUT)
        .await;
    assert_eq!(failed["error"]["kind"], "invalid_input", "{failed}");
    let rungs = list_keys(&stack.s3, OUT, "hls/broken/").await;
    assert_eq!(
        rungs,
        ["hls/broken/manifest.json"],
        "a failed job publishes nothing else"
    );

    // The same bytes again: a new notification, no new work.
    let before = stack.manifest("hls/plain/").await.unwrap();
    upload(&stack.s3, RAW, "plain.mp4", &plain).await;
    let mut events: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + JOB_TIMEOUT;
    while events.iter().filter(|e| e["key"] == "plain.mp4").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no status event for the second upload: {events:#?}"
        );
        for body in stack.drain_queue(&stack.notify_url).await {
            events.push(serde_json::from_str(&body).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = stack.manifest("hls/plain/").await.unwrap();
    assert_eq!(before, after, "the done record was not rewritten");

    // One status event per finished job, saying what a subscriber needs.
    let by_key: BTreeMap<&str, Vec<(&str, bool)>> =
        events.iter().fold(BTreeMap::new(), |mut map, e| {
            map.entry(e["key"].as_str().unwrap()).or_default().push((
                e["status"].as_str().unwrap(),
                e["already_done"].as_bool().unwrap(),
            ));
            map
        });
    let want: BTreeMap<&str, Vec<(&str, bool)>> = [
        ("broken.mp4", vec![("failed", false)]),
        ("deep/a/b/c/d/my clip+1 été.mp4", vec![("done", false)]),
        ("plain.mp4", vec![("done", false), ("done", true)]),
        ("日本語 フォルダ/ファイル+名.mov", vec![("done", false)]),
    ]
    .into();
    assert_eq!(by_key, want, "{events:#?}");
    let done = events.iter().find(|e| e["key"] == "plain.mp4").unwrap();
    assert_eq!(done["master_playlist"], "s3://out/hls/plain/master.m3u8");
    assert_eq!(done["source"], "s3://raw/plain.mp4");

    // The queue ends empty; the garbage went to the dead-letter queue by the redrive policy,
    // untouched, and the consumer kept going past it and past S3's test event.
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(60))
        .await;
    assert_eq!(stack.drain_queue(&stack.dlq_url).await, [garbage]);
    assert_eq!(stack.counts(&stack.dlq_url).await, (0, 0));
    assert_eq!(consumer.logged("s3:TestEvent; deleting it").len(), 1);
    let left = consumer.logged("not an S3 upload notification; leaving it to the redrive policy");
    assert!(!left.is_empty(), "{}", consumer.log_text());
    assert!(left[0]["span"]["message_id"].is_string(), "{}", left[0]);

    // Jobs went to both transcoders.
    let used: BTreeSet<String> = consumer
        .logged("job handed over")
        .iter()
        .map(|l| l["fields"]["by"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        used,
        BTreeSet::from([first.endpoint.clone(), second.endpoint.clone()]),
        "{}",
        consumer.log_text()
    );

    let status = consumer.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}
