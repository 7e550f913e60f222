//! The embedded backend: one redb file, `<data-dir>/tessera.redb` — the
//! only module that imports `redb`. It owns the table definitions and the
//! schema version. Every write commits with `Durability::Immediate` (fsync)
//! before it returns, with the mutation's audit event in the same
//! transaction.
//!
//! Writes are serialised by one writer lock held from `begin_write` until
//! the committed state is published, so what readers see ([`Store::user`],
//! [`Store::is_revoked`]: `arc-swap` snapshots, no lock on the request path)
//! is never older than an acknowledged write, even when writes race.
//!
//! User records are postcard (compact binary serde) because every login
//! and verify decodes one; keys and audit events are JSON. Exports are JSON
//! Lines ([`snapshot`]) whatever the storage encoding.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;

use super::snapshot::{self, BadSnapshot, ImportCounts, Item};
use super::{
    Audit, AuditEvent, Changes, Page, SnapshotLines, Store, StoreError, UserChange, UserWrite,
};
use crate::keys::KeyRecord;
use crate::user::{User, Username};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USERNAME_TO_USER: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const KID_TO_KEY: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const JTI_TO_EXP: TableDefinition<&str, u64> = TableDefinition::new("revocations");
const SEQ_TO_AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// The schema this build reads and writes. Version 3 added the user's
/// generation; a version 2 file is migrated at open.
pub const SCHEMA_VERSION: u64 = 4;
const SCHEMA_KEY: &str = "schema_version";
/// The last account generation drawn ([`Store::next_generation`]).
const GENERATION_KEY: &str = "generation";
/// The longest token TTL ever configured, so retired keys are kept long enough.
const TTL_HIGH_WATER_KEY: &str = "ttl_high_water";
/// redb's page cache. Beyond it, reads come from the OS page cache (not
/// counted in our RSS); 16 MiB holds the upper B-tree levels of a
/// 100k-user table.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// The database file name inside the data dir.
pub const DB_FILE: &str = "tessera.redb";
/// What [`RedbStore::in_memory`] calls its location in logs.
const IN_MEMORY: &str = "in memory";

