//! [`Store::import`](crate::store::Store::import) on PostgreSQL: the
//! snapshot streamed into one transaction with binary `COPY`, so a million
//! users take seconds and memory stays bounded. This thread reads and
//! checks the lines and hands users over in batches of [`BATCH`] through a
//! channel holding at most [`IN_FLIGHT`] of them; the store's runtime
//! copies them in. Only user names (to refuse one given twice, with its
//! line) and the few keys and revocations are held whole. A bad line rolls
//! the transaction back: the database is left as it was.
//!
//! Bulk work has no overall time limit (the other calls' [`DB_TIMEOUT`]
//! would stop a large import); each batch must be taken within
//! [`BATCH_TIMEOUT`].
//!
//! [`DB_TIMEOUT`]: super::DB_TIMEOUT

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::PostgresStore;
use super::replica::{Cache, catch_up};
use super::sql::{
    append_audit, backend, begin_write, commit, encode, encode_keys, insert_keys, int,
    next_version, pg,
};
use crate::domain::user::Username;
use crate::store::snapshot::{self, BadSnapshot, ImportCounts, Item};
use crate::store::{Action, Audit, ImportChange, SnapshotLines, StoreError};

/// Users per batch handed to the copying task.
pub const BATCH: usize = 2_000;
/// Batches in flight between the reader and the copying task.
pub const IN_FLIGHT: usize = 4;
/// How long the database may take to accept one batch, and the reader to
/// produce the next.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the reader hands the copying task.
enum Feed {
    /// Users as (name, record).
    Users(Vec<(String, String)>),
    /// The snapshot was read whole and is valid: the rest, then commit.
    Done(Tail),
}

/// What is written after the users.
struct Tail {
    keys: Vec<(String, String)>,
    revocations: Vec<(String, i64)>,
    max_generation: i64,
    max_ttl: i64,
    users: i64,
    audit: Audit,
}

/// Why reading stopped early.
enum Stopped {
    /// The snapshot is not valid (or could not be encoded).
    Bad(StoreError),
    /// The copying task is gone: its own error says why.
    CopyGone,
}

impl From<BadSnapshot> for Stopped {
    fn from(e: BadSnapshot) -> Self {
        Self::Bad(e.into())
    }
}

impl PostgresStore {
    /// Reads `lines` on this thread while the store's runtime copies them
    /// into one transaction; commits only when every line was valid.
    pub(super) fn import_streamed(
        &self,
        lines: SnapshotLines<'_>,
        audit: &dyn Fn(ImportCounts) -> Audit,
    ) -> Result<ImportCounts, StoreError> {
        let (feed, batches) = mpsc::channel(IN_FLIGHT);
        let (finished, outcome) = std::sync::mpsc::sync_channel(1);
        let (pool, cache) = (self.pool.clone(), self.cache.clone());
        self.runtime
            .as_ref()
            .expect("runtime is set until drop")
            .spawn(async move {
                let _ = finished.send(copy_in(&pool, &cache, batches).await);
            });
        let read = read_all(lines, audit, &feed).and_then(|(counts, tail)| {
            feed.blocking_send(Feed::Done(tail))
                .map(|()| counts)
                .map_err(|_| Stopped::CopyGone)
        });
        // Closing the channel without `Done` rolls the copy back.
        drop(feed);
        let copied = outcome.recv().unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the store's runtime stopped".into(),
            ))
        });
        match read {
            Err(Stopped::Bad(e)) => Err(e),
            Err(Stopped::CopyGone) => Err(copied
                .err()
                .unwrap_or_else(|| StoreError::Unavailable("the import was not committed".into()))),
            Ok(counts) => copied.map(|()| counts),
        }
    }
}

