//! The secret bookkeeping of [`RedbStore`] (SPEC §15): ending previous
//! secrets whose grace ran out, found through the expiry index, and
//! recording logins' uses of secrets in one write per flush.

use redb::{ReadableDatabase, ReadableTable};

use crate::domain::rotation::LoginUse;
use crate::domain::user::Username;
use crate::store::redb::RedbStore;
use crate::store::redb::layout::{
    USERNAME_TO_SECRET_EXPIRY, USERNAME_TO_USER, append_audit, corrupt, decode_user, put_user,
};
use crate::store::{Audit, StoreError};

impl RedbStore {
    /// See [`crate::store::Store::expire_secrets`]. A read finds whether
    /// anything is due, so a minute with nothing to do writes nothing.
    pub(super) fn expire_due_secrets(&self, now: u64) -> Result<Vec<Username>, StoreError> {
        let pending = self.secrets_due(now)?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            let mut ended = Vec::new();
            {
                let mut users = tx.open_table(USERNAME_TO_USER)?;
                let mut index = tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
                for name in &pending {
                    // Listed again meanwhile (a later rotation): not due.
                    if index.get(name.as_str())?.is_none_or(|e| e.value() > now) {
                        continue;
                    }
                    index.remove(name.as_str())?;
                    let found = match users.get(name.as_str())? {
                        Some(v) => {
                            Some(decode_user(v.value()).map_err(|e| corrupt("users", name, e))?)
                        }
                        None => None,
                    };
                    let Some(mut user) = found else { continue };
                    let audit = Audit::secret_expired(&user, now);
                    if user.expire_previous(now) {
                        put_user(&mut users, &mut index, &user)?;
                        ended.extend(audit.map(|a| (user.username.clone(), a)));
                    } else if let Some(previous) = &user.previous_secret {
                        // Rotated again since it was listed: keep it listed.
                        index.insert(name.as_str(), previous.expires_at)?;
                    }
                }
            }
            let mut names = Vec::with_capacity(ended.len());
            for (name, audit) in ended {
                append_audit(&tx, audit)?;
                names.push(name);
            }
            self.commit_users(db, tx, writer)?;
            Ok(names)
        })
    }

    /// The users the expiry index lists as due at `now`.
    fn secrets_due(&self, now: u64) -> Result<Vec<String>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let index = tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
        let mut names = Vec::new();
        for entry in index.iter()? {
            let (name, expires_at) = entry?;
            if expires_at.value() <= now {
                names.push(name.value().to_owned());
            }
        }
        Ok(names)
    }

    /// See [`crate::store::Store::record_secret_uses`].
    pub(super) fn record_uses(&self, uses: &[LoginUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            {
                let mut users = tx.open_table(USERNAME_TO_USER)?;
                let mut index = tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
                for one in uses {
                    let name = one.username.as_str();
                    let found = match users.get(name)? {
                        Some(v) => {
                            Some(decode_user(v.value()).map_err(|e| corrupt("users", name, e))?)
                        }
                        None => None,
                    };
                    let Some(mut user) = found else { continue };
                    let before = (user.secret, user.previous_secret.as_ref().map(|p| p.info));
                    user.record_use(one.id, one.at);
                    if (user.secret, user.previous_secret.as_ref().map(|p| p.info)) != before {
                        put_user(&mut users, &mut index, &user)?;
                    }
                }
            }
            self.commit_users(db, tx, writer)
        })
    }
}
