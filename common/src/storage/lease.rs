//! One owner per output prefix, across processes and machines: `lease.json` at the prefix,
//! written only with S3 conditional writes. Creating it needs it absent (`If-None-Match: *`);
//! renewing or taking over an expired one needs the ETag last seen (`If-Match`), so of two
//! jobs racing for a prefix exactly one wins, whatever clocks or queues say.
//!
//! A job holds the lease from before its first write to after its last, renewing it every
//! third of its time to live. A job that cannot renew it (another took it over after it
//! expired, or S3 stayed unreachable until it expired) has lost the prefix: it stops at once
//! and writes nothing more there. A job that finds the prefix held waits for it, holding its
//! own queue message, rather than handing the message back: refusals would count toward the
//! queue's maximum receives and send a good upload to the dead-letter queue.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Condition, S3Sink, StorageError};
use crate::liveness::Liveness;

/// The lease's name at the prefix.
pub const LEASE: &str = "lease.json";

/// How long a lease lives without renewal by default: a job that dies frees its prefix after
/// this, and a renewal can fail twice before the lease is at risk.
pub const LEASE_TTL: Duration = Duration::from_secs(90);

/// How a job holds its prefix.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// How long the lease lives unless renewed (every third of this).
    pub ttl: Duration,
    /// How long a job waits for a prefix another job holds before it gives up (retryable).
    pub max_wait: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            ttl: LEASE_TTL,
            // The longest source (4 h) encodes in about that on a small task.
            max_wait: Duration::from_secs(4 * 3600),
        }
    }
}

/// The longest pause between two looks at a prefix someone else holds.
const WAIT_STEP: Duration = Duration::from_secs(10);

/// What the lease object says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LeaseBody {
    job_id: String,
    /// The holder's version folder.
    version: String,
    /// When the lease lapses unless renewed (RFC 3339, UTC).
    expires_at: String,
}

impl LeaseBody {
    fn new(job_id: &str, version: &str, ttl: Duration) -> Self {
        Self {
            job_id: job_id.into(),
            version: version.into(),
            expires_at: (OffsetDateTime::now_utc() + ttl)
                .format(&Rfc3339)
                .expect("a time is always formattable"),
        }
    }

    fn expires_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.expires_at, &Rfc3339).ok()
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a lease always serialises")
    }
}

/// Why the prefix could not be held.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Another job held the prefix for longer than this job may wait.
    #[error("the output prefix {prefix} stayed held by job {holder} for {waited_s} s")]
    Busy {
        /// The prefix.
        prefix: String,
        /// The job holding it.
        holder: String,
        /// How long this job waited.
        waited_s: u64,
    },
    /// Another job took the prefix over: this job must write nothing more there.
    #[error("lost the output prefix {prefix}: {why}")]
    Lost {
        /// The prefix.
        prefix: String,
        /// What happened.
        why: String,
    },
    /// S3 failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The prefix, held by this job until dropped or released.
#[derive(Debug)]
pub struct PrefixLease {
    sink: S3Sink,
    body: LeaseBody,
    etag: String,
    ttl: Duration,
}

impl PrefixLease {
    /// Takes the prefix of `sink` for `job_id`, waiting up to `max_wait` while another job
    /// holds it.
    pub async fn acquire(
        sink: &S3Sink,
        job_id: &str,
        version: &str,
        settings: LeaseSettings,
        liveness: &Liveness,
    ) -> Result<Self, OwnerError> {
        let LeaseSettings { ttl, max_wait } = settings;
        let started = tokio::time::Instant::now();
        let mut last_holder = String::new();
        loop {
            let body = LeaseBody::new(job_id, version, ttl);
            match try_take(sink, &body).await? {
                Taken::Yes(etag) => {
                    tracing::info!(prefix = %sink.prefix(), "holding the output prefix");
                    return Ok(Self {
                        sink: sink.clone(),
                        body,
                        etag,
                        ttl,
                    });
                }
                Taken::HeldBy { holder, expires_in } => {
                    if started.elapsed() >= max_wait {
                        return Err(OwnerError::Busy {
                            prefix: sink.prefix().to_string(),
                            holder,
                            waited_s: started.elapsed().as_secs(),
                        });
                    }
                    if holder != last_holder {
                        tracing::info!(%holder, "the output prefix is held by another job: waiting");
                        last_holder = holder;
                    }
                    // Waiting on a holder that renews is progress: the queue heartbeat goes on.
                    liveness.beat();
                    let pause = expires_in.clamp(Duration::from_millis(200), WAIT_STEP);
                    tokio::time::sleep(pause).await;
                }
                Taken::Raced => {}
            }
        }
    }