/// Reads and checks every line, sending users on in batches; answers the
/// counts and what is written after the users.
fn read_all(
    lines: SnapshotLines<'_>,
    audit: &dyn Fn(ImportCounts) -> Audit,
    feed: &mpsc::Sender<Feed>,
) -> Result<(ImportCounts, Tail), Stopped> {
    let bad = |e: StoreError| Stopped::Bad(e);
    let (mut keys, mut revocations) = (Vec::new(), Vec::new());
    let mut names: HashSet<Username> = HashSet::new();
    let mut jtis = HashSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    let summary = snapshot::read_all(lines, |n, item| -> Result<(), Stopped> {
        match item {
            Item::User(u) => {
                if !names.insert(u.username.clone()) {
                    return Err(BadSnapshot::twice(n, "user", u.username.as_str()).into());
                }
                batch.push((u.username.to_string(), encode(&u).map_err(bad)?));
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    feed.blocking_send(Feed::Users(full))
                        .map_err(|_| Stopped::CopyGone)?;
                }
            }
            Item::Key(k) => keys.push(k),
            Item::Revocation { jti, exp } => {
                if !jtis.insert(jti.clone()) {
                    return Err(BadSnapshot::twice(n, "jti", &jti).into());
                }
                revocations.push((jti, int(exp)));
            }
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        feed.blocking_send(Feed::Users(batch))
            .map_err(|_| Stopped::CopyGone)?;
    }
    let tail = Tail {
        keys: encode_keys(&keys).map_err(bad)?,
        revocations,
        max_generation: int(summary.max_generation),
        max_ttl: int(summary.max_ttl_secs),
        users: int(summary.counts.users),
        audit: audit(summary.counts),
    };
    Ok((summary.counts, tail))
}

/// Awaits the next batch, within [`BATCH_TIMEOUT`].
async fn next(batches: &mut mpsc::Receiver<Feed>) -> Result<Feed, StoreError> {
    match tokio::time::timeout(BATCH_TIMEOUT, batches.recv()).await {
        Ok(Some(feed)) => Ok(feed),
        // The reader stopped at a bad line (its error is the answer).
        Ok(None) => Err(StoreError::Unavailable("the import was abandoned".into())),
        Err(_) => Err(StoreError::Unavailable(
            "the snapshot stopped arriving; nothing was imported".into(),
        )),
    }
}

/// One transaction: empty the tables, copy the users in as they come,
/// then the keys, revocations and counters, and commit once the reader
/// says the snapshot was valid. Then this node catches up.
async fn copy_in(
    pool: &Pool,
    cache: &Cache,
    mut batches: mpsc::Receiver<Feed>,
) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(backend)?;
    let tx = begin_write(&mut client).await?;
    let version = next_version(&tx).await?;
    // The users as they were, to record what the import changes or
    // removes as a change (the feed names those users).
    tx.batch_execute(
        "CREATE TEMP TABLE tessera_import_before ON COMMIT DROP AS \
         SELECT username, record FROM tessera_users; \
         DELETE FROM tessera_users; DELETE FROM tessera_keys; \
         DELETE FROM tessera_revocations; DELETE FROM tessera_tombstones;",
    )
    .await
    .map_err(pg)?;
    let sink = tx
        .copy_in("COPY tessera_users (username, record, version) FROM STDIN BINARY")
        .await
        .map_err(pg)?;
    let users = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::INT8]);
    let mut users = std::pin::pin!(users);
    let tail = loop {
        match next(&mut batches).await? {
            Feed::Users(rows) => {
                for (name, record) in &rows {
                    let row: [&(dyn ToSql + Sync); 3] = [name, record, &version];
                    tokio::time::timeout(BATCH_TIMEOUT, users.as_mut().write(&row))
                        .await
                        .map_err(|_| {
                            StoreError::Unavailable("the database stopped taking the import".into())
                        })?
                        .map_err(pg)?;
                }
            }
            Feed::Done(tail) => break tail,
        }
    };
    users.as_mut().finish().await.map_err(pg)?;
    let sink = tx
        .copy_in("COPY tessera_revocations (jti, exp, version) FROM STDIN BINARY")
        .await
        .map_err(pg)?;
    let revoked = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8, Type::INT8]);
    let mut revoked = std::pin::pin!(revoked);
    for (jti, exp) in &tail.revocations {
        let row: [&(dyn ToSql + Sync); 3] = [jti, exp, &version];
        revoked.as_mut().write(&row).await.map_err(pg)?;
    }
    revoked.as_mut().finish().await.map_err(pg)?;
    insert_keys(&tx, &tail.keys, version).await?;
    // Generations drawn later must pass every imported one.
    tx.execute(
        "SELECT setval('tessera_version', greatest(last_value, $1)) FROM tessera_version",
        &[&tail.max_generation],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "INSERT INTO tessera_meta (key, value) VALUES ('ttl_high_water', $1) \
         ON CONFLICT (key) DO UPDATE SET value = greatest(tessera_meta.value, EXCLUDED.value)",
        &[&tail.max_ttl],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE tessera_meta SET value = value + 1 WHERE key = 'generation'",
        &[],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE tessera_meta SET value = $1 WHERE key = 'user_count'",
        &[&tail.users],
    )
    .await
    .map_err(pg)?;
    // Each changed user, then each removed one, by name: as the embedded
    // store records them ([`ImportChange::events`]).
    tx.execute(
        "INSERT INTO tessera_audit (at, action, target, detail) \
         SELECT $1, $2, o.username, CASE WHEN n.username IS NULL THEN $4 ELSE $3 END \
         FROM tessera_import_before o LEFT JOIN tessera_users n USING (username) \
         WHERE n.username IS NULL OR n.record <> o.record \
         ORDER BY n.username IS NULL, o.username",
        &[
            &int(tail.audit.at),
            &Action::UserImport.as_str(),
            &ImportChange::Changed.as_str(),
            &ImportChange::Removed.as_str(),
        ],
    )
    .await
    .map_err(pg)?;
    append_audit(&tx, &tail.audit).await?;
    commit(tx).await?;
    drop(client);
    catch_up(pool, cache).await?;
    Ok(())
}
