//! Messages per minute per user, as a token bucket (bursts up to the
//! per-minute allowance, refilled continuously). Per replica: with N
//! replicas a user can reach N times the limit, which is acceptable for
//! abuse protection and avoids a Redis round trip per message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets are dropped once full again; this bounds how many are scanned for that.
const SWEEP_ABOVE: usize = 10_000;

impl RateLimiter {
    /// `per_minute == 0` disables limiting.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one message from the user's allowance; false when exhausted.
    pub fn allow(&self, user: &str) -> bool {
        self.allow_at(user, Instant::now())
    }

    fn allow_at(&self, user: &str, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let capacity = f64::from(self.per_minute);
        let refill_per_sec = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * refill_per_sec < capacity
            });
        }
        let bucket = buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * refill_per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
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
    fn allows_the_burst_then_refills() {
        let limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow_at("u", t0)));
        assert!(!limiter.allow_at("u", t0));
        assert!(limiter.allow_at("other", t0), "users are independent");
        assert!(
            limiter.allow_at("u", t0 + Duration::from_secs(20)),
            "one refilled after 20 s"
        );
        assert!(!limiter.allow_at("u", t0 + Duration::from_secs(20)));
    }

    #[test]
    fn zero_disables() {
        let limiter = RateLimiter::new(0);
        assert!((0..1000).all(|_| limiter.allow("u")));
    }
}