/// An engine error as a store error: a full disk and other I/O failures
/// are told apart from the rest, because after them redb refuses every
/// call until the database is reopened.
fn from_redb_error(e: redb::Error) -> StoreError {
    match e {
        redb::Error::Io(io) if is_no_space(&io) => StoreError::StorageFull(PathBuf::from(DB_FILE)),
        redb::Error::Io(io) => StoreError::WriteFailed(io.to_string()),
        redb::Error::PreviousIo => {
            StoreError::WriteFailed("an earlier write failed; reopening".to_owned())
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                from_redb_error(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::SetDurabilityError,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// How many decoded users a [`UsersView`] keeps (about 35 MB at most):
/// every partner of a typical deployment, so a login of a known partner
/// skips the B-tree walk and the decode (a tenth of a login's CPU).
pub const DECODED_USERS: usize = 100_000;

/// The users as of one commit: the table, and the records read from it so
/// far, decoded (bounded, S3-FIFO). A commit that changes users publishes
/// a new view with an empty cache; one that changes only other tables
/// keeps the cache, whose users are still those of the new table. A reader
/// holding an old view can only fill that view's cache, which no newer
/// view shares, so the cache never holds a user older than its table.
struct UsersView {
    table: ReadOnlyTable<&'static str, &'static [u8]>,
    decoded: Arc<quick_cache::sync::Cache<Username, User>>,
}

impl UsersView {
    fn fresh(table: ReadOnlyTable<&'static str, &'static [u8]>) -> Self {
        Self {
            table,
            decoded: Arc::new(quick_cache::sync::Cache::new(DECODED_USERS)),
        }
    }
}

/// The open database.
pub struct RedbStore {
    /// The users as of the last commit. Every login and verify reads them;
    /// keeping the table open saves a read transaction and a table-root
    /// lookup per request. Replaced right after each commit, under
    /// `writer`; None only while the database is being reopened.
    users: ArcSwapOption<UsersView>,
    /// Every revoked `jti` with its `exp`, as of the last commit; replaced
    /// under `writer` after each commit that changes revocations.
    revoked: ArcSwap<HashMap<String, u64>>,
    /// Held from the start of a write transaction until its result is
    /// published, so snapshots are published in commit order.
    writer: Mutex<()>,
    /// Set when a write failed with an I/O error (a full disk): redb then
    /// refuses everything until the `Database` is reopened, which the next
    /// write (or readiness check) does once there is room again.
    failed: AtomicBool,
    /// Tests: pause once between reading the committed state and publishing
    /// it, to force the interleaving the writer lock must make harmless.
    #[cfg(test)]
    pause_before_publish: std::sync::atomic::AtomicBool,
    /// The database; None only while it is being reopened.
    db: ArcSwapOption<Database>,
    path: PathBuf,
    /// The data dir whose file system's free space is checked before each
    /// write; None for the in-memory database.
    data_dir: Option<PathBuf>,
}

/// Revocations as published after a commit.
type RevokedSet = HashMap<String, u64>;

fn corrupt(table: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// User records are postcard (compact binary serde): a login decodes one
/// per request, and that is several times faster than JSON.
fn encode_user(user: &User) -> Vec<u8> {
    // A struct of strings, numbers and enums always serialises.
    postcard::to_allocvec(user).unwrap_or_default()
}

fn decode_user(bytes: &[u8]) -> Result<User, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// A user record in the layout of `schema` (2, 3 or this build's).
/// Postcard writes fields in order and each later schema only appended
/// fields, so an older record is this layout cut before them: schema 3
/// lacks `scopes` (an empty list is one zero byte), schema 2 also lacks
/// `generation` (0, one zero byte: its tokens keep the time rule).
fn decode_user_of(schema: u64, bytes: &[u8]) -> Result<User, postcard::Error> {
    let missing: &[u8] = match schema {
        2 => &[0, 0],
        3 => &[0],
        _ => return decode_user(bytes),
    };
    decode_user(&[bytes, missing].concat())
}

/// Rewrites every user record of `schema` (2: before generations, which
/// become 0 and keep the time rule; 3: before scopes, which start empty)
/// in this build's layout, inside the caller's transaction.
fn migrate_users(tx: &WriteTransaction, schema: u64) -> Result<u64, StoreError> {
    let mut table = tx.open_table(USERNAME_TO_USER)?;
    let mut rewritten = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let old = decode_user_of(schema, v.value()).map_err(|e| corrupt("users", k.value(), e))?;
        rewritten.push(old);
    }
    for user in &rewritten {
        table.insert(user.username.as_str(), encode_user(user).as_slice())?;
    }
    Ok(rewritten.len() as u64)
}

/// One page of a table keyed by text: the entries strictly after `after`,
/// at most `limit`, decoded by `decode`; `next` is the last key returned
/// when more entries follow.
fn page_after<V: redb::Value + 'static, T>(
    table: &ReadOnlyTable<&'static str, V>,
    after: Option<&str>,
    limit: usize,
    mut decode: impl FnMut(&str, V::SelfType<'_>) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let range = match after {
        Some(a) => {
            table.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?
        }
        None => table.iter()?,
    };
    let mut items = Vec::new();
    let mut last = None;
    for entry in range {
        let (k, v) = entry?;
        if items.len() == limit {
            return Ok(Page { items, next: last });
        }
        items.push(decode(k.value(), v.value())?);
        last = Some(k.value().to_owned());
    }
    Ok(Page { items, next: None })
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are plain structs of strings and numbers: cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn append_audit(tx: &WriteTransaction, audit: Audit) -> Result<(), StoreError> {
    let mut table = tx.open_table(SEQ_TO_AUDIT)?;
    let seq = table.last()?.map_or(0, |(k, _)| k.value()) + 1;
    table.insert(seq, to_json(&audit.into_event(seq)).as_slice())?;
    Ok(())
}

fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    {
        let mut meta = tx.open_table(META)?;
        let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
        match found {
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(old @ (2 | 3)) => {
                let users = migrate_users(&tx, old)?;
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                tracing::info!(path = %path.display(), users, from = old, to = SCHEMA_VERSION, "migrated the database (schema 3: account generations; 4: scopes)");
            }
            Some(found) => {
                return Err(StoreError::Schema {
                    path: path.to_owned(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        tx.open_table(USERNAME_TO_USER)?;
        tx.open_table(KID_TO_KEY)?;
        tx.open_table(JTI_TO_EXP)?;
        tx.open_table(SEQ_TO_AUDIT)?;
    }
    tx.commit()?;
    Ok(())
}

/// Creates the data dir (0700) if missing. An existing one that others
/// could read is narrowed to 0700 (it holds the signing keys); if that is
/// not allowed, a warning says so and start-up goes on.
pub fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        return Ok(());
    }
    let mode = fs::metadata(dir).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        match fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
            Ok(()) => {
                tracing::info!(path = %dir.display(), from = format!("{mode:o}"), "narrowed data dir permissions to 0700")
            }
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "data dir is readable by others and could not be narrowed to 0700; fix its permissions")
            }
        }
    }
    Ok(())
}

impl RedbStore {
    /// Opens (or creates) `<data_dir>/tessera.redb` with mode 0600, checks
    /// the schema version, and makes sure every table exists. Fails at once
    /// when another process has it open, and refuses a damaged file (see
    /// [`check_file`], which runs first) without ever changing it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        prepare_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let existed = path.exists();
        if !existed {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io)?;
        let db = open_file(&path, data_dir)?;
        let db = if existed {
            check_file(db, &path)?.0
        } else {
            db
        };
        let store = Self::load(db, path)?;
        Ok(Self {
            data_dir: Some(data_dir.to_owned()),
            ..store
        })
    }

    /// A database held in memory only (`serve --ephemeral`, test
    /// environments): the same engine and transactions as [`RedbStore::open`],
    /// nothing written to disk, everything gone when the process ends.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::load(db, PathBuf::from(IN_MEMORY))
    }

    fn load(db: Database, path: PathBuf) -> Result<Self, StoreError> {
        init_schema(&db, &path)?;
        let (users, revoked) = read_published(&db)?;
        Ok(Self {
            users: ArcSwapOption::from_pointee(UsersView::fresh(users)),
            revoked: ArcSwap::from_pointee(revoked),
            writer: Mutex::new(()),
            failed: AtomicBool::new(false),
            #[cfg(test)]
            pause_before_publish: std::sync::atomic::AtomicBool::new(false),
            db: ArcSwapOption::from_pointee(db),
            path,
            data_dir: None,
        })
    }

    /// Serialises writers. The guard protects no data of its own (redb
    /// aborts a transaction dropped by a panic), so a poisoned lock is
    /// still a valid lock.
    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database, unless it is being reopened.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db.load_full().ok_or_else(|| self.reopening())
    }

    fn reopening(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "{} is being reopened after a write failed; retry in a moment",
            self.path.display()
        ))
    }

    /// Runs one write with the writer lock held: refuses it with
    /// [`StoreError::StorageFull`] before redb is touched when the data
    /// dir's file system has less than [`MIN_FREE_BYTES`] left, reopens the
    /// database first if an earlier write failed and there is room again,
    /// and remembers a failure of this one.
    fn writing<T>(
        &self,
        job: impl FnOnce(&Database, &MutexGuard<'_, ()>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.write_lock();
        self.ensure_room()?;
        if self.failed.load(Ordering::SeqCst) {
            self.reopen(&guard)?;
        }
        let db = self.db()?;
        let result = job(&db, &guard);
        if let Err(e) = &result
            && e.is_io_failure()
        {
            self.failed.store(true, Ordering::SeqCst);
            tracing::warn!(path = %self.path.display(), error = %e, "a write failed; writes are refused until there is room, then the database is reopened");
        }
        result
    }

    /// Refuses a write when the data dir's file system is nearly full.
    fn ensure_room(&self) -> Result<(), StoreError> {
        match &self.data_dir {
            Some(dir) if free_bytes(dir).is_some_and(|free| free < MIN_FREE_BYTES) => {
                Err(StoreError::StorageFull(dir.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Whether writes can go ahead now: room on the file system and no
    /// failed write waiting for a reopen that can not happen yet. A failed
    /// state is repaired here when it can be (readiness checks call this).
    pub fn writable(&self) -> bool {
        if self.ensure_room().is_err() {
            return false;
        }
        if !self.failed.load(Ordering::SeqCst) {
            return true;
        }
        match self.writer.try_lock() {
            Ok(guard) => self.reopen(&guard).is_ok(),
            Err(_) => false,
        }
    }

    /// Closes the database and opens it again: after an I/O error redb
    /// refuses every call until then. Needs the writer lock (no write is in
    /// flight) and waits briefly for readers to let go of the old handle.
    fn reopen(&self, _writer: &MutexGuard<'_, ()>) -> Result<(), StoreError> {
        let Some(dir) = self.data_dir.clone() else {
            return Err(StoreError::StorageFull(PathBuf::from(IN_MEMORY)));
        };
        self.users.store(None);
        if let Some(mut old) = self.db.swap(None) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_shared) if std::time::Instant::now() < deadline => {
                        old = still_shared;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(still_shared) => {
                        self.db.store(Some(still_shared));
                        return Err(self.reopening());
                    }
                }
            }
        }
        let db = match open_file(&self.path, &dir) {
            Err(e @ StoreError::Damaged { .. }) => {
                // Never serve on from a file the engine could not read back.
                tracing::error!(error = %e, "the database is damaged; stopping");
                std::process::exit(1);
            }
            other => other?,
        };
        let (users, revoked) = read_published(&db)?;
        self.revoked.store(Arc::new(revoked));
        self.db.store(Some(Arc::new(db)));
        self.users.store(Some(Arc::new(UsersView::fresh(users))));
        self.failed.store(false, Ordering::SeqCst);
        tracing::info!(path = %self.path.display(), "reopened the database; writes work again");
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    fn test_pause(&self) {
        if self
            .pause_before_publish
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    #[cfg(not(test))]
    fn test_pause(&self) {}

    /// Commits `tx` durably, then points [`Store::user`] at the new state.
    /// The caller holds the write lock, so publications happen in commit
    /// order.
    fn commit_users(
        &self,
        db: &Database,
        tx: WriteTransaction,
        _writer: &MutexGuard<'_, ()>,
    ) -> Result<(), StoreError> {
        tx.commit()?;
        let fresh = db.begin_read()?.open_table(USERNAME_TO_USER)?;
        self.test_pause();
        self.users.store(Some(Arc::new(UsersView::fresh(fresh))));
        Ok(())
    }

    /// Publishes a fresh users table after a commit that did not change
    /// users, so the one held no longer pins the pages older commits freed
    /// (a long-lived read would make every later commit grow the file).
    fn refresh_users(&self, db: &Database) -> Result<(), StoreError> {
        let table = db.begin_read()?.open_table(USERNAME_TO_USER)?;
        let decoded = match &*self.users.load() {
            Some(view) => view.decoded.clone(),
            None => Arc::new(quick_cache::sync::Cache::new(DECODED_USERS)),
        };
        self.users
            .store(Some(Arc::new(UsersView { table, decoded })));
        Ok(())
    }
}

/// Free space below which writes are refused before redb is asked: a
/// commit of one admin change needs far less, and refusing early keeps redb
/// from ever meeting a full disk mid-commit (after which it refuses reads
/// too, until reopened).
pub const MIN_FREE_BYTES: u64 = 4 << 20;

/// Bytes available to this process on `dir`'s file system; None when the
/// file system can not say.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Opens the file with the engine, mapping "held by another process" and
/// "not a database / damaged" to errors that say what to do.
fn open_file(path: &Path, data_dir: &Path) -> Result<Database, StoreError> {
    let opened = quietly(|| Database::builder().set_cache_size(CACHE_BYTES).create(path));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            Err(StoreError::InUse(data_dir.to_owned()))
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))) if is_no_space(&e) => {
            Err(StoreError::StorageFull(data_dir.to_owned()))
        }
        Ok(Err(e)) => Err(StoreError::Damaged {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(panic) => Err(StoreError::Damaged {
            path: path.to_owned(),
            reason: format!("the engine failed reading it ({})", panic_text(&panic)),
        }),
    }
}

/// The users table and revoked set a freshly opened database publishes.
fn read_published(
    db: &Database,
) -> Result<(ReadOnlyTable<&'static str, &'static [u8]>, RevokedSet), StoreError> {
    let tx = db.begin_read()?;
    let users = tx.open_table(USERNAME_TO_USER)?;
    let mut revoked = RevokedSet::new();
    for entry in tx.open_table(JTI_TO_EXP)?.iter()? {
        let (k, v) = entry?;
        revoked.insert(k.value().to_owned(), v.value());
    }
    Ok((users, revoked))
}

/// Whether an I/O error means the file system is out of space or quota.
fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(28 /* ENOSPC */ | 122 /* EDQUOT */))
}

