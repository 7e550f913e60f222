//! The file on disk and its failures: opening it without letting a damaged
//! one panic the process, telling a full disk apart from other I/O errors
//! (redb refuses every call after either until reopened), the free-space
//! check before each write, and `tessera check`'s full read.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable};

use super::overlay::ReadOnlyOverlay;
use crate::domain::keys::KeyRecord;
use crate::runtime::data_dir::DB_FILE;
use crate::store::redb::CACHE_BYTES;
use crate::store::redb::layout::{
    JTI_TO_EXP, KID_TO_KEY, META, SCHEMA_KEY, SCHEMA_VERSION, SEQ_TO_AUDIT, USERNAME_TO_USER,
    corrupt, decode_user_of,
};
use crate::store::{AuditEvent, StoreError};

/// An engine error as a store error: a full disk and other I/O failures
/// are told apart from the rest, because after them redb refuses every
/// call until the database is reopened.
pub(super) fn from_redb_error(e: redb::Error) -> StoreError {
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

/// Free space below which writes are refused before redb is asked: a
/// commit of one admin change needs far less, and refusing early keeps redb
/// from ever meeting a full disk mid-commit (after which it refuses reads
/// too, until reopened).
pub const MIN_FREE_BYTES: u64 = 4 << 20;

/// Bytes available to this process on `dir`'s file system; None when the
/// file system can not say.
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Opens the file with the engine, mapping "held by another process" and
/// "not a database / damaged" to errors that say what to do.
pub(super) fn open_file(path: &Path, data_dir: &Path) -> Result<Database, StoreError> {
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

/// Whether an I/O error means the file system is out of space or quota.
pub(super) fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(28 /* ENOSPC */ | 122 /* EDQUOT */))
}

/// Runs `f`, catching a panic of the engine (redb's read paths can panic
/// on pages that fail no check) without printing it: the caller turns it
/// into [`StoreError::Damaged`], and the process stops instead of serving.
/// Only used while the store opens, before anything else runs.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result
}

pub(super) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
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

/// `tessera check`: checks `<data_dir>/tessera.redb` without creating or
/// changing anything ([`check_unchanged`]).
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
    check_unchanged(&path, data_dir)
}

/// Runs [`check_file`] on the file at `path` seen through a
/// [`ReadOnlyOverlay`]: whatever the engine writes while it checks (and
/// while it recovers after an unclean stop) stays in memory, so the file is
/// never changed, damaged or not. A file another process has open is
/// refused as [`StoreError::InUse`] first (its pages may be mid-write).
pub(super) fn check_unchanged(path: &Path, data_dir: &Path) -> Result<FileSummary, StoreError> {
    if let Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) =
        quietly(|| Database::builder().open_read_only(path))
    {
        return Err(StoreError::InUse(data_dir.to_owned()));
    }
    let damaged = |reason: String| StoreError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let view = ReadOnlyOverlay::open(path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })?;
    let opened = quietly(|| {
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(view)
    });
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(damaged(e.to_string())),
        Err(panic) => {
            return Err(damaged(format!(
                "the engine failed reading it ({})",
                panic_text(&panic)
            )));
        }
    };
    check_file(db, path).map(|(_, summary)| summary)
}

/// Reads every record of every table, decoding each.
pub(super) fn decode_everything(db: &Database) -> Result<FileSummary, StoreError> {
    let tx = db.begin_read()?;
    let mut summary = FileSummary::default();
    let schema = match tx.open_table(META) {
        Ok(meta) => meta.get(SCHEMA_KEY)?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(schema) = schema.filter(|v| matches!(v, 2..=5) || *v == SCHEMA_VERSION) else {
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
