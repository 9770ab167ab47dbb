//! Retrying one storage call. The SDK already retries throttling and dropped connections a
//! few times within a call; this covers a longer blip (a restarting endpoint, a moment of
//! network loss) before a whole job is failed and redone for one object.

use std::future::Future;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::storage::StorageError;

/// Attempts per object, the first included.
const ATTEMPTS: u32 = 3;
/// The ceiling of the pause before the second attempt; doubled before the third.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The ceiling of the pause before the third attempt, the last: with three attempts the
/// ceilings never grow past it.
const LAST_PAUSE: Duration = Duration::from_secs(1);

/// Runs `call` until it succeeds, fails for a reason no retry can mend, or runs out of
/// attempts. Pauses are jittered ([`Backoff`]): one transcoder uploads several objects at
/// once, and when storage blips they all fail together; they should not all come back
/// together.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut backoff = Backoff::new(FIRST_PAUSE, LAST_PAUSE);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            // A local file we cannot read stays unreadable.
            Err(error @ StorageError::Io { .. }) => return Err(error),
            Err(error) if attempt >= ATTEMPTS => return Err(error),
            Err(error) => {
                let pause = backoff.next_delay();
                tracing::warn!(object = what, attempt, %error,
                    retry_in_ms = pause.as_millis() as u64, "storage call failed; retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    fn s3_error() -> StorageError {
        StorageError::S3 {
            operation: "PutObject",
            bucket: "b".into(),
            key: "k".into(),
            message: "connection reset".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_blip_is_retried_and_a_lasting_one_fails_after_three_attempts() {
        let calls = Cell::new(0);
        let result = with_retries("k", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(s3_error())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);

        calls.set(0);
        let result: Result<(), _> = with_retries("k", || {
            calls.set(calls.get() + 1);
            async { Err(s3_error()) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pauses_are_half_a_second_then_a_second_each_jittered_down_to_half() {
        let started = tokio::time::Instant::now();
        let calls = RefCell::new(Vec::new());
        let result: Result<(), _> = with_retries("k", || {
            calls.borrow_mut().push(started.elapsed());
            async { Err(s3_error()) }
        })
        .await;
        assert!(result.is_err());
        let at = calls.into_inner();
        assert_eq!(at.len(), 3, "{at:?}");
        let (first, second) = (at[1] - at[0], at[2] - at[1]);
        assert!(
            first >= Duration::from_millis(250) && first <= Duration::from_millis(500),
            "{first:?}"
        );
        assert!(
            second >= Duration::from_millis(500) && second <= Duration::from_secs(1),
            "{second:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_file_error_is_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), _> = with_retries("k", || {
            calls.set(calls.get() + 1);
            async {
                Err(StorageError::Io {
                    path: "/x".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.get(), 1);
    }
}
