//! Time as Tessera uses it: unix seconds, RFC 3339 UTC text, and a
//! [`Clock`] that tests can hold still.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The source of "now" for the service. The system clock in production; a
/// settable value in tests so nothing has to sleep.
#[derive(Clone, Debug)]
pub struct Clock(Option<Arc<Fixed>>);

/// A clock tests hold: the unix seconds it reads, and the instant it was
/// made at that reading, so its monotonic time moves with it.
#[derive(Debug)]
struct Fixed {
    secs: AtomicU64,
    start_secs: u64,
    start: Instant,
}

impl Clock {
    /// The real wall clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that reads `unix_secs` until [`Clock::set`] moves it.
    pub fn fixed(unix_secs: u64) -> Self {
        Self(Some(Arc::new(Fixed {
            secs: AtomicU64::new(unix_secs),
            start_secs: unix_secs,
            start: Instant::now(),
        })))
    }

    /// Moves a fixed clock; no effect on the system clock.
    pub fn set(&self, unix_secs: u64) {
        if let Some(t) = &self.0 {
            t.secs.store(unix_secs, Ordering::Relaxed);
        }
    }

    /// Now, in whole unix seconds (rounded down).
    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(t) => t.secs.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Now on a monotonic clock, for measuring rates: [`Instant::now`],
    /// or for a fixed clock the instant it was made plus how far it was
    /// moved since (never before that instant).
    pub fn monotonic(&self) -> Instant {
        match &self.0 {
            Some(t) => {
                let moved = t.secs.load(Ordering::Relaxed).saturating_sub(t.start_secs);
                t.start + Duration::from_secs(moved)
            }
            None => Instant::now(),
        }
    }
}

/// The last second RFC 3339 can write with a four-digit year,
/// 9999-12-31T23:59:59Z. Every stored time is at most this, so formatting
/// one can never fail.
pub const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// `unix_secs` as RFC 3339 UTC, e.g. `2026-11-27T19:43:57Z`. Total: a time
/// past [`MAX_UNIX_SECS`] (which validation keeps out of the store) is shown
/// as that moment instead of panicking the handler.
pub fn rfc3339(unix_secs: u64) -> String {
    let secs = unix_secs.min(MAX_UNIX_SECS);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Refuses a time past 9999-12-31T23:59:59Z, naming the field.
pub fn check_in_range(field: &str, unix_secs: u64) -> Result<u64, String> {
    if unix_secs > MAX_UNIX_SECS {
        Err(format!(
            "{field} {unix_secs} is after 9999-12-31T23:59:59Z ({MAX_UNIX_SECS})"
        ))
    } else {
        Ok(unix_secs)
    }
}

/// An RFC 3339 UTC time (`Z` suffix, optional fraction) as unix seconds,
/// rounded down. Times before 1970 are refused.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 UTC time like 2027-01-31T00:00:00Z ({e})")
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{text:?} is before 1970"))
}

/// Parses a humantime duration of at least one second (`90s`, `15m`, `7d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; use a duration like 90s, 15m, 1h or 7d"))?;
    if d.as_secs() == 0 {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_rounds_down() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let t = parse_rfc3339("2027-01-31T12:00:00.999Z").unwrap();
        assert_eq!(rfc3339(t), "2027-01-31T12:00:00Z");
        assert!(parse_rfc3339("2027-01-31").is_err());
        assert!(parse_rfc3339("2027-01-31T12:00:00+02:00").is_err());
        assert!(parse_rfc3339("tomorrow").is_err());
    }

    #[test]
    fn far_future_times_are_bounded_not_panics() {
        assert_eq!(rfc3339(MAX_UNIX_SECS), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(check_in_range("exp", MAX_UNIX_SECS), Ok(MAX_UNIX_SECS));
        assert!(
            check_in_range("exp", MAX_UNIX_SECS + 1)
                .unwrap_err()
                .contains("exp")
        );
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59Z").unwrap(),
            MAX_UNIX_SECS
        );
    }

    #[test]
    fn fixed_clock_moves_only_when_set() {
        let c = Clock::fixed(10);
        assert_eq!(c.now(), 10);
        c.set(20);
        assert_eq!(c.now(), 20);
        assert!(Clock::system().now() > 1_700_000_000);
    }

    #[test]
    fn a_fixed_clocks_monotonic_time_moves_with_it() {
        let c = Clock::fixed(100);
        let t0 = c.monotonic();
        assert_eq!(c.monotonic(), t0, "held still");
        c.set(160);
        assert_eq!(c.monotonic() - t0, Duration::from_secs(60));
        c.set(50);
        assert_eq!(c.monotonic(), t0, "never before it was made");
        let system = Clock::system();
        let a = system.monotonic();
        assert!(system.monotonic() >= a);
    }
}
