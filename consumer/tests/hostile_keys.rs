//! Object keys an attacker can choose (S3 allows almost anything): whatever the key, the
//! outputs stay under the output prefix, through the whole pipeline.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn hostile_keys_never_write_outside_the_output_prefix() {
    let stack = Stack::start(30, 3).await;
    let server = Server::start(&stack.env, &["--max-jobs", "2"]);
    let _consumer = Consumer::start(&stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        ("TRANSCODER_ENDPOINTS", server.endpoint.clone()),
        ("TRANSCODER_JOBS_PER_ENDPOINT", "2".into()),
    ]));
    let long = format!("{}.mp4", "ä".repeat(508)); // 1,020 bytes: near S3's 1,024
    let keys = [
        "../../../etc/evil.mp4".to_string(),
        "/absolute/looking.mp4".to_string(),
        "ctrl\u{1}\u{7f}\tchars\\back.mp4".to_string(),
        "a/./b//../c.mp4".to_string(),
        long,
    ];
    let dir = scratch();
    let clip = dir.path().join("clip.mp4");
    make_clip(&clip, "testsrc2=s=320x240:r=30", 2.0, true, &[]);
    for key in &keys {
        upload(&stack.s3, RAW, key, &clip).await;
    }

    // Every upload ends done, each under hls/ and nowhere else.
    let deadline = Instant::now() + Duration::from_secs(180);
    let manifests = loop {
        let found: Vec<String> = list_keys(&stack.s3, OUT, "")
            .await
            .into_iter()
            .filter(|k| k.ends_with("/manifest.json"))
            .collect();
        let mut done = 0;
        for key in &found {
            let body = get(&stack.s3, OUT, key).await;
            let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
            done += usize::from(record["status"] == "done");
        }
        if done == keys.len() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} done: {found:#?}",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for key in list_keys(&stack.s3, OUT, "").await {
        assert!(key.starts_with("hls/"), "outside the prefix: {key:?}");
        assert!(
            !key.split('/')
                .any(|s| s == ".." || s == "." || s.is_empty() && key.ends_with('/')),
            "{key:?}"
        );
        assert!(!key.chars().any(char::is_control), "{key:?}");
        assert!(key.len() <= 1024, "{} bytes", key.len());
    }
    // Each record names its true source key, untouched.
    let mut sources = Vec::new();
    for manifest in &manifests {
        let record: serde_json::Value =
            serde_json::from_slice(&get(&stack.s3, OUT, manifest).await).unwrap();
        sources.push(record["source"]["key"].as_str().unwrap().to_string());
    }
    sources.sort();
    let mut want = keys.to_vec();
    want.sort();
    assert_eq!(sources, want);
    stack.assert_drained().await;
}
