//! Uploads whose jobs are running, so that a second notification of the same upload does not
//! start a second transcode of the same bytes.
//!
//! S3 delivers notifications at least once, and duplicates do arrive (moto even sends both
//! `Put` and `CompleteMultipartUpload` for one multipart upload). The transcoder's ETag check
//! makes a duplicate harmless once the first job is done, but two at once would both encode.
//!
//! A duplicate is a *different* message naming the same bucket, key and ETag as a running
//! job. Deleting it loses nothing: the running job owns its own message, which is deleted only
//! when the job is published or handed back to come again if it is not. The same message
//! coming back (a redelivery, same message id) is never a duplicate: it is the job itself.
//!
//! Warm jobs leave the set when their stream ends. ECS jobs are not followed, so they leave it
//! after `ttl`; a duplicate after that goes to a transcoder, which finds the job done.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No job runs for this upload: go ahead (now recorded as running).
    New,
    /// Another message for the same bytes is being handled: this one adds nothing.
    Duplicate {
        /// The message whose job runs.
        of: String,
    },
}

/// Identifies an upload's bytes.
type Identity = (String, String, String);

#[derive(Debug)]
struct Entry {
    message_id: String,
    since: Instant,
}

/// The running jobs, by upload.
#[derive(Debug)]
pub struct InFlight {
    entries: Mutex<HashMap<Identity, Entry>>,
    ttl: Duration,
}

impl InFlight {
    /// A set that forgets an unreleased entry after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Records that `message_id` is about to run the job for `bucket/key` at `etag`, unless
    /// another message already does. Without an ETag nothing can be told apart: always `New`.
    pub fn claim(&self, bucket: &str, key: &str, etag: Option<&str>, message_id: &str) -> Claim {
        let Some(etag) = etag.map(|e| e.trim_matches('"')).filter(|e| !e.is_empty()) else {
            return Claim::New;
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| now.duration_since(e.since) < self.ttl);
        let identity = (bucket.to_string(), key.to_string(), etag.to_string());
        match entries.get(&identity) {
            Some(entry) if entry.message_id != message_id => Claim::Duplicate {
                of: entry.message_id.clone(),
            },
            _ => {
                entries.insert(
                    identity,
                    Entry {
                        message_id: message_id.to_string(),
                        since: now,
                    },
                );
                Claim::New
            }
        }
    }

    /// The job of `message_id` ended or never started: forget it.
    pub fn release(&self, message_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.message_id != message_id);
    }

    /// Jobs recorded now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no job is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_message_for_the_same_bytes_is_a_duplicate_until_the_first_ends() {
        let set = InFlight::new(Duration::from_secs(3600));
        assert_eq!(set.claim("raw", "a.mp4", Some("\"e1\""), "m1"), Claim::New);
        assert_eq!(
            set.claim("raw", "a.mp4", Some("e1"), "m2"),
            Claim::Duplicate { of: "m1".into() },
            "quoted and bare ETags are the same"
        );
        // The same message again is the job itself coming back.
        assert_eq!(set.claim("raw", "a.mp4", Some("e1"), "m1"), Claim::New);
        // Other bytes, other key, other bucket, or no ETag: not duplicates.
        assert_eq!(set.claim("raw", "a.mp4", Some("e2"), "m3"), Claim::New);
        assert_eq!(set.claim("raw", "b.mp4", Some("e1"), "m4"), Claim::New);
        assert_eq!(set.claim("other", "a.mp4", Some("e1"), "m5"), Claim::New);
        assert_eq!(set.claim("raw", "a.mp4", None, "m6"), Claim::New);
        assert_eq!(set.len(), 4);
        set.release("m1");
        assert_eq!(set.claim("raw", "a.mp4", Some("e1"), "m2"), Claim::New);
    }

    #[test]
    fn unreleased_entries_expire() {
        let set = InFlight::new(Duration::ZERO);
        assert_eq!(set.claim("raw", "a.mp4", Some("e1"), "m1"), Claim::New);
        assert_eq!(set.claim("raw", "a.mp4", Some("e1"), "m2"), Claim::New);
        assert_eq!(set.len(), 1);
    }
}
