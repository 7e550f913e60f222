//! The export format — JSON Lines: a header naming the format and version,
//! one line per user (with its password hash), key (with its private seed)
//! and revocation, and an end line with the counts — and every check an
//! import makes before anything is stored (SPEC §5 "Import checks all it
//! stores"). Shared by every storage backend: a backend writes what
//! [`Reader`] hands it and refuses only what needs the whole table to see
//! (a username or `jti` twice, via [`BadSnapshot::twice`]).
//!
//! Imports are read as a stream of chunks ([`Lines`]), one line at a time,
//! so a snapshot is never held whole in memory.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::SnapshotLines;
use crate::domain::keys::{self, KeyRecord};
use crate::domain::user::User;
use crate::runtime::time;

/// The first line of an export names this format.
pub const EXPORT_FORMAT: &str = "tessera-export";
/// The export format version this build writes and reads.
pub const EXPORT_VERSION: u64 = 1;
/// The longest line an import accepts (a user line is at most a few KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Header {
        format: String,
        version: u64,
        exported_at: String,
    },
    User {
        user: Box<User>,
    },
    Key {
        key: KeyRecord,
    },
    Revocation {
        jti: String,
        exp: u64,
    },
    /// The last line: its counts let an import detect a truncated snapshot.
    End {
        users: u64,
        keys: u64,
        revocations: u64,
    },
}

/// A record of a snapshot, checked and ready to store.
#[derive(Debug)]
pub enum Item {
    /// A user with its hashes (boxed: a user is several times the size
    /// of the other records).
    User(Box<User>),
    /// A signing key with its seed.
    Key(KeyRecord),
    /// A revoked token id and the expiry after which it can be forgotten.
    Revocation {
        /// The token id.
        jti: String,
        /// Unix seconds.
        exp: u64,
    },
}

/// Counts of what a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    /// Users.
    pub users: u64,
    /// Keys.
    pub keys: u64,
    /// Revocations.
    pub revocations: u64,
}

/// Why a snapshot was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("import line {line}: {reason}")]
pub struct BadSnapshot {
    /// 1-based line number (0: the snapshot as a whole).
    pub line: usize,
    /// What is wrong, and where useful what to do.
    pub reason: String,
}

impl BadSnapshot {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        Self {
            line,
            reason: reason.into(),
        }
    }

    /// A username or `jti` that a backend found stored twice.
    pub fn twice(line: usize, what: &str, name: &str) -> Self {
        Self::new(line, format!("{what} {name} appears twice"))
    }
}

/// What an accepted snapshot held, once its last line was read.
#[derive(Debug)]
pub struct Summary {
    /// The counts (equal to the end line's).
    pub counts: ImportCounts,
    /// The longest per-user token TTL, for key retention.
    pub max_ttl_secs: u64,
    /// The highest account generation of any user: generations drawn
    /// after the import must pass it.
    pub max_generation: u64,
}

/// Reads a snapshot line by line, checking each as it comes.
#[derive(Debug, Default)]
pub struct Reader {
    line: usize,
    saw_header: bool,
    end: Option<ImportCounts>,
    counts: ImportCounts,
    keys: Vec<KeyRecord>,
    max_ttl_secs: u64,
    max_generation: u64,
}

impl Reader {
    /// A reader before the first line.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of the line read last (1-based).
    pub fn line_number(&self) -> usize {
        self.line
    }

    /// Reads the next line (without its newline). `Some` is a record to
    /// store; `None` a line that stores nothing (header, end, blank).
    pub fn read(&mut self, raw: &[u8]) -> Result<Option<Item>, BadSnapshot> {
        self.line += 1;
        let n = self.line;
        let bad = |reason: String| BadSnapshot::new(n, reason);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let parsed: Line =
            serde_json::from_slice(raw).map_err(|e| bad(without_secrets(&e.to_string())))?;
        if let Line::Header {
            format, version, ..
        } = &parsed
        {
            if self.saw_header || n != 1 {
                return Err(bad("the header must be the first line, once".into()));
            }
            if format != EXPORT_FORMAT || *version != EXPORT_VERSION {
                return Err(bad(format!(
                    "format {format:?} version {version}; this build reads {EXPORT_FORMAT:?} version {EXPORT_VERSION}"
                )));
            }
            self.saw_header = true;
            return Ok(None);
        }
        if !self.saw_header {
            return Err(bad("the first line must be the export header".into()));
        }
        if self.end.is_some() {
            return Err(bad("nothing may follow the end line".into()));
        }
        match parsed {
            Line::Header { .. } => Ok(None),
            Line::End {
                users,
                keys,
                revocations,
            } => {
                self.end = Some(ImportCounts {
                    users,
                    keys,
                    revocations,
                });
                Ok(None)
            }
            Line::User { mut user } => {
                // An export from before secrets had ids dates its secret.
                user.adopt_legacy_secret();
                check_user(&user).map_err(bad)?;
                self.counts.users += 1;
                self.max_ttl_secs = self.max_ttl_secs.max(user.token_ttl_secs.unwrap_or(0));
                self.max_generation = self.max_generation.max(user.generation);
                Ok(Some(Item::User(user)))
            }
            Line::Key { key } => {
                check_key(&key).map_err(bad)?;
                if self.keys.iter().any(|k| k.kid == key.kid) {
                    return Err(bad(format!("key {} appears twice", key.kid)));
                }
                self.counts.keys += 1;
                self.keys.push(key.clone());
                Ok(Some(Item::Key(key)))
            }
            Line::Revocation { jti, exp } => {
                check_revocation(&jti, exp).map_err(|e| bad(format!("revocation {jti:?}: {e}")))?;
                self.counts.revocations += 1;
                Ok(Some(Item::Revocation { jti, exp }))
            }
        }
    }

