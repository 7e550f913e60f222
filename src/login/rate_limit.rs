//! A per-key token bucket: at most `burst` actions at once, refilled at
//! `per_second`. Used where a partner's own requests write to the store
//! (`/oauth/revoke`), so that no partner can grow the data file or the
//! revocation feed faster than the bucket allows. Memory is bounded: past
//! `capacity` keys, buckets that have refilled completely (they hold no
//! state worth keeping) are forgotten first, then the oldest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One key's allowance.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimit {
    burst: f64,
    per_second: f64,
    capacity: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimit {
    /// `burst` actions at once, `per_second` refilled, for at most
    /// `capacity` keys tracked.
    pub fn new(burst: u32, per_second: f64, capacity: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second,
            capacity: capacity.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one action for `key` at `now`; Err with how long until the
    /// next one is allowed.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(key) && buckets.len() >= self.capacity {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }

    /// Forgets full buckets; if none is full, the least recently used one.
    fn evict(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let (burst, rate) = (self.burst, self.per_second);
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
        if buckets.len() >= self.capacity
            && let Some(oldest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
        {
            buckets.remove(&oldest);
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let limit = RateLimit::new(3, 2.0, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.take("a", t0), Ok(()));
        }
        assert_eq!(limit.take("a", t0), Err(Duration::from_millis(500)));
        // A quarter second on, half a token is back: half of it is missing.
        assert_eq!(
            limit.take("a", t0 + Duration::from_millis(250)),
            Err(Duration::from_millis(250))
        );
        assert_eq!(limit.take("b", t0), Ok(()), "keys are apart");
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limit.take("a", later), Ok(()), "the other half came back");
        assert!(limit.take("a", later).is_err());
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limit.take("a", much_later), Ok(()), "refilled to the burst");
        }
        assert!(limit.take("a", much_later).is_err(), "never past the burst");
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_go_first() {
        // Burst 2, refilled at 2 a second.
        let limit = RateLimit::new(2, 2.0, 3);
        let t0 = Instant::now();
        limit.take("busy", t0).unwrap();
        limit.take("busy", t0).unwrap();
        limit.take("idle1", t0).unwrap();
        limit.take("idle2", t0).unwrap();
        assert_eq!(limit.len(), 3);
        // Half a second on, idle1 and idle2 are exactly full again (1 + 0.5
        // × 2); busy holds 1 of 2.
        let t1 = t0 + Duration::from_millis(500);
        limit.take("new", t1).unwrap();
        assert_eq!(limit.len(), 2, "the refilled buckets were forgotten");
        assert!(
            limit.take("busy", t1).is_ok() && limit.take("busy", t1).is_err(),
            "busy kept its state: one token back, not a fresh burst"
        );
        limit.take("x", t1).unwrap();
        limit.take("y", t1).unwrap();
        assert!(limit.len() <= 3);
        assert!(!limit.is_empty());
    }

    #[test]
    fn nothing_is_forgotten_while_there_is_room() {
        let limit = RateLimit::new(2, 1.0, 10);
        assert!(limit.is_empty());
        let t0 = Instant::now();
        limit.take("idle", t0).unwrap();
        // Long after, idle's bucket is full again; with room to spare it is
        // kept all the same (forgetting happens only at capacity).
        limit.take("other", t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(limit.len(), 2);
        // An existing key at capacity forgets nobody.
        let full = RateLimit::new(2, 1.0, 2);
        full.take("a", t0).unwrap();
        full.take("b", t0).unwrap();
        full.take("a", t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(full.len(), 2);
    }
}
