//! Token buckets per API key and per anonymous client, in this process's memory.
//!
//! Why not in the database: a shared bucket costs a write per request on the hot path of every
//! partner call, and the limit exists to protect this service from one runaway integration, not
//! to meter billing. With N API replicas behind a load balancer the effective limit of a key is
//! up to N × its configured rate (`docs/operators.md` says so).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle (refilled) ones are dropped.
const PRUNE_AT: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One token bucket per key.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes a token from `key`'s bucket (`rate_per_minute` refill, `burst` capacity; a rate of
    /// zero disables the limit). `Err` says how long until a token is available.
    pub fn check(&self, key: &str, rate_per_minute: u32, burst: u32) -> Result<(), Duration> {
        if rate_per_minute == 0 {
            return Ok(());
        }
        self.take(
            key,
            f64::from(rate_per_minute) / 60.0,
            f64::from(burst.max(1)),
            1.0,
        )
    }

    /// Takes `cost` tokens (e.g. bytes) from `key`'s bucket of `capacity` tokens refilled at
    /// `rate` tokens per second. A cost above the capacity can never be paid: it fails with the
    /// time a full bucket would take. A rate of zero disables the limit.
    pub fn take(&self, key: &str, rate: f64, capacity: f64, cost: f64) -> Result<(), Duration> {
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(key) {
            // A bucket that would be full again holds no information.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(
                Duration::from_secs_f64((cost.min(capacity) - bucket.tokens).max(0.0) / rate)
                    .max(Duration::from_millis(1)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert!(limiter.check("k", 60, 3).is_ok());
        }
        let wait = limiter.check("k", 60, 3).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another key has its own bucket; a zero rate is unlimited.
        assert!(limiter.check("other", 60, 3).is_ok());
        for _ in 0..100 {
            assert!(limiter.check("free", 0, 1).is_ok());
        }
        std::thread::sleep(Duration::from_millis(1100));
        assert!(limiter.check("k", 60, 3).is_ok(), "one token came back");
        assert!(limiter.check("k", 60, 3).is_err());
    }
}
