//! Storage as the service sees it: the [`Store`] trait, its records and
//! errors. Backends implement it — [`redb`] (the embedded file,
//! the default) is the one today — and every backend must pass the same
//! contract tests ([`contract`]). The export format and every check an
//! import makes live in [`snapshot`], shared by all backends.
//!
//! What every backend guarantees:
//! - each mutation is one transaction, committed durably (fsync) before the
//!   method returns, with its audit event in the same transaction;
//! - what [`Store::user`] and [`Store::is_revoked`] answer is never older
//!   than the last mutation that returned, even when mutations race;
//! - an import is all or nothing.

pub mod action;
pub mod changes;
pub mod postgres;
pub mod redb;
pub mod snapshot;

/// The behaviour every backend must show, as functions over a fresh
/// store; test support, public only so that the backends' tests in
/// `tests/` (the PostgreSQL ones need a server) run the same contract.
#[doc(hidden)]
#[allow(missing_docs, clippy::missing_panics_doc)]
pub mod contract;

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use self::snapshot::{BadSnapshot, ImportCounts};
use crate::domain::keys::KeyRecord;
use crate::domain::rotation::LoginUse;
use crate::domain::user::{User, Username};

pub use self::action::{Action, FeedEffect};
pub use self::changes::{Changes, DeltaTargets, FullView, ImportChange, last_changed};
pub use self::postgres::PostgresStore;
pub use self::redb::{RedbStore, check_data_dir};

/// Orders a keyring as [`Store::keys`] returns it: retired, then active,
/// then next, oldest first within each.
pub fn keyring_order(records: &mut [KeyRecord]) {
    records.sort_by_key(|r| {
        let stage = match r.status {
            crate::domain::keys::KeyStatus::Retired => 0,
            crate::domain::keys::KeyStatus::Active => 1,
            crate::domain::keys::KeyStatus::Next => 2,
        };
        (stage, r.created_at)
    });
}

/// A store failure. Messages name the path and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database lock.
    #[error(
        "data dir {0} is in use by another tessera process; stop it or pass another --data-dir"
    )]
    InUse(PathBuf),
    /// The database was written by an incompatible build.
    #[error(
        "database {path} has schema version {found}, this build reads version {expected}; run a matching tessera build or restore an export"
    )]
    Schema {
        /// The database.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
    /// Creating or securing a file or dir failed.
    #[error("could not prepare {path}: {source}")]
    Io {
        /// The file or dir.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored record does not parse.
    #[error("corrupt record in table {table} (key {key}): {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// The parse error.
        reason: String,
    },
    /// A snapshot for import is not valid; nothing was changed.
    #[error(transparent)]
    BadSnapshot(#[from] BadSnapshot),
    /// Writing an export failed (usually: the client went away).
    #[error("export stopped: {0}")]
    Export(std::io::Error),
    /// The database server can not be reached (cluster mode): mutations
    /// are refused with 503 until it is back.
    #[error("database unavailable: {0}; check that PostgreSQL is running and reachable")]
    Unavailable(String),
    /// Another cluster node changed what this write was computed from
    /// (optimistic concurrency): nothing was written; read again and retry.
    #[error("{0}")]
    Conflict(String),
    /// The file system holding the data is (nearly) full: nothing was
    /// written. Writes resume by themselves once there is room.
    #[error(
        "no space left for {}: nothing was written; free space on its file system and writes resume by themselves",
        .0.display()
    )]
    StorageFull(PathBuf),
    /// Writing to the database file failed (an I/O error other than a
    /// full disk): nothing was written.
    #[error("writing the database failed ({0}); nothing was written; check the disk")]
    WriteFailed(String),
    /// The database file is damaged: it is refused whole, never served
    /// from, repaired or replaced.
    #[error(
        "database {} is damaged ({reason}); it was not changed. Stop tessera, move the file aside, and restore the last export into an empty data dir: tessera import EXPORT.jsonl --data-dir DIR",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the check found.
        reason: String,
    },
    /// The database engine itself failed.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the engine may now refuse everything until it is reopened
    /// (a write hit the disk and failed).
    pub fn is_io_failure(&self) -> bool {
        matches!(self, Self::StorageFull(_) | Self::WriteFailed(_))
    }
}

