//! Brute-force throttling of logins per client (SPEC §2, §5). An attempt is
//! charged as a failure *before* its password is checked and refunded when
//! the password matched, so N concurrent requests from one client get no
//! more passwords checked than N sent one after another. Past the threshold
//! within the window the client is locked out, twice as long on each repeat
//! offence up to a cap, and the repeat count is forgiven after a quiet
//! period. Memory is bounded by [`PerKey`]: a flood of distinct clients
//! forgets one-off clients first, never one that keeps failing.

use std::time::{Duration, Instant};

use super::per_key::PerKey;
use crate::login::client::ClientKey;

/// Brute-force throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that trigger a lockout.
    pub failures: u32,
    /// Counting window.
    pub window: Duration,
    /// First lockout.
    pub lockout: Duration,
    /// Longest lockout.
    pub max_lockout: Duration,
}

/// Clients remembered at most.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    strikes: u32,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            failures: 0,
            locked_until: None,
            strikes: 0,
        }
    }
}

/// An attempt counted against a client before its check ran; hand it back
/// to [`Throttle::refund`] when the password matched (or was never checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "refund the charge when the password matched"]
pub struct Charge {
    /// The lockout this attempt started, if it was the one that crossed the
    /// threshold.
    pub lockout: Option<Duration>,
}

/// The throttle table.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    table: PerKey<ClientKey, Entry>,
}

impl Throttle {
    /// A table remembering at most `capacity` clients.
    pub fn new(config: ThrottleConfig, capacity: usize) -> Self {
        Self {
            config,
            table: PerKey::new(capacity),
        }
    }

    /// Counts an attempt from `key` as a failure before its password is
    /// checked. `Err(retry_after)` while the client is locked out (the
    /// attempt is then not counted and must not be checked).
    pub fn charge(&self, key: &ClientKey, now: Instant) -> Result<Charge, Duration> {
        let c = self.config;
        self.table
            .update(key, || Entry::new(now), |entry| Self::count(c, entry, now))
    }

    fn count(c: ThrottleConfig, entry: &mut Entry, now: Instant) -> Result<Charge, Duration> {
        if let Some(until) = entry.locked_until {
            if now < until {
                return Err(until - now);
            }
            if now >= until + c.max_lockout {
                entry.strikes = 0; // quiet long enough: forgive
            }
            entry.locked_until = None;
        }
        if now.duration_since(entry.window_start) >= c.window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures < c.failures {
            return Ok(Charge { lockout: None });
        }
        let factor = 1u32 << entry.strikes.min(20);
        let lockout = c.lockout.saturating_mul(factor).min(c.max_lockout);
        entry.locked_until = Some(now + lockout);
        entry.strikes += 1;
        entry.failures = 0;
        entry.window_start = now;
        Ok(Charge {
            lockout: Some(lockout),
        })
    }

    /// Takes back a [`Charge`]: the password matched, or was never checked.
    /// A lockout the charge started is lifted again. A client forgotten
    /// meanwhile has nothing left to refund.
    pub fn refund(&self, key: &ClientKey, charge: Charge) {
        let threshold = self.config.failures;
        self.table.update_existing(key, |entry| {
            if charge.lockout.is_some() {
                entry.locked_until = None;
                entry.strikes = entry.strikes.saturating_sub(1);
                entry.failures = threshold.saturating_sub(1);
            } else {
                entry.failures = entry.failures.saturating_sub(1);
            }
        });
    }

