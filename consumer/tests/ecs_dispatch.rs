//! `ecs` and `auto` modes on moto's ECS, which records tasks and runs no container: the test
//! plays Fargate's part by starting `transcoder run` with exactly the environment the task's
//! container overrides give it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ecs_proxy::EcsProxy;
use common::*;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// Every task on the cluster: (capacity provider, the container's override environment).
async fn tasks(stack: &Stack) -> Vec<(String, BTreeMap<String, String>)> {
    let arns = stack
        .ecs
        .list_tasks()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap()
        .task_arns
        .unwrap_or_default();
    if arns.is_empty() {
        return Vec::new();
    }
    let described = stack
        .ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(arns))
        .send()
        .await
        .unwrap();
    described
        .tasks()
        .iter()
        .map(|task| {
            assert_eq!(task.started_by(), Some("vod-consumer"));
            let container = &task.overrides().unwrap().container_overrides()[0];
            assert_eq!(container.name(), Some("transcoder"));
            let env = container
                .environment()
                .iter()
                .map(|kv| {
                    (
                        kv.name().unwrap().to_string(),
                        kv.value().unwrap().to_string(),
                    )
                })
                .collect();
            (
                task.capacity_provider_name()
                    .unwrap_or_default()
                    .to_string(),
                env,
            )
        })
        .collect()
}