/// One admin mutation, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the log, increasing from 1.
    pub seq: u64,
    /// Unix seconds (records written before schema 2's audit change hold
    /// RFC 3339 text, read back as seconds).
    #[serde(deserialize_with = "seconds_or_rfc3339")]
    pub at: u64,
    /// What was done, e.g. `user.create`.
    pub action: String,
    /// What it was done to (a username, a jti, a kid).
    pub target: String,
    /// A short description; never a secret.
    pub detail: String,
}

fn seconds_or_rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum At {
        Seconds(u64),
        Text(String),
    }
    match At::deserialize(d)? {
        At::Seconds(s) => Ok(s),
        At::Text(t) => crate::runtime::time::parse_rfc3339(&t).map_err(serde::de::Error::custom),
    }
}

/// What an admin mutation asks the store to record alongside it.
#[derive(Debug, Clone)]
pub struct Audit {
    /// Unix seconds.
    pub at: u64,
    /// What changed.
    pub action: Action,
    /// A username, jti or kid.
    pub target: String,
    /// Short, secret-free.
    pub detail: String,
}

impl Audit {
    /// The event of `user`'s previous secret ending at `now` because its
    /// grace ran out (written by the store that forgets it, so every
    /// backend words it the same).
    pub fn secret_expired(user: &User, now: u64) -> Option<Self> {
        let previous = user.previous_secret.as_ref()?;
        Some(Self {
            at: now,
            action: Action::UserSecretExpire,
            target: user.username.to_string(),
            detail: format!(
                "secret {} expired at {}",
                previous.info.id,
                crate::runtime::time::rfc3339(previous.expires_at)
            ),
        })
    }

    /// The event this becomes at position `seq`.
    pub fn into_event(self, seq: u64) -> AuditEvent {
        AuditEvent {
            seq,
            at: self.at,
            action: self.action.as_str().to_owned(),
            target: self.target,
            detail: self.detail,
        }
    }
}

/// A page of results and the key to continue after, if there is more.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Pass back as `after` to get the next page.
    pub next: Option<String>,
}

/// A change to one user, applied inside the store's transaction.
pub type UserChange<'a> = Box<dyn FnOnce(&mut User) + Send + 'a>;

/// One user write of a batch ([`Store::write_users`]).
#[derive(Debug, Clone)]
pub enum UserWrite {
    /// Insert or replace the user.
    Put(Box<User>),
    /// Remove the user if present.
    Delete(Username),
}

/// The chunks of a snapshot being imported, as lines; an `Err` line means
/// the upload broke off.
pub type SnapshotLines<'a> = &'a mut dyn Iterator<Item = Result<Vec<u8>, String>>;

/// Users, keys, revocations and the audit log. Methods block (they may
/// fsync): the service calls mutations off the async executor. The two
/// request-path reads ([`Store::user`], [`Store::is_revoked`]) are served
/// from memory or a single point read and are cheap enough inline.
pub trait Store: Send + Sync {
    /// Where the data lives, for logs (`/path/tessera.redb`, `in memory`).
    fn describe(&self) -> String;

    /// One user (a point read of the last committed state).
    fn user(&self, name: &Username) -> Result<Option<User>, StoreError>;

    /// Whether `jti` is revoked, as of the last commit.
    fn is_revoked(&self, jti: &str) -> bool;

    /// The `exp` of a revoked `jti`, as of the last commit.
    fn revocation(&self, jti: &str) -> Option<u64>;

    /// How many revocations are held.
    fn revocation_count(&self) -> u64;

    /// How many users exist.
    fn user_count(&self) -> Result<u64, StoreError>;

    /// Inserts a new user; false (and nothing written) when the name exists.
    fn create_user(&self, user: &User, audit: Audit) -> Result<bool, StoreError>;

    /// Read-modify-write of one user in one transaction; None when absent.
    fn update_user(
        &self,
        name: &Username,
        change: UserChange<'_>,
        audit: Audit,
    ) -> Result<Option<User>, StoreError>;

    /// Deletes a user; false when absent.
    fn delete_user(&self, name: &Username, audit: Audit) -> Result<bool, StoreError>;

    /// Applies every write, each with its audit event, in one
    /// transaction: all of them or none (a declarative `apply`).
    fn write_users(&self, writes: Vec<(UserWrite, Audit)>) -> Result<(), StoreError>;