    /// Clients currently remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: Duration = Duration::from_nanos(1);

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            failures: 3,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
        }
    }

    fn key(n: u32) -> ClientKey {
        ClientKey::from_ip(std::net::IpAddr::from(n.to_be_bytes()))
    }

    fn fail(t: &Throttle, k: u32, now: Instant) -> Result<Option<Duration>, Duration> {
        t.charge(&key(k), now).map(|c| c.lockout)
    }

    #[test]
    fn locks_at_the_threshold_and_doubles() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        assert_eq!(fail(&t, 1, t0), Ok(None));
        assert_eq!(fail(&t, 1, t0), Ok(None));
        assert_eq!(fail(&t, 1, t0), Ok(Some(Duration::from_secs(60))));
        assert_eq!(
            fail(&t, 1, t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert_eq!(fail(&t, 2, t0), Ok(None), "other clients are unaffected");
        let until = t0 + Duration::from_secs(60);
        assert_eq!(
            fail(&t, 1, until - NS),
            Err(NS),
            "locked to the last instant"
        );
        assert_eq!(fail(&t, 1, until), Ok(None), "free at the instant it ends");
        assert_eq!(fail(&t, 1, until), Ok(None));
        assert_eq!(fail(&t, 1, until), Ok(Some(Duration::from_secs(120))));
    }

    #[test]
    fn failures_count_only_within_the_window() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        let window = Duration::from_secs(300);
        fail(&t, 1, t0).unwrap();
        fail(&t, 1, t0).unwrap();
        assert_eq!(
            fail(&t, 1, t0 + window - NS),
            Ok(Some(Duration::from_secs(60))),
            "the third failure just inside the window locks"
        );
        let t = Throttle::new(config(), 100);
        fail(&t, 1, t0).unwrap();
        fail(&t, 1, t0).unwrap();
        assert_eq!(fail(&t, 1, t0 + window), Ok(None), "a new window starts");
    }

    #[test]
    fn strikes_are_forgiven_after_a_quiet_period() {
        let lock_then_fail_at = |after_lockout: Duration| {
            let t = Throttle::new(config(), 100);
            let t0 = Instant::now();
            for _ in 0..3 {
                fail(&t, 1, t0).unwrap();
            }
            let later = t0 + Duration::from_secs(60) + after_lockout;
            fail(&t, 1, later).unwrap();
            fail(&t, 1, later).unwrap();
            fail(&t, 1, later).unwrap()
        };
        let max = Duration::from_secs(3600);
        assert_eq!(lock_then_fail_at(max), Some(Duration::from_secs(60)));
        assert_eq!(
            lock_then_fail_at(max - NS),
            Some(Duration::from_secs(120)),
            "not quiet long enough: the lockout doubles"
        );
    }

    #[test]
    fn lockouts_are_capped() {
        let t = Throttle::new(config(), 100);
        let mut now = Instant::now();
        let mut last = None;
        for _ in 0..10 {
            for _ in 0..3 {
                last = fail(&t, 1, now).unwrap();
            }
            now += last.unwrap();
        }
        assert_eq!(last, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn a_refund_takes_back_one_failure() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        fail(&t, 1, t0).unwrap();
        let c = t.charge(&key(1), t0).unwrap();
        t.refund(&key(1), c);
        fail(&t, 1, t0).unwrap();
        assert_eq!(fail(&t, 1, t0), Ok(Some(Duration::from_secs(60))));
    }

    #[test]
    fn a_refund_lifts_the_lockout_its_charge_started() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        fail(&t, 1, t0).unwrap();
        fail(&t, 1, t0).unwrap();
        let c = t.charge(&key(1), t0).unwrap();
        assert!(c.lockout.is_some());
        t.refund(&key(1), c);
        assert_eq!(
            fail(&t, 1, t0),
            Ok(Some(Duration::from_secs(60))),
            "unlocked, two failures still counted, and the strike taken back"
        );
    }

    #[test]
    fn a_refund_for_a_forgotten_client_is_harmless() {
        let t = Throttle::new(config(), 100);
        t.refund(&key(1), Charge { lockout: None });
        t.refund(
            &key(1),
            Charge {
                lockout: Some(Duration::from_secs(60)),
            },
        );
        assert!(t.is_empty(), "a refund never brings a client back");
    }

    #[test]
    fn concurrent_attempts_get_no_more_checks_than_sequential_ones() {
        let t = std::sync::Arc::new(Throttle::new(config(), 100));
        let t0 = Instant::now();
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || usize::from(t.charge(&key(1), t0).is_ok()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 3);
    }

    #[test]
    fn a_locked_out_client_is_remembered_through_a_flood() {
        let t = Throttle::new(config(), 1000);
        let t0 = Instant::now();
        assert!(t.is_empty());
        for _ in 0..3 {
            fail(&t, u32::MAX, t0).unwrap();
        }
        for n in 0..20_000 {
            fail(&t, n, t0).unwrap();
            if n % 100 == 0 {
                assert!(fail(&t, u32::MAX, t0).is_err(), "still locked out");
            }
        }
        assert!(!t.is_empty());
        assert!(
            fail(&t, u32::MAX, t0 + Duration::from_secs(59)).is_err(),
            "a flood of one-off clients did not buy the attacker a fresh start"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let t = Throttle::new(config(), 1000);
        let t0 = Instant::now();
        for n in 0..50_000 {
            fail(&t, n, t0).unwrap();
        }
        assert!(t.len() <= 1000, "{}", t.len());
        assert!(t.len() > 500, "{}", t.len());
    }
}
