//! Cluster mode (SPEC §9): the store on PostgreSQL, shared by every node —
//! the only module that speaks SQL. Each node keeps users and revocations in
//! memory (the request path never waits for the database) and catches up
//! with what other nodes committed through LISTEN/NOTIFY plus a check every
//! [`POLL`], so a mutation acknowledged by one node is enforced by the
//! others within a second.
//!
//! How catching up stays exact: every write transaction first takes one
//! cluster-wide advisory lock, then draws a `version` from a sequence and
//! stamps every row it writes (a deleted user leaves a tombstone row). With
//! writers serialised, versions commit in order, so "every row with
//! `version > last seen`" read in one snapshot is exactly what changed. An
//! import bumps a generation counter, and nodes reload everything.
//!
//! The trait's methods block; they run their SQL on this store's own small
//! runtime (tokio-postgres with a deadpool pool), never on the caller's, and
//! give up after [`DB_TIMEOUT`] with [`StoreError::Unavailable`].

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use parking_lot::RwLock;
use tokio::sync::{Notify, watch};
use tokio_postgres::IsolationLevel;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use self::connect::{Target, TlsMode};

mod connect;
mod import;

use super::snapshot::{self, ImportCounts};
use super::{
    Audit, AuditEvent, Changes, Page, SnapshotLines, Store, StoreError, UserChange, UserWrite,
};
use crate::error_chain::with_causes;
use crate::keys::KeyRecord;
use crate::user::{User, Username};

