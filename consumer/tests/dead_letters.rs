//! `consumer dead-letters`, the real binary against moto: `list` shows what the dead-letter
//! queue holds and leaves it all there, `redrive` moves exactly what it is asked to back to the
//! uploads queue, and a message that is not there is an error.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use consumer::event::{single_upload_notification, Upload};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `consumer dead-letters ARGS` with only the AWS environment and `QUEUE_URL`: none of the
/// service's dispatch settings, from a folder without a `.env`.
fn dead_letters(stack: &Stack, queue_url: &str, args: &[&str]) -> Output {
    let cwd = scratch();
    Command::new(env!("CARGO_BIN_EXE_consumer"))
        .arg("dead-letters")
        .args(args)
        .current_dir(cwd.path())
        .env_clear()
        .envs(stack.moto.env())
        .env("QUEUE_URL", queue_url)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn upload_body(key: &str, etag: Option<&str>) -> String {
    single_upload_notification(&Upload {
        bucket: RAW.into(),
        key: key.into(),
        size: Some(1234),
        etag: etag.map(str::to_string),
        event_name: "ObjectCreated:Put".into(),
        event_time: None,
    })
}

async fn send(stack: &Stack, url: &str, body: &str) -> String {
    let sent = stack
        .sqs
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap();
    sent.message_id.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_every_dead_letter_and_redrive_moves_exactly_what_is_named() {
    let stack = Stack::start(30, 3).await;
    // The uploads queue starts empty: only S3's test event for the harness's notification.
    let setup = stack.drain_queue(&stack.queue_url).await;
    assert!(
        setup.iter().all(|b| b.contains("s3:TestEvent")),
        "{setup:?}"
    );
    let first = upload_body(
        "up/first clip.mp4",
        Some("0123456789abcdef0123456789abcdef"),
    );
    let second = upload_body("up/second.mov", None);
    let garbage = format!("this is not JSON, {}", "and it goes on ".repeat(20));
    let first_id = send(&stack, &stack.dlq_url, &first).await;
    let second_id = send(&stack, &stack.dlq_url, &second).await;
    let garbage_id = send(&stack, &stack.dlq_url, &garbage).await;
    assert_eq!(stack.counts(&stack.dlq_url).await, (3, 0));

    // list: one line per message, then the count; all three visible again at once.
    let listed = dead_letters(&stack, &stack.queue_url, &["list"]);
    assert!(listed.status.success(), "{}", describe(&listed));
    let text = stdout(&listed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[3],
        format!("3 messages in the dead-letter queue {}", stack.dlq_url)
    );
    let line = |id: &str| {
        let found: Vec<&&str> = lines.iter().filter(|l| l.starts_with(id)).collect();
        assert_eq!(found.len(), 1, "{id} in {text}");
        found[0].to_string()
    };
    let wants = [
        (
            &first_id,
            "s3://raw/up/first clip.mp4 etag=0123456789abcdef0123456789abcdef".to_string(),
        ),
        (&second_id, "s3://raw/up/second.mov".to_string()),
        (
            &garbage_id,
            format!(
                "not an S3 notification: {}…",
                garbage.chars().take(80).collect::<String>()
            ),
        ),
    ];
    let now = OffsetDateTime::now_utc();
    for (id, what) in &wants {
        let row = line(id);
        let fields: Vec<&str> = row.splitn(4, "  ").collect();
        assert_eq!(fields.len(), 4, "{row}");
        assert_eq!(fields[0], id.as_str());
        let sent = fields[1].strip_prefix("sent ").unwrap();
        let sent = OffsetDateTime::parse(sent, &Rfc3339).unwrap();
        assert!((now - sent).abs() < time::Duration::minutes(2), "{row}");
        assert_eq!(fields[2], "received 0", "never received before: {row}");
        assert_eq!(fields[3], what, "{row}");
    }
    assert_eq!(
        stack.counts(&stack.dlq_url).await,
        (3, 0),
        "list must leave every message visible"
    );
    assert_eq!(stack.counts(&stack.queue_url).await, (0, 0));

    // redrive ID: that message, with the same body, is in the uploads queue and no longer in
    // the dead-letter queue; the others stay.
    let moved = dead_letters(&stack, &stack.queue_url, &["redrive", &first_id]);
    assert!(moved.status.success(), "{}", describe(&moved));
    let text = stdout(&moved);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("moved {first_id} as ")),
        "{text}"
    );
    assert!(lines[0].ends_with(&wants[0].1), "{text}");
    assert_eq!(
        lines[1],
        format!(
            "1 message moved from {} to {}",
            stack.dlq_url, stack.queue_url
        )
    );
    assert_eq!(stack.drain_queue(&stack.queue_url).await, vec![first]);
    assert_eq!(stack.counts(&stack.dlq_url).await, (2, 0));
    let listed = dead_letters(&stack, &stack.queue_url, &["list"]);
    let text = stdout(&listed);
    assert!(!text.contains(&first_id), "{text}");
    assert!(
        text.contains(&second_id) && text.contains(&garbage_id),
        "{text}"
    );

    // An id that is not there: exit 1, named on stderr, nothing moved.
    let missing = dead_letters(&stack, &stack.queue_url, &["redrive", "no-such-id"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(&format!(
            "no message no-such-id in the dead-letter queue {}",
            stack.dlq_url
        )),
        "{stderr}"
    );
    assert!(stdout(&missing).contains("0 messages moved"));
    // The one already moved is not there either any more.
    let again = dead_letters(&stack, &stack.queue_url, &["redrive", &first_id]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert_eq!(stack.counts(&stack.dlq_url).await, (2, 0));
    assert_eq!(stack.counts(&stack.queue_url).await, (0, 0));

    // redrive --all: the rest, bodies unchanged, and the dead-letter queue is empty.
    let all = dead_letters(&stack, &stack.queue_url, &["redrive", "--all"]);
    assert!(all.status.success(), "{}", describe(&all));
    let text = stdout(&all);
    assert!(
        text.ends_with(&format!(
            "2 messages moved from {} to {}\n",
            stack.dlq_url, stack.queue_url
        )),
        "{text}"
    );
    for id in [&second_id, &garbage_id] {
        assert!(text.contains(&format!("moved {id} as ")), "{text}");
    }
    let bodies: BTreeSet<String> = stack
        .drain_queue(&stack.queue_url)
        .await
        .into_iter()
        .collect();
    assert_eq!(bodies, BTreeSet::from([second, garbage]));
    stack
        .wait_until_empty(&stack.dlq_url, Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_without_a_redrive_policy_is_one_line_and_exit_1() {
    let stack = Stack::start(30, 3).await;
    let plain = create_queue(&stack.sqs, "no-policy").await;
    let out = dead_letters(&stack, &plain, &["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{plain} has no redrive policy")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // Naming the dead-letter queue is enough.
    send(&stack, &stack.dlq_url, "hello").await;
    let named = dead_letters(
        &stack,
        &plain,
        &["list", "--dead-letter-queue-url", &stack.dlq_url],
    );
    assert!(named.status.success(), "{}", describe(&named));
    assert!(
        stdout(&named).contains("  not an S3 notification: hello\n"),
        "{}",
        describe(&named)
    );
    assert_eq!(stack.counts(&stack.dlq_url).await, (1, 0));
}

/// A job SIGKILLed on its message's last delivery cannot write its ending, and no later
/// delivery comes: the consumer's dead-letter sweep marks its `processing` record
/// `dead_lettered` once the job's lease has lapsed, leaves the message in the dead-letter
/// queue, and leaves alone the record of a dead letter whose upload was published.
#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_marks_the_record_of_a_job_killed_on_its_last_delivery() {
    let mut stack = Stack::start(4, 1).await;
    for (name, value) in stack.env.iter_mut() {
        if *name == "TRANSCODER_PREFIX_LEASE_SECONDS" {
            *value = "3".into();
        }
    }
    let servers: Vec<Server> = (0..2).map(|_| Server::start(&stack.env, &[])).collect();
    let endpoints: Vec<&str> = servers.iter().map(|s| s.endpoint.as_str()).collect();
    let consumer = Consumer::start(&stack.consumer_env(&[
        ("DISPATCH_MODE", "grpc".into()),
        ("TRANSCODER_ENDPOINTS", endpoints.join(",")),
        ("DEAD_LETTER_SWEEP_SECONDS", "1".into()),
    ]));

    // A published upload whose notification also sits in the dead-letter queue.
    let _good = stack.upload_clip("up/good.mp4", 2.0).await;
    let done = stack
        .wait_for_status("hls/up/good/", "done", Duration::from_secs(120))
        .await;
    let etag = done["source"]["etag"].as_str().unwrap().trim_matches('"');
    send(
        &stack,
        &stack.dlq_url,
        &upload_body("up/good.mp4", Some(etag)),
    )
    .await;

    // The last (and only) delivery of a long upload, killed mid-encode with its transcoder.
    let _long = stack.upload_clip("up/killed.mp4", 60.0).await;
    let mut running = None;
    eventually("the job to encode", Duration::from_secs(120), || {
        running = servers.iter().find(|s| !s.ffmpeg_children().is_empty());
        std::future::ready(running.is_some())
    })
    .await;
    let running = running.unwrap();
    let processing = stack
        .wait_for_status("hls/up/killed/", "processing", Duration::from_secs(30))
        .await;
    assert_eq!(processing["attempts"], 1, "{processing}");
    let ffmpeg = running.ffmpeg_children();
    signal(running.child.id(), "KILL");
    for pid in ffmpeg {
        signal(pid, "KILL");
    }

    let record = stack
        .wait_for_status("hls/up/killed/", "dead_lettered", Duration::from_secs(90))
        .await;
    assert_eq!(record["job_id"], processing["job_id"], "{record}");
    assert_eq!(record["attempts"], 1, "{record}");
    assert_eq!(record["error"]["kind"], "internal", "{record}");
    assert_eq!(
        record["error"]["message"],
        "the job's last delivery (delivery 1) ended without a result: its process stopped or \
         died before it could record why, and the queue moved the message to the dead-letter \
         queue",
        "{record}"
    );
    // Both messages stay for an operator, visible again once the sweep has looked.
    eventually(
        "both dead letters visible",
        Duration::from_secs(40),
        || async { stack.counts(&stack.dlq_url).await == (2, 0) },
    )
    .await;
    assert_eq!(stack.counts(&stack.queue_url).await, (0, 0));
    // Later sweeps change nothing: the abandoned record was marked once, the published one
    // never.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let marked = "the job of a dead-lettered upload died without an ending: its record now says \
                  dead_lettered";
    assert_eq!(consumer.logged(marked).len(), 1, "{}", consumer.log_text());
    let good = stack.manifest("hls/up/good/").await.unwrap();
    assert_eq!(
        good, done,
        "the published upload's record must stay as it was"
    );
    assert_eq!(
        stack.manifest("hls/up/killed/").await.unwrap(),
        record,
        "marked once"
    );
}
