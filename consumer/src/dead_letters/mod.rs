//! `consumer dead-letters`: an operator's look into the dead-letter queue of `QUEUE_URL`, and
//! moving messages from it back to `QUEUE_URL` once the cause is fixed.
//!
//! SQS has no "peek": a receive hides what it returns. So a look receives in batches, each
//! message hidden for [`HOLD`] instead of the queue's visibility timeout, until a receive brings
//! nothing new, and then makes every message it still holds visible again at once (visibility
//! 0). A look that is interrupted leaves its messages hidden for at most [`HOLD`].
//!
//! A move sends the exact body to `QUEUE_URL` first and deletes the message from the dead-letter
//! queue second. If the delete fails the message is in both queues, which is harmless: the
//! transcoder's ETag check makes a second run of published bytes a no-op. The other order
//! could lose it.

mod scan;
mod sweep;

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event::{decode_message, one_line, DecodeError, Decoded};
use crate::queue::{Inbox, QueueError, Received};
pub use scan::HOLD;
use scan::{resolve, Scan};
pub use sweep::{sweep_forever, SweepSettings};

/// How much of a body that is not an S3 notification is shown.
const EXCERPT_CHARS: usize = 80;

/// `consumer dead-letters --help`, below the list of actions.
pub const HELP_VARIABLES: &str = "\
Both actions read:
  QUEUE_URL              (--queue-url) the uploads queue; its RedrivePolicy names the
                         dead-letter queue, and `redrive` sends messages back to it
  DEAD_LETTER_QUEUE_URL  (--dead-letter-queue-url) the dead-letter queue, when QUEUE_URL has
                         no redrive policy (or to use another)
  AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID, ... the standard AWS environment
The dispatch settings (TRANSCODER_ENDPOINTS, ECS_*) are not needed.

SQS has no peek: each message is hidden for 30 s while it is looked at, then made visible
again at once. Each look counts as one receive of each message (and `list` shows the count
before its own). Exit codes: 0 when all went well; 1 when a queue cannot be found or read, or
a message asked for was not found or not moved.";

/// Looks into the dead-letter queue of QUEUE_URL and moves messages back to QUEUE_URL.
#[derive(Debug, Args)]
pub struct DeadLetters {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with the dead-letter queue.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Prints every message in the dead-letter queue, one per line; changes nothing.
    ///
    /// One line per message: its id, when it was first sent (RFC 3339, UTC), how many times it
    /// was received before this look, and the upload(s) it names (s3://bucket/key, with the
    /// ETag when the notification has one), or the start of its body when it is not an S3
    /// notification. Then a count. Every message is visible again when it ends.
    List(Queues),
    /// Moves the named messages (or --all) back to QUEUE_URL.
    ///
    /// Each message's exact body is sent to QUEUE_URL, then the message is deleted from the
    /// dead-letter queue: a failure in between leaves it in both, which is harmless (an upload
    /// already `done` for the same ETag is not transcoded again), never in neither. Prints one
    /// line per message moved, and a count; exits 1 when a named message is not in the
    /// dead-letter queue or a move failed.
    Redrive(Redrive),
}

/// The two queues.
#[derive(Debug, Clone, Args)]
pub struct Queues {
    /// The uploads queue: its RedrivePolicy names the dead-letter queue; `redrive` sends
    /// messages back to it.
    #[arg(long, env = "QUEUE_URL")]
    pub queue_url: String,
    /// The dead-letter queue, when QUEUE_URL has no redrive policy (or to use another).
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    pub dead_letter_queue_url: Option<String>,
}

/// Which messages to move.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "message_ids"])))]
pub struct Redrive {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queues: Queues,
    /// Move every message in the dead-letter queue.
    #[arg(long, conflicts_with = "message_ids")]
    pub all: bool,
    /// The messages to move, by id as `list` prints them.
    #[arg(value_name = "MESSAGE_ID")]
    pub message_ids: Vec<String>,
}

/// Runs one action; what it did goes to stdout, what went wrong to stderr.
pub async fn run(args: DeadLetters) -> ExitCode {
    let aws = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let result = match args.action {
        Action::List(queues) => list(&sqs, &queues).await,
        Action::Redrive(redrive) => move_back(&sqs, redrive).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("consumer: error: {problem}");
            ExitCode::from(1)
        }
    }
}

