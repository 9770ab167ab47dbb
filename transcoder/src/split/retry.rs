//! Whether a failed range is tried again, and how long a failing peer rests before it takes
//! another.
//!
//! Failures are told apart because they call for opposite answers: a source that cannot be
//! decoded fails the job at once, since every worker would fail it alike; anything else (a
//! peer down, a crash, storage) may be one worker's bad luck, so the range goes to another
//! worker, up to [`RANGE_ATTEMPTS`] times. A busy peer has not failed at all (its range goes
//! straight back, see `dispatch`), but like a failing one it rests, longer each time in a
//! row, so that a dead peer does not keep taking ranges from the living.

use std::collections::BTreeMap;
use std::time::Duration;

use super::peers::RangeFailure;
use super::queue::Worker;
use crate::backoff::Backoff;
use crate::transcode::JobError;

/// Tries per range before the job fails: a range failing this often is not a worker's bad
/// luck.
pub const RANGE_ATTEMPTS: u32 = 3;
/// How long a busy or failing peer first rests before it takes a range again.
const PEER_PAUSE: Duration = Duration::from_secs(2);
/// The longest rest, for a peer that keeps failing.
const PEER_PAUSE_MAX: Duration = Duration::from_secs(30);

/// What follows a range's failure.
#[derive(Debug)]
pub enum AfterFailure {
    /// The source is the problem: the job fails at once, and nothing is counted.
    Invalid(JobError),
    /// The range's failure number `attempt`: another worker may take it.
    TryElsewhere {
        /// Failures of this range so far, this one included.
        attempt: u32,
    },
    /// The range's failure number `attempt`, the last allowed: the job fails.
    GiveUp {
        /// Failures of this range so far, this one included.
        attempt: u32,
        /// What the job fails with.
        error: JobError,
    },
}

impl AfterFailure {
    /// The failure's number for the range, when it was counted.
    pub fn attempt(&self) -> Option<u32> {
        match self {
            Self::Invalid(_) => None,
            Self::TryElsewhere { attempt } | Self::GiveUp { attempt, .. } => Some(*attempt),
        }
    }
}

/// Failures so far, by range index.
#[derive(Debug, Default)]
pub struct Attempts {
    failures: BTreeMap<u32, u32>,
}

impl Attempts {
    /// Counts `failure` of range `index` and says what follows.
    pub fn after_failure(&mut self, index: u32, failure: &RangeFailure) -> AfterFailure {
        if let RangeFailure::Invalid(message) = failure {
            return AfterFailure::Invalid(split_error(message, true));
        }
        let tries = self.failures.entry(index).or_insert(0);
        *tries += 1;
        if *tries >= RANGE_ATTEMPTS {
            AfterFailure::GiveUp {
                attempt: *tries,
                error: split_error(
                    &format!("range {index} failed {RANGE_ATTEMPTS} times; last: {failure}"),
                    false,
                ),
            }
        } else {
            AfterFailure::TryElsewhere { attempt: *tries }
        }
    }
}

/// How long one worker rests between ranges. Rests are exact, not jittered: a job has one
/// worker per peer, so the callers of a peer that may fail together are one per split job
/// running, no crowd worth spreading; exact rests keep a schedule the tests can state.
#[derive(Debug)]
pub struct Rest {
    backoff: Backoff,
}

impl Default for Rest {
    fn default() -> Self {
        Self {
            backoff: Backoff::without_jitter(PEER_PAUSE, PEER_PAUSE_MAX),
        }
    }
}

impl Rest {
    /// After a range on `worker` that `succeeded` or not: how long to rest before the next,
    /// if at all. Only a peer rests: it is the one that can be down or full and answer so
    /// at once, again and again; one success ends its run of rests.
    pub fn after(&mut self, worker: &Worker, succeeded: bool) -> Option<Duration> {
        if succeeded || *worker == Worker::Local {
            self.backoff.reset();
            return None;
        }
        Some(self.backoff.next_delay())
    }
}

/// The error a split job fails with; `invalid_input` when the source is the problem.
pub fn split_error(message: &str, invalid_input: bool) -> JobError {
    JobError::Split {
        message: message.to_string(),
        invalid_input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> RangeFailure {
        RangeFailure::Failed("http://10.0.0.2:50051: connect: refused".into())
    }

    fn split_message(error: &JobError) -> (&str, bool) {
        match error {
            JobError::Split {
                message,
                invalid_input,
            } => (message, *invalid_input),
            other => panic!("not a split error: {other:?}"),
        }
    }

    #[test]
    fn a_range_is_tried_elsewhere_until_its_third_failure_fails_the_job() {
        let mut attempts = Attempts::default();
        for expected in 1..RANGE_ATTEMPTS {
            assert!(matches!(
                attempts.after_failure(1, &failed()),
                AfterFailure::TryElsewhere { attempt } if attempt == expected
            ));
        }
        let last = attempts.after_failure(1, &failed());
        assert_eq!(last.attempt(), Some(3));
        let AfterFailure::GiveUp { error, .. } = last else {
            panic!("the third failure must give up: {last:?}");
        };
        assert_eq!(
            split_message(&error),
            (
                "range 1 failed 3 times; last: http://10.0.0.2:50051: connect: refused",
                false
            ),
            "not the source's fault"
        );
    }

    #[test]
    fn failures_are_counted_per_range() {
        let mut attempts = Attempts::default();
        for index in 0..4 {
            assert_eq!(attempts.after_failure(index, &failed()).attempt(), Some(1));
        }
        assert_eq!(attempts.after_failure(2, &failed()).attempt(), Some(2));
        assert_eq!(attempts.after_failure(3, &failed()).attempt(), Some(2));
    }

    #[test]
    fn an_undecodable_source_fails_the_job_at_once_without_counting() {
        let mut attempts = Attempts::default();
        let invalid = RangeFailure::Invalid("no video frames".into());
        let AfterFailure::Invalid(error) = attempts.after_failure(0, &invalid) else {
            panic!("invalid input is never retried");
        };
        assert_eq!(split_message(&error), ("no video frames", true));
        assert_eq!(
            attempts.after_failure(0, &failed()).attempt(),
            Some(1),
            "the invalid one was not counted"
        );
    }

    #[test]
    fn a_failing_peer_rests_twice_as_long_each_time_up_to_30_s() {
        let peer = Worker::Peer("http://10.0.0.2:50051".into());
        let mut rest = Rest::default();
        let rests: Vec<u64> = (0..7)
            .map(|_| rest.after(&peer, false).unwrap().as_secs())
            .collect();
        assert_eq!(rests, [2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_success_ends_the_run_of_rests() {
        let peer = Worker::Peer("http://10.0.0.2:50051".into());
        let mut rest = Rest::default();
        rest.after(&peer, false);
        rest.after(&peer, false);
        assert_eq!(rest.after(&peer, true), None);
        assert_eq!(rest.after(&peer, false), Some(Duration::from_secs(2)));
    }

    #[test]
    fn this_transcoder_never_rests() {
        let mut rest = Rest::default();
        assert_eq!(rest.after(&Worker::Local, false), None);
        assert_eq!(rest.after(&Worker::Local, false), None);
        assert_eq!(rest.after(&Worker::Local, true), None);
    }
}