/// The schema version this build reads and writes. Version 2 keys
/// tombstones by (version, username): the deletes of one `apply --prune`
/// share a version.
pub const SCHEMA_VERSION: i64 = 2;
/// How often a node checks for changes when no notification came.
pub const POLL: Duration = Duration::from_millis(250);
/// How long one database call may take before the store reports the
/// database unavailable.
pub const DB_TIMEOUT: Duration = Duration::from_secs(3);
/// The NOTIFY channel.
const CHANNEL: &str = "tessera_changes";
/// The advisory lock every write transaction holds ("TSRA").
const WRITE_LOCK: i64 = 0x5453_5241;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tessera_meta (key text PRIMARY KEY, value bigint NOT NULL);
CREATE SEQUENCE IF NOT EXISTS tessera_version;
CREATE TABLE IF NOT EXISTS tessera_users (
    username text COLLATE "C" PRIMARY KEY, record text NOT NULL, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS tessera_keys (
    kid text COLLATE "C" PRIMARY KEY, record text NOT NULL, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS tessera_revocations (
    jti text COLLATE "C" PRIMARY KEY, exp bigint NOT NULL, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS tessera_tombstones (
    version bigint NOT NULL, username text COLLATE "C" NOT NULL,
    PRIMARY KEY (version, username));
CREATE TABLE IF NOT EXISTS tessera_audit (
    seq bigserial PRIMARY KEY, at bigint NOT NULL, action text NOT NULL,
    target text NOT NULL, detail text NOT NULL);
CREATE INDEX IF NOT EXISTS tessera_users_version ON tessera_users (version);
CREATE INDEX IF NOT EXISTS tessera_revocations_version ON tessera_revocations (version);
"#;

fn backend(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(with_causes(&e))
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.code().is_none() {
        StoreError::Unavailable(with_causes(&e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

fn corrupt(table: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How many users a node keeps decoded in memory (about 35 MB at most).
/// Users are read from the database on first use and kept until another
/// commit changes them: memory stays bounded whatever the user base (a
/// node holding a million users whole would need ~400 MB and a long
/// start), and a partner's second login on a node costs no round trip.
pub const CACHED_USERS: usize = 100_000;

/// What this node holds in memory, and how far it has caught up.
struct Cache {
    /// Users read so far (bounded); a catch-up drops every user another
    /// commit changed, an import drops them all.
    users: quick_cache::sync::Cache<Username, User>,
    /// Bumped by a catch-up before it drops users: a reader that fetched a
    /// user while it ran drops what it cached (it may be older).
    user_epoch: AtomicU64,
    /// How many users the database holds, as of the last catch-up.
    user_count: AtomicU64,
    revoked: RwLock<HashMap<String, u64>>,
    /// The highest row version applied.
    version: AtomicI64,
    /// The import generation the maps were loaded at.
    generation: AtomicI64,
    /// Unix ms of the last successful catch-up (readiness).
    last_ok_ms: AtomicU64,
    /// Ticks when another node's commit changed the keyring.
    keyring: watch::Sender<u64>,
    /// Wakes the catch-up loop (a NOTIFY arrived).
    wake: Notify,
    /// Serialises catch-ups.
    refreshing: tokio::sync::Mutex<()>,
}

/// The store on a PostgreSQL database shared by every node.
pub struct PostgresStore {
    /// How long to answer from memory while the database is unreachable.
    outage_grace: Duration,
    /// The keyring version the last [`Store::keys`] call read: a
    /// replacement computed from it lands only if no other node changed the
    /// keyring since (compare-and-swap across nodes).
    keys_read: Arc<AtomicI64>,
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    cache: Arc<Cache>,
    described: String,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn begin_write(
    client: &mut deadpool_postgres::Object,
) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map_err(pg)?;
    Ok(tx)
}

async fn next_version(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_one("SELECT nextval('tessera_version')", &[])
        .await
        .map_err(pg)?;
    Ok(row.get(0))
}

async fn append_audit(tx: &Transaction<'_>, audit: &Audit) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tessera_audit (at, action, target, detail) VALUES ($1, $2, $3, $4)",
        &[&int(audit.at), &audit.action, &audit.target, &audit.detail],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn commit(tx: Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

async fn put_user(tx: &Transaction<'_>, user: &User, version: i64) -> Result<(), StoreError> {
    let record = serde_json::to_string(user).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let inserted: bool = tx
        .query_one(
            "INSERT INTO tessera_users (username, record, version) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO UPDATE SET record = EXCLUDED.record, version = EXCLUDED.version \
             RETURNING (xmax = 0)",
            &[&user.username.as_str(), &record, &version],
        )
        .await
        .map_err(pg)?
        .get(0);
    if inserted {
        count_users(tx, 1).await?;
    }
    Ok(())
}

/// Moves the user count kept in `tessera_meta` (read by every node's
/// catch-up; counting a million rows instead would take each write tens of
/// milliseconds).
async fn count_users(tx: &Transaction<'_>, by: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE tessera_meta SET value = value + $1 WHERE key = 'user_count'",
        &[&by],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn remove_user(tx: &Transaction<'_>, name: &str, version: i64) -> Result<bool, StoreError> {
    let removed = tx
        .execute("DELETE FROM tessera_users WHERE username = $1", &[&name])
        .await
        .map_err(pg)?;
    if removed > 0 {
        count_users(tx, -1).await?;
        tx.execute(
            "INSERT INTO tessera_tombstones (version, username) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await
        .map_err(pg)?;
    }
    Ok(removed > 0)
}

fn decode_user(name: &str, record: &str) -> Result<User, StoreError> {
    serde_json::from_str(record).map_err(|e| corrupt("users", name, e))
}

/// An audit event from a row of `seq, at, action, target, detail`.
fn audit_row(r: &tokio_postgres::Row) -> AuditEvent {
    AuditEvent {
        seq: uint(r.get(0)),
        at: uint(r.get(1)),
        action: r.get(2),
        target: r.get(3),
        detail: r.get(4),
    }
}

fn decode_key(kid: &str, record: &str) -> Result<KeyRecord, StoreError> {
    serde_json::from_str(record).map_err(|e| corrupt("keys", kid, e))
}

async fn meta(tx: &Transaction<'_>, key: &str) -> Result<i64, StoreError> {
    let row = tx
        .query_opt("SELECT value FROM tessera_meta WHERE key = $1", &[&key])
        .await
        .map_err(pg)?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// A read-only `REPEATABLE READ` transaction: every query in it sees the
/// database as of one moment.
async fn read_snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)
}

/// Brings the cache up to what the database holds: drops the users written
/// since the version last applied (all of them after an import), adds the
/// revocations, and notifies the keyring watchers when keys changed.
/// Answers whether users changed.
async fn catch_up(pool: &Pool, cache: &Cache) -> Result<bool, StoreError> {
    let _one = cache.refreshing.lock().await;
    let mut client = pool.get().await.map_err(backend)?;
    let tx = read_snapshot(&mut client).await?;
    let generation = meta(&tx, "generation").await?;
    let user_count = meta(&tx, "user_count").await?;
    let full = generation != cache.generation.load(Ordering::SeqCst);
    let since = if full {
        0
    } else {
        cache.version.load(Ordering::SeqCst)
    };
    // After an import every user goes: no need to name them, only to know
    // the newest version among them.
    let (users, gone) = if full {
        let newest: i64 = tx
            .query_one(
                "SELECT greatest((SELECT coalesce(max(version), 0) FROM tessera_users), \
                 (SELECT coalesce(max(version), 0) FROM tessera_tombstones))",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        cache.version.fetch_max(newest, Ordering::SeqCst);
        (Vec::new(), Vec::new())
    } else {
        (
            tx.query(
                "SELECT username, version FROM tessera_users WHERE version > $1",
                &[&since],
            )
            .await
            .map_err(pg)?,
            tx.query(
                "SELECT username, version FROM tessera_tombstones WHERE version > $1",
                &[&since],
            )
            .await
            .map_err(pg)?,
        )
    };
    let revocations = tx
        .query(
            "SELECT jti, exp, version FROM tessera_revocations WHERE version > $1",
            &[&since],
        )
        .await
        .map_err(pg)?;
    let keys_version: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM tessera_keys", &[])
        .await
        .map_err(pg)?
        .get(0);
    tx.commit().await.map_err(pg)?;

    let mut top = since.max(keys_version).max(if full {
        cache.version.load(Ordering::SeqCst)
    } else {
        0
    });
    // Forget the users that changed (or everyone, after an import): the
    // next read fetches them again. The epoch moves first, so a read that
    // raced this catch-up drops what it fetched too.
    cache.user_epoch.fetch_add(1, Ordering::SeqCst);
    if full {
        cache.users.clear();
    }
    for row in users.iter().chain(&gone) {
        top = top.max(row.get::<_, i64>(1));
        if let Ok(name) = Username::parse(row.get(0)) {
            cache.users.remove(&name);
        }
    }
    let users_changed = full || !users.is_empty() || !gone.is_empty();
    {
        // Entries another node pruned stay here until this node's own
        // pruner drops them by the same rule (their tokens have expired).
        let mut set = cache.revoked.write();
        if full {
            set.clear();
        }
        for row in &revocations {
            top = top.max(row.get::<_, i64>(2));
            set.insert(row.get(0), uint(row.get(1)));
        }
    }
    let keys_changed = full || keys_version > since;
    cache.version.store(top, Ordering::SeqCst);
    cache.generation.store(generation, Ordering::SeqCst);
    cache.last_ok_ms.store(now_ms(), Ordering::SeqCst);
    if keys_changed {
        cache.keyring.send_modify(|n| *n += 1);
    }
    cache.user_count.store(uint(user_count), Ordering::SeqCst);
    Ok(users_changed)
}

/// Holds a LISTEN connection and wakes the catch-up loop on each NOTIFY;
/// reconnects after a second when the connection drops.
async fn listen(config: tokio_postgres::Config, tls: MakeRustlsConnect, cache: Arc<Cache>) {
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            let driver = tokio::spawn({
                let cache = cache.clone();
                async move {
                    use futures_util::StreamExt;
                    let mut messages = Box::pin(messages);
                    while let Some(Ok(_)) = messages.next().await {
                        cache.wake.notify_one();
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
            {
                // Anything committed while we were not listening.
                cache.wake.notify_one();
                let _ = driver.await;
            } else {
                driver.abort();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Catches up on every notification and at least every [`POLL`].
async fn follow(pool: Pool, cache: Arc<Cache>) {
    loop {
        let _ = tokio::time::timeout(POLL, cache.wake.notified()).await;
        if let Err(e) = tokio::time::timeout(DB_TIMEOUT, catch_up(&pool, &cache))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
        {
            tracing::warn!(error = %e, "could not catch up with the database; serving from memory");
        }
    }
}

impl PostgresStore {
    /// Connects, creates or checks the schema, loads users, revocations
    /// and the version reached, and starts following other nodes' commits.
    pub fn open(url: &str, outage_grace: Duration) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let target = Target::parse(url).map_err(StoreError::Unavailable)?;
        let manager = Manager::from_config(
            target.config.clone(),
            target.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _inside = runtime.enter();
            Pool::builder(manager)
                .max_size(16)
                .wait_timeout(Some(DB_TIMEOUT))
                .create_timeout(Some(DB_TIMEOUT))
                .recycle_timeout(Some(DB_TIMEOUT))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("bad --database URL: {e}")))?
        };
        let (keyring, _) = watch::channel(0);
        let store = Self {
            outage_grace,
            keys_read: Arc::new(AtomicI64::new(-1)),
            runtime: Some(runtime),
            pool,
            cache: Arc::new(Cache {
                users: quick_cache::sync::Cache::new(CACHED_USERS),
                user_epoch: AtomicU64::new(0),
                user_count: AtomicU64::new(0),
                revoked: RwLock::new(HashMap::new()),
                version: AtomicI64::new(0),
                generation: AtomicI64::new(-1),
                last_ok_ms: AtomicU64::new(0),
                keyring,
                wake: Notify::new(),
                refreshing: tokio::sync::Mutex::new(()),
            }),
            described: target.described.clone(),
        };
        let described = store.described.clone();
        store.run(move |pool, _| async move {
            let mut client = pool.get().await.map_err(backend)?;
            let tx = client.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .await
                .map_err(pg)?;
            tx.batch_execute(SCHEMA).await.map_err(pg)?;
            let found = meta(&tx, "schema_version").await?;
            match found {
                0 => {
                    tx.execute(
                        "INSERT INTO tessera_meta (key, value) VALUES ('schema_version', $1), ('generation', 0)",
                        &[&SCHEMA_VERSION],
                    )
                    .await
                    .map_err(pg)?;
                }
                1 => {
                    // Schema 1 keyed tombstones by version alone.
                    tx.batch_execute(
                        "ALTER TABLE tessera_tombstones DROP CONSTRAINT tessera_tombstones_pkey, \
                         ADD PRIMARY KEY (version, username); \
                         UPDATE tessera_meta SET value = 2 WHERE key = 'schema_version';",
                    )
                    .await
                    .map_err(pg)?;
                    tracing::info!("migrated the database from schema 1 to 2 (tombstones keyed by version and name)");
                }
                v if v == SCHEMA_VERSION => {}
                found => {
                    return Err(StoreError::Schema {
                        path: described.into(),
                        found: uint(found),
                        expected: uint(SCHEMA_VERSION),
                    });
                }
            }
            // The user count every catch-up reads (from schema 2 on; set
            // once by counting where an older build left none).
            tx.execute(
                "INSERT INTO tessera_meta (key, value) \
                 SELECT 'user_count', count(*) FROM tessera_users ON CONFLICT (key) DO NOTHING",
                &[],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)
        })?;
        store.run(|pool, cache| async move { catch_up(&pool, &cache).await.map(drop) })?;
        store.keys()?;
        let runtime = store.runtime.as_ref().expect("runtime is set until drop");
        runtime.spawn(listen(target.config, target.tls, store.cache.clone()));
        runtime.spawn(follow(store.pool.clone(), store.cache.clone()));
        Ok(store)
    }

    /// Runs `job` on this store's runtime and waits for it (at most
    /// [`DB_TIMEOUT`] per call).
    fn run<T, F, Fut>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool, Arc<Cache>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("runtime is set until drop");
        let job = job(self.pool.clone(), self.cache.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let result = tokio::time::timeout(DB_TIMEOUT, job)
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer in time".into())));
            let _ = tx.send(result);
        });
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the store's runtime stopped".into()))?
    }

    /// A write transaction: `job` gets the transaction and the version
    /// its rows carry. It commits (with a NOTIFY) unless `job` fails, and
    /// then this node catches up, so its own reads see the write at once.
    fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>, i64) -> WriteJob<'a, T> + Send + 'static,
    {
        self.run(move |pool, cache| async move {
            let mut client = pool.get().await.map_err(backend)?;
            let tx = begin_write(&mut client).await?;
            let version = next_version(&tx).await?;
            let value = job(&tx, version).await?;
            commit(tx).await?;
            drop(client);
            catch_up(&pool, &cache).await?;
            Ok(value)
        })
    }

    /// Runs a read on a pooled connection.
    fn read<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a deadpool_postgres::Object) -> ReadJob<'a, T> + Send + 'static,
    {
        self.run(move |pool, _| async move {
            let client = pool.get().await.map_err(backend)?;
            job(&client).await
        })
    }
}

/// The future of a [`PostgresStore::write`] job.
type WriteJob<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;
/// The future of a [`PostgresStore::read`] job.
type ReadJob<'a, T> = WriteJob<'a, T>;

fn encode(user: &User) -> Result<String, StoreError> {
    serde_json::to_string(user).map_err(|e| StoreError::Backend(Box::new(e)))
}

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
        super::keyring_order(&mut keys);
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

    fn prune_audit(&self, before: u64) -> Result<u64, StoreError> {
        self.write(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM tessera_audit WHERE at < $1 \
                     AND seq < (SELECT max(seq) FROM tessera_audit)",
                    &[&int(before)],
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
            for r in tx
                .query("SELECT username, record FROM tessera_users ORDER BY username", &[])
                .await
                .map_err(pg)?
            {
                let name: String = r.get(0);
                let user = decode_user(&name, r.get(1))?;
                if super::last_changed(&user) >= horizon {
                    out.users.push((name, Some(user), 0));
                }
            }
            for r in tx
                .query(
                    "SELECT a.target, max(a.at) FROM tessera_audit a \
                     WHERE a.action = 'user.delete' AND a.at >= $1 \
                     AND NOT EXISTS (SELECT 1 FROM tessera_users u WHERE u.username = a.target) \
                     GROUP BY a.target ORDER BY a.target",
                    &[&int(horizon)],
                )
                .await
                .map_err(pg)?
            {
                out.users.push((r.get(0), None, uint(r.get(1))));
            }
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

fn encode_keys(records: &[KeyRecord]) -> Result<Vec<(String, String)>, StoreError> {
    records
        .iter()
        .map(|k| {
            serde_json::to_string(k)
                .map(|r| (k.kid.clone(), r))
                .map_err(|e| StoreError::Backend(Box::new(e)))
        })
        .collect()
}

async fn insert_keys(
    tx: &Transaction<'_>,
    keys: &[(String, String)],
    version: i64,
) -> Result<(), StoreError> {
    for (kid, record) in keys {
        tx.execute(
            "INSERT INTO tessera_keys (kid, record, version) VALUES ($1, $2, $3)",
            &[kid, record, &version],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::store_contract_tests;

    /// One throwaway PostgreSQL per test process (`scripts/pg.sh`, stopped
    /// when this process exits), one fresh database per test.
    fn server() -> &'static str {
        static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        URL.get_or_init(|| {
            let dir = format!("/tmp/tessera-pg-unit-{}", std::process::id());
            let out = std::process::Command::new("bash")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
                .args(["start", &dir, &std::process::id().to_string()])
                .output()
                .expect("run scripts/pg.sh");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
    }

    pub(crate) fn fresh_database() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let url = server();
        let name = format!("contract_{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        });
        format!("{}/{name}", url.rsplit_once('/').unwrap().0)
    }

    store_contract_tests!(|| {
        let store: Box<dyn Store> =
            Box::new(PostgresStore::open(&fresh_database(), Duration::from_secs(300)).unwrap());
        ((), store)
    });

    #[test]
    fn a_newer_schema_is_refused_with_the_fix_named() {
        let url = fresh_database();
        drop(PostgresStore::open(&url, Duration::from_secs(300)).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute("UPDATE tessera_meta SET value = 99 WHERE key = 'schema_version'")
                .await
                .unwrap();
        });
        let err = PostgresStore::open(&url, Duration::from_secs(300))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("schema version 99") && err.contains("run a matching tessera build"),
            "{err}"
        );
    }

    #[test]
    fn another_node_sees_a_commit_within_a_second() {
        let url = fresh_database();
        let a = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
        let b = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
        let user = crate::store::contract::user("shared");
        assert!(
            a.create_user(
                &user,
                crate::store::contract::audit("user.create", "shared")
            )
            .unwrap()
        );
        let started = std::time::Instant::now();
        while b.user(&user.username).unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "node b never saw the user"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        a.revoke(
            "j9",
            u64::MAX / 4,
            crate::store::contract::audit("token.revoke", "j9"),
        )
        .unwrap();
        a.delete_user(
            &user.username,
            crate::store::contract::audit("user.delete", "shared"),
        )
        .unwrap();
        let started = std::time::Instant::now();
        while b.user(&user.username).unwrap().is_some() || !b.is_revoked("j9") {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "node b never saw the delete"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn concurrent_first_starts_share_one_keyring() {
        let url = fresh_database();
        let a = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
        let b = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
        let ka = crate::keys::initial_records(1).unwrap();
        let kb = crate::keys::initial_records(1).unwrap();
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| a.init_keys(&ka).unwrap());
            let hb = s.spawn(|| b.init_keys(&kb).unwrap());
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let kids = |r: &[KeyRecord]| r.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        assert_eq!(kids(&ra), kids(&rb));
    }

    #[test]
    fn a_schema_1_database_is_migrated_and_then_prunes_many_users() {
        let url = fresh_database();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            // What schema 1 created: tombstones keyed by version alone.
            let schema_1 = SCHEMA.replace(
                "version bigint NOT NULL, username text COLLATE \"C\" NOT NULL,\n    PRIMARY KEY (version, username)",
                "version bigint PRIMARY KEY, username text NOT NULL",
            );
            assert_ne!(schema_1, SCHEMA);
            client.batch_execute(&schema_1).await.unwrap();
            client
                .batch_execute("INSERT INTO tessera_meta VALUES ('schema_version', 1), ('generation', 0)")
                .await
                .unwrap();
        });
        let store = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
        crate::store::contract::a_batch_deletes_any_number_of_users(&store);
    }

    /// More users than the per-call timeout allowed row by row (50,000 took
    /// over 3 s and answered 503): the import streams them with COPY.
    #[test]
    fn an_import_of_fifty_thousand_users_streams_through() {
        use std::fmt::Write as _;
        let url = fresh_database();
        let store = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
        crate::store::contract::populate(&store, &[]);
        let mut out = Vec::new();
        store.export(&mut out, 5).unwrap();
        let template = String::from_utf8(out).unwrap();
        let one = serde_json::to_value(crate::store::contract::user("x")).unwrap();
        let mut text = String::new();
        let mut keys = 0;
        for line in template.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match v["type"].as_str() {
                Some("header") => writeln!(text, "{line}").unwrap(),
                Some("key") => {
                    keys += 1;
                    writeln!(text, "{line}").unwrap();
                }
                _ => {}
            }
        }
        const N: usize = 50_000;
        for i in 0..N {
            let mut user = one.clone();
            user["username"] = format!("bulk{i:05}").into();
            writeln!(
                text,
                "{}",
                serde_json::json!({"type": "user", "user": user})
            )
            .unwrap();
        }
        writeln!(
            text,
            "{}",
            serde_json::json!({"type": "end", "users": N, "keys": keys, "revocations": 0})
        )
        .unwrap();
        let counts = store
            .import(
                &mut text
                    .as_bytes()
                    .split(|&b| b == b'\n')
                    .map(|l| Ok(l.to_vec())),
                &|_| crate::store::contract::audit("store.import", "-"),
            )
            .unwrap();
        assert_eq!(counts.users, N as u64);
        assert_eq!(store.user_count().unwrap(), N as u64);
        let last = Username::parse(&format!("bulk{:05}", N - 1)).unwrap();
        assert!(store.user(&last).unwrap().is_some());
        // Another node sees them too, without loading them all.
        let other = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
        assert_eq!(other.user_count().unwrap(), N as u64);
        assert!(other.user(&last).unwrap().is_some());
    }

    #[test]
    fn a_keyring_change_computed_from_a_stale_read_is_refused() {
        let url = fresh_database();
        let a = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
        let b = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
        a.init_keys(&crate::keys::initial_records(1).unwrap())
            .unwrap();
        let seen_by_a = a.keys().unwrap();
        let seen_by_b = b.keys().unwrap();
        b.replace_keys(&seen_by_b, None).unwrap();
        let err = a.replace_keys(&seen_by_a, None).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(err.to_string().contains("changed on another node"), "{err}");
        a.keys().unwrap();
        a.replace_keys(&seen_by_a, None).unwrap();
    }
}

/// TLS to PostgreSQL (`sslmode`, `sslrootcert`) against a real server with
/// `ssl=on` and a CA these tests make with openssl.
#[cfg(test)]
mod tls_tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::*;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA, and a server certificate it signed for `localhost` only (no
    /// IP address in it), in `dir`.
    fn make_ca(dir: &Path) {
        let tools = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/ensure-tools.sh"
            ))
            .arg("openssl=openssl")
            .status()
            .unwrap();
        assert!(tools.success());
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!(
                    "/CN=tessera test CA {}",
                    dir.file_name().unwrap().to_string_lossy()
                ),
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
    }

    /// A PostgreSQL with `ssl=on` (certificate for `localhost`), its port,
    /// and the CA's path.
    fn tls_server() -> &'static (u16, PathBuf) {
        static SERVER: std::sync::OnceLock<(u16, PathBuf)> = std::sync::OnceLock::new();
        SERVER.get_or_init(|| {
            let pki = PathBuf::from(format!("/tmp/tessera-pg-tls-pki-{}", std::process::id()));
            std::fs::create_dir_all(&pki).unwrap();
            make_ca(&pki);
            let dir = format!("/tmp/tessera-pg-tls-{}", std::process::id());
            let out = Command::new("bash")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
                .args(["start", &dir, &std::process::id().to_string()])
                .env("PG_SSL_DIR", &pki)
                .output()
                .expect("run scripts/pg.sh");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let url = String::from_utf8(out.stdout).unwrap();
            let port = url
                .trim()
                .rsplit_once(':')
                .unwrap()
                .1
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (port, pki.join("ca.crt"))
        })
    }

    /// Connects with `url` through [`Target`] and asks the server whether
    /// this connection is encrypted.
    fn encrypted(url: &str) -> Result<bool, String> {
        let target = Target::parse(url)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = target
                .config
                .connect(target.tls)
                .await
                .map_err(|e| with_causes(&e))?;
            tokio::spawn(conn);
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.get(0))
        })
    }

    #[test]
    fn verify_full_connects_over_tls_to_the_name_in_the_certificate() {
        let (port, ca) = tls_server();
        let url = format!(
            "postgres://tessera@localhost:{port}/tessera?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        assert_eq!(encrypted(&url), Ok(true));
        // The whole store (its pool and its LISTEN connection) too.
        let store = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
        assert!(
            store.describe().ends_with("sslmode=verify-full"),
            "{}",
            store.describe()
        );
        store
            .init_keys(&crate::keys::initial_records(1).unwrap())
            .unwrap();
    }

    #[test]
    fn verify_full_refuses_a_host_the_certificate_does_not_name() {
        let (port, ca) = tls_server();
        let url = format!(
            "postgres://tessera@127.0.0.1:{port}/tessera?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        let err = encrypted(&url).unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
        let err = PostgresStore::open(&url, Duration::from_secs(60))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not valid for name"), "{err}");
        // verify-ca checks the chain only: the same address is fine.
        let url = url.replace("verify-full", "verify-ca");
        assert_eq!(encrypted(&url), Ok(true));
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let (port, _) = tls_server();
        let other = PathBuf::from(format!("/tmp/tessera-pg-tls-other-{}", std::process::id()));
        std::fs::create_dir_all(&other).unwrap();
        make_ca(&other);
        let url = format!(
            "postgres://tessera@localhost:{port}/tessera?sslmode=verify-ca&sslrootcert={}",
            other.join("ca.crt").display()
        );
        let err = encrypted(&url).unwrap_err();
        assert!(
            err.contains("invalid peer certificate: UnknownIssuer"),
            "{err}"
        );
        // `require` without a CA encrypts without checking, as libpq does.
        let url = format!("postgres://tessera@localhost:{port}/tessera?sslmode=require");
        assert_eq!(encrypted(&url), Ok(true));
        let url = format!("postgres://tessera@localhost:{port}/tessera?sslmode=disable");
        assert_eq!(encrypted(&url), Ok(false));
    }

    #[test]
    fn require_refuses_a_server_without_tls() {
        let plain = super::tests::fresh_database();
        let err = encrypted(&format!("{plain}?sslmode=require")).unwrap_err();
        assert!(err.contains("TLS"), "{err}");
        // prefer (the default) falls back to plain TCP.
        assert_eq!(encrypted(&plain), Ok(false));
    }
}
