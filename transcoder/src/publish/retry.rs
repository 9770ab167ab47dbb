//! Retrying one storage call. The SDK already retries throttling and dropped connections a
//! few times within a call; this covers a longer blip (a restarting endpoint, a few seconds of
//! network loss) before a whole job is failed and redone for one object.

use std::future::Future;
use std::time::Duration;

use crate::storage::StorageError;

/// Attempts per object, the first included.
const ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each next one.
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// Runs `call` until it succeeds, fails for a reason no retry can mend, or runs out of
/// attempts.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            // A local file we cannot read stays unreadable.
            Err(error @ StorageError::Io { .. }) => return Err(error),
            Err(error) if attempt >= ATTEMPTS => return Err(error),
            Err(error) => {
                tracing::warn!(object = what, attempt, %error, "storage call failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

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
    async fn a_passing_blip_is_retried_and_a_lasting_one_is_not_hidden() {
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
        assert_eq!(calls.get(), ATTEMPTS);
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
