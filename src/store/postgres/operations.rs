//! [`Store`] for [`PostgresStore`]: reads answered from the node's memory
//! where it holds the answer, every write in one serialised transaction
//! that stamps its rows with a fresh version and notifies the other nodes.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::domain::keys::KeyRecord;
use crate::domain::rotation::LoginUse;
use crate::domain::user::{User, Username};
use crate::store::postgres::sql::{
    append_audit, audit_row, backend, count_users, decode_key, decode_user, encode, encode_keys,
    insert_keys, int, now_ms, pg, put_user, read_snapshot, remove_user, uint,
};
use crate::store::postgres::{DB_TIMEOUT, POLL, PostgresStore};
use crate::store::snapshot::{self, ImportCounts};
use crate::store::{
    Action, Audit, AuditEvent, Changes, FullView, Page, SnapshotLines, Store, StoreError,
    UserChange, UserWrite,
};

impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn user(&self, name: &Username) -> Result<Option<User>, StoreError> {
        let behind = now_ms().saturating_sub(self.cache.last_ok_ms.load(Ordering::Relaxed));
        if behind > (self.outage_grace + 2 * POLL).as_millis() as u64 {
            // Past the grace, what memory holds may be too old to trust:
            // refuse logins and verifications until the database is back.
            return Err(StoreError::Unavailable(format!(
                "database unreachable for {}s, longer than --db-outage-grace",
                behind / 1000
            )));
        }
        if let Some(user) = self.cache.users.get(name) {
            return Ok(Some(user));
        }
        if behind > (4 * POLL).as_millis() as u64 {
            // The database stopped answering: a read would only wait for
            // its timeout while holding a request thread.
            return Err(StoreError::Unavailable(
                "database unreachable, and this user was not read before the outage".into(),
            ));
        }
        let epoch = self.cache.user_epoch.load(Ordering::SeqCst);
        let key = name.as_str().to_owned();
        let found = self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT record FROM tessera_users WHERE username = $1",
                        &[&key],
                    )
                    .await
                    .map_err(pg)?;
                row.map(|r| decode_user(&key, r.get(0))).transpose()
            })
        })?;
        if let Some(user) = &found {
            self.cache.users.insert(name.clone(), user.clone());
            if self.cache.user_epoch.load(Ordering::SeqCst) != epoch {
                // A catch-up ran meanwhile: what was fetched may predate
                // the change it dropped.
                self.cache.users.remove(name);
            }
        }
        Ok(found)
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.cache.revoked.read().contains_key(jti)
    }

    fn revocation(&self, jti: &str) -> Option<u64> {
        self.cache.revoked.read().get(jti).copied()
    }

    fn revocation_count(&self) -> u64 {
        self.cache.revoked.read().len() as u64
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        Ok(self.cache.user_count.load(Ordering::SeqCst))
    }

    fn healthy(&self) -> bool {
        now_ms().saturating_sub(self.cache.last_ok_ms.load(Ordering::SeqCst))
            < 4 * POLL.as_millis() as u64 + DB_TIMEOUT.as_millis() as u64
    }

    /// `nextval` of the version sequence: never handed out twice, by any
    /// node, and raised past every imported generation by `import`.
    fn next_generation(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let row = c
                    .query_one("SELECT nextval('tessera_version')", &[])
                    .await
                    .map_err(pg)?;
                Ok(uint(row.get(0)))
            })
        })
    }

    fn keyring_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.cache.keyring.subscribe())
    }

    fn create_user(&self, user: &User, audit: Audit) -> Result<bool, StoreError> {
        let user = user.clone();
        let record = encode(&user)?;
        self.write(move |tx, version| {
            Box::pin(async move {
                let inserted = tx
                    .execute(
                        "INSERT INTO tessera_users (username, record, version) VALUES ($1, $2, $3) \
                         ON CONFLICT (username) DO NOTHING",
                        &[&user.username.as_str(), &record, &version],
                    )
                    .await
                    .map_err(pg)?;
                if inserted > 0 {
                    count_users(tx, 1).await?;
                    append_audit(tx, &audit).await?;
                }
                Ok(inserted > 0)
            })
        })
    }

    fn update_user(
        &self,
        name: &Username,
        change: UserChange<'_>,
        audit: Audit,
    ) -> Result<Option<User>, StoreError> {
        // The change runs here, between a read and a conditional write: the
        // write lands only if the row is still the version that was read.
        let key = name.as_str().to_owned();
        let current = self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT record, version FROM tessera_users WHERE username = $1",
                        &[&key],
                    )
                    .await
                    .map_err(pg)?;
                row.map(|r| Ok((decode_user(&key, r.get(0))?, r.get::<_, i64>(1))))
                    .transpose()
            })
        })?;
        let Some((mut user, read_version)) = current else {
            return Ok(None);
        };
        change(&mut user);
        let record = encode(&user)?;
        let key = name.as_str().to_owned();
        let written = self.write(move |tx, version| {
            Box::pin(async move {
                let n = tx
                    .execute(
                        "UPDATE tessera_users SET record = $2, version = $3 \
                         WHERE username = $1 AND version = $4",
                        &[&key, &record, &version, &read_version],
                    )
                    .await
                    .map_err(pg)?;
                if n > 0 {
                    append_audit(tx, &audit).await?;
                }
                Ok(n > 0)
            })
        })?;
        if written {
            Ok(Some(user))
        } else {
            // Another node changed or deleted the user in between.
            Err(StoreError::Conflict(format!(
                "user {name} changed on another node during this update; read it again and retry"
            )))
        }
    }

    fn delete_user(&self, name: &Username, audit: Audit) -> Result<bool, StoreError> {
        let key = name.as_str().to_owned();
        self.write(move |tx, version| {
            Box::pin(async move {
                let removed = remove_user(tx, &key, version).await?;
                if removed {
                    append_audit(tx, &audit).await?;
                }
                Ok(removed)
            })
        })
    }

    fn write_users(&self, writes: Vec<(UserWrite, Audit)>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.write(move |tx, version| {
            Box::pin(async move {
                for (write, audit) in &writes {
                    match write {
                        UserWrite::Put(user) => put_user(tx, user, version).await?,
                        UserWrite::Delete(name) => {
                            remove_user(tx, name.as_str(), version).await?;
                        }
                    }
                    append_audit(tx, audit).await?;
                }
                Ok(())
            })
        })
    }

    fn expire_secrets(&self, now: u64) -> Result<Vec<Username>, StoreError> {
        self.expire_due_secrets(now)
    }

    fn record_secret_uses(&self, uses: &[LoginUse]) -> Result<(), StoreError> {
        self.record_uses(uses)
    }

    fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Page<User>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        let rows = self.read(move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT username, record FROM tessera_users WHERE username > $1 \
                     ORDER BY username LIMIT $2",
                    &[&after, &int(limit as u64 + 1)],
                )
                .await
                .map_err(pg)
            })
        })?;
        let mut items = rows
            .iter()
            .map(|r| decode_user(r.get(0), r.get(1)))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|u| u.username.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self.read(|c| {
            Box::pin(async move {
                c.query("SELECT kid, record, version FROM tessera_keys", &[])
                    .await
                    .map_err(pg)
            })
        })?;
        let version = rows.iter().map(|r| r.get::<_, i64>(2)).max().unwrap_or(0);
        self.keys_read.store(version, Ordering::SeqCst);
        let mut keys = rows
            .iter()
            .map(|r| decode_key(r.get(0), r.get(1)))
            .collect::<Result<Vec<_>, _>>()?;
        crate::store::keyring_order(&mut keys);
        Ok(keys)
    }

    fn init_keys(&self, records: &[KeyRecord]) -> Result<Vec<KeyRecord>, StoreError> {
        let encoded = encode_keys(records)?;
        self.write(move |tx, version| {
            Box::pin(async move {
                let existing: i64 = tx
                    .query_one("SELECT count(*) FROM tessera_keys", &[])
                    .await
                    .map_err(pg)?
                    .get(0);
                if existing == 0 {
                    insert_keys(tx, &encoded, version).await?;
                }
                Ok(())
            })
        })?;
        self.keys()
    }

    fn replace_keys(&self, records: &[KeyRecord], audit: Option<Audit>) -> Result<(), StoreError> {
        let encoded = encode_keys(records)?;
        let read = self.keys_read.load(Ordering::SeqCst);
        let written = self.write(move |tx, version| {
            Box::pin(async move {
                let current: i64 = tx
                    .query_one("SELECT coalesce(max(version), 0) FROM tessera_keys", &[])
                    .await
                    .map_err(pg)?
                    .get(0);
                if current != read {
                    // Another node rotated or dropped keys since this node
                    // read the keyring this replacement was computed from.
                    return Err(StoreError::Conflict(
                        "the keyring changed on another node; retry".into(),
                    ));
                }
                tx.execute("DELETE FROM tessera_keys", &[])
                    .await
                    .map_err(pg)?;
                insert_keys(tx, &encoded, version).await?;
                if let Some(audit) = &audit {
                    append_audit(tx, audit).await?;
                }
                Ok(version)
            })
        })?;
        // This node's own write is the keyring it knows now.
        self.keys_read.store(written, Ordering::SeqCst);
        Ok(())
    }

    fn revoke(&self, jti: &str, exp: u64, audit: Audit) -> Result<(), StoreError> {
        let jti = jti.to_owned();
        self.write(move |tx, version| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO tessera_revocations (jti, exp, version) VALUES ($1, $2, $3) \
                     ON CONFLICT (jti) DO UPDATE SET exp = EXCLUDED.exp, version = EXCLUDED.version",
                    &[&jti, &int(exp), &version],
                )
                .await
                .map_err(pg)?;
                append_audit(tx, &audit).await
            })
        })
    }

    fn list_revocations(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        let rows = self.read(move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT jti, exp FROM tessera_revocations WHERE jti > $1 ORDER BY jti LIMIT $2",
                    &[&after, &int(limit as u64 + 1)],
                )
                .await
                .map_err(pg)
            })
        })?;
        let mut items: Vec<(String, u64)> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), uint(r.get(1))))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(j, _)| j.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn prune_revocations(&self, now: u64) -> Result<u64, StoreError> {
        let removed = self.write(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM tessera_revocations WHERE exp <= $1",
                    &[&int(now)],
                )
                .await
                .map_err(pg)
            })
        })?;
        self.cache.revoked.write().retain(|_, exp| *exp > now);
        Ok(removed)
    }

    fn prune_audit(&self, before: u64, partner_before: u64) -> Result<u64, StoreError> {
        self.write(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM tessera_audit \
                     WHERE (at < $1 OR (at < $2 AND action = ANY($3))) \
                     AND seq < (SELECT max(seq) FROM tessera_audit)",
                    &[
                        &int(before),
                        &int(partner_before),
                        &Action::partner_caused(),
                    ],
                )
                .await
                .map_err(pg)
            })
        })
    }

    /// One `REPEATABLE READ` snapshot: the audit head and the rows it
    /// describes come from the same moment. Writers hold the advisory write
    /// lock, so audit `seq`s commit in order and a head never hides an
    /// earlier event still in flight.
    fn changes(
        &self,
        since: Option<u64>,
        max_events: usize,
        horizon: u64,
    ) -> Result<Changes, StoreError> {
        self.run(move |pool, _| async move {
            let mut client = pool.get().await.map_err(backend)?;
            let tx = read_snapshot(&mut client).await?;
            let head: i64 = tx
                .query_one("SELECT coalesce(max(seq), 0) FROM tessera_audit", &[])
                .await
                .map_err(pg)?
                .get(0);
            let head = uint(head);
            if let Some(since) = since.filter(|s| *s <= head) {
                let rows = tx
                    .query(
                        "SELECT seq, at, action, target, detail FROM tessera_audit \
                         WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&int(since), &int(max_events as u64 + 1)],
                    )
                    .await
                    .map_err(pg)?;
                let events: Vec<AuditEvent> = rows.iter().map(audit_row).collect();
                if let Some((named, jtis)) = Changes::delta_targets(since, &events, max_events) {
                    let mut out = Changes {
                        head,
                        delta: true,
                        ..Changes::default()
                    };
                    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
                    let mut found = HashMap::new();
                    for r in tx
                        .query(
                            "SELECT username, record FROM tessera_users WHERE username = ANY($1)",
                            &[&names],
                        )
                        .await
                        .map_err(pg)?
                    {
                        let name: String = r.get(0);
                        let user = decode_user(&name, r.get(1))?;
                        found.insert(name, user);
                    }
                    for (name, at) in named {
                        let user = found.remove(&name);
                        out.users.push((name, user, at));
                    }
                    for r in tx
                        .query(
                            "SELECT jti, exp FROM tessera_revocations WHERE jti = ANY($1) ORDER BY jti",
                            &[&jtis],
                        )
                        .await
                        .map_err(pg)?
                    {
                        out.revoked.push((r.get(0), uint(r.get(1))));
                    }
                    return Ok(out);
                }
            }
            let mut out = Changes {
                head,
                ..Changes::default()
            };
            for r in tx
                .query("SELECT jti, exp FROM tessera_revocations ORDER BY jti", &[])
                .await
                .map_err(pg)?
            {
                out.revoked.push((r.get(0), uint(r.get(1))));
            }
            let mut view = FullView::new(horizon);
            for r in tx
                .query(
                    "SELECT action, target, max(at) FROM tessera_audit \
                     WHERE action = ANY($2) AND at >= $1 GROUP BY action, target",
                    &[&int(horizon), &Action::user_changes()],
                )
                .await
                .map_err(pg)?
            {
                view.note_event(r.get(0), r.get(1), uint(r.get(2)));
            }
            for r in tx
                .query("SELECT username, record FROM tessera_users ORDER BY username", &[])
                .await
                .map_err(pg)?
            {
                let name: String = r.get(0);
                let user = decode_user(&name, r.get(1))?;
                view.offer_user(&name, user);
            }
            out.users = view.into_users();
            Ok(out)
        })
    }

    fn audit_events(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let before = int(before.unwrap_or(u64::MAX));
        let rows = self.read(move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT seq, at, action, target, detail FROM tessera_audit \
                     WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                    &[&before, &int(limit as u64)],
                )
                .await
                .map_err(pg)
            })
        })?;
        Ok(rows.iter().map(audit_row).collect())
    }

    fn ttl_high_water(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT value FROM tessera_meta WHERE key = 'ttl_high_water'",
                        &[],
                    )
                    .await
                    .map_err(pg)?;
                Ok(row.map_or(0, |r| uint(r.get(0))))
            })
        })
    }

    fn raise_ttl_high_water(&self, ttl: u64) -> Result<(), StoreError> {
        if self.ttl_high_water()? >= ttl {
            return Ok(());
        }
        self.write(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO tessera_meta (key, value) VALUES ('ttl_high_water', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = greatest(tessera_meta.value, EXCLUDED.value)",
                    &[&int(ttl)],
                )
                .await
                .map_err(pg)?;
                Ok(())
            })
        })
    }

    fn export(&self, out: &mut dyn Write, now: u64) -> Result<ImportCounts, StoreError> {
        // One snapshot, read whole: users, keys, revocations in key order.
        let (users, keys, revocations) = self.run(|pool, _| async move {
            let mut client = pool.get().await.map_err(backend)?;
            let tx = read_snapshot(&mut client).await?;
            let users = tx
                .query(
                    "SELECT username, record FROM tessera_users ORDER BY username",
                    &[],
                )
                .await
                .map_err(pg)?;
            let keys = tx
                .query("SELECT kid, record FROM tessera_keys ORDER BY kid", &[])
                .await
                .map_err(pg)?;
            let revocations = tx
                .query("SELECT jti, exp FROM tessera_revocations ORDER BY jti", &[])
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok((users, keys, revocations))
        })?;
        let mut w = snapshot::Writer::header(out, now).map_err(StoreError::Export)?;
        for r in &users {
            w.user(decode_user(r.get(0), r.get(1))?)
                .map_err(StoreError::Export)?;
        }
        for r in &keys {
            w.key(decode_key(r.get(0), r.get(1))?)
                .map_err(StoreError::Export)?;
        }
        for r in &revocations {
            w.revocation(r.get(0), uint(r.get(1)))
                .map_err(StoreError::Export)?;
        }
        w.end().map_err(StoreError::Export)
    }

    fn import(
        &self,
        lines: SnapshotLines<'_>,
        audit: &dyn Fn(ImportCounts) -> Audit,
    ) -> Result<ImportCounts, StoreError> {
        self.import_streamed(lines, audit)
    }
}
