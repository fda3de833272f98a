//! A token bucket: `rate` events per second, bursts up to `rate`.

use std::time::Instant;

/// Limits how often one connection may do something.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` per second; 0 forbids everything.
    pub(crate) fn per_second(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_acquire(&mut self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
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
    fn bursts_then_refills() {
        let start = Instant::now();
        let mut limiter = RateLimiter::per_second(10);
        let granted = (0..15).filter(|_| limiter.try_acquire_at(start)).count();
        assert_eq!(granted, 10);
        assert!(!limiter.try_acquire_at(start + Duration::from_millis(50)));
        assert!(limiter.try_acquire_at(start + Duration::from_millis(200)));
    }

    #[test]
    fn zero_forbids() {
        let mut limiter = RateLimiter::per_second(0);
        assert!(!limiter.try_acquire());
    }
}
