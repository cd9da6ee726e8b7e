//! When the sweep next asks about an item, and how fast it may ask: the
//! backoff schedule, the sweep's clock and budget, and a token bucket for
//! the platform calls. Pure logic: the Lambda side sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::EpochSecs;

/// How long an item that is still open waits before it is asked about
/// again: the `n`-th answer that leaves it open pushes it back by the
/// `n`-th step, the last step repeating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff(Vec<Duration>);

impl Default for Backoff {
    /// 1, 2, 5, 10, 30 minutes, then hourly.
    fn default() -> Self {
        Self(
            [60, 120, 300, 600, 1800, 3600]
                .map(Duration::from_secs)
                .to_vec(),
        )
    }
}

impl Backoff {
    /// Parses whole seconds separated by commas (`60,120,300,600,1800,3600`);
    /// every step must be positive and the list not empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        let steps = text
            .split(',')
            .map(|step| {
                step.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
                    .ok_or_else(|| format!("{step:?} is not a positive number of seconds"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err("no steps".to_owned());
        }
        Ok(Self(steps))
    }

    /// The wait after the `checks`-th check (1 for the first).
    pub fn after(&self, checks: u32) -> Duration {
        let at = usize::try_from(checks.saturating_sub(1)).unwrap_or(usize::MAX);
        self.0[at.min(self.0.len() - 1)]
    }

    pub fn steps(&self) -> &[Duration] {
        &self.0
    }
}

/// Whole seconds of `d`, saturating.
pub fn secs(d: Duration) -> EpochSecs {
    EpochSecs::try_from(d.as_secs()).unwrap_or(EpochSecs::MAX / 4)
}

/// The sweep's clock, read per item, and its budget: the invocation's
/// deadline less a margin.
#[derive(Debug, Clone, Copy)]
pub struct SweepClock {
    /// Added to the wall clock (tests play a later sweep without waiting).
    pub offset_secs: EpochSecs,
    /// When the sweep must have stopped taking new items.
    pub stop_at: Instant,
    /// The invocation's deadline, in epoch seconds: what a claim taken by
    /// the sweep may last.
    pub deadline: EpochSecs,
}

impl SweepClock {
    /// A clock for an invocation that must end at `deadline` (wall clock),
    /// stopping `margin` before it.
    pub fn until(deadline: SystemTime, margin: Duration) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self {
            offset_secs: 0,
            stop_at: Instant::now() + left.saturating_sub(margin),
            deadline: deadline.duration_since(UNIX_EPOCH).map(secs).unwrap_or(0),
        }
    }

    /// The same clock `offset_secs` later.
    pub fn shifted(mut self, offset_secs: EpochSecs) -> Self {
        self.offset_secs = offset_secs;
        self.deadline += offset_secs;
        self
    }

    pub fn now(&self) -> EpochSecs {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(secs)
            .unwrap_or(0);
        wall + self.offset_secs
    }

    /// Time left before the sweep must stop.
    pub fn remaining(&self) -> Duration {
        self.stop_at.saturating_duration_since(Instant::now())
    }

    pub fn out_of_time(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// A token bucket: at most `rate` takes per second on average, bursts of
/// at most `rate`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens per second (`rate` > 0).
    pub fn new(rate: f64, now: Instant) -> Self {
        let rate = rate.max(f64::MIN_POSITIVE);
        Self {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    /// Takes a token at `now`, or says how long to wait for one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_then_repeats_its_last_step() {
        let b = Backoff::default();
        let waits: Vec<u64> = (1..=8).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(waits, [60, 120, 300, 600, 1800, 3600, 3600, 3600]);
        assert_eq!(b.after(0).as_secs(), 60);
        assert_eq!(Backoff::parse("5, 10").unwrap().after(9).as_secs(), 10);
        assert!(Backoff::parse("").is_err());
        assert!(Backoff::parse("60,0").is_err());
        assert!(Backoff::parse("60,x").is_err());
    }

    #[test]
    fn the_bucket_allows_its_rate_and_no_more() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5.0, start);
        // A full bucket: a burst of 5, then a wait of 1/5 s.
        for _ in 0..5 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-9, "{wait:?}");
        // Over 10 simulated seconds, taking whenever allowed: 5 + 50.
        let mut taken = 5;
        let mut t = start;
        while t < start + Duration::from_secs(10) {
            match bucket.take(t) {
                Ok(()) => taken += 1,
                Err(wait) => t += wait,
            }
        }
        assert!((54..=56).contains(&taken), "{taken}");
        // A slow rate still allows one call, then waits.
        let mut slow = TokenBucket::new(0.5, start);
        assert_eq!(slow.take(start), Ok(()));
        assert_eq!(slow.take(start).unwrap_err(), Duration::from_secs(2));
    }

    #[test]
    fn the_clock_counts_down_to_its_margin() {
        let deadline = SystemTime::now() + Duration::from_secs(100);
        let clock = SweepClock::until(deadline, Duration::from_secs(10));
        let left = clock.remaining().as_secs();
        assert!((88..=90).contains(&left), "{left}");
        assert!(!clock.out_of_time());
        let late = SweepClock::until(SystemTime::now(), Duration::from_secs(10));
        assert!(late.out_of_time());
        let shifted = clock.shifted(600);
        assert!(shifted.now() - clock.now() >= 599);
        assert_eq!(shifted.deadline, clock.deadline + 600);
    }
}
