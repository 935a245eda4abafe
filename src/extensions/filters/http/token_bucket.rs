//! A lock-free token bucket shared by every worker (Envoy's `AtomicTokenBucketImpl`,
//! which the local rate limit filter uses).
//!
//! Tokens come back continuously, `tokens_per_fill` every `fill_interval` (Envoy 1.40
//! refills this way rather than in steps: with 4 tokens per 4 s a drained bucket has
//! one token again after 1 s), up to `max_tokens`; the bucket starts full.
//!
//! The whole state is one atomic: the instant at which the bucket was (or would
//! have been) empty. The tokens available at `now` are `(now - empty_at) / cost`,
//! capped at `max_tokens`; taking one moves `empty_at` forward by one token's cost
//! with a compare-and-swap, so workers never lock. Time is in nanoseconds on a
//! monotonic `Clock`, which tests replace with a manual one; a token costs at least
//! 1 ns (rates above 10⁹ tokens per second are clamped).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Monotonic time for token buckets: nanoseconds since an arbitrary origin.
pub trait Clock: Send + Sync + Debug {
    fn now_nanos(&self) -> u64;
}

/// The process's monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> MonotonicClock {
        MonotonicClock { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<u64>,
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now.saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What taking a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    /// A token was taken; `remaining` whole tokens are left.
    Allowed { remaining: u64 },
    /// No token; the next one comes back in `next_token_in`.
    Limited { next_token_in: Duration },
}

/// Times further than this are clamped so that `now + full` cannot overflow.
const MAX_SPAN_NANOS: u64 = 1 << 62;

#[derive(Debug)]
pub struct TokenBucket {
    max_tokens: u64,
    /// Nanoseconds to earn one token (at least 1).
    cost: u64,
    /// `max_tokens * cost`: how long an empty bucket takes to fill.
    full: u64,
    /// When the bucket was empty, on the clock shifted by `full` (so the start, a
    /// full bucket, is 0 and never negative).
    empty_at: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl TokenBucket {
    /// A full bucket. `max_tokens` and `tokens_per_fill` of 0 count as 1, a zero
    /// `fill_interval` as 1 ns (the config checks reject both first).
    pub fn new(max_tokens: u32, tokens_per_fill: u32, fill_interval: Duration, clock: Arc<dyn Clock>) -> TokenBucket {
        let max_tokens = u64::from(max_tokens.max(1));
        let interval = u64::try_from(fill_interval.as_nanos()).unwrap_or(MAX_SPAN_NANOS).clamp(1, MAX_SPAN_NANOS);
        let per_fill = u64::from(tokens_per_fill.max(1));
        // Rounded to the nearest nanosecond.
        let cost = ((interval + per_fill / 2) / per_fill).max(1);
        let full = max_tokens.saturating_mul(cost).min(MAX_SPAN_NANOS);
        TokenBucket { max_tokens, cost, full, empty_at: AtomicU64::new(0), clock }
    }

    pub fn max_tokens(&self) -> u64 {
        self.max_tokens
    }

    /// Takes one token if there is one.
    pub fn consume(&self) -> Consume {
        let now = self.clock.now_nanos().min(MAX_SPAN_NANOS) + self.full;
        let mut current = self.empty_at.load(Ordering::Relaxed);
        loop {
            // A bucket idle for longer than `full` holds `max_tokens`, no more.
            let base = current.max(now - self.full);
            let next = base + self.cost;
            if next > now {
                return Consume::Limited { next_token_in: Duration::from_nanos(next - now) };
            }
            match self.empty_at.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Consume::Allowed { remaining: ((now - next) / self.cost).min(self.max_tokens) },
                Err(seen) => current = seen,
            }
        }
    }

    /// How long until the next whole token, given what `consume` returned
    /// (zero when tokens are left).
    pub fn next_token_in(&self, result: Consume) -> Duration {
        match result {
            Consume::Allowed { remaining } if remaining > 0 => Duration::ZERO,
            Consume::Allowed { .. } => {
                let now = self.clock.now_nanos().min(MAX_SPAN_NANOS) + self.full;
                let empty_at = self.empty_at.load(Ordering::Relaxed).max(now - self.full);
                Duration::from_nanos((empty_at + self.cost).saturating_sub(now))
            }
            Consume::Limited { next_token_in } => next_token_in,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(max: u32, per_fill: u32, interval: Duration) -> (TokenBucket, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (TokenBucket::new(max, per_fill, interval, clock.clone()), clock)
    }

    fn allowed(b: &TokenBucket) -> bool {
        matches!(b.consume(), Consume::Allowed { .. })
    }

    #[test]
    fn starts_full_and_empties() {
        let (b, _) = bucket(3, 1, Duration::from_secs(1));
        assert_eq!(b.consume(), Consume::Allowed { remaining: 2 });
        assert_eq!(b.consume(), Consume::Allowed { remaining: 1 });
        assert_eq!(b.consume(), Consume::Allowed { remaining: 0 });
        assert_eq!(b.consume(), Consume::Limited { next_token_in: Duration::from_secs(1) });
    }

    #[test]
    fn refills_continuously_up_to_max() {
        // 4 tokens per 4 s: one token a second.
        let (b, clock) = bucket(4, 4, Duration::from_secs(4));
        for _ in 0..4 {
            assert!(allowed(&b));
        }
        assert!(!allowed(&b));
        clock.advance(Duration::from_millis(1100));
        assert!(allowed(&b));
        assert!(!allowed(&b));
        match b.consume() {
            Consume::Limited { next_token_in } => assert_eq!(next_token_in, Duration::from_millis(900)),
            other => panic!("{other:?}"),
        }
        // A long idle period refills to max_tokens, not beyond.
        clock.advance(Duration::from_secs(3600));
        let taken = (0..10).filter(|_| allowed(&b)).count();
        assert_eq!(taken, 4);
    }

    #[test]
    fn next_token_time_for_headers() {
        let (b, _) = bucket(2, 1, Duration::from_secs(60));
        let first = b.consume();
        assert_eq!(b.next_token_in(first), Duration::ZERO);
        let second = b.consume();
        assert_eq!(second, Consume::Allowed { remaining: 0 });
        assert_eq!(b.next_token_in(second), Duration::from_secs(60));
    }

    #[test]
    fn shared_across_threads_without_overspending() {
        let (b, _) = bucket(1000, 1, Duration::from_secs(3600));
        let b = Arc::new(b);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..500).filter(|_| allowed(&b)).count())
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(total, 1000);
    }

    #[test]
    fn extreme_configs_do_not_overflow() {
        let (b, clock) = bucket(u32::MAX, u32::MAX, Duration::from_millis(50));
        assert!(allowed(&b));
        clock.advance(Duration::from_secs(86_400 * 365 * 100));
        assert!(allowed(&b));
        let (b, _) = bucket(u32::MAX, 1, Duration::from_secs(u64::MAX / 4));
        assert!(allowed(&b));
    }
}
