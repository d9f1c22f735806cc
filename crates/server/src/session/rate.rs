//! The per-connection command rate limit: a token bucket refilled at
//! `client.max_commands_per_second`, holding at most one second's worth.
//!
//! Owns only the arithmetic of the bucket; the session decides what a
//! refusal means (error 111, "too many requests") and the transports decide
//! which commands are counted.

use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `rate` stored.
#[derive(Debug, Clone)]
pub(crate) struct CommandRate {
    // 32-bit: every connection has one (a fraction of a token either way
    // does not matter).
    rate: f32,
    tokens: f32,
    last: Instant,
}

impl CommandRate {
    /// A full bucket of `per_second` tokens (`per_second` more than 0).
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        // Exact up to 2^24 a second; beyond, a rounded rate of that size.
        let rate = per_second.max(1) as f32;
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes one token if there is one at `now`.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_one_second_then_the_refill_rate() {
        let start = Instant::now();
        let mut bucket = CommandRate::new(10, start);
        let burst = (0..20).filter(|_| bucket.try_take(start)).count();
        assert_eq!(burst, 10);
        // 100 ms refills one token.
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
        // A long pause refills at most one second's worth.
        let much_later = later + Duration::from_secs(60);
        let burst = (0..50).filter(|_| bucket.try_take(much_later)).count();
        assert_eq!(burst, 10);
    }

    #[test]
    fn a_clock_going_back_takes_nothing_extra() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut bucket = CommandRate::new(1, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start - Duration::from_millis(500)));
        assert!(bucket.try_take(start + Duration::from_secs(1)));
    }
}