    /// After the last line: the header and end line were there, the counts
    /// match, and the keys form a keyring that starts.
    pub fn finish(self) -> Result<Summary, BadSnapshot> {
        if !self.saw_header {
            return Err(BadSnapshot::new(1, "empty snapshot: no export header"));
        }
        let Some(end) = self.end else {
            return Err(BadSnapshot::new(
                0,
                "truncated snapshot: no end line; export again",
            ));
        };
        let c = self.counts;
        if end != c {
            return Err(BadSnapshot::new(
                0,
                format!(
                    "the end line counts {} users, {} keys, {} revocations but the snapshot holds {}, {}, {}",
                    end.users, end.keys, end.revocations, c.users, c.keys, c.revocations
                ),
            ));
        }
        keys::validate_records(&self.keys).map_err(|e| BadSnapshot::new(0, e))?;
        Ok(Summary {
            counts: c,
            max_ttl_secs: self.max_ttl_secs,
            max_generation: self.max_generation,
        })
    }
}

/// The import loop both stores share: reads and checks every line of
/// `lines`, hands each record to `store` with its line number (a backend
/// refuses a duplicate with [`BadSnapshot::twice`] at that line), and checks
/// the end line. A broken upload or a bad line stops it with the line's
/// number; the caller's transaction then commits nothing.
pub fn read_all<E: From<BadSnapshot>>(
    lines: SnapshotLines<'_>,
    mut store: impl FnMut(usize, Item) -> Result<(), E>,
) -> Result<Summary, E> {
    let mut reader = Reader::new();
    for line in lines {
        let line = line.map_err(|reason| BadSnapshot::new(reader.line_number() + 1, reason))?;
        if let Some(item) = reader.read(&line)? {
            store(reader.line_number(), item)?;
        }
    }
    Ok(reader.finish()?)
}

/// Writes an export: [`Writer::header`], the records, then
/// [`Writer::end`] with the counts.
pub struct Writer<W> {
    out: W,
    counts: ImportCounts,
}

impl<W: Write> Writer<W> {
    /// Starts an export taken at `now`.
    pub fn header(out: W, now: u64) -> std::io::Result<Self> {
        let mut w = Self {
            out,
            counts: ImportCounts::default(),
        };
        w.line(&Line::Header {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            exported_at: time::rfc3339(now),
        })?;
        Ok(w)
    }

    fn line(&mut self, line: &Line) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")
    }

    /// One user.
    pub fn user(&mut self, user: User) -> std::io::Result<()> {
        self.counts.users += 1;
        self.line(&Line::User {
            user: Box::new(user),
        })
    }

    /// One key.
    pub fn key(&mut self, key: KeyRecord) -> std::io::Result<()> {
        self.counts.keys += 1;
        self.line(&Line::Key { key })
    }

    /// One revocation.
    pub fn revocation(&mut self, jti: String, exp: u64) -> std::io::Result<()> {
        self.counts.revocations += 1;
        self.line(&Line::Revocation { jti, exp })
    }

    /// The end line; flushes.
    pub fn end(mut self) -> std::io::Result<ImportCounts> {
        let c = self.counts;
        self.line(&Line::End {
            users: c.users,
            keys: c.keys,
            revocations: c.revocations,
        })?;
        self.out.flush()?;
        Ok(c)
    }
}

mod checks;
mod lines;

pub use self::checks::check_revocation;
use self::checks::{check_key, check_user};
pub use self::lines::Lines;
use crate::runtime::redact::without_secrets;

#[cfg(test)]
mod tests;
