//! Reading the dead-letter queue without taking it: which queue it is, and a scan that holds
//! each message it receives hidden for a short while and then makes them all visible again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::Queues;
use crate::event::quoted;
use crate::queue::{Inbox, QueueError, Received, MAX_BATCH};

/// How long each message this tool receives stays hidden from everyone else.
pub const HOLD: Duration = Duration::from_secs(30);

/// The long-poll wait of each receive. Long polling asks every SQS server, so an empty answer
/// means an empty queue; a short poll (wait 0) may answer empty while messages remain.
const WAIT: Duration = Duration::from_secs(1);

/// What an uploads queue's redrive policy says of its dead-letter queue.
pub enum Policy {
    /// It names this queue, in the same account and region.
    Names(Inbox),
    /// The queue has no redrive policy, so no dead-letter queue.
    None,
    /// The policy cannot be used; the text completes "the redrive policy of QUEUE ...".
    Unusable(String),
}

/// Reads `main`'s redrive policy.
pub async fn policy_of(main: &Inbox) -> Result<Policy, QueueError> {
    let Some(policy) = main.redrive_policy().await? else {
        return Ok(Policy::None);
    };
    Ok(match dead_letter_queue_name(&policy) {
        Ok(name) => Policy::Names(main.sibling(&name)),
        Err(why) => Policy::Unusable(why),
    })
}

/// The uploads queue and its dead-letter queue: `--dead-letter-queue-url` when given, else the
/// one the uploads queue's redrive policy names. The errors tell an operator what to set.
pub async fn resolve(sqs: &aws_sdk_sqs::Client, queues: &Queues) -> Result<(Inbox, Inbox), String> {
    let main = Inbox::new(sqs.clone(), queues.queue_url.clone());
    let named = queues
        .dead_letter_queue_url
        .as_deref()
        .filter(|url| !url.trim().is_empty());
    let dlq = match named {
        Some(url) => Inbox::new(sqs.clone(), url.to_string()),
        None => match policy_of(&main).await.map_err(|e| e.to_string())? {
            Policy::Names(dlq) => dlq,
            Policy::None => {
                return Err(format!(
                    "{} has no redrive policy, so no dead-letter queue; name one with \
                     --dead-letter-queue-url (DEAD_LETTER_QUEUE_URL)",
                    main.url()
                ))
            }
            Policy::Unusable(why) => {
                return Err(format!(
                    "the redrive policy of {} {why}; name the dead-letter queue with \
                     --dead-letter-queue-url (DEAD_LETTER_QUEUE_URL)",
                    main.url()
                ))
            }
        },
    };
    not_itself(&main, &dlq)?;
    Ok((main, dlq))
}

/// Scanning a queue as its own dead-letter queue would hide live uploads, and moving its
/// messages into itself would never end.
pub fn not_itself(main: &Inbox, dlq: &Inbox) -> Result<(), String> {
    if dlq.url() == main.url() {
        return Err(format!(
            "the dead-letter queue is QUEUE_URL itself ({})",
            main.url()
        ));
    }
    Ok(())
}

/// The dead-letter queue's name in a RedrivePolicy,
/// `{"deadLetterTargetArn":"arn:aws:sqs:REGION:ACCOUNT:NAME","maxReceiveCount":5}`; the error
/// completes "the redrive policy of QUEUE ...".
fn dead_letter_queue_name(policy: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(policy)
        .map_err(|_| format!("is not JSON: {}", quoted(policy, 100)))?;
    let arn = value
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .ok_or("names no deadLetterTargetArn")?;
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "sqs", _, _, name] if !name.is_empty() => Ok((*name).to_string()),
        _ => Err(format!(
            "names {} as its dead-letter queue, which is not an SQS queue ARN",
            quoted(arn, 100)
        )),
    }
}

/// The messages received from the dead-letter queue and still held (hidden) by this run,
/// each once, in the order first received.
pub struct Scan {
    pub dlq: Inbox,
    held: Vec<Received>,
    index: HashMap<String, usize>,
    /// Deleted (moved): nothing to hand back.
    gone: HashSet<String>,
    /// A receive brought only messages seen already: the scan lasted longer than [`HOLD`].
    outlasted: bool,
}

impl Scan {
    pub fn new(dlq: Inbox) -> Self {
        Self {
            dlq,
            held: Vec::new(),
            index: HashMap::new(),
            gone: HashSet::new(),
            outlasted: false,
        }
    }

    /// The messages of the next receive that this scan had not seen, or `None` when there are
    /// no more: the receive brought nothing, or only messages seen already (possible only once
    /// the scan has lasted longer than [`HOLD`]; going on would go round in circles).
    pub async fn next(&mut self) -> Result<Option<Vec<Received>>, QueueError> {
        let batch = self.dlq.receive_held(MAX_BATCH, WAIT, HOLD).await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let mut fresh = Vec::new();
        for m in batch {
            match self.index.get(&m.message.message_id) {
                // Seen again: only the latest receipt handle can change its visibility.
                Some(&i) => self.held[i].message.receipt_handle = m.message.receipt_handle,
                None => {
                    self.index
                        .insert(m.message.message_id.clone(), self.held.len());
                    self.held.push(m.clone());
                    fresh.push(m);
                }
            }
        }
        if fresh.is_empty() {
            self.outlasted = true;
            return Ok(None);
        }
        Ok(Some(fresh))
    }

    /// The messages still in the dead-letter queue.
    pub fn held(&self) -> impl Iterator<Item = &Received> {
        self.held
            .iter()
            .filter(|m| !self.gone.contains(&m.message.message_id))
    }

    /// `id` was deleted.
    pub fn forget(&mut self, id: &str) {
        self.gone.insert(id.to_string());
    }

    /// Makes every message still held visible again at once; returns those that could not
    /// be (each comes back by itself within [`HOLD`]), with why.
    pub async fn hand_back(&self) -> Vec<(String, QueueError)> {
        let mut failed = Vec::new();
        for m in self.held() {
            if let Err(e) = self.dlq.set_visibility(&m.message, Duration::ZERO).await {
                failed.push((m.message.message_id.clone(), e));
            }
        }
        failed
    }

    /// Whether a receive brought only messages seen already: the scan lasted longer than
    /// [`HOLD`], and may have missed some.
    pub fn outlasted(&self) -> bool {
        self.outlasted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redrive_policy_names_the_queue() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            (
                r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:vod-dlq","maxReceiveCount":5}"#,
                Ok("vod-dlq"),
            ),
            (
                r#"{"deadLetterTargetArn":"arn:aws-cn:sqs:cn-north-1:1:q","maxReceiveCount":"3"}"#,
                Ok("q"),
            ),
            (
                r#"{"maxReceiveCount":5}"#,
                Err("names no deadLetterTargetArn"),
            ),
            (
                r#"{"deadLetterTargetArn":"arn:aws:sns:eu-west-1:1:topic"}"#,
                Err("names \"arn:aws:sns:eu-west-1:1:topic\" as its dead-letter queue, which is not an SQS queue ARN"),
            ),
            (
                r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:1:"}"#,
                Err("names \"arn:aws:sqs:eu-west-1:1:\" as its dead-letter queue, which is not an SQS queue ARN"),
            ),
            ("nope", Err("is not JSON: \"nope\"")),
        ];
        for (policy, want) in cases {
            let want = want.map(str::to_string).map_err(str::to_string);
            assert_eq!(dead_letter_queue_name(policy), want, "{policy}");
        }
    }
}