    /// Keeps the lease alive; returns only when it is lost, with why. Run it beside the job
    /// and stop the job when it returns.
    pub async fn hold(&mut self) -> OwnerError {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            let body = LeaseBody::new(&self.body.job_id, &self.body.version, self.ttl);
            let renewed = self
                .sink
                .put_if(LEASE, body.bytes(), Condition::Unchanged(&self.etag))
                .await;
            match renewed {
                Ok(Some(etag)) => {
                    self.etag = etag;
                    self.body = body;
                    last_renewed = tokio::time::Instant::now();
                }
                Ok(None) => return self.lost("another job took it over"),
                Err(error) => {
                    tracing::warn!(%error, "could not renew the output prefix's lease");
                    // Past the time to live, another job may hold it now.
                    if last_renewed.elapsed() >= self.ttl {
                        return self.lost("it could not be renewed before it expired");
                    }
                }
            }
        }
    }

    fn lost(&self, why: &str) -> OwnerError {
        tracing::error!(prefix = %self.sink.prefix(), why, "lost the output prefix: stopping");
        OwnerError::Lost {
            prefix: self.sink.prefix().to_string(),
            why: why.into(),
        }
    }

    /// Frees the prefix for the next job: the lease is deleted only if it is still ours
    /// (`If-Match`), never a successor's. Best effort: it expires anyway.
    pub async fn release(self) {
        match self.sink.delete_if_unchanged(LEASE, &self.etag).await {
            Ok(true) => tracing::debug!("released the output prefix"),
            Ok(false) => tracing::warn!("the output prefix's lease was no longer ours to release"),
            Err(error) => tracing::warn!(%error, "could not release the output prefix's lease"),
        }
    }
}

/// Who holds a prefix, as its lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holding job.
    pub job_id: String,
    /// When the lease lapses unless renewed.
    pub expires_at: OffsetDateTime,
}

impl Holder {
    /// Whether the holder may still be alive: its lease has not lapsed at `now`.
    pub fn holds_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at > now
    }
}

/// The prefix's holder, or `None` when no lease is there or it cannot be read: both leave the
/// prefix free, as [`PrefixLease::acquire`] sees it.
pub async fn current_holder(sink: &S3Sink) -> Result<Option<Holder>, StorageError> {
    let Some((bytes, _)) = sink.get_with_etag(LEASE).await? else {
        return Ok(None);
    };
    let body: Option<LeaseBody> = serde_json::from_slice(&bytes).ok();
    Ok(body.and_then(|b| {
        Some(Holder {
            expires_at: b.expires_at()?,
            job_id: b.job_id,
        })
    }))
}

/// One attempt at the lease.
enum Taken {
    Yes(String),
    HeldBy {
        holder: String,
        expires_in: Duration,
    },
    /// The lease changed between reading and writing: look again.
    Raced,
}

async fn try_take(sink: &S3Sink, body: &LeaseBody) -> Result<Taken, StorageError> {
    if let Some(etag) = sink.put_if(LEASE, body.bytes(), Condition::Absent).await? {
        return Ok(Taken::Yes(etag));
    }
    let Some((bytes, etag)) = sink.get_with_etag(LEASE).await? else {
        return Ok(Taken::Raced);
    };
    let current: Option<LeaseBody> = serde_json::from_slice(&bytes).ok();
    let now = OffsetDateTime::now_utc();
    if let Some(current) = current.filter(|c| c.job_id != body.job_id) {
        if let Some(expires) = current.expires_at().filter(|e| *e > now) {
            let expires_in = Duration::try_from(expires - now).unwrap_or_default();
            return Ok(Taken::HeldBy {
                holder: current.job_id,
                expires_in,
            });
        }
    }
    // Expired, unreadable, or our own from an earlier attempt: take it over, atomically.
    Ok(
        match sink
            .put_if(LEASE, body.bytes(), Condition::Unchanged(&etag))
            .await?
        {
            Some(etag) => Taken::Yes(etag),
            None => Taken::Raced,
        },
    )
}