/// `list`.
async fn list(sqs: &aws_sdk_sqs::Client, queues: &Queues) -> Result<(), String> {
    let (_, dlq) = resolve(sqs, queues).await?;
    let mut scan = Scan::new(dlq);
    let scanned = async {
        while scan.next().await?.is_some() {}
        Ok::<(), QueueError>(())
    }
    .await;
    hand_back(&scan).await;
    scanned.map_err(|e| e.to_string())?;
    let mut messages: Vec<&Received> = scan.held().collect();
    messages.sort_by(|a, b| {
        (a.sent_timestamp_ms, &a.message.message_id)
            .cmp(&(b.sent_timestamp_ms, &b.message.message_id))
    });
    for m in &messages {
        say(&list_line(m));
    }
    say(&format!(
        "{} in the dead-letter queue {}",
        count(messages.len()),
        scan.dlq.url()
    ));
    warn_if_outlasted(&scan);
    Ok(())
}

/// `redrive`.
async fn move_back(sqs: &aws_sdk_sqs::Client, redrive: Redrive) -> Result<(), String> {
    let (main, dlq) = resolve(sqs, &redrive.queues).await?;
    // None: every message. Each id once, however often it was named.
    let wanted: Option<HashSet<String>> =
        (!redrive.all).then(|| redrive.message_ids.iter().cloned().collect());
    let mut scan = Scan::new(dlq);
    let mut found = HashSet::new();
    let mut moved = 0;
    let mut failed = 0;
    let scanned = async {
        while let Some(batch) = scan.next().await? {
            for m in batch {
                let id = m.message.message_id.clone();
                if wanted.as_ref().is_some_and(|w| !w.contains(&id)) {
                    continue;
                }
                found.insert(id.clone());
                match move_one(&main, &scan.dlq, &m).await {
                    Ok(new_id) => {
                        scan.forget(&id);
                        moved += 1;
                        say(&format!("moved {id} as {new_id}: {}", describe(&m.body)));
                    }
                    Err(problem) => {
                        failed += 1;
                        eprintln!("consumer: error: {problem}");
                    }
                }
            }
            if wanted.as_ref().is_some_and(|w| found.len() == w.len()) {
                break;
            }
        }
        Ok::<(), QueueError>(())
    }
    .await;
    hand_back(&scan).await;
    scanned.map_err(|e| e.to_string())?;
    say(&format!(
        "{} moved from {} to {}",
        count(moved),
        scan.dlq.url(),
        main.url()
    ));
    warn_if_outlasted(&scan);
    let mut missing: Vec<&String> = wanted
        .iter()
        .flatten()
        .filter(|id| !found.contains(*id))
        .collect();
    missing.sort();
    for id in &missing {
        eprintln!(
            "consumer: error: no message {id} in the dead-letter queue {} (or another reader \
             holds it hidden right now)",
            scan.dlq.url()
        );
    }
    match (missing.len(), failed) {
        (0, 0) => Ok(()),
        (0, failed) => Err(format!("{} not moved", count(failed))),
        (missing, 0) => Err(format!("{} not found", count(missing))),
        (missing, failed) => Err(format!(
            "{} not found, {} not moved",
            count(missing),
            count(failed)
        )),
    }
}

/// Sends `m`'s exact body to `main`, then deletes `m` from `dlq`; returns the new message id.
async fn move_one(main: &Inbox, dlq: &Inbox, m: &Received) -> Result<String, String> {
    let id = &m.message.message_id;
    let new_id = main
        .send(m.body.clone())
        .await
        .map_err(|e| format!("{id} was not moved ({e}); it stays in the dead-letter queue"))?;
    dlq.delete(&m.message).await.map_err(|e| {
        format!(
            "{id} was sent to {} as {new_id} but not deleted from the dead-letter queue ({e}): \
             it is in both queues now, which is harmless; run redrive again or delete it",
            main.url()
        )
    })?;
    Ok(new_id)
}

/// Makes every message the scan still holds visible again; one that cannot be is named on
/// stderr: it comes back by itself within [`HOLD`].
async fn hand_back(scan: &Scan) {
    for (id, e) in scan.hand_back().await {
        eprintln!(
            "consumer: warning: {id} stays hidden for up to {} s: {e}",
            HOLD.as_secs()
        );
    }
}

fn warn_if_outlasted(scan: &Scan) {
    if scan.outlasted() {
        eprintln!(
            "consumer: warning: the scan took longer than the {} s each message is held, so it \
             may have missed some; run it again",
            HOLD.as_secs()
        );
    }
}

