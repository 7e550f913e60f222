//! The rules that move a user's secrets (SPEC §15), once for every store
//! and every front end (API, CLI, console, apply, import): a rotation with
//! a grace, ending a secret early, a grace running out, recording a use,
//! and the valid secrets at a moment.

use crate::domain::secrets::{EndError, Grace, PreviousSecret, SecretId, SecretInfo, SecretView};
use crate::domain::user::{User, Username};
use crate::login::password::PasswordHash;

/// One login's use of a secret, as batched for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUse {
    /// The user.
    pub username: Username,
    /// The secret that matched.
    pub id: SecretId,
    /// When (unix seconds).
    pub at: u64,
}

impl User {
    /// A record from before secrets had ids (id 0, created 0) dates its
    /// secret at the account's last change before the upgrade: the
    /// password was set then or earlier.
    pub fn adopt_legacy_secret(&mut self) {
        if self.secret == SecretInfo::default() {
            self.secret.created_at = self.updated_at;
        }
    }

    /// The previous secret if it is still valid at `now`.
    pub fn valid_previous(&self, now: u64) -> Option<&PreviousSecret> {
        self.previous_secret.as_ref().filter(|p| now < p.expires_at)
    }

    /// Makes `hash` the current secret, described by `fresh` (set at its
    /// `created_at`, the rotation's time); the secret that was current
    /// stays valid for `grace` (none for `0s`), and a previous secret still
    /// in its grace ends at once: never more than two. Returns the replaced
    /// secret's expiry, if it got a grace.
    pub fn rotate(&mut self, hash: PasswordHash, fresh: SecretInfo, grace: Grace) -> Option<u64> {
        let now = fresh.created_at;
        let old_hash = std::mem::replace(&mut self.password, hash);
        let old_info = std::mem::replace(&mut self.secret, fresh);
        self.previous_secret = (grace.secs() > 0).then(|| PreviousSecret {
            hash: old_hash,
            info: old_info,
            expires_at: now.saturating_add(grace.secs()),
        });
        self.updated_at = now;
        self.previous_secret.as_ref().map(|p| p.expires_at)
    }

    /// Replaces every secret with `hash` (`POST /admin/users/{u}/password`).
    pub fn replace_secrets(&mut self, hash: PasswordHash, now: u64) {
        self.password = hash;
        self.secret = SecretInfo::new(now, Some(self.secret.id));
        self.previous_secret = None;
        self.updated_at = now;
    }

    /// Ends the valid secret `id` before its time. Ending the current one
    /// makes the previous one current again, with no expiry (the rotation
    /// is undone); the only valid secret can not be ended.
    pub fn end_secret(&mut self, id: SecretId, now: u64) -> Result<(), EndError> {
        let previous = self.valid_previous(now).map(|p| p.info.id);
        if previous == Some(id) {
            self.previous_secret = None;
        } else if self.secret.id == id {
            let Some(previous) = previous.and(self.previous_secret.take()) else {
                return Err(EndError::OnlyOne);
            };
            self.password = previous.hash;
            self.secret = previous.info;
        } else {
            return Err(EndError::Unknown);
        }
        self.updated_at = now;
        Ok(())
    }

    /// Forgets the previous secret once its grace has ended at `now`;
    /// true when there was one to forget (audit `user.secret.expire`).
    pub fn expire_previous(&mut self, now: u64) -> bool {
        let ended = self
            .previous_secret
            .as_ref()
            .is_some_and(|p| p.expires_at <= now);
        if ended {
            self.previous_secret = None;
        }
        ended
    }

    /// Records that a login at `at` matched the secret `id` (if the user
    /// still holds it); times only move forward.
    pub fn record_use(&mut self, id: SecretId, at: u64) {
        let info = if self.secret.id == id {
            Some(&mut self.secret)
        } else {
            self.previous_secret
                .as_mut()
                .map(|p| &mut p.info)
                .filter(|info| info.id == id)
        };
        if let Some(info) = info {
            info.last_used_at = info.last_used_at.max(Some(at));
            self.last_login_at = self.last_login_at.max(Some(at));
        }
    }

    /// The valid secrets at `now`, newest first.
    pub fn secret_views(&self, now: u64) -> Vec<SecretView> {
        let mut views = vec![SecretView::of(&self.secret, None)];
        if let Some(p) = self.valid_previous(now) {
            views.push(SecretView::of(&p.info, Some(p.expires_at)));
        }
        views
    }