/// Runs `f`, catching a panic of the engine (redb's read paths can panic
/// on pages that fail no check) without printing it: the caller turns it
/// into [`StoreError::Damaged`], and the process stops instead of serving.
/// Only used while the store opens, before anything else runs.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// What [`check_file`] found in a healthy file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Users decoded.
    pub users: u64,
    /// Signing keys decoded.
    pub keys: u64,
    /// Revocations read.
    pub revocations: u64,
    /// Audit events decoded.
    pub audit_events: u64,
}

/// Checks a whole database file before anything is served from it: the
/// engine's integrity check (every page's checksum), then every record of
/// every table decoded. redb can panic on pages that pass its checks, so
/// all of it runs under `catch_unwind`; a panic or an error is reported as
/// [`StoreError::Damaged`] and the caller stops (nothing is ever served
/// from, repaired in or written over a damaged file).
pub fn check_file(mut db: Database, path: &Path) -> Result<(Database, FileSummary), StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let checked = quietly(|| {
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => return Err("the engine's integrity check failed".to_owned()),
            Err(e) => return Err(e.to_string()),
        }
        decode_everything(&db).map_err(|e| e.to_string())
    });
    match checked {
        Ok(Ok(summary)) => Ok((db, summary)),
        Ok(Err(reason)) => Err(damaged(reason)),
        Err(panic) => Err(damaged(format!(
            "the engine failed reading it ({})",
            panic_text(&panic)
        ))),
    }
}