/// One line of `list`: id, first sent, receives before this look, what it names.
fn list_line(m: &Received) -> String {
    let sent = m
        .sent_timestamp_ms
        .and_then(rfc3339)
        .unwrap_or_else(|| "unknown".to_string());
    format!(
        "{}  sent {sent}  received {}  {}",
        m.message.message_id,
        // This look's own receive is counted already.
        m.message.receive_count.saturating_sub(1),
        describe(&m.body)
    )
}

/// `ms` since the Unix epoch as RFC 3339 UTC, to the second.
fn rfc3339(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// What a body names, on one line: its uploads, or why it names none.
fn describe(body: &str) -> String {
    match decode_message(body) {
        Ok(Decoded::Uploads(uploads)) => uploads
            .iter()
            .map(|u| {
                let mut s = format!(
                    "s3://{}/{}",
                    one_line(&u.bucket, usize::MAX),
                    one_line(&u.key, usize::MAX)
                );
                if let Some(etag) = &u.etag {
                    s.push_str(&format!(" etag={}", one_line(etag, usize::MAX)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", "),
        Ok(Decoded::TestEvent) => "s3:TestEvent, no upload".to_string(),
        Ok(Decoded::Ignored { reason }) => {
            format!("S3 event, no upload: {}", one_line(&reason, usize::MAX))
        }
        Err(e @ DecodeError::Broken { .. }) => {
            format!("unusable S3 notification ({e}): {}", excerpt(body))
        }
        Err(_) => format!("not an S3 notification: {}", excerpt(body)),
    }
}

/// The first [`EXCERPT_CHARS`] characters of `body`, escaped onto one line, `…` when cut.
fn excerpt(body: &str) -> String {
    let head: String = body.chars().take(EXCERPT_CHARS).collect();
    let cut = body.chars().nth(EXCERPT_CHARS).is_some();
    format!(
        "{}{}",
        one_line(&head, usize::MAX),
        if cut { "…" } else { "" }
    )
}

/// "1 message", "3 messages".
fn count(n: usize) -> String {
    format!("{n} message{}", if n == 1 { "" } else { "s" })
}

/// A line on stdout; a closed stdout (`| head`) must not stop a move half-way.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use common::queue::QueueMessageRef;

    use super::*;

    const PUT: &str = include_str!("../event/testdata/s3_put_v2_1.json");

    #[test]
    fn a_list_line_names_the_upload_or_the_body() {
        let received = |body: &str| Received {
            message: QueueMessageRef {
                queue_url: "http://q".into(),
                receipt_handle: "h".into(),
                message_id: "m-1".into(),
                receive_count: 6,
            },
            body: body.to_string(),
            sent_timestamp_ms: Some(1_767_225_600_123),
        };
        let upload = decode_message(PUT).unwrap();
        let Decoded::Uploads(uploads) = upload else {
            panic!("{upload:?}")
        };
        let u = &uploads[0];
        let etag = u.etag.as_deref().unwrap();
        assert_eq!(
            list_line(&received(PUT)),
            format!(
                "m-1  sent 2026-01-01T00:00:00Z  received 5  s3://{}/{} etag={etag}",
                u.bucket, u.key
            )
        );
        let garbage = format!("hello\nworld {}", "x".repeat(100));
        let line = list_line(&received(&garbage));
        assert_eq!(
            line,
            format!(
                "m-1  sent 2026-01-01T00:00:00Z  received 5  not an S3 notification: \
                 hello\\nworld {}…",
                "x".repeat(EXCERPT_CHARS - 12)
            )
        );
        let test_event = include_str!("../event/testdata/s3_test_event.json");
        assert!(list_line(&received(test_event)).ends_with("  s3:TestEvent, no upload"));
        let broken = r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put"}]}"#;
        assert!(
            describe(broken).starts_with("unusable S3 notification (S3 Records[] message"),
            "{}",
            describe(broken)
        );
        let mut unknown = received("x");
        unknown.sent_timestamp_ms = None;
        unknown.message.receive_count = 1;
        assert_eq!(
            list_line(&unknown),
            "m-1  sent unknown  received 0  not an S3 notification: x"
        );
    }

    #[test]
    fn a_key_cannot_break_the_line() {
        let upload = crate::event::Upload {
            bucket: "raw".into(),
            key: "a\nb c.mp4".into(),
            size: None,
            etag: None,
            event_name: "ObjectCreated:Put".into(),
            event_time: None,
        };
        let body = crate::event::single_upload_notification(&upload);
        assert_eq!(describe(&body), "s3://raw/a\\nb c.mp4");
    }
}