/// Waits until the cluster has `n` tasks.
async fn wait_for_tasks(stack: &Stack, n: usize) -> Vec<(String, BTreeMap<String, String>)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = tasks(stack).await;
        if found.len() >= n {
            assert_eq!(found.len(), n, "{found:#?}");
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} tasks, want {n}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Plays Fargate: `transcoder run` with the process environment (AWS on moto, the task
/// definition's OUTPUT_BUCKET...) plus exactly the task's override environment.
fn run_task_container(stack: &Stack, overrides: &BTreeMap<String, String>) {
    let mut env = stack.env.clone();
    env.retain(|(k, _)| !overrides.contains_key(*k));
    let env: Vec<(&str, String)> = env
        .into_iter()
        .chain(overrides.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .collect();
    let run = transcoder(&env, &["run"]);
    assert!(run.status.success(), "{}", describe(&run));
}

fn provider(request: &serde_json::Value) -> &str {
    request["capacityProviderStrategy"][0]["capacityProvider"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_mode_starts_one_spot_task_per_upload_and_never_loses_a_message() {
    let stack = Stack::start(30, 5).await;
    let ecs_env = stack.ecs_setup().await;
    let proxy = EcsProxy::start(&stack.moto.endpoint);
    // Four no-capacity answers against three attempts per delivery: the first delivery fails
    // on Spot, Spot, then FARGATE and goes back to the queue; the second fails once more on
    // Spot and then starts.
    proxy.fail_next_run_tasks(4);
    let mut env = stack.consumer_env(&[
        ("DISPATCH_MODE", "ecs".into()),
        ("ECS_RUN_TASK_ATTEMPTS", "3".into()),
        ("AWS_ENDPOINT_URL_ECS", proxy.endpoint.clone()),
    ]);
    env.extend(ecs_env);
    let consumer = Consumer::start(&env);

    let key = "tasks/a b+c é.mp4";
    let _clip = stack.upload_clip(key, 3.0).await;
    let found = wait_for_tasks(&stack, 1).await;
    let calls = proxy.run_tasks();
    let attempts: Vec<(&str, bool)> = calls
        .iter()
        .map(|(r, failed)| (provider(r), *failed))
        .collect();
    assert_eq!(
        attempts,
        [
            ("FARGATE_SPOT", true),
            ("FARGATE_SPOT", true),
            ("FARGATE", true),
            ("FARGATE_SPOT", true),
            ("FARGATE_SPOT", false),
        ],
        "{}",
        consumer.log_text()
    );
    for (request, _) in &calls {
        let vpc = &request["networkConfiguration"]["awsvpcConfiguration"];
        assert_eq!(vpc["assignPublicIp"], "DISABLED");
        assert_eq!(vpc["subnets"].as_array().unwrap().len(), 1);
        assert_eq!(request["taskDefinition"], TASK_FAMILY);
        assert_eq!(request["cluster"], CLUSTER);
    }
    assert_eq!(consumer.logged("could not hand the job over").len(), 1);
    // A new idempotency token for each attempt, or ECS would answer a retry with the failure
    // it gave the first; a new job id, so a new token, for each delivery.
    let tokens: Vec<&str> = calls
        .iter()
        .map(|(r, _)| r["clientToken"].as_str().unwrap())
        .collect();
    let distinct: std::collections::HashSet<&&str> = tokens.iter().collect();
    assert_eq!(distinct.len(), tokens.len(), "{tokens:?}");
    assert!(
        tokens.iter().all(|t| t.len() <= 64),
        "ECS takes 64 characters"
    );

    // The task carries the job, and only the task owns the message now.
    let (capacity, overrides) = &found[0];
    assert_eq!(capacity, "FARGATE_SPOT");
    assert_eq!(overrides["JOB_SOURCE"], format!("s3://{RAW}/{key}"));
    // RunTask failed three times on the first delivery, and the job waited in the consumer
    // for the next try: that cost no delivery.
    assert_eq!(overrides["JOB_RECEIVE_COUNT"], "1");
    assert_eq!(overrides["JOB_OUTPUT"], "s3://out/hls/tasks/a b+c é/");
    assert_eq!(overrides["JOB_QUEUE_URL"], stack.queue_url);
    assert_eq!(overrides["NOTIFY_QUEUE_URL"], stack.notify_url);
    assert!(!overrides["JOB_RECEIPT_HANDLE"].is_empty());
    assert_eq!(stack.counts(&stack.queue_url).await, (0, 1));
    run_task_container(&stack, overrides);
    stack
        .wait_for_status("hls/tasks/a b+c é/", "done", JOB_TIMEOUT)
        .await;
    stack.assert_playable("hls/tasks/a b+c é/").await;
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(10))
        .await;

    // A second upload while RunTask is throttled twice: the call is retried with backoff (the
    // SDK's retry, same client token) and the task starts on Spot, no fallback needed.
    proxy.throttle_next_run_tasks(2);
    let _clip = stack.upload_clip("second.mp4", 2.0).await;
    let found = wait_for_tasks(&stack, 2).await;
    let calls = proxy.run_tasks();
    assert_eq!(calls.len(), 8, "{calls:#?}");
    let tokens: Vec<&str> = calls[5..]
        .iter()
        .map(|(r, _)| r["clientToken"].as_str().unwrap())
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(calls[5..]
        .iter()
        .all(|(r, _)| provider(r) == "FARGATE_SPOT"));
    let (capacity, overrides) = found
        .iter()
        .find(|(_, env)| env["JOB_SOURCE"] == "s3://raw/second.mp4")
        .unwrap();
    assert_eq!(capacity, "FARGATE_SPOT");
    run_task_container(&stack, overrides);
    stack
        .wait_for_status("hls/second/", "done", JOB_TIMEOUT)
        .await;

    // `transcoder run` reported both jobs itself: the consumer was not following them.
    let events: Vec<serde_json::Value> = stack
        .drain_queue(&stack.notify_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let mut keys: Vec<&str> = events.iter().map(|e| e["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["second.mp4", key]);
    assert!(events.iter().all(|e| e["status"] == "done"));
    stack.assert_drained().await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_mode_overflows_to_ecs_only_when_the_warm_pool_is_busy() {
    let stack = Stack::start(30, 3).await;
    let ecs_env = stack.ecs_setup().await;
    let warm = Server::start(&stack.env, &["--max-jobs", "1"]);
    let mut env = stack.consumer_env(&[
        ("DISPATCH_MODE", "auto".into()),
        ("TRANSCODER_ENDPOINTS", warm.endpoint.clone()),
        ("DELETE_SOURCE", "true".into()),
    ]);
    env.extend(ecs_env);
    let consumer = Consumer::start(&env);

    // The first upload goes to the idle warm transcoder: no task.
    let _long = stack.upload_clip("first.mp4", 20.0).await;
    eventually("the warm transcoder to encode", JOB_TIMEOUT, || async {
        !warm.ffmpeg_children().is_empty()
    })
    .await;
    assert!(tasks(&stack).await.is_empty());

    // While it is busy, the next one overflows to ECS.
    let _short = stack.upload_clip("second clip.mp4", 2.0).await;
    let found = wait_for_tasks(&stack, 1).await;
    let (capacity, overrides) = &found[0];
    assert_eq!(capacity, "FARGATE_SPOT");
    assert_eq!(overrides["JOB_SOURCE"], "s3://raw/second clip.mp4");
    assert_eq!(overrides["DELETE_SOURCE"], "true");
    run_task_container(&stack, overrides);

    stack
        .wait_for_status("hls/first/", "done", JOB_TIMEOUT)
        .await;
    stack
        .wait_for_status("hls/second clip/", "done", JOB_TIMEOUT)
        .await;
    stack.assert_playable("hls/first/").await;
    stack.assert_playable("hls/second clip/").await;
    let handed: Vec<String> = consumer
        .logged("job handed over")
        .iter()
        .map(|l| l["fields"]["by"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(handed.len(), 2, "{handed:?}");
    assert_eq!(handed[0], warm.endpoint);
    assert!(handed[1].starts_with("arn:aws:ecs:"), "{handed:?}");

    // DELETE_SOURCE: both raw uploads are gone once done (by the consumer for the warm job,
    // by `transcoder run` for the task's), and the queues are empty.
    eventually(
        "the raw uploads to be deleted",
        Duration::from_secs(30),
        || async { list_keys(&stack.s3, RAW, "").await.is_empty() },
    )
    .await;
    stack.assert_drained().await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transcoder_busy_with_someone_elses_job_gets_nothing_and_the_job_overflows() {
    let stack = Stack::start(30, 3).await;
    let ecs_env = stack.ecs_setup().await;
    let warm = Server::start(&stack.env, &["--max-jobs", "1"]);
    let (submit, _long) = stack.busy_with_a_direct_job(&warm, 20.0).await;

    let mut env = stack.consumer_env(&[
        ("DISPATCH_MODE", "auto".into()),
        ("TRANSCODER_ENDPOINTS", warm.endpoint.clone()),
    ]);
    env.extend(ecs_env);
    let consumer = Consumer::start(&env);
    let _clip = stack.upload_clip("queued.mp4", 2.0).await;
    let found = wait_for_tasks(&stack, 1).await;
    assert_eq!(found[0].1["JOB_SOURCE"], "s3://raw/queued.mp4");
    // Its capacity status said it was full: it was never even asked, the job went to ECS.
    assert_eq!(
        consumer.logged("transcoder busy; trying the next").len(),
        0,
        "{}",
        consumer.log_text()
    );
    assert_eq!(
        consumer
            .logged("every warm transcoder is busy; starting a task")
            .len(),
        1
    );
    run_task_container(&stack, &found[0].1);
    stack
        .wait_for_status("hls/queued/", "done", JOB_TIMEOUT)
        .await;
    let direct = submit.wait_with_output().unwrap();
    assert!(direct.status.success(), "{}", describe(&direct));
    stack
        .wait_until_empty(&stack.queue_url, Duration::from_secs(10))
        .await;
}
