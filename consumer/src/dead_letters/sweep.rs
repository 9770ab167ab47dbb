//! The dead-letter sweep: the consumer's regular look into the dead-letter queue for uploads
//! whose job died on its message's last delivery. Such a job never wrote its ending and no
//! later delivery will, so its record would say `processing` for ever; the sweep settles it
//! (`common::abandoned::settle_abandoned`: `dead_lettered`, once the prefix's lease has lapsed).
//! It leaves every message where it is, visible again at the end, for an operator to list and
//! redrive.

use std::time::Duration;

use common::abandoned::{settle_abandoned, Abandoned};
use common::storage::{default_output, S3Store};
use tokio_util::sync::CancellationToken;

use super::scan::{not_itself, policy_of, Policy, Scan, HOLD};
use crate::event::{decode_message, Decoded};
use crate::queue::{Inbox, QueueError};
use crate::worker::OutputRoot;

/// What the sweep looks at, and how often.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// The uploads queue, whose redrive policy names the dead-letter queue.
    pub queue_url: String,
    /// Where the records are.
    pub output: OutputRoot,
    /// The pause between two sweeps.
    pub every: Duration,
}

/// Sweeps at once, then every `settings.every`, until `shutdown`.
pub async fn sweep_forever(
    sqs: aws_sdk_sqs::Client,
    s3: S3Store,
    settings: SweepSettings,
    shutdown: CancellationToken,
) {
    loop {
        match sweep_once(&sqs, &s3, &settings).await {
            Ok(0) => {}
            Ok(marked) => tracing::info!(marked, "dead-letter sweep marked abandoned records"),
            Err(error) => tracing::warn!(%error, "dead-letter sweep failed; trying again later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(settings.every) => {}
        }
    }
}

/// One look through the dead-letter queue; returns how many records it marked.
async fn sweep_once(
    sqs: &aws_sdk_sqs::Client,
    s3: &S3Store,
    settings: &SweepSettings,
) -> Result<usize, String> {
    let main = Inbox::new(sqs.clone(), settings.queue_url.clone());
    let dlq = match policy_of(&main).await.map_err(|e| e.to_string())? {
        Policy::Names(dlq) => dlq,
        // No dead-letter queue: no dead letters to look at.
        Policy::None => return Ok(0),
        Policy::Unusable(why) => return Err(format!("the redrive policy of {} {why}", main.url())),
    };
    not_itself(&main, &dlq)?;
    let mut scan = Scan::new(dlq);
    let mut marked = 0;
    let scanned = async {
        while let Some(batch) = scan.next().await? {
            for m in &batch {
                marked += settle_message(s3, &settings.output, &m.body).await;
            }
        }
        Ok::<(), QueueError>(())
    }
    .await;
    for (message_id, error) in scan.hand_back().await {
        tracing::warn!(%message_id, %error, hidden_s = HOLD.as_secs(),
            "a dead letter stays hidden until its hold runs out");
    }
    scanned.map_err(|e| e.to_string())?;
    Ok(marked)
}

/// Settles the record of each upload `body` names; returns how many it marked.
async fn settle_message(s3: &S3Store, output: &OutputRoot, body: &str) -> usize {
    let Ok(Decoded::Uploads(uploads)) = decode_message(body) else {
        return 0;
    };
    let mut marked = 0;
    for upload in uploads {
        let prefix = default_output(&upload.key, &output.bucket, &output.prefix);
        let sink = s3.sink(prefix.clone());
        match settle_abandoned(&sink, upload.etag.as_deref()).await {
            Ok(Abandoned::Marked) => {
                marked += 1;
                tracing::info!(
                    key = %upload.key,
                    %prefix,
                    "the job of a dead-lettered upload died without an ending: its record now \
                     says dead_lettered"
                );
            }
            Ok(left) => {
                tracing::debug!(key = %upload.key, ?left, "dead letter's record left as it is")
            }
            Err(error) => tracing::warn!(
                key = %upload.key,
                %error,
                "could not read or settle a dead-lettered upload's record"
            ),
        }
    }
    marked
}
