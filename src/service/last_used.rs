//! Evidence of which secret partners use (SPEC §15), without a durable
//! write per login: a login with a right password notes the newest time
//! per (user, secret) in memory — only when the stored `last_used_at` is
//! [`RECORD_EVERY`] old or more, so a busy partner is written at most that
//! often — and [`Service::flush_secret_uses`] writes the notes every
//! [`FLUSH_EVERY`] and at shutdown, in transactions of at most
//! [`FLUSH_CHUNK`] users so an admin write never waits behind a long one.
//! `last_used_at` is thus at most `RECORD_EVERY + FLUSH_EVERY` (40 s)
//! behind the last use; the contract is 60 s.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use super::{AdminError, Service};
use crate::domain::rotation::LoginUse;
use crate::domain::secrets::SecretId;
use crate::domain::user::Username;

/// How often noted uses are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// A use is noted only when the stored one is at least this old.
pub const RECORD_EVERY: u64 = 30;
/// The most users one flush transaction writes.
pub const FLUSH_CHUNK: usize = 1000;

/// Whether a use at `now` is worth noting, given the stored `last_used`:
/// never recorded, or recorded [`RECORD_EVERY`] seconds ago or more (a
/// clock stepped back counts as recorded now).
pub fn worth_noting(last_used: Option<u64>, now: u64) -> bool {
    last_used.is_none_or(|t| now.saturating_sub(t) >= RECORD_EVERY)
}

/// Uses noted since the last flush: the newest time per (user, secret).
/// Bounded by the users that logged in within one flush interval (two
/// entries each at most).
#[derive(Debug, Default)]
pub struct PendingUses {
    noted: parking_lot::Mutex<HashMap<Username, Vec<(SecretId, u64)>>>,
}

impl PendingUses {
    /// Notes that a login at `at` matched `user`'s secret `id`. A second
    /// login within the same second finds the entry up to date and only
    /// reads it.
    pub fn note(&self, user: &Username, id: SecretId, at: u64) {
        let mut noted = self.noted.lock();
        // Looked up by name: the common case (noted already) allocates nothing.
        match noted.get_mut(user.as_str()) {
            Some(secrets) => merge(secrets, id, at),
            None => {
                noted.insert(user.clone(), vec![(id, at)]);
            }
        }
    }

    /// Takes every noted use, leaving none.
    fn take(&self) -> Vec<LoginUse> {
        std::mem::take(&mut *self.noted.lock())
            .into_iter()
            .flat_map(|(username, secrets)| {
                secrets.into_iter().map(move |(id, at)| LoginUse {
                    username: username.clone(),
                    id,
                    at,
                })
            })
            .collect()
    }

    /// Puts back uses a failed flush could not write (newer notes win).
    fn restore(&self, uses: Vec<LoginUse>) {
        let mut noted = self.noted.lock();
        for u in uses {
            match noted.entry(u.username) {
                Entry::Occupied(mut e) => merge(e.get_mut(), u.id, u.at),
                Entry::Vacant(e) => {
                    e.insert(vec![(u.id, u.at)]);
                }
            }
        }
    }

    /// How many (user, secret) pairs wait to be written.
    pub fn len(&self) -> usize {
        self.noted.lock().values().map(Vec::len).sum()
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps the newest time of `id` among one user's noted secrets.
fn merge(secrets: &mut Vec<(SecretId, u64)>, id: SecretId, at: u64) {
    match secrets.iter_mut().find(|(noted, _)| *noted == id) {
        Some((_, t)) => *t = (*t).max(at),
        None => secrets.push((id, at)),
    }
}

impl Service {
    /// Writes the uses noted since the last flush, [`FLUSH_CHUNK`] users
    /// per store transaction; returns how many (user, secret) pairs it
    /// wrote. What a failed transaction could not write is kept for the
    /// next flush.
    pub async fn flush_secret_uses(&self) -> Result<usize, AdminError> {
        let mut uses = self.pending_uses.take();
        let mut written = 0;
        while !uses.is_empty() {
            let rest = uses.split_off(uses.len().min(FLUSH_CHUNK));
            let batch = uses.clone();
            if let Err(e) = self.blocking(move |s| s.record_secret_uses(&batch)).await {
                uses.extend(rest);
                self.pending_uses.restore(uses);
                return Err(e);
            }
            written += uses.len();
            uses = rest;
        }
        Ok(written)
    }

    /// [`Service::flush_secret_uses`] for the background loop: failures
    /// are logged and counted, and retried at the next flush.
    pub async fn flush_secret_uses_in_background(&self) {
        if let Err(e) = self.flush_secret_uses().await {
            self.background_failed("record secret uses", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_is_noted_once_the_stored_one_is_thirty_seconds_old() {
        assert!(worth_noting(None, 100));
        assert!(!worth_noting(Some(100), 129));
        assert!(worth_noting(Some(100), 130));
        assert!(!worth_noting(Some(200), 100), "a clock stepped back");
    }

    #[test]
    fn the_newest_use_per_secret_is_kept_and_a_failed_flush_loses_none() {
        let pending = PendingUses::default();
        let alice = Username::parse("alice").unwrap();
        let (a, b) = (SecretId::random_except(None), SecretId::random_except(None));
        pending.note(&alice, a, 10);
        pending.note(&alice, a, 12);
        pending.note(&alice, a, 11);
        pending.note(&alice, b, 5);
        assert_eq!(pending.len(), 2);
        let mut taken = pending.take();
        taken.sort_by_key(|u| u.at);
        assert_eq!(taken.iter().map(|u| u.at).collect::<Vec<_>>(), [5, 12]);
        assert!(pending.is_empty());
        pending.note(&alice, a, 20);
        pending.restore(taken);
        let mut again = pending.take();
        again.sort_by_key(|u| u.at);
        assert_eq!(again.iter().map(|u| u.at).collect::<Vec<_>>(), [5, 20]);
    }
}