    /// The view of the current secret and of the previous one (if valid).
    pub fn rotation_views(&self, now: u64) -> (SecretView, Option<SecretView>) {
        let mut views = self.secret_views(now).into_iter();
        let current = views
            .next()
            .unwrap_or_else(|| SecretView::of(&self.secret, None));
        (current, views.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> PasswordHash {
        PasswordHash::Argon2id {
            phc: format!("h{n}"),
        }
    }

    fn user() -> User {
        User::new(&Username::parse("u").unwrap(), hash(1), 1000, 0)
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_for_its_grace_and_never_more_than_two() {
        let mut u = user();
        let first = u.secret.id;
        assert_eq!(
            u.rotate(
                hash(2),
                SecretInfo::new(2000, None),
                Grace::parse("1h").unwrap()
            ),
            Some(5600)
        );
        assert_eq!(u.password, hash(2));
        assert_eq!(u.secret.created_at, 2000);
        assert_ne!(u.secret.id, first);
        let p = u.valid_previous(5599).unwrap();
        assert_eq!(
            (p.hash.clone(), p.info.id, p.expires_at),
            (hash(1), first, 5600)
        );
        assert!(u.valid_previous(5600).is_none(), "ends at expires_at");
        assert_eq!(u.secret_views(3000).len(), 2);
        assert_eq!(u.secret_views(5600).len(), 1);
        // A second rotation in the grace ends the first secret at once.
        u.rotate(hash(3), SecretInfo::new(3000, None), Grace::default());
        assert_eq!(u.previous_secret.as_ref().unwrap().hash, hash(2));
        assert_eq!(
            u.previous_secret.as_ref().unwrap().expires_at,
            3000 + 86_400
        );
        // Grace 0: the old secret ends at once.
        assert_eq!(
            u.rotate(
                hash(4),
                SecretInfo::new(4000, None),
                Grace::parse("0s").unwrap()
            ),
            None
        );
        assert!(u.previous_secret.is_none());
        assert_eq!(u.updated_at, 4000);
    }

    #[test]
    fn ending_a_secret_early() {
        let mut u = user();
        let first = u.secret.id;
        assert_eq!(u.end_secret(first, 1500), Err(EndError::OnlyOne));
        u.rotate(hash(2), SecretInfo::new(2000, None), Grace::default());
        let second = u.secret.id;
        assert_eq!(
            u.end_secret(SecretId::parse("0000dead").unwrap(), 2001),
            Err(EndError::Unknown)
        );
        // Ending the new one undoes the rotation.
        let mut undo = u.clone();
        undo.end_secret(second, 2001).unwrap();
        assert_eq!((undo.password.clone(), undo.secret.id), (hash(1), first));
        assert!(undo.previous_secret.is_none());
        assert_eq!(undo.updated_at, 2001);
        // Ending the old one leaves the new.
        u.end_secret(first, 2001).unwrap();
        assert_eq!((u.password.clone(), u.secret.id), (hash(2), second));
        assert!(u.previous_secret.is_none());
        // An expired previous secret is no longer valid to end, nor to undo to.
        let mut late = user();
        late.rotate(
            hash(2),
            SecretInfo::new(2000, None),
            Grace::parse("10s").unwrap(),
        );
        let old = late.previous_secret.as_ref().unwrap().info.id;
        assert_eq!(late.end_secret(old, 2010), Err(EndError::Unknown));
        let new = late.secret.id;
        assert_eq!(late.end_secret(new, 2010), Err(EndError::OnlyOne));
    }

    #[test]
    fn a_secret_from_before_ids_is_dated_at_the_last_change() {
        let mut legacy = user();
        legacy.secret = SecretInfo::default();
        legacy.updated_at = 4242;
        legacy.adopt_legacy_secret();
        assert_eq!(legacy.secret.created_at, 4242);
        assert_eq!(
            legacy.secret.id,
            SecretId::default(),
            "its id stays 00000000"
        );
        let mut current = user();
        let before = current.secret;
        current.updated_at = 4242;
        current.adopt_legacy_secret();
        assert_eq!(current.secret, before, "a secret with an id keeps its date");
    }

    #[test]
    fn a_grace_runs_out_once() {
        let mut u = user();
        assert!(!u.expire_previous(5000));
        u.rotate(
            hash(2),
            SecretInfo::new(2000, None),
            Grace::parse("10s").unwrap(),
        );
        assert!(!u.expire_previous(2009));
        assert!(u.expire_previous(2010));
        assert!(u.previous_secret.is_none());
        assert!(!u.expire_previous(2011));
    }

    #[test]
    fn uses_are_recorded_on_the_secret_that_matched_and_only_move_forward() {
        let mut u = user();
        let first = u.secret.id;
        u.rotate(hash(2), SecretInfo::new(2000, None), Grace::default());
        let second = u.secret.id;
        u.record_use(first, 2100);
        assert_eq!(
            u.previous_secret.as_ref().unwrap().info.last_used_at,
            Some(2100)
        );
        assert_eq!(u.secret.last_used_at, None);
        assert_eq!(u.last_login_at, Some(2100));
        u.record_use(second, 2050);
        assert_eq!(u.secret.last_used_at, Some(2050));
        assert_eq!(u.last_login_at, Some(2100), "never back");
        u.record_use(second, 2040);
        assert_eq!(u.secret.last_used_at, Some(2050));
        u.record_use(SecretId::parse("00000007").unwrap(), 3000);
        assert_eq!(
            u.last_login_at,
            Some(2100),
            "a secret the user no longer holds"
        );
    }

    #[test]
    fn replacing_the_password_replaces_every_secret() {
        let mut u = user();
        u.rotate(hash(2), SecretInfo::new(2000, None), Grace::default());
        let before = u.secret.id;
        u.replace_secrets(hash(3), 2500);
        assert_eq!(u.password, hash(3));
        assert!(u.previous_secret.is_none());
        assert_ne!(u.secret.id, before);
        assert_eq!(u.secret.created_at, 2500);
        assert_eq!(u.secret_views(2500).len(), 1);
    }
}
