//! The bounded per-key table both the login throttle ([`super::throttle`])
//! and the rate limit ([`super::rate_limit`]) keep their state in.
//! `quick_cache` bounds it and decides what to forget: it keeps the keys
//! that come back (an attacker's address, hit on every attempt) and
//! forgets one-off keys first, in constant time per insert, so a flood of
//! distinct clients can neither grow memory nor flush the state of the
//! clients that matter. Each key's state sits behind its own lock, so
//! clients never wait on each other; two requests of one client are
//! serialised on it.

use std::convert::Infallible;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use quick_cache::sync::Cache;

/// Per-key state `S` for at most about `capacity` keys.
pub struct PerKey<K, S> {
    table: Cache<K, Arc<Mutex<S>>>,
}

impl<K: Eq + Hash + Clone, S> std::fmt::Debug for PerKey<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerKey")
            .field("len", &self.table.len())
            .finish()
    }
}

impl<K, S> PerKey<K, S>
where
    K: Eq + Hash + Clone,
{
    /// A table remembering at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            table: Cache::new(capacity.max(1)),
        }
    }

    /// Runs `f` on `key`'s state, starting it with `fresh` when the key is
    /// not (or no longer) remembered. Concurrent calls for one key run one
    /// after the other on the same state.
    pub fn update<Q, T>(&self, key: &Q, fresh: impl FnOnce() -> S, f: impl FnOnce(&mut S) -> T) -> T
    where
        Q: Hash + quick_cache::Equivalent<K> + ToOwned<Owned = K> + ?Sized,
    {
        let entry = self
            .table
            .get_or_insert_with(key, || Ok::<_, Infallible>(Arc::new(Mutex::new(fresh()))))
            .unwrap_or_else(|never| match never {});
        f(&mut entry.lock())
    }

    /// Runs `f` on `key`'s state if it is remembered; None when it is not
    /// (never seen, or forgotten since).
    pub fn update_existing<Q, T>(&self, key: &Q, f: impl FnOnce(&mut S) -> T) -> Option<T>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let entry = self.table.get(key)?;
        Some(f(&mut entry.lock()))
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::PerKey;

    #[test]
    fn state_is_kept_per_key_and_started_fresh() {
        let t: PerKey<u32, u32> = PerKey::new(100);
        assert!(t.is_empty());
        assert_eq!(
            t.update(
                &1,
                || 10,
                |s| {
                    *s += 1;
                    *s
                }
            ),
            11
        );
        assert_eq!(
            t.update(
                &1,
                || 10,
                |s| {
                    *s += 1;
                    *s
                }
            ),
            12
        );
        assert_eq!(t.update(&2, || 10, |s| *s), 10);
        assert_eq!(t.update_existing(&1, |s| *s), Some(12));
        assert_eq!(t.update_existing(&3, |s| *s), None, "never seen");
        assert_eq!(t.len(), 2);
        assert!(!t.is_empty());
        assert_eq!(format!("{t:?}"), "PerKey { len: 2 }");
    }

    #[test]
    fn the_table_is_bounded_and_keeps_the_keys_that_come_back() {
        let t: PerKey<u32, u32> = PerKey::new(1000);
        t.update(&u32::MAX, || 0, |s| *s = 7);
        for n in 0..50_000 {
            t.update(&n, || 0, |_| ());
            if n % 100 == 0 {
                t.update(&u32::MAX, || 0, |_| ()); // an attacker, again and again
            }
        }
        assert!(t.len() <= 1000, "{}", t.len());
        assert!(t.len() > 500, "{}", t.len());
        assert_eq!(
            t.update_existing(&u32::MAX, |s| *s),
            Some(7),
            "a flood of one-off keys never flushed the key that kept coming back"
        );
    }

    #[test]
    fn one_keys_callers_take_turns() {
        let t = std::sync::Arc::new(PerKey::<u32, u32>::new(100));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let t = t.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        t.update(&1, || 0, |n| *n += 1);
                    }
                });
            }
        });
        assert_eq!(t.update_existing(&1, |n| *n), Some(8000));
    }
}
