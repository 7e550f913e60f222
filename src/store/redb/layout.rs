//! The file's layout: the tables, the meta keys, how each record is
//! encoded, and the migrations from older schemas (run inside the opening
//! transaction, so a file is either wholly old or wholly new).

use std::path::Path;

use redb::{Database, ReadOnlyTable, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;

use crate::domain::user::User;
use crate::store::{Audit, Page, StoreError};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const USERNAME_TO_USER: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(super) const KID_TO_KEY: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
pub(super) const JTI_TO_EXP: TableDefinition<&str, u64> = TableDefinition::new("revocations");
pub(super) const SEQ_TO_AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// The users holding a previous secret, with its expiry: what the
/// minute's expiry pass reads instead of every user. May name a user who
/// no longer holds one (the pass drops such entries), never misses one.
pub(super) const USERNAME_TO_SECRET_EXPIRY: TableDefinition<&str, u64> =
    TableDefinition::new("secret_expiries");

/// The schema this build reads and writes. Version 3 added the user's
/// generation, 4 its scopes, 5 its allowed networks and token rate, 6 its
/// secrets' ids and times, the previous secret, the last login and
/// whether logins need a DPoP proof; an
/// older file is migrated at open.
pub const SCHEMA_VERSION: u64 = 6;
pub(super) const SCHEMA_KEY: &str = "schema_version";
/// The last account generation drawn ([`Store::next_generation`]).
pub(super) const GENERATION_KEY: &str = "generation";
/// The longest token TTL ever configured, so retired keys are kept long enough.
pub(super) const TTL_HIGH_WATER_KEY: &str = "ttl_high_water";

pub(super) fn corrupt(table: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// User records are postcard (compact binary serde): a login decodes one
/// per request, and that is several times faster than JSON.
pub(super) fn encode_user(user: &User) -> Vec<u8> {
    // A struct of strings, numbers and enums always serialises.
    postcard::to_allocvec(user).unwrap_or_default()
}

pub(super) fn decode_user(bytes: &[u8]) -> Result<User, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// A user record in the layout of `schema` (2 to 5, or this build's).
/// Postcard writes fields in order and each later schema only appended
/// fields, so an older record is this layout cut before them: schema 5
/// lacks `secret` (id 0, created 0, never used: three zero bytes),
/// `previous_secret` and `last_login_at` (None, one zero byte each) and
/// `dpop_required` (false, one zero byte);
/// schema 4 also `allowed_networks` and `token_rate` (an empty list and a
/// None), schema 3 also `scopes` (empty), schema 2 also `generation` (0:
/// its tokens keep the time rule).
pub(super) fn decode_user_of(schema: u64, bytes: &[u8]) -> Result<User, postcard::Error> {
    let missing: &[u8] = match schema {
        2 => &[0; 10],
        3 => &[0; 9],
        4 => &[0; 8],
        5 => &[0; 6],
        _ => return decode_user(bytes),
    };
    let mut user = decode_user(&[bytes, missing].concat())?;
    user.adopt_legacy_secret();
    Ok(user)
}

/// Stores `user` in `users` and keeps the expiry index whole: a user
/// holding a previous secret is listed with its expiry.
pub(super) fn put_user(
    users: &mut redb::Table<&str, &[u8]>,
    expiries: &mut redb::Table<&str, u64>,
    user: &User,
) -> Result<Option<Vec<u8>>, StoreError> {
    let name = user.username.as_str();
    let old = users
        .insert(name, encode_user(user).as_slice())?
        .map(|v| v.value().to_vec());
    if let Some(previous) = &user.previous_secret {
        expiries.insert(name, previous.expires_at)?;
    }
    Ok(old)
}

/// Rewrites every user record of `schema` (2: before generations, which
/// become 0 and keep the time rule; 3: before scopes, which start empty)
/// in this build's layout, inside the caller's transaction.
pub(super) fn migrate_users(tx: &WriteTransaction, schema: u64) -> Result<u64, StoreError> {
    let mut table = tx.open_table(USERNAME_TO_USER)?;
    let mut expiries = tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
    let mut rewritten = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let old = decode_user_of(schema, v.value()).map_err(|e| corrupt("users", k.value(), e))?;
        rewritten.push(old);
    }
    for user in &rewritten {
        put_user(&mut table, &mut expiries, user)?;
    }
    Ok(rewritten.len() as u64)
}

/// One page of a table keyed by text: the entries strictly after `after`,
/// at most `limit`, decoded by `decode`; `next` is the last key returned
/// when more entries follow.
pub(super) fn page_after<V: redb::Value + 'static, T>(
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

pub(super) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are plain structs of strings and numbers: cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(super) fn append_audit(tx: &WriteTransaction, audit: Audit) -> Result<(), StoreError> {
    let mut table = tx.open_table(SEQ_TO_AUDIT)?;
    let seq = table.last()?.map_or(0, |(k, _)| k.value()) + 1;
    table.insert(seq, to_json(&audit.into_event(seq)).as_slice())?;
    Ok(())
}

pub(super) fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    {
        let mut meta = tx.open_table(META)?;
        let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
        match found {
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(old @ 2..=5) => {
                let users = migrate_users(&tx, old)?;
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                tracing::info!(path = %path.display(), users, from = old, to = SCHEMA_VERSION, "migrated the database (schema 3: account generations; 4: scopes; 5: allowed networks and token rates; 6: secrets with ids, rotation and last use)");
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
        tx.open_table(USERNAME_TO_SECRET_EXPIRY)?;
    }
    tx.commit()?;
    Ok(())
}
