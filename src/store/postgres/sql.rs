//! The schema and the SQL every operation shares: the tables, one write
//! transaction's steps (the cluster-wide lock, the version it stamps, the
//! audit row, the commit), row encodings, and how driver errors become
//! store errors (a lost connection is [`StoreError::Unavailable`]).

use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_postgres::Transaction;
use tokio_postgres::IsolationLevel;

use crate::domain::keys::KeyRecord;
use crate::domain::user::User;
use crate::runtime::error_chain::with_causes;
use crate::store::postgres::{CHANNEL, WRITE_LOCK};
use crate::store::{Audit, AuditEvent, StoreError};

/// The tables and indexes a database holds at [`super::SCHEMA_VERSION`],
/// created idempotently at every start.
pub const SCHEMA: &str = r#"
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
ALTER TABLE tessera_users ADD COLUMN IF NOT EXISTS secret_expires_at bigint
    GENERATED ALWAYS AS ((record::jsonb #>> '{previous_secret,expires_at}')::bigint) STORED;
CREATE INDEX IF NOT EXISTS tessera_users_secret_expiry ON tessera_users (secret_expires_at)
    WHERE secret_expires_at IS NOT NULL;
"#;

pub(super) fn backend(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(with_causes(&e))
}

pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.code().is_none() {
        StoreError::Unavailable(with_causes(&e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

pub(super) fn corrupt(table: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

pub(super) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) async fn begin_write(
    client: &mut deadpool_postgres::Object,
) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map_err(pg)?;
    Ok(tx)
}

pub(super) async fn next_version(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_one("SELECT nextval('tessera_version')", &[])
        .await
        .map_err(pg)?;
    Ok(row.get(0))
}

pub(super) async fn append_audit(tx: &Transaction<'_>, audit: &Audit) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tessera_audit (at, action, target, detail) VALUES ($1, $2, $3, $4)",
        &[
            &int(audit.at),
            &audit.action.as_str(),
            &audit.target,
            &audit.detail,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

pub(super) async fn commit(tx: Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

pub(super) async fn put_user(
    tx: &Transaction<'_>,
    user: &User,
    version: i64,
) -> Result<(), StoreError> {
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
pub(super) async fn count_users(tx: &Transaction<'_>, by: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE tessera_meta SET value = value + $1 WHERE key = 'user_count'",
        &[&by],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

pub(super) async fn remove_user(
    tx: &Transaction<'_>,
    name: &str,
    version: i64,
) -> Result<bool, StoreError> {
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

pub(super) fn decode_user(name: &str, record: &str) -> Result<User, StoreError> {
    let mut user: User = serde_json::from_str(record).map_err(|e| corrupt("users", name, e))?;
    user.adopt_legacy_secret();
    Ok(user)
}

/// An audit event from a row of `seq, at, action, target, detail`.
pub(super) fn audit_row(r: &tokio_postgres::Row) -> AuditEvent {
    AuditEvent {
        seq: uint(r.get(0)),
        at: uint(r.get(1)),
        action: r.get(2),
        target: r.get(3),
        detail: r.get(4),
    }
}

pub(super) fn decode_key(kid: &str, record: &str) -> Result<KeyRecord, StoreError> {
    serde_json::from_str(record).map_err(|e| corrupt("keys", kid, e))
}

pub(super) async fn meta(tx: &Transaction<'_>, key: &str) -> Result<i64, StoreError> {
    let row = tx
        .query_opt("SELECT value FROM tessera_meta WHERE key = $1", &[&key])
        .await
        .map_err(pg)?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// A read-only `REPEATABLE READ` transaction: every query in it sees the
/// database as of one moment.
pub(super) async fn read_snapshot(
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

pub(super) fn encode(user: &User) -> Result<String, StoreError> {
    serde_json::to_string(user).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(super) fn encode_keys(records: &[KeyRecord]) -> Result<Vec<(String, String)>, StoreError> {
    records
        .iter()
        .map(|k| {
            serde_json::to_string(k)
                .map(|r| (k.kid.clone(), r))
                .map_err(|e| StoreError::Backend(Box::new(e)))
        })
        .collect()
}

pub(super) async fn insert_keys(
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