/// `tessera check`: opens `<data_dir>/tessera.redb` without creating or
/// changing anything and runs [`check_file`] on it.
pub fn check_data_dir(data_dir: &Path) -> Result<FileSummary, StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.is_file() {
        return Err(StoreError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no database here; pass the --data-dir that serve uses",
            ),
        });
    }
    let db = open_file(&path, data_dir)?;
    check_file(db, &path).map(|(_, summary)| summary)
}

/// Reads every record of every table, decoding each.
fn decode_everything(db: &Database) -> Result<FileSummary, StoreError> {
    let tx = db.begin_read()?;
    let mut summary = FileSummary::default();
    let schema = match tx.open_table(META) {
        Ok(meta) => meta.get(SCHEMA_KEY)?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(schema) = schema.filter(|v| matches!(v, 2 | 3) || *v == SCHEMA_VERSION) else {
        // Empty, or another build's schema: opening says which and what
        // to do; there is nothing this build knows how to decode.
        return Ok(summary);
    };
    for entry in tx.open_table(USERNAME_TO_USER)?.iter()? {
        let (k, v) = entry?;
        decode_user_of(schema, v.value()).map_err(|e| corrupt("users", k.value(), e))?;
        summary.users += 1;
    }
    for entry in tx.open_table(KID_TO_KEY)?.iter()? {
        let (k, v) = entry?;
        let key: KeyRecord =
            serde_json::from_slice(v.value()).map_err(|e| corrupt("keys", k.value(), e))?;
        key.validate().map_err(|e| corrupt("keys", k.value(), e))?;
        summary.keys += 1;
    }
    for entry in tx.open_table(JTI_TO_EXP)?.iter()? {
        entry?;
        summary.revocations += 1;
    }
    for entry in tx.open_table(SEQ_TO_AUDIT)?.iter()? {
        let (k, v) = entry?;
        serde_json::from_slice::<AuditEvent>(v.value())
            .map_err(|e| corrupt("audit", &k.value().to_string(), e))?;
        summary.audit_events += 1;
    }
    Ok(summary)
}

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
                table.insert(username, encode_user(&user).as_slice())?;
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
                            table.insert(user.username.as_str(), encode_user(user).as_slice())?;
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
        super::keyring_order(&mut out);
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
        for entry in users.iter()? {
            let (k, v) = entry?;
            let user = decode_user(v.value()).map_err(|e| corrupt("users", k.value(), e))?;
            if super::last_changed(&user) >= horizon {
                out.users.push((k.value().to_owned(), Some(user), 0));
            }
        }
        let mut deleted = std::collections::BTreeMap::new();
        for entry in audit.iter()?.rev() {
            let (k, v) = entry?;
            let e = decode_event(k.value(), v.value())?;
            if e.at < horizon {
                break;
            }
            if e.action == "user.delete" && users.get(e.target.as_str())?.is_none() {
                deleted.entry(e.target).or_insert(e.at);
            }
        }
        out.users
            .extend(deleted.into_iter().map(|(name, at)| (name, None, at)));
        Ok(out)
    }

    /// Deletes from the oldest end while events are older than `before`,
    /// keeping the newest; one transaction.
    fn prune_audit(&self, before: u64) -> Result<u64, StoreError> {
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
                    if e.at >= before {
                        break;
                    }
                    doomed.push(k.value());
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
        let mut reader = snapshot::Reader::new();
        let mut revoked = RevokedSet::new();
        let mut max_generation = 0;
        self.writing(|db, writer| {
            let tx = db.begin_write()?;
            {
                let mut users = tx.open_table(USERNAME_TO_USER)?;
                let mut keys = tx.open_table(KID_TO_KEY)?;
                let mut revocations = tx.open_table(JTI_TO_EXP)?;
                users.retain(|_, _| false)?;
                keys.retain(|_, _| false)?;
                revocations.retain(|_, _| false)?;
                for line in lines {
                    let line = line.map_err(|reason| BadSnapshot {
                        line: reader.line_number() + 1,
                        reason,
                    })?;
                    let n = reader.line_number() + 1;
                    match reader.read(&line)? {
                        None => {}
                        Some(Item::User(u)) => {
                            max_generation = max_generation.max(u.generation);
                            let name = u.username.as_str();
                            if users.insert(name, encode_user(&u).as_slice())?.is_some() {
                                return Err(BadSnapshot::twice(n, "user", name).into());
                            }
                        }
                        Some(Item::Key(k)) => {
                            keys.insert(k.kid.as_str(), to_json(&k).as_slice())?;
                        }
                        Some(Item::Revocation { jti, exp }) => {
                            if revocations.insert(jti.as_str(), exp)?.is_some() {
                                return Err(BadSnapshot::twice(n, "jti", &jti).into());
                            }
                            revoked.insert(jti, exp);
                        }
                    }
                }
                let summary = std::mem::take(&mut reader).finish()?;
                let mut meta = tx.open_table(META)?;
                let current = meta.get(TTL_HIGH_WATER_KEY)?.map_or(0, |v| v.value());
                meta.insert(TTL_HIGH_WATER_KEY, current.max(summary.max_ttl_secs))?;
                // Generations drawn later must pass every imported one.
                let drawn = meta.get(GENERATION_KEY)?.map_or(0, |v| v.value());
                meta.insert(GENERATION_KEY, drawn.max(max_generation))?;
                drop((users, keys, revocations, meta));
                append_audit(&tx, audit(summary.counts))?;
                self.commit_users(db, tx, writer)?;
                self.revoked.store(Arc::new(revoked));
                Ok(summary.counts)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{audit, name, populate, store_contract_tests, user};

    store_contract_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let store: Box<dyn Store> = Box::new(RedbStore::open(dir.path()).unwrap());
        (dir, store)
    });

    mod in_memory {
        use super::*;

        store_contract_tests!(|| {
            let store: Box<dyn Store> = Box::new(RedbStore::in_memory().unwrap());
            ((), store)
        });
    }

    #[test]
    fn second_open_of_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path()).err().unwrap();
        assert!(
            err.to_string()
                .contains("is in use by another tessera process"),
            "{err}"
        );
    }

    #[test]
    fn an_existing_open_data_dir_is_narrowed_to_0700() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        let _store = RedbStore::open(&data).unwrap();
        assert_eq!(
            fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn users_of_schemas_2_and_3_are_migrated_to_this_layout() {
        // The old records written field by field, as those schemas' structs
        // did (postcard serialises a struct as the tuple of its fields).
        let mut old = user("a");
        old.note = Some("kept".into());
        old.expires_at = Some(4_000_000_000);
        let u = old.clone();
        let v2 = (
            &u.username,
            u.status,
            u.created_at,
            u.updated_at,
            u.expires_at,
            u.token_ttl_secs,
            u.tokens_valid_after,
            &u.note,
            &u.password,
        );
        let v2_bytes = postcard::to_allocvec(&v2).unwrap();
        let v3_bytes = postcard::to_allocvec(&(v2, 7u64)).unwrap();
        for (schema, generation, record) in [(3u64, 7u64, v3_bytes), (2, 0, v2_bytes)] {
            let dir = tempfile::tempdir().unwrap();
            let mut old = old.clone();
            old.generation = generation;
            {
                let db = Database::create(dir.path().join(DB_FILE)).unwrap();
                let tx = db.begin_write().unwrap();
                tx.open_table(META)
                    .unwrap()
                    .insert(SCHEMA_KEY, schema)
                    .unwrap();
                tx.open_table(USERNAME_TO_USER)
                    .unwrap()
                    .insert("a", record.as_slice())
                    .unwrap();
                tx.open_table(KID_TO_KEY).unwrap();
                tx.open_table(JTI_TO_EXP).unwrap();
                tx.open_table(SEQ_TO_AUDIT).unwrap();
                tx.commit().unwrap();
            }
            let store = RedbStore::open(dir.path()).unwrap();
            let name = Username::parse("a").unwrap();
            assert_eq!(store.user(&name).unwrap(), Some(old), "schema {schema}");
            drop(store);
            let db = Database::open(dir.path().join(DB_FILE)).unwrap();
            let tx = db.begin_read().unwrap();
            let found = tx
                .open_table(META)
                .unwrap()
                .get(SCHEMA_KEY)
                .unwrap()
                .unwrap()
                .value();
            assert_eq!(found, SCHEMA_VERSION);
        }
    }

    #[test]
    fn another_schema_version_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert(SCHEMA_KEY, 99).unwrap();
            tx.commit().unwrap();
        }
        let err = RedbStore::open(dir.path()).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains("schema version 99") && text.contains(DB_FILE),
            "{text}"
        );
    }

    #[test]
    fn data_survives_reopen_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.create_user(&user("a"), audit("user.create", "a"))
                .unwrap();
            s.revoke("j", 100, audit("token.revoke", "j")).unwrap();
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert!(s.user(&name("a")).unwrap().is_some());
        assert!(s.is_revoked("j"), "the revocation set is loaded at open");
        let mode = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn audit_events_written_as_rfc3339_text_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(dir.path()).unwrap();
        {
            let tx = s.db().unwrap().begin_write().unwrap();
            let old = br#"{"seq":1,"at":"2026-11-27T19:43:57Z","action":"user.create","target":"a","detail":""}"#;
            tx.open_table(SEQ_TO_AUDIT)
                .unwrap()
                .insert(1, old.as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(s.audit_events(None, 1).unwrap()[0].at, 1_795_808_637);
    }

    /// Runs `first` with a pause between reading its committed state and
    /// publishing it, and `second` during that pause; returns when both did.
    fn race(
        s: &RedbStore,
        first: impl FnOnce(&RedbStore) + Send,
        second: impl FnOnce(&RedbStore) + Send,
    ) {
        s.pause_before_publish
            .store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::scope(|scope| {
            scope.spawn(|| first(s));
            std::thread::sleep(std::time::Duration::from_millis(50));
            scope.spawn(|| second(s));
        });
    }

    /// A write that commits after another is what readers see once both
    /// returned, even when the earlier one publishes late. Without the
    /// writer lock the earlier commit's snapshot overwrites the later one.
    #[test]
    fn a_later_commit_is_never_hidden_by_an_earlier_publish() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(dir.path()).unwrap();
        populate(&s, &["u"]);
        let set = |at: u64| {
            move |s: &RedbStore| {
                s.update_user(
                    &name("u"),
                    Box::new(move |u| u.updated_at = at),
                    audit("user.update", "u"),
                )
                .unwrap();
            }
        };
        race(&s, set(1), set(2));
        assert_eq!(s.user(&name("u")).unwrap().unwrap().updated_at, 2);
        let revoke = |jti: &'static str| {
            move |s: &RedbStore| {
                s.revoke(jti, 100, audit("token.revoke", jti)).unwrap();
            }
        };
        race(&s, revoke("a"), revoke("b"));
        assert!(
            s.is_revoked("a") && s.is_revoked("b"),
            "neither revocation is lost"
        );
    }
}
