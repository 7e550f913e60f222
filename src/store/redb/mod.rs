//! The embedded backend: one redb file, `<data-dir>/tessera.redb` — the
//! only module that imports `redb`. Files: [`layout`] (tables, record
//! encodings, the schema version and migrations), [`file`] (opening the
//! file safely, full disks, `tessera check`), [`operations`] (the [`Store`](super::Store)
//! methods); this one holds the open database and what it publishes. Every write commits with `Durability::Immediate` (fsync)
//! before it returns, with the mutation's audit event in the same
//! transaction.
//!
//! Writes are serialised by one writer lock held from `begin_write` until
//! the committed state is published, so what readers see ([`Store::user`](super::Store::user),
//! [`Store::is_revoked`](super::Store::is_revoked): `arc-swap` snapshots, no lock on the request path)
//! is never older than an acknowledged write, even when writes race.
//!
//! User records are postcard (compact binary serde) because every login
//! and verify decodes one; keys and audit events are JSON. Exports are JSON
//! Lines ([`snapshot`](super::snapshot)) whatever the storage encoding.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, WriteTransaction};

use super::StoreError;
use crate::domain::user::{User, Username};
use crate::store::redb::file::{free_bytes, open_file};
use crate::store::redb::layout::{JTI_TO_EXP, USERNAME_TO_USER, init_schema};

mod file;
mod layout;
mod operations;
mod overlay;
mod secrets;
#[cfg(test)]
mod tests;

use self::file::check_unchanged;
pub use self::file::{FileSummary, MIN_FREE_BYTES, check_data_dir, check_file};
pub use self::layout::SCHEMA_VERSION;

/// redb's page cache. Beyond it, reads come from the OS page cache (not
/// counted in our RSS); 16 MiB holds the upper B-tree levels of a
/// 100k-user table.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
use crate::runtime::data_dir::DB_FILE;
/// What [`RedbStore::in_memory`] calls its location in logs.
const IN_MEMORY: &str = "in memory";

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

impl RedbStore {
    /// Opens (or creates) `<data_dir>/tessera.redb` with mode 0600, checks
    /// the schema version, and makes sure every table exists. Fails at once
    /// when another process has it open, and refuses a damaged file (see
    /// [`check_file`], which runs first) without ever changing it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        crate::runtime::data_dir::prepare(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
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
        if existed {
            // Checked through a read-only view first: a damaged file is
            // refused without a byte of it changing.
            check_unchanged(&path, data_dir)?;
        }
        let db = open_file(&path, data_dir)?;
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
