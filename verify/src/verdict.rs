//! The order of the checks every token passes, written once for the
//! server's `/verify` and the offline [`Verifier`](crate::Verifier): the
//! signature (cached per token string, [`crate::verified`]), the token's
//! own issuer and times ([`token::check_claims`]), its revoked `jti`, and
//! last the account's verdict. Local and cheap first, the account (a store
//! read on the server) only for a token that passed everything else; the
//! first failure is the answer, so both sides give the same reason for the
//! same token.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;

use crate::account::Refusal;
use crate::token::{self, Claims, TokenError};
use crate::verified::VerifiedTokens;

/// The token-level settings a verdict is taken under.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The expected `iss`.
    pub issuer: &'a str,
    /// Now, in unix seconds.
    pub now: u64,
    /// How far in the future `iat` may lie.
    pub leeway_secs: u64,
}

/// Checks `bearer` in the order of the module docs. `find_key` looks up a
/// `kid`, `is_revoked` a `jti`, and `account` gives the account's verdict
/// (and whatever the caller reads with it, such as the user's scopes).
pub fn verdict<'k, T, E>(
    verified: &VerifiedTokens,
    bearer: &str,
    rules: Rules<'_>,
    find_key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
    is_revoked: impl FnOnce(&str) -> bool,
    account: impl FnOnce(&Claims) -> Result<T, E>,
) -> Result<(Arc<Claims>, T), E>
where
    E: From<TokenError> + From<Refusal>,
{
    let claims = verified.claims(bearer, find_key)?;
    token::check_claims(&claims, rules.issuer, rules.now, rules.leeway_secs)?;
    if is_revoked(&claims.jti) {
        return Err(Refusal::Revoked.into());
    }
    let held = account(&claims)?;
    Ok((claims, held))
}
