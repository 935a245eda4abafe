//! The wait before a management server's stream is opened again (Envoy's
//! `JitteredExponentialBackOffStrategy`, base 500 ms, max 30 s for xDS): a
//! random wait below an interval that doubles after each failed attempt up to
//! the max, so that many proxies cut off together do not come back together.
//! A stream that got a response starts over from the base.

use std::time::Duration;

pub const BASE: Duration = Duration::from_millis(500);
pub const MAX: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct BackOff {
    next: u64,
}

impl Default for BackOff {
    fn default() -> Self {
        BackOff { next: BASE.as_millis() as u64 }
    }
}

impl BackOff {
    /// The next wait: below the current interval, which then doubles.
    pub fn next_wait(&mut self) -> Duration {
        let max = MAX.as_millis() as u64;
        let interval = self.next;
        self.next = if interval > max / 2 { max } else { interval * 2 };
        Duration::from_millis(crate::common::random::below(interval).min(max))
    }

    pub fn reset(&mut self) {
        *self = BackOff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_below_a_doubling_interval_capped_at_the_max() {
        let mut b = BackOff::default();
        let bounds = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
        for bound in bounds {
            assert!(b.next_wait() < Duration::from_millis(bound));
        }
        b.reset();
        assert!(b.next_wait() < BASE);
    }
}