    /// Forgets every previous secret whose grace ended at or before `now`,
    /// each with its [`Audit::secret_expired`] event, in one transaction;
    /// returns the users whose secret ended. Reads only the users that
    /// hold a previous secret (an index), and is safe to run on every node:
    /// a secret already forgotten is not audited twice.
    fn expire_secrets(&self, now: u64) -> Result<Vec<Username>, StoreError>;

    /// Records logins' uses of secrets (`last_used_at`, and the user's
    /// `last_login_at`; times only move forward) in one transaction and
    /// without audit events: a login is not a change an operator made,
    /// and one flush carries the logins of many seconds.
    fn record_secret_uses(&self, uses: &[LoginUse]) -> Result<(), StoreError>;

    /// Users sorted by name, strictly after `after`, at most `limit`.
    fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Page<User>, StoreError>;

    /// Every key record: retired, then active, then next, oldest first.
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Stores `records` as the keyring unless one exists already, and
    /// returns the keyring now stored: of several nodes starting at once on
    /// an empty database, one creates it and the others load it.
    fn init_keys(&self, records: &[KeyRecord]) -> Result<Vec<KeyRecord>, StoreError> {
        let existing = self.keys()?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        self.replace_keys(records, None)?;
        self.keys()
    }

    /// A generation larger than every one drawn (or imported) before, for
    /// a created or revoked-all account ([`User::generation`]). Drawn
    /// numbers may go unused; they are never handed out twice, also across
    /// restarts and nodes.
    fn next_generation(&self) -> Result<u64, StoreError>;

    /// Whether the store can commit right now (readiness). The embedded
    /// file always can; a database server may be unreachable.
    fn healthy(&self) -> bool {
        true
    }

    /// Whether a write could be made durable now (room on the disk, the
    /// engine not waiting to be reopened); readiness and a metric show it.
    fn writable(&self) -> bool {
        self.healthy()
    }

    /// Ticks when another node changed the keyring, so this node's service
    /// reloads it; None for a store only this process writes.
    fn keyring_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Replaces the whole keyring with `records`, auditing when asked.
    fn replace_keys(&self, records: &[KeyRecord], audit: Option<Audit>) -> Result<(), StoreError>;

    /// Records a revoked `jti` that can be forgotten after `exp`.
    fn revoke(&self, jti: &str, exp: u64, audit: Audit) -> Result<(), StoreError>;

    /// Revocations sorted by jti, strictly after `after`, at most `limit`.
    fn list_revocations(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, StoreError>;

    /// Drops revocations whose `exp` has passed; returns how many.
    fn prune_revocations(&self, now: u64) -> Result<u64, StoreError>;

    /// What changed after `since` (or a full view), from one consistent
    /// read: see [`Changes`]. At most `max_events` audit events make a
    /// delta; a full view names the users changed or deleted at or after
    /// `horizon` (unix seconds).
    fn changes(
        &self,
        since: Option<u64>,
        max_events: usize,
        horizon: u64,
    ) -> Result<Changes, StoreError>;

    /// Forgets audit events older than `before` (unix seconds), and
    /// partner-caused ones ([`Action::by_partner`]) older than
    /// `partner_before`, except the newest event, so the log's `seq` (the
    /// feed's position) never starts over. Returns how many went.
    fn prune_audit(&self, before: u64, partner_before: u64) -> Result<u64, StoreError>;

    /// Audit events newest first, with `seq < before`, at most `limit`.
    fn audit_events(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// The longest token TTL ever in force (0 when never recorded), so
    /// retired keys are kept until their last token has expired.
    fn ttl_high_water(&self) -> Result<u64, StoreError>;

    /// Raises the TTL high-water mark to `ttl` if it is higher.
    fn raise_ttl_high_water(&self, ttl: u64) -> Result<(), StoreError>;

    /// Writes a snapshot taken in one read transaction.
    fn export(&self, out: &mut dyn Write, now: u64) -> Result<ImportCounts, StoreError>;

    /// Replaces users, keys and revocations with a snapshot's, all or
    /// nothing, reading one line at a time (checked by
    /// [`snapshot::Reader`]); `audit` makes the event from the counts.
    fn import(
        &self,
        lines: SnapshotLines<'_>,
        audit: &dyn Fn(ImportCounts) -> Audit,
    ) -> Result<ImportCounts, StoreError>;
}
