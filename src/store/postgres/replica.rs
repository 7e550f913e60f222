//! What one node holds in memory and how it catches up: a bounded cache of
//! users read on demand, every live revocation, and the row version
//! reached. A catch-up reads every row stamped after that version in one
//! snapshot (exact, because writers are serialised), woken by NOTIFY or
//! every [`POLL`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use parking_lot::RwLock;
use tokio::sync::{Notify, watch};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::domain::user::{User, Username};
use crate::store::StoreError;
use crate::store::postgres::sql::{backend, meta, now_ms, pg, read_snapshot, uint};
use crate::store::postgres::{CHANNEL, DB_TIMEOUT, POLL};

/// How many users a node keeps decoded in memory (about 35 MB at most).
/// Users are read from the database on first use and kept until another
/// commit changes them: memory stays bounded whatever the user base (a
/// node holding a million users whole would need ~400 MB and a long
/// start), and a partner's second login on a node costs no round trip.
pub const CACHED_USERS: usize = 100_000;

/// What this node holds in memory, and how far it has caught up.
pub(super) struct Cache {
    /// Users read so far (bounded); a catch-up drops every user another
    /// commit changed, an import drops them all.
    pub(super) users: quick_cache::sync::Cache<Username, User>,
    /// Bumped by a catch-up before it drops users: a reader that fetched a
    /// user while it ran drops what it cached (it may be older).
    pub(super) user_epoch: AtomicU64,
    /// How many users the database holds, as of the last catch-up.
    pub(super) user_count: AtomicU64,
    pub(super) revoked: RwLock<HashMap<String, u64>>,
    /// The highest row version applied.
    pub(super) version: AtomicI64,
    /// The import generation the maps were loaded at.
    pub(super) generation: AtomicI64,
    /// Unix ms of the last successful catch-up (readiness).
    pub(super) last_ok_ms: AtomicU64,
    /// Ticks when another node's commit changed the keyring.
    pub(super) keyring: watch::Sender<u64>,
    /// Wakes the catch-up loop (a NOTIFY arrived).
    pub(super) wake: Notify,
    /// Serialises catch-ups.
    pub(super) refreshing: tokio::sync::Mutex<()>,
}

/// Brings the cache up to what the database holds: drops the users written
/// since the version last applied (all of them after an import), adds the
/// revocations, and notifies the keyring watchers when keys changed.
/// Answers whether users changed.
pub(super) async fn catch_up(pool: &Pool, cache: &Cache) -> Result<bool, StoreError> {
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
pub(super) async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    cache: Arc<Cache>,
) {
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
pub(super) async fn follow(pool: Pool, cache: Arc<Cache>) {
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
