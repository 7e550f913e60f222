//! The secret bookkeeping of [`PostgresStore`] (SPEC §15): ending previous
//! secrets whose grace ran out, found through the indexed generated column
//! `secret_expires_at`, and recording logins' uses of secrets in one
//! transaction per flush. Both lock the rows they change (`FOR UPDATE`),
//! so nodes running them at once neither audit an expiry twice nor lose a
//! rotation made meanwhile.

use crate::domain::rotation::LoginUse;
use crate::domain::user::Username;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::sql::{append_audit, decode_user, encode, int, pg};
use crate::store::{Audit, StoreError};

impl PostgresStore {
    /// See [`crate::store::Store::expire_secrets`]. An indexed read finds
    /// whether anything is due, so a minute with nothing to do writes
    /// (and notifies) nothing.
    pub(super) fn expire_due_secrets(&self, now: u64) -> Result<Vec<Username>, StoreError> {
        let due = self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT 1 FROM tessera_users WHERE secret_expires_at <= $1 LIMIT 1",
                        &[&int(now)],
                    )
                    .await
                    .map_err(pg)?;
                Ok(row.is_some())
            })
        })?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(move |tx, version| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT username, record FROM tessera_users \
                         WHERE secret_expires_at <= $1 ORDER BY username FOR UPDATE",
                        &[&int(now)],
                    )
                    .await
                    .map_err(pg)?;
                let mut ended = Vec::with_capacity(rows.len());
                for row in rows {
                    let name: String = row.get(0);
                    let mut user = decode_user(&name, row.get(1))?;
                    let audit = Audit::secret_expired(&user, now);
                    if !user.expire_previous(now) {
                        continue;
                    }
                    tx.execute(
                        "UPDATE tessera_users SET record = $2, version = $3 WHERE username = $1",
                        &[&name, &encode(&user)?, &version],
                    )
                    .await
                    .map_err(pg)?;
                    if let Some(audit) = audit {
                        append_audit(tx, &audit).await?;
                    }
                    ended.push(user.username);
                }
                Ok(ended)
            })
        })
    }

    /// See [`crate::store::Store::record_secret_uses`].
    pub(super) fn record_uses(&self, uses: &[LoginUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let uses = uses.to_vec();
        self.write(move |tx, version| {
            Box::pin(async move {
                let mut names: Vec<&str> = uses.iter().map(|u| u.username.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                let rows = tx
                    .query(
                        "SELECT username, record FROM tessera_users \
                         WHERE username = ANY($1) ORDER BY username FOR UPDATE",
                        &[&names],
                    )
                    .await
                    .map_err(pg)?;
                for row in rows {
                    let name: String = row.get(0);
                    let mut user = decode_user(&name, row.get(1))?;
                    let before = user.clone();
                    for one in uses.iter().filter(|u| u.username.as_str() == name) {
                        user.record_use(one.id, one.at);
                    }
                    if user != before {
                        tx.execute(
                            "UPDATE tessera_users SET record = $2, version = $3 WHERE username = $1",
                            &[&name, &encode(&user)?, &version],
                        )
                        .await
                        .map_err(pg)?;
                    }
                }
                Ok(())
            })
        })
    }
}
