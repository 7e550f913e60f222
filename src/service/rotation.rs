//! Rotating a partner's secret with an overlap (SPEC §15): a new secret
//! while the old one stays valid for a grace, ending one early, and the
//! minute's pass that forgets secrets whose grace ran out. The rules are
//! [`crate::domain::secrets`]'; this file makes them durable with their
//! audit events. Rotating changes no token: a secret opens logins only.

use zeroize::Zeroizing;

use super::{AdminError, Service};
use crate::domain::secrets::{EndError, Grace, SecretId, SecretInfo};
use crate::domain::user::{User, Username};
use crate::runtime::time;
use crate::store::Action;

/// What a rotation made.
#[derive(Debug)]
pub struct Rotated {
    /// The user after the rotation.
    pub user: User,
    /// The generated password (shown once), when none was given.
    pub password: Option<Zeroizing<String>>,
}

impl Service {
    /// Gives `name` a new secret (`chosen`, or a generated UUID v4); the
    /// current one stays valid for `grace` and an older one still in its
    /// grace ends at once. Audited as `user.secret.rotate`.
    pub async fn rotate_secret(
        &self,
        name: &Username,
        chosen: Option<String>,
        grace: Grace,
    ) -> Result<Rotated, AdminError> {
        // Fail fast on a missing user before paying for a hash.
        let before = self.user(name)?;
        let (hash, password) = self.hash_new_password(chosen).await?;
        let now = self.clock.now();
        let fresh = SecretInfo::new(now, Some(before.secret.id));
        let mut detail = format!("secret {} ({})", fresh.id, hash.scheme());
        if grace.secs() == 0 {
            detail += &format!("; secret {} ended at once", before.secret.id);
        } else {
            detail += &format!(
                "; secret {} valid until {}",
                before.secret.id,
                time::rfc3339(now.saturating_add(grace.secs()))
            );
        }
        if let Some(older) = before.valid_previous(now) {
            detail += &format!("; secret {} ended at once", older.info.id);
        }
        let user = self
            .update_user(name, Action::UserSecretRotate, detail, move |u| {
                u.rotate(hash, fresh, grace);
            })
            .await?;
        Ok(Rotated { user, password })
    }

    /// Ends the valid secret `id` of `name` early (404 when the user holds
    /// no such valid secret, 409 when it is the only one). Audited as
    /// `user.secret.delete`.
    pub async fn end_secret(&self, name: &Username, id: &str) -> Result<User, AdminError> {
        let unknown = || AdminError::NotFound(format!("user {name} has no valid secret {id:?}"));
        let id = SecretId::parse(id).ok_or_else(unknown)?;
        let now = self.clock.now();
        self.user(name)?.end_secret(id, now).map_err(|e| match e {
            EndError::Unknown => unknown(),
            EndError::OnlyOne => AdminError::Conflict(e.to_string()),
        })?;
        let detail = format!("secret {id} ended early");
        self.update_user(name, Action::UserSecretDelete, detail, move |u| {
            // Checked above; a change racing in between leaves the user as
            // it finds it.
            let _ = u.end_secret(id, now);
        })
        .await
    }

    /// Forgets the previous secrets whose grace has ended (each audited as
    /// `user.secret.expire`); part of the minute's pruning.
    pub(super) async fn expire_secrets(&self) -> Result<Vec<Username>, AdminError> {
        let now = self.clock.now();
        self.blocking(move |s| s.expire_secrets(now)).await
    }
}
