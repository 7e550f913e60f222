//! A per-key token bucket: at most `burst` actions at once, refilled at
//! `per_second`. Used where a partner's own requests write to the store
//! (`/oauth/revoke`), so that no partner can grow the data file or the
//! revocation feed faster than the bucket allows. Memory is bounded by
//! [`PerKey`]: keys that keep coming back are remembered, one-off keys are
//! forgotten first (a forgotten key starts again with a full bucket, which
//! is what an idle key would hold anyway).

use std::time::{Duration, Instant};

use super::per_key::PerKey;

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
    buckets: PerKey<String, Bucket>,
}

impl RateLimit {
    /// `burst` actions at once, `per_second` refilled, for at most
    /// `capacity` keys tracked.
    pub fn new(burst: u32, per_second: f64, capacity: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second,
            buckets: PerKey::new(capacity),
        }
    }

    /// Takes one action for `key` at `now`; Err with how long until the
    /// next one is allowed.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.take_as(key, self.burst, self.per_second, now)
    }

    /// [`RateLimit::take`] under the key's own allowance: `burst` at once,
    /// one more every `refill` (a user's token rate). A bucket keeps what
    /// it holds when its allowance changes, never more than the new burst.
    pub fn take_with(
        &self,
        key: &str,
        burst: u32,
        refill: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        let per_second = 1.0 / refill.as_secs_f64().max(f64::MIN_POSITIVE);
        self.take_as(key, f64::from(burst.max(1)), per_second, now)
    }

    fn take_as(&self, key: &str, burst: f64, rate: f64, now: Instant) -> Result<(), Duration> {
        let fresh = || Bucket {
            tokens: burst,
            at: now,
        };
        self.buckets.update(key, fresh, |bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
            // Never back: a clock read earlier than the last take must not
            // let the same time be counted twice.
            bucket.at = bucket.at.max(now);
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
            }
        })
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
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
    fn each_key_can_have_its_own_allowance() {
        let limit = RateLimit::new(100, 100.0, 10);
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        // 2/min: two at once, then one every 30 s.
        assert_eq!(limit.take_with("a", 2, minute / 2, t0), Ok(()));
        assert_eq!(limit.take_with("a", 2, minute / 2, t0), Ok(()));
        assert_eq!(
            limit.take_with("a", 2, minute / 2, t0),
            Err(Duration::from_secs(30))
        );
        let later = t0 + Duration::from_secs(30);
        assert_eq!(limit.take_with("a", 2, minute / 2, later), Ok(()));
        assert!(limit.take_with("a", 2, minute / 2, later).is_err());
        // Lowered to 1/h: the bucket is empty, the next one is an hour off.
        assert_eq!(
            limit.take_with("a", 1, minute * 60, later),
            Err(minute * 60)
        );
        assert_eq!(
            limit.take_with("b", 1, minute * 60, t0),
            Ok(()),
            "keys apart"
        );
    }

    #[test]
    fn a_clock_read_earlier_counts_no_time_twice() {
        let minute = Duration::from_secs(60);
        let t0 = Instant::now();
        let limit = RateLimit::new(1, 1.0, 10);
        assert_eq!(limit.take_with("c", 1, minute, t0 + minute), Ok(()));
        assert!(
            limit.take_with("c", 1, minute, t0).is_err(),
            "nothing refilled"
        );
        assert_eq!(
            limit.take_with("c", 1, minute, t0 + minute + minute / 2),
            Err(minute / 2),
            "half a minute since the last take, not since the earlier reading"
        );
    }

    #[test]
    fn memory_is_bounded_and_a_busy_key_keeps_its_state() {
        let limit = RateLimit::new(2, 2.0, 100);
        let t0 = Instant::now();
        assert!(limit.is_empty());
        limit.take("busy", t0).unwrap();
        limit.take("busy", t0).unwrap();
        for n in 0..10_000 {
            limit.take(&n.to_string(), t0).unwrap();
            if n % 50 == 0 {
                assert!(limit.take("busy", t0).is_err(), "busy stays empty");
            }
        }
        assert!(limit.len() <= 100, "{}", limit.len());
        assert!(!limit.is_empty());
        assert!(
            limit.take("busy", t0).is_err(),
            "a flood of other keys did not refill busy's bucket"
        );
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
