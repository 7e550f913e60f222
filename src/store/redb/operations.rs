//! [`Store`] for [`RedbStore`]: each operation in one transaction, every
//! write durable (fsync) with its audit event before it returns, and the
//! published snapshots replaced under the writer lock.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::domain::keys::KeyRecord;
use crate::domain::rotation::LoginUse;
use crate::domain::user::{User, Username};
use crate::store::redb::layout::{
    GENERATION_KEY, JTI_TO_EXP, KID_TO_KEY, META, SEQ_TO_AUDIT, TTL_HIGH_WATER_KEY,
    USERNAME_TO_SECRET_EXPIRY, USERNAME_TO_USER, append_audit, corrupt, decode_user, encode_user,
    page_after, put_user, to_json,
};
use crate::store::redb::{RedbStore, RevokedSet};
use crate::store::snapshot::{BadSnapshot, ImportCounts, Item};
use crate::store::{
    Action, Audit, AuditEvent, Changes, FullView, ImportChange, Page, SnapshotLines, Store,
    StoreError, UserChange, UserWrite, snapshot,
};

impl Store for RedbStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn user(&self, name: &Username) -> Result<Option<User>, StoreError> {
        let mut users = self.users.load();
        if users.is_none() {
            // A reopen that failed (no room yet) left no database: retry it
            // here, so logins heal without waiting for a write or a probe.
            drop(users);
            let _ = self.writable();
            users = self.users.load();
        }
        let Some(view) = users.as_ref() else {
            return Err(self.reopening());
        };
        if let Some(user) = view.decoded.get(name) {
            return Ok(Some(user));
        }
        let found = match view.table.get(name.as_str()) {
            Ok(found) => found,
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_io_failure() {
                    // A write hit the disk and failed: redb refuses reads
                    // too until the database is reopened, which happens
                    // once there is room.
                    self.failed.store(true, Ordering::SeqCst);
                    drop(users);
                    if self.writable() {
                        return self.user(name);
                    }
                }
                return Err(e);
            }
        };
        let Some(record) = found else {
            return Ok(None);
        };
        let user = decode_user(record.value()).map_err(|e| corrupt("users", name.as_str(), e))?;
        view.decoded.insert(name.clone(), user.clone());
        Ok(Some(user))
    }

    fn writable(&self) -> bool {
        RedbStore::writable(self)
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.load().contains_key(jti)
    }

    fn revocation(&self, jti: &str) -> Option<u64> {
        self.revoked.load().get(jti).copied()
    }

    fn revocation_count(&self) -> u64 {
        self.revoked.load().len() as u64
    }

    fn create_user(&self, user: &User, audit: Audit) -> Result<bool, StoreError> {
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(USERNAME_TO_USER)?;
                if table.get(user.username.as_str())?.is_some() {
                    return Ok(false);
                }
                table.insert(user.username.as_str(), encode_user(user).as_slice())?;
            }
            append_audit(&tx, audit)?;
            self.commit_users(db, tx, writer)?;
            Ok(true)
        })
    }

    /// Read-modify-write of one user in one transaction; None when absent.
    fn update_user(
        &self,
        name: &Username,
        change: UserChange<'_>,
        audit: Audit,
    ) -> Result<Option<User>, StoreError> {
        let username = name.as_str();
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            let updated = {
                let mut table = tx.open_table(USERNAME_TO_USER)?;
                let current = match table.get(username)? {
                    None => return Ok(None),
                    Some(v) => decode_user(v.value()).map_err(|e| corrupt("users", username, e))?,
                };
                let mut user = current;
                change(&mut user);
                put_user(
                    &mut table,
                    &mut tx.open_table(USERNAME_TO_SECRET_EXPIRY)?,
                    &user,
                )?;
                user
            };
            append_audit(&tx, audit)?;
            self.commit_users(db, tx, writer)?;
            Ok(Some(updated))
        })
    }

    /// Deletes a user; false when absent.
    fn delete_user(&self, name: &Username, audit: Audit) -> Result<bool, StoreError> {
        let username = name.as_str();
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            let existed = tx.open_table(USERNAME_TO_USER)?.remove(username)?.is_some();
            if !existed {
                return Ok(false);
            }
            append_audit(&tx, audit)?;
            self.commit_users(db, tx, writer)?;
            Ok(true)
        })
    }

    /// Every write in one transaction, each with its audit event.
    fn write_users(&self, writes: Vec<(UserWrite, Audit)>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            for (write, audit) in writes {
                {
                    let mut table = tx.open_table(USERNAME_TO_USER)?;
                    match &write {
                        UserWrite::Put(user) => {
                            let mut expiries = tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
                            put_user(&mut table, &mut expiries, user)?;
                        }
                        UserWrite::Delete(name) => {
                            table.remove(name.as_str())?;
                        }
                    }
                }
                append_audit(&tx, audit)?;
            }
            self.commit_users(db, tx, writer)?;
            Ok(())
        })
    }

    fn expire_secrets(&self, now: u64) -> Result<Vec<Username>, StoreError> {
        self.expire_due_secrets(now)
    }

    fn record_secret_uses(&self, uses: &[LoginUse]) -> Result<(), StoreError> {
        self.record_uses(uses)
    }

    /// Users sorted by name, strictly after `after`, at most `limit`.
    fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Page<User>, StoreError> {
        let tx = self.db()?.begin_read()?;
        page_after(&tx.open_table(USERNAME_TO_USER)?, after, limit, |k, v| {
            decode_user(v).map_err(|e| corrupt("users", k, e))
        })
    }

    /// How many users exist.
    fn user_count(&self) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        Ok(tx.open_table(USERNAME_TO_USER)?.len()?)
    }

    /// Every key record.
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(KID_TO_KEY)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("keys", k.value(), e))?);
        }
        crate::store::keyring_order(&mut out);
        Ok(out)
    }

    /// Replaces the whole keyring with `records`, auditing when asked.
    fn replace_keys(&self, records: &[KeyRecord], audit: Option<Audit>) -> Result<(), StoreError> {
        self.writing(|db, _writer| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(KID_TO_KEY)?;
                table.retain(|_, _| false)?;
                for r in records {
                    table.insert(r.kid.as_str(), to_json(r).as_slice())?;
                }
            }
            if let Some(a) = audit {
                append_audit(&tx, a)?;
            }
            tx.commit()?;
            self.refresh_users(db)?;
            Ok(())
        })
    }

    /// Records a revoked `jti` that can be forgotten after `exp`.
    fn revoke(&self, jti: &str, exp: u64, audit: Audit) -> Result<(), StoreError> {
        self.writing(|db, _writer| {
            let tx = db.begin_write()?;
            tx.open_table(JTI_TO_EXP)?.insert(jti, exp)?;
            append_audit(&tx, audit)?;
            tx.commit()?;
            self.refresh_users(db)?;
            let mut revoked = RevokedSet::clone(&self.revoked.load());
            revoked.insert(jti.to_owned(), exp);
            self.test_pause();
            self.revoked.store(Arc::new(revoked));
            Ok(())
        })
    }

    /// Bumps the counter in `meta`. The commit is not fsync'd on its own:
    /// a generation is only ever used by a durable write that follows (and
    /// makes this commit durable too), so one lost in a crash was used by
    /// nothing.
    fn next_generation(&self) -> Result<u64, StoreError> {
        self.writing(|db, _writer| {
            let mut tx = db.begin_write()?;
            tx.set_durability(redb::Durability::None)?;
            let next = {
                let mut meta = tx.open_table(META)?;
                let next = meta.get(GENERATION_KEY)?.map_or(0, |v| v.value()) + 1;
                meta.insert(GENERATION_KEY, next)?;
                next
            };
            tx.commit()?;
            Ok(next)
        })
    }

    /// Revocations sorted by jti, strictly after `after`, at most `limit`.
    fn list_revocations(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, StoreError> {
        let tx = self.db()?.begin_read()?;
        page_after(&tx.open_table(JTI_TO_EXP)?, after, limit, |k, v| {
            Ok((k.to_owned(), v))
        })
    }

    /// Drops revocations whose `exp` has passed; returns how many.
    fn prune_revocations(&self, now: u64) -> Result<u64, StoreError> {
        self.writing(|db, _writer| {
            let tx = db.begin_write()?;
            let mut removed = 0;
            tx.open_table(JTI_TO_EXP)?.retain(|_, exp| {
                let keep = exp > now;
                if !keep {
                    removed += 1;
                }
                keep
            })?;
            if removed > 0 {
                tx.commit()?;
                self.refresh_users(db)?;
                let mut revoked = RevokedSet::clone(&self.revoked.load());
                revoked.retain(|_, exp| *exp > now);
                self.revoked.store(Arc::new(revoked));
            } else {
                tx.abort()?;
            }
            Ok(removed)
        })
    }

    /// Everything from one read transaction, so `head` and the content
    /// agree even while writers commit.
    fn changes(
        &self,
        since: Option<u64>,
        max_events: usize,
        horizon: u64,
    ) -> Result<Changes, StoreError> {
        let tx = self.db()?.begin_read()?;
        let audit = tx.open_table(SEQ_TO_AUDIT)?;
        let users = tx.open_table(USERNAME_TO_USER)?;
        let revocations = tx.open_table(JTI_TO_EXP)?;
        let head = audit.last()?.map_or(0, |(k, _)| k.value());
        let decode_event = |k: u64, v: &[u8]| -> Result<AuditEvent, StoreError> {
            serde_json::from_slice(v).map_err(|e| corrupt("audit", &k.to_string(), e))
        };
        let read_user = |name: &str| -> Result<Option<User>, StoreError> {
            match users.get(name)? {
                None => Ok(None),
                Some(v) => decode_user(v.value())
                    .map(Some)
                    .map_err(|e| corrupt("users", name, e)),
            }
        };
        if let Some(since) = since.filter(|s| *s <= head) {
            let mut events = Vec::new();
            for entry in audit.range(since + 1..)?.take(max_events + 1) {
                let (k, v) = entry?;
                events.push(decode_event(k.value(), v.value())?);
            }
            if let Some((named, jtis)) = Changes::delta_targets(since, &events, max_events) {
                let mut out = Changes {
                    head,
                    delta: true,
                    ..Changes::default()
                };
                for (name, at) in named {
                    let user = read_user(&name)?;
                    out.users.push((name, user, at));
                }
                for jti in jtis {
                    if let Some(exp) = revocations.get(jti.as_str())? {
                        out.revoked.push((jti, exp.value()));
                    }
                }
                return Ok(out);
            }
        }
        let mut out = Changes {
            head,
            ..Changes::default()
        };
        for entry in revocations.iter()? {
            let (k, v) = entry?;
            out.revoked.push((k.value().to_owned(), v.value()));
        }
        let mut view = FullView::new(horizon);
        for entry in audit.iter()?.rev() {
            let (k, v) = entry?;
            let e = decode_event(k.value(), v.value())?;
            if e.at < horizon {
                break;
            }
            view.note_event(&e.action, &e.target, e.at);
        }
        for entry in users.iter()? {
            let (k, v) = entry?;
            let user = decode_user(v.value()).map_err(|e| corrupt("users", k.value(), e))?;
            view.offer_user(k.value(), user);
        }
        out.users = view.into_users();
        Ok(out)
    }

    /// Deletes from the oldest end while events are older than `before`,
    /// keeping the newest; one transaction.
    fn prune_audit(&self, before: u64, partner_before: u64) -> Result<u64, StoreError> {
        self.writing(|db, _writer| {
            let tx = db.begin_write()?;
            let mut removed = 0;
            {
                let mut table = tx.open_table(SEQ_TO_AUDIT)?;
                let newest = table.last()?.map_or(0, |(k, _)| k.value());
                let mut doomed = Vec::new();
                for entry in table.range(..newest)? {
                    let (k, v) = entry?;
                    let e: AuditEvent = serde_json::from_slice(v.value())
                        .map_err(|e| corrupt("audit", &k.value().to_string(), e))?;
                    if e.at >= before.max(partner_before) {
                        break;
                    }
                    // Here `e.at` is below the larger bound: an operator's
                    // event goes when older than `before`, a partner's in
                    // any case (it is older than one of the two bounds).
                    let by_partner = Action::parse(&e.action).is_some_and(Action::by_partner);
                    if e.at < before || by_partner {
                        doomed.push(k.value());
                    }
                }
                for seq in doomed {
                    table.remove(seq)?;
                    removed += 1;
                }
            }
            if removed > 0 {
                tx.commit()?;
                self.refresh_users(db)?;
            } else {
                tx.abort()?;
            }
            Ok(removed)
        })
    }

    /// Audit events newest first, with `seq < before`, at most `limit`.
    fn audit_events(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(SEQ_TO_AUDIT)?;
        let mut out = Vec::new();
        for entry in table.range(..before.unwrap_or(u64::MAX))?.rev().take(limit) {
            let (k, v) = entry?;
            out.push(
                serde_json::from_slice(v.value())
                    .map_err(|e| corrupt("audit", &k.value().to_string(), e))?,
            );
        }
        Ok(out)
    }

    /// The longest token TTL ever in force (0 when never recorded).
    fn ttl_high_water(&self) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        Ok(tx
            .open_table(META)?
            .get(TTL_HIGH_WATER_KEY)?
            .map_or(0, |v| v.value()))
    }

    /// Raises the TTL high-water mark to `ttl` if it is higher.
    fn raise_ttl_high_water(&self, ttl: u64) -> Result<(), StoreError> {
        if ttl <= self.ttl_high_water()? {
            return Ok(());
        }
        self.writing(|db, _writer| {
            let tx = db.begin_write()?;
            {
                let mut meta = tx.open_table(META)?;
                let current = meta.get(TTL_HIGH_WATER_KEY)?.map_or(0, |v| v.value());
                meta.insert(TTL_HIGH_WATER_KEY, current.max(ttl))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Writes a JSON Lines snapshot (header, users, keys, revocations, and an
    /// end line with the counts) taken in one read transaction.
    fn export(&self, out: &mut dyn Write, now: u64) -> Result<ImportCounts, StoreError> {
        let tx = self.db()?.begin_read()?;
        let mut w = snapshot::Writer::header(out, now).map_err(StoreError::Export)?;
        for entry in tx.open_table(USERNAME_TO_USER)?.iter()? {
            let (k, v) = entry?;
            let user = decode_user(v.value()).map_err(|e| corrupt("users", k.value(), e))?;
            w.user(user).map_err(StoreError::Export)?;
        }
        for entry in tx.open_table(KID_TO_KEY)?.iter()? {
            let (k, v) = entry?;
            let key =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("keys", k.value(), e))?;
            w.key(key).map_err(StoreError::Export)?;
        }
        for entry in tx.open_table(JTI_TO_EXP)?.iter()? {
            let (k, v) = entry?;
            w.revocation(k.value().to_owned(), v.value())
                .map_err(StoreError::Export)?;
        }
        w.end().map_err(StoreError::Export)
    }

    /// Replaces users, keys and revocations with a snapshot's, all or
    /// nothing, in one write transaction. `lines` are read one at a time
    /// (the snapshot is never held whole) and checked by
    /// [`snapshot::Reader`]; an `Err` line (the upload broke off) or any
    /// refused line aborts the transaction and changes nothing.
    fn import(
        &self,
        lines: SnapshotLines<'_>,
        audit: &dyn Fn(ImportCounts) -> Audit,
    ) -> Result<ImportCounts, StoreError> {
        let mut revoked = RevokedSet::new();
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            {
                let mut users = tx.open_table(USERNAME_TO_USER)?;
                let mut keys = tx.open_table(KID_TO_KEY)?;
                let mut revocations = tx.open_table(JTI_TO_EXP)?;
                let mut expiries = tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
                keys.retain(|_, _| false)?;
                revocations.retain(|_, _| false)?;
                expiries.retain(|_, _| false)?;
                // Users are written over the old ones, so each old record
                // is compared with its replacement: what an import changes
                // or removes is recorded as a change (the feed names it).
                let mut imported: HashSet<Box<str>> = HashSet::new();
                let mut changed = Vec::new();
                let summary = snapshot::read_all(lines, |n, item| -> Result<(), StoreError> {
                    match item {
                        Item::User(u) => {
                            let name = u.username.as_str();
                            if !imported.insert(name.into()) {
                                return Err(BadSnapshot::twice(n, "user", name).into());
                            }
                            let record = encode_user(&u);
                            if put_user(&mut users, &mut expiries, &u)?
                                .is_some_and(|old| old != record)
                            {
                                changed.push(name.to_owned());
                            }
                        }
                        Item::Key(k) => {
                            keys.insert(k.kid.as_str(), to_json(&k).as_slice())?;
                        }
                        Item::Revocation { jti, exp } => {
                            if revocations.insert(jti.as_str(), exp)?.is_some() {
                                return Err(BadSnapshot::twice(n, "jti", &jti).into());
                            }
                            revoked.insert(jti, exp);
                        }
                    }
                    Ok(())
                })?;
                let mut removed = Vec::new();
                for entry in users.iter()? {
                    let (k, _) = entry?;
                    if !imported.contains(k.value()) {
                        removed.push(k.value().to_owned());
                    }
                }
                for name in &removed {
                    users.remove(name.as_str())?;
                }
                drop(imported);
                let mut meta = tx.open_table(META)?;
                let current = meta.get(TTL_HIGH_WATER_KEY)?.map_or(0, |v| v.value());
                meta.insert(TTL_HIGH_WATER_KEY, current.max(summary.max_ttl_secs))?;
                // Generations drawn later must pass every imported one.
                let drawn = meta.get(GENERATION_KEY)?.map_or(0, |v| v.value());
                meta.insert(GENERATION_KEY, drawn.max(summary.max_generation))?;
                drop((users, keys, revocations, expiries, meta));
                let audit = audit(summary.counts);
                changed.sort_unstable();
                for change in ImportChange::events(audit.at, &changed, &removed) {
                    append_audit(&tx, change)?;
                }
                append_audit(&tx, audit)?;
                self.commit_users(db, tx, writer)?;
                self.revoked.store(Arc::new(revoked));
                Ok(summary.counts)
            }
        })
    }
}
