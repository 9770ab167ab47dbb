//! The record of a job that died on its queue message's last delivery. Such a job cannot write
//! its own ending: it was SIGKILLed, its task vanished, its machine went away. Its message
//! becomes visible again and the queue's next receive moves it to the dead-letter queue, so no
//! later job comes to write over its `processing` record either.
//!
//! Whoever finds the message in the dead-letter queue (the consumer's sweep) calls
//! [`settle_abandoned`] for each upload it names. A record that still claims a job
//! (`processing`, `retrying`, `cancelled`) becomes `dead_lettered`, once the prefix's lease
//! shows that its owner is gone: no record stays `processing` after its owner is gone.

use time::OffsetDateTime;

use crate::manifest::{ErrorKind, Manifest, Status, MANIFEST};
use crate::storage::{current_holder, Condition, Holder, S3Sink, StorageError};

/// What became of one prefix's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abandoned {
    /// It said a job was under way, and now says `dead_lettered`.
    Marked,
    /// There is no record: no job of this upload wrote one.
    NoRecord,
    /// The record tells an ending already (`done`, `failed`, `dead_lettered`).
    Ended(Status),
    /// The record is about other bytes than the dead-lettered upload's.
    OtherBytes,
    /// A job holds the prefix's lease: it may be alive (a redriven message's job); look again
    /// later.
    Held {
        /// The holder.
        job_id: String,
    },
    /// The record changed while it was judged (a new job wrote it): it is that job's now.
    Changed,
}

/// Why a record must be left as it is, or `None` when it is abandoned: it claims a job for the
/// upload with `upload_etag` (when the message says which bytes), and no live lease is held.
pub fn why_not_abandoned(
    record: &Manifest,
    upload_etag: Option<&str>,
    holder: Option<&Holder>,
    now: OffsetDateTime,
) -> Option<Abandoned> {
    if !matches!(
        record.status,
        Status::Processing | Status::Retrying | Status::Cancelled
    ) {
        return Some(Abandoned::Ended(record.status));
    }
    let unquoted = |e: &str| e.trim_matches('"').to_string();
    if let (Some(wanted), Some(recorded)) = (upload_etag, record.source.etag.as_deref()) {
        if unquoted(wanted) != unquoted(recorded) {
            return Some(Abandoned::OtherBytes);
        }
    }
    match holder {
        Some(h) if h.holds_at(now) => Some(Abandoned::Held {
            job_id: h.job_id.clone(),
        }),
        _ => None,
    }
}

/// The `dead_lettered` ending of an abandoned record, keeping the last error it names.
pub fn dead_lettered(record: Manifest) -> Manifest {
    let attempt = record
        .attempts
        .map(|n| format!(" (delivery {n})"))
        .unwrap_or_default();
    let mut message = format!(
        "the job's last delivery{attempt} ended without a result: its process stopped or died \
         before it could record why, and the queue moved the message to the dead-letter queue"
    );
    if let Some(error) = &record.error {
        message.push_str(&format!("; the last recorded error: {}", error.message));
    }
    record.ended_with(Status::DeadLettered, ErrorKind::Internal, message)
}

/// Marks the record under `sink` `dead_lettered` if it is abandoned (see the module's doc);
/// the write is conditional on the record being unchanged since it was read.
pub async fn settle_abandoned(
    sink: &S3Sink,
    upload_etag: Option<&str>,
) -> Result<Abandoned, StorageError> {
    let Some((bytes, etag)) = sink.get_with_etag(MANIFEST).await? else {
        return Ok(Abandoned::NoRecord);
    };
    // A record that is not ours to read is not ours to rewrite.
    let Ok(record) = serde_json::from_slice::<Manifest>(&bytes) else {
        return Ok(Abandoned::OtherBytes);
    };
    let holder = current_holder(sink).await?;
    let now = OffsetDateTime::now_utc();
    if let Some(leave) = why_not_abandoned(&record, upload_etag, holder.as_ref(), now) {
        return Ok(leave);
    }
    let ended = dead_lettered(record);
    match sink
        .put_if(MANIFEST, ended.to_json(), Condition::Unchanged(&etag))
        .await?
    {
        Some(_) => Ok(Abandoned::Marked),
        None => Ok(Abandoned::Changed),
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::manifest::SourceRecord;

    fn record(status: Status, etag: Option<&str>) -> Manifest {
        let mut m = Manifest::processing(
            "job-1".into(),
            SourceRecord {
                bucket: Some("raw".into()),
                key: "up/a.mp4".into(),
                etag: etag.map(str::to_string),
                size: Some(10),
                sidecars: Vec::new(),
            },
        );
        m.status = status;
        m
    }

    fn holder(expires_in_s: i64, now: OffsetDateTime) -> Holder {
        Holder {
            job_id: "job-1".into(),
            expires_at: now + Duration::seconds(expires_in_s),
        }
    }

    #[test]
    fn only_a_record_claiming_a_job_whose_lease_lapsed_is_abandoned() {
        let now = OffsetDateTime::now_utc();
        let lapsed = holder(-1, now);
        let live = holder(30, now);
        let quoted = Some("\"abc\"");
        // (record, the dead letter's ETag, the lease, what stops the marking)
        type Case<'a> = (
            Manifest,
            Option<&'a str>,
            Option<&'a Holder>,
            Option<Abandoned>,
        );
        let cases: Vec<Case> = vec![
            // Claims a job, no lease or a lapsed one: abandoned, whichever claim.
            (record(Status::Processing, quoted), Some("abc"), None, None),
            (
                record(Status::Processing, quoted),
                Some("abc"),
                Some(&lapsed),
                None,
            ),
            (record(Status::Retrying, quoted), None, Some(&lapsed), None),
            (record(Status::Cancelled, None), Some("abc"), None, None),
            // A live lease: maybe a live job.
            (
                record(Status::Processing, quoted),
                Some("abc"),
                Some(&live),
                Some(Abandoned::Held {
                    job_id: "job-1".into(),
                }),
            ),
            // Other bytes than the dead letter's upload.
            (
                record(Status::Processing, quoted),
                Some("def"),
                None,
                Some(Abandoned::OtherBytes),
            ),
            // An ending already told.
            (
                record(Status::Done, quoted),
                Some("abc"),
                None,
                Some(Abandoned::Ended(Status::Done)),
            ),
            (
                record(Status::Failed, quoted),
                Some("abc"),
                None,
                Some(Abandoned::Ended(Status::Failed)),
            ),
            (
                record(Status::DeadLettered, quoted),
                Some("abc"),
                None,
                Some(Abandoned::Ended(Status::DeadLettered)),
            ),
        ];
        for (i, (record, etag, holder, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                why_not_abandoned(&record, etag, holder, now),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn the_dead_lettered_record_says_why_and_keeps_the_last_error() {
        let mut retrying = record(Status::Retrying, None).ended_with(
            Status::Retrying,
            ErrorKind::Internal,
            "ffmpeg was killed by signal 9".into(),
        );
        retrying.attempts = Some(5);
        let ended = dead_lettered(retrying);
        assert_eq!(ended.status, Status::DeadLettered);
        let error = ended.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert_eq!(
            error.message,
            "the job's last delivery (delivery 5) ended without a result: its process stopped \
             or died before it could record why, and the queue moved the message to the \
             dead-letter queue; the last recorded error: ffmpeg was killed by signal 9"
        );
        assert_eq!(ended.attempts, Some(5));
    }
}
