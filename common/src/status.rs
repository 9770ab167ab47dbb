//! Telling the outside world that a job finished, besides its `manifest.json`: one JSON event
//! on `NOTIFY_QUEUE_URL`, and with `DELETE_SOURCE` the raw upload removed after a `done` job
//! (as the MediaConvert reference projects do, so the raw bucket does not grow forever).
//!
//! Whoever sees a job end reports it, once: the consumer for the jobs it follows over gRPC,
//! and `transcoder run` for the jobs it runs as an ECS task (the consumer is gone by then).

use aws_sdk_sqs::error::DisplayErrorContext;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::manifest::ErrorKind;
use crate::storage::{S3Object, S3Store};

/// How a job ended, as far as the outside is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Published (now or by an earlier job for the same ETag).
    Done {
        /// `s3://BUCKET/PREFIX/master.m3u8`.
        master_playlist: String,
        /// True when an earlier job had published it: no new work was done.
        already_done: bool,
        /// The ETag of the source bytes published: `DELETE_SOURCE` deletes the upload only
        /// while it still holds them.
        source_etag: Option<String>,
    },
    /// Failed; `kind` says whether for good.
    Failed {
        /// `invalid_input` never succeeds; `internal` is retried by the queue.
        kind: ErrorKind,
        /// One line.
        message: String,
    },
}

/// One finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedJob {
    /// The job id the transcoder used (its manifest's `job_id`).
    pub job_id: String,
    /// The upload.
    pub source: S3Object,
    /// How it ended.
    pub finish: Finish,
}

/// The JSON event on the notify queue. Field names are part of docs/contract.md (Job status events).
#[derive(Debug, Serialize)]
struct StatusEvent<'a> {
    job_id: &'a str,
    /// `s3://BUCKET/KEY`.
    source: String,
    bucket: &'a str,
    key: &'a str,
    /// `done` or `failed`.
    status: &'static str,
    master_playlist: Option<&'a str>,
    already_done: bool,
    error: Option<StatusError<'a>>,
    finished_at: String,
}

#[derive(Debug, Serialize)]
struct StatusError<'a> {
    kind: ErrorKind,
    message: &'a str,
}

/// What to do when a job finishes.
#[derive(Debug, Clone, Default)]
pub struct StatusConfig {
    /// Where the JSON event goes (none when unset).
    pub notify_queue_url: Option<String>,
    /// Delete the raw upload after a `done` job.
    pub delete_source: bool,
}

/// Reports finished jobs.
#[derive(Debug, Clone)]
pub struct StatusReporter {
    config: StatusConfig,
    sqs: aws_sdk_sqs::Client,
    s3: S3Store,
}

impl StatusReporter {
    /// A reporter with these clients.
    pub fn new(config: StatusConfig, sqs: aws_sdk_sqs::Client, s3: S3Store) -> Self {
        Self { config, sqs, s3 }
    }

    /// What it does when a job finishes.
    pub fn config(&self) -> &StatusConfig {
        &self.config
    }

    /// Sends the event and deletes the source as configured. Failures are logged, not
    /// returned: the job's outcome and its manifest stand whatever happens here, and a retry
    /// of the whole job for a lost notification would cost far more than the notification.
    pub async fn report(&self, job: &FinishedJob) {
        if let Some(queue_url) = &self.config.notify_queue_url {
            let body = event_json(job, OffsetDateTime::now_utc());
            let sent = self
                .sqs
                .send_message()
                .queue_url(queue_url)
                .message_body(body)
                .send()
                .await;
            match sent {
                Ok(_) => tracing::info!(job_id = %job.job_id, "status event sent"),
                Err(e) => tracing::error!(
                    job_id = %job.job_id, %queue_url, error = %DisplayErrorContext(&e),
                    "could not send the status event"
                ),
            }
        }
        // Only a job that published: a failed one keeps its source for a look or a retry.
        let Finish::Done { source_etag, .. } = &job.finish else {
            return;
        };
        if !self.config.delete_source {
            return;
        }
        let Some(etag) = source_etag else {
            tracing::warn!(job_id = %job.job_id, "source kept: the transcoder did not say which bytes it published");
            return;
        };
        match self.s3.delete_if_unchanged(&job.source, etag).await {
            Ok(true) => {
                tracing::info!(job_id = %job.job_id, source = %job.source, "source deleted")
            }
            Ok(false) => tracing::info!(
                job_id = %job.job_id, source = %job.source,
                "source kept: it was uploaded again since this job read it"
            ),
            Err(e) => {
                tracing::error!(job_id = %job.job_id, error = %e, "could not delete the source")
            }
        }
    }
}

/// The event's JSON text.
fn event_json(job: &FinishedJob, at: OffsetDateTime) -> String {
    let (status, master_playlist, already_done, error) = match &job.finish {
        Finish::Done {
            master_playlist,
            already_done,
            ..
        } => ("done", Some(master_playlist.as_str()), *already_done, None),
        Finish::Failed { kind, message } => (
            "failed",
            None,
            false,
            Some(StatusError {
                kind: *kind,
                message,
            }),
        ),
    };
    let event = StatusEvent {
        job_id: &job.job_id,
        source: job.source.to_string(),
        bucket: &job.source.bucket,
        key: &job.source.key,
        status,
        master_playlist,
        already_done,
        error,
        finished_at: at.format(&Rfc3339).unwrap_or_default(),
    };
    serde_json::to_string(&event).expect("a status event always serialises")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use time::macros::datetime;

    use super::*;

    fn job(finish: Finish) -> FinishedJob {
        FinishedJob {
            job_id: "j-1".into(),
            source: S3Object {
                bucket: "raw".into(),
                key: "up/a b+é.mp4".into(),
            },
            finish,
        }
    }

    #[test]
    fn events_carry_what_a_subscriber_needs() {
        let at = datetime!(2026-11-21 10:00:00 UTC);
        let cases = [
            (
                Finish::Done {
                    master_playlist: "s3://out/up/a b+é/master.m3u8".into(),
                    already_done: false,
                    source_etag: Some("\"e1\"".into()),
                },
                json!({"job_id":"j-1","source":"s3://raw/up/a b+é.mp4","bucket":"raw",
                       "key":"up/a b+é.mp4","status":"done",
                       "master_playlist":"s3://out/up/a b+é/master.m3u8","already_done":false,
                       "error":null,"finished_at":"2026-11-21T10:00:00Z"}),
            ),
            (
                Finish::Failed {
                    kind: ErrorKind::InvalidInput,
                    message: "not a video".into(),
                },
                json!({"job_id":"j-1","source":"s3://raw/up/a b+é.mp4","bucket":"raw",
                       "key":"up/a b+é.mp4","status":"failed","master_playlist":null,
                       "already_done":false,
                       "error":{"kind":"invalid_input","message":"not a video"},
                       "finished_at":"2026-11-21T10:00:00Z"}),
            ),
        ];
        for (finish, want) in cases {
            let got: Value = serde_json::from_str(&event_json(&job(finish), at)).unwrap();
            assert_eq!(got, want);
        }
    }
}
