//! Cluster mode (SPEC §9): the store on PostgreSQL, shared by every node —
//! the only module that speaks SQL. Each node keeps every revocation and a
//! bounded cache of the users it has read in memory (a known partner's
//! login never waits for the database) and catches up with what other
//! nodes committed through LISTEN/NOTIFY plus a check every [`POLL`]
//! ([`replica`]), so a mutation acknowledged by one node is enforced by
//! the others within a second.
//!
//! How catching up stays exact: every write transaction first takes one
//! cluster-wide advisory lock, then draws a `version` from a sequence and
//! stamps every row it writes (a deleted user leaves a tombstone row). With
//! writers serialised, versions commit in order, so "every row with
//! `version > last seen`" read in one snapshot is exactly what changed. An
//! import bumps a generation counter, and nodes reload everything.
//!
//! Files: [`sql`] (schema, write-transaction steps, encodings),
//! [`replica`] (the node's memory and catch-up), [`operations`] (the
//! [`Store`] methods), [`import`] (streamed import), [`connect`] (URL and
//! TLS).
//!
//! The trait's methods block; they run their SQL on this store's own small
//! runtime (tokio-postgres with a deadpool pool), never on the caller's, and
//! give up after [`DB_TIMEOUT`] with [`StoreError::Unavailable`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use parking_lot::RwLock;
use tokio::sync::{Notify, watch};

pub use self::connect::{Target, TlsMode};
pub use self::replica::CACHED_USERS;
pub use self::sql::SCHEMA;
use crate::store::postgres::replica::{Cache, catch_up, follow, listen};
use crate::store::postgres::sql::{backend, begin_write, commit, meta, next_version, pg, uint};

mod connect;
mod import;
mod operations;
mod replica;
mod secrets;
mod sql;

use super::{Store, StoreError};

/// The schema version this build reads and writes. Version 2 keys
/// tombstones by (version, username): the deletes of one `apply --prune`
/// share a version; version 3 records secrets with ids and a previous
/// secret (an older build would refuse such records), indexed by its
/// expiry in the generated column `secret_expires_at`.
pub const SCHEMA_VERSION: i64 = 3;
/// How often a node checks for changes when no notification came.
pub const POLL: Duration = Duration::from_millis(250);
/// How long one database call may take before the store reports the
/// database unavailable.
pub const DB_TIMEOUT: Duration = Duration::from_secs(3);
/// The NOTIFY channel.
const CHANNEL: &str = "tessera_changes";
/// The advisory lock every write transaction holds ("TSRA").
const WRITE_LOCK: i64 = 0x5453_5241;

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
                         UPDATE tessera_meta SET value = 3 WHERE key = 'schema_version';",
                    )
                    .await
                    .map_err(pg)?;
                    tracing::info!("migrated the database from schema 1 to 3 (tombstones keyed by version and name; secrets with ids)");
                }
                2 => {
                    // The expiry column and its index came with SCHEMA above.
                    tx.execute(
                        "UPDATE tessera_meta SET value = $1 WHERE key = 'schema_version'",
                        &[&SCHEMA_VERSION],
                    )
                    .await
                    .map_err(pg)?;
                    tracing::info!("migrated the database from schema 2 to 3 (secrets with ids, rotation and last use)");
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
