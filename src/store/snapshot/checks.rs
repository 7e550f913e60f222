//! What a stored record must satisfy, checked on every record an import
//! stores and on live writes that take the same values (a revocation's
//! `jti` and `exp`), and the redaction of secrets in parser messages.

use crate::domain::keys::KeyRecord;
use crate::domain::user::User;
use crate::domain::values::{Jti, Note, TokenTtl};
use crate::runtime::time;

pub(super) fn check_time(field: &str, secs: u64) -> Result<(), String> {
    time::check_in_range(field, secs).map(|_| ())
}

pub(super) fn check_user(user: &User) -> Result<(), String> {
    let name = &user.username;
    let in_user = |e: String| format!("user {name}: {e}");
    check_time("created_at", user.created_at).map_err(in_user)?;
    check_time("updated_at", user.updated_at).map_err(in_user)?;
    for (field, t) in [
        ("expires_at", user.expires_at),
        ("tokens_valid_after", user.tokens_valid_after),
    ] {
        if let Some(t) = t {
            check_time(field, t).map_err(in_user)?;
        }
    }
    if let Some(ttl) = user.token_ttl_secs {
        TokenTtl::from_secs(ttl).map_err(in_user)?;
    }
    if let Some(note) = &user.note {
        Note::parse(note.clone()).map_err(|e| in_user(format!("note {e}")))?;
    }
    for (field, t) in [
        ("secret.created_at", Some(user.secret.created_at)),
        ("secret.last_used_at", user.secret.last_used_at),
        ("last_login_at", user.last_login_at),
    ] {
        if let Some(t) = t {
            check_time(field, t).map_err(in_user)?;
        }
    }
    if let Some(previous) = &user.previous_secret {
        if previous.info.id == user.secret.id {
            return Err(in_user(format!(
                "its two secrets share the id {}",
                user.secret.id
            )));
        }
        for (field, t) in [
            ("previous_secret.created_at", Some(previous.info.created_at)),
            ("previous_secret.last_used_at", previous.info.last_used_at),
            ("previous_secret.expires_at", Some(previous.expires_at)),
        ] {
            if let Some(t) = t {
                check_time(field, t).map_err(in_user)?;
            }
        }
        previous
            .hash
            .validate()
            .map_err(|e| in_user(format!("previous secret: {e}")))?;
    }
    user.password.validate().map_err(in_user)
}

pub(super) fn check_key(key: &KeyRecord) -> Result<(), String> {
    key.validate()?;
    let in_key = |e: String| format!("key {}: {e}", key.kid);
    check_time("created_at", key.created_at).map_err(in_key)?;
    for (field, t) in [
        ("retired_at", key.retired_at),
        ("drop_after", key.drop_after),
    ] {
        if let Some(t) = t {
            check_time(field, t).map_err(in_key)?;
        }
    }
    Ok(())
}

/// A revocation: a [`Jti`] and an `exp` RFC 3339 can show.
pub fn check_revocation(jti: &str, exp: u64) -> Result<(), String> {
    Jti::parse(jti.to_owned())?;
    check_time("exp", exp)
}
