//! Brute-force throttling of `/generateToken` per client address (SPEC §2).
//! Failures are counted in a window; past the threshold the address is
//! locked out, for twice as long on each repeat offence up to a cap, and the
//! repeat count decays after a quiet period. Memory is bounded: two
//! generations of at most `capacity / 2` entries each, so a flood of distinct
//! addresses evicts the oldest generation in O(1) instead of growing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ThrottleConfig;

/// Addresses remembered at most (both generations together).
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    strikes: u32,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<IpAddr, Entry>,
    previous: HashMap<IpAddr, Entry>,
}

/// The throttle table.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    generation_size: usize,
    table: Mutex<Generations>,
}

impl Throttle {
    /// A table remembering at most `capacity` addresses.
    pub fn new(config: ThrottleConfig, capacity: usize) -> Self {
        Self {
            config,
            generation_size: (capacity / 2).max(1),
            table: Mutex::new(Generations::default()),
        }
    }

    fn with_entry<T>(&self, addr: IpAddr, f: impl FnOnce(Option<&mut Entry>) -> T) -> T {
        let mut g = match self.table.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = g.previous.remove(&addr) {
            self.insert(&mut g, addr, e);
        }
        f(g.current.get_mut(&addr))
    }

    fn insert(&self, g: &mut Generations, addr: IpAddr, entry: Entry) {
        if g.current.len() >= self.generation_size && !g.current.contains_key(&addr) {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.insert(addr, entry);
    }

    /// `Err(retry_after)` while `addr` is locked out.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        self.with_entry(addr, |e| match e.and_then(|e| e.locked_until) {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        })
    }

    /// Counts a failed login from `addr`; returns the lockout if this
    /// failure started one.
    pub fn record_failure(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let c = self.config;
        let mut g = match self.table.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut entry = g
            .current
            .remove(&addr)
            .or_else(|| g.previous.remove(&addr))
            .unwrap_or(Entry {
                window_start: now,
                failures: 0,
                locked_until: None,
                strikes: 0,
            });
        if let Some(until) = entry.locked_until {
            if now >= until + c.max_lockout {
                entry.strikes = 0; // quiet long enough: forgive
            }
            if now >= until {
                entry.locked_until = None;
            }
        }
        if now.duration_since(entry.window_start) >= c.window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        let mut started = None;
        if entry.failures >= c.failures {
            let factor = 1u32 << entry.strikes.min(20);
            let lockout = c.lockout.saturating_mul(factor).min(c.max_lockout);
            entry.locked_until = Some(now + lockout);
            entry.strikes = entry.strikes.saturating_add(1);
            entry.failures = 0;
            entry.window_start = now;
            started = Some(lockout);
        }
        self.insert(&mut g, addr, entry);
        started
    }

    /// Addresses currently remembered.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .map_or(0, |g| g.current.len() + g.previous.len())
    }

    /// True when no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            failures: 3,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn locks_after_threshold_and_doubles() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        assert_eq!(t.record_failure(ip(1), t0), None);
        assert_eq!(t.record_failure(ip(1), t0), None);
        assert_eq!(t.record_failure(ip(1), t0), Some(Duration::from_secs(60)));
        assert_eq!(
            t.check(ip(1), t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert_eq!(t.check(ip(2), t0), Ok(()), "other addresses are unaffected");
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(t.check(ip(1), t1), Ok(()));
        t.record_failure(ip(1), t1);
        t.record_failure(ip(1), t1);
        assert_eq!(t.record_failure(ip(1), t1), Some(Duration::from_secs(120)));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        t.record_failure(ip(1), t0);
        t.record_failure(ip(1), t0);
        assert_eq!(t.record_failure(ip(1), t0 + Duration::from_secs(301)), None);
    }

    #[test]
    fn strikes_decay_after_a_quiet_period() {
        let t = Throttle::new(config(), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            t.record_failure(ip(1), t0);
        }
        let later = t0 + Duration::from_secs(60 + 3600);
        t.record_failure(ip(1), later);
        t.record_failure(ip(1), later);
        assert_eq!(
            t.record_failure(ip(1), later),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn table_is_bounded() {
        let t = Throttle::new(config(), 1000);
        let t0 = Instant::now();
        for n in 0..50_000 {
            t.record_failure(ip(n), t0);
        }
        assert!(t.len() <= 1000, "{}", t.len());
    }
}
