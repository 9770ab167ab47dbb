//! How long to wait before trying again something that failed: delays that double from a base
//! up to a cap, counted from the last success. The one retry policy of both binaries: the
//! consumer's queue loop, its RunTask retries and its wait for a runner, the transcoder's
//! storage calls and a failing peer's rest. It uses nothing else of this crate (level 0 of the
//! module ladder), so the consumer can share it.
//!
//! Delays carry **equal jitter**: each is drawn between half its ceiling and the ceiling.
//! Full jitter (between zero and the ceiling) spreads callers wider, but here it would cost
//! more than it gives:
//! - Most of our retries are few (a storage call's three tries, RunTask's attempts). Full
//!   jitter could spend them all within milliseconds against a service that needs seconds to
//!   come back; equal jitter keeps at least half of the planned wait.
//! - The waits still grow. A delay is at least half its ceiling, which is the ceiling before
//!   it, so until the cap no wait is shorter than the one before, and a service that is down
//!   is never called again at once.
//! - Half a ceiling is spread enough for the few callers that fail together here (a handful
//!   of consumers, one transcoder's parallel uploads). Full jitter pays off when thousands of
//!   clients contend for one resource, which is not the case here.
//!
//! A caller that nobody else can fail in step with may ask for exact delays instead
//! ([`Backoff::without_jitter`]).

use std::time::Duration;

/// Doublings after which the ceiling stops growing. Keeps the shift below 32 bits; 2^20 times
/// any base in use is far past its cap.
const MAX_DOUBLINGS: u32 = 20;

/// Delays that double from `base` up to `max`, jittered unless made
/// [`without_jitter`](Backoff::without_jitter).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: bool,
    failures: u32,
}

impl Backoff {
    /// Delays with equal jitter whose first ceiling is `base` and whose ceilings stop growing
    /// at `max`: for callers that may fail together with others and must not retry together.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            jitter: true,
            failures: 0,
        }
    }

    /// Delays that are exactly the ceilings: `base`, twice that, and so on up to `max`. For a
    /// caller no other caller can be in step with, whose schedule its tests then know exactly.
    pub fn without_jitter(base: Duration, max: Duration) -> Self {
        Self {
            jitter: false,
            ..Self::new(base, max)
        }
    }

    /// The ceiling of the next delay: `base * 2^failures`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.failures.min(MAX_DOUBLINGS);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Records a failure and returns how long to wait before trying again.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        if self.jitter {
            equal_jitter(ceiling, fastrand::f64())
        } else {
            ceiling
        }
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The delay under `ceiling` for a `draw` in `[0, 1)`: from half the ceiling (draw 0) up to
/// the ceiling.
fn equal_jitter(ceiling: Duration, draw: f64) -> Duration {
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(draw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn equal_jitter_draws_from_half_the_ceiling_up_to_the_ceiling() {
        for (draw, want) in [(0.0, 500), (0.5, 750), (0.75, 875)] {
            assert_eq!(equal_jitter(ms(1000), draw), ms(want), "draw {draw}");
        }
    }

    #[test]
    fn jittered_delays_stay_within_their_ceiling_and_its_half() {
        let mut backoff = Backoff::new(ms(500), Duration::from_secs(4));
        for _ in 0..200 {
            let ceiling = backoff.ceiling();
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_and_a_success_starts_again_from_the_base() {
        let mut backoff = Backoff::without_jitter(ms(500), Duration::from_secs(4));
        let delays: Vec<u128> = (0..6).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.next_delay(), ms(500));
    }

    #[test]
    fn jittered_ceilings_double_up_to_the_cap_too() {
        let mut backoff = Backoff::new(ms(500), Duration::from_secs(4));
        let ceilings: Vec<u128> = (0..6)
            .map(|_| {
                let ceiling = backoff.ceiling().as_millis();
                backoff.next_delay();
                ceiling
            })
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.ceiling(), ms(500));
    }

    #[test]
    fn jittered_waits_never_shrink_before_the_cap() {
        for _ in 0..100 {
            let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(64));
            let delays: Vec<Duration> = (0..7).map(|_| backoff.next_delay()).collect();
            assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        }
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(60));
    }
}
