//! The account verdict: whether an account's state lets one of its tokens
//! through. Written once, here, and used by the Tessera server (`/verify`,
//! introspection, logins) and by a partner's [`crate::verifier`] (through
//! the revocation feed), so the two can never disagree.
//!
//! # Generations, not clocks
//! "Issued before the revoke-all" can not be decided with wall clocks when
//! the issuing host, the revoking host and the verifying host disagree on
//! the time (a clock that steps back, two nodes seconds apart). So every
//! account carries a **generation**: a number drawn from one counter that
//! only grows (per store), set when the account is created and at each
//! revoke-all. A token carries the generation of the account it was issued
//! from (claim `gen`), and is good only while `gen >= ` the account's
//! generation. A token issued before a revoke-all, a delete or a
//! re-creation therefore dies whatever the clocks say, and one issued after
//! it lives at once, also right after a clock stepped back.
//!
//! Tokens from before generations existed carry no `gen`; for them the old
//! time rule still holds (`iat` not before the account's creation or its
//! last revoke-all), and only for accounts that never got a generation.

use serde::{Deserialize, Serialize};

use crate::token::Claims;

/// Why an account refuses a token (or a login). `Display` is `/verify`'s
/// reason, word for word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The `jti` is revoked, or the token predates a revoke-all or the
    /// account's (re-)creation.
    #[error("token revoked")]
    Revoked,
    /// The account is disabled.
    #[error("account disabled")]
    Disabled,
    /// The account is past its `expires_at`.
    #[error("account expired")]
    Expired,
    /// The account was deleted (or never existed).
    #[error("account deleted")]
    Deleted,
}

/// What an account says about its tokens at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountState {
    /// Tokens whose `gen` is below this are refused (0: the account has no
    /// generation yet, see the module docs).
    #[serde(rename = "gen", default)]
    pub generation: u64,
    /// For tokens without `gen` only: an `iat` before this second is
    /// refused (creation or last revoke-all).
    pub after: u64,
    /// The account is disabled.
    pub disabled: bool,
    /// The account was deleted.
    pub deleted: bool,
    /// From this second on the account refuses its tokens and logins.
    pub expires_at: Option<u64>,
}

impl AccountState {
    /// Whether the account may get (or hold) a token at `now`: it exists,
    /// is enabled and is not past its `expires_at`.
    pub fn may_get_tokens(&self, now: u64) -> Result<(), Refusal> {
        if self.deleted {
            return Err(Refusal::Deleted);
        }
        if self.disabled {
            return Err(Refusal::Disabled);
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// Whether a token with these claims (signature, issuer and times
    /// already checked) is still good for this account at `now`.
    pub fn accepts(&self, claims: &Claims, now: u64) -> Result<(), Refusal> {
        self.may_get_tokens(now)?;
        let current = match claims.generation {
            Some(generation) => generation >= self.generation,
            None => self.generation == 0 && claims.iat >= self.after,
        };
        if current {
            Ok(())
        } else {
            Err(Refusal::Revoked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: u64, generation: Option<u64>) -> Claims {
        Claims {
            iss: "tessera".into(),
            sub: "u".into(),
            iat,
            exp: iat + 60,
            jti: "j".into(),
            generation,
            scope: None,
            cnf: None,
        }
    }

    #[test]
    fn each_state_refuses_with_verifys_reason() {
        let ok = AccountState::default();
        assert_eq!(ok.may_get_tokens(100), Ok(()));
        let deleted = AccountState {
            deleted: true,
            disabled: true,
            ..ok
        };
        assert_eq!(deleted.may_get_tokens(100), Err(Refusal::Deleted));
        let disabled = AccountState {
            disabled: true,
            expires_at: Some(50),
            ..ok
        };
        assert_eq!(disabled.may_get_tokens(100), Err(Refusal::Disabled));
        let expiring = AccountState {
            expires_at: Some(500),
            ..ok
        };
        assert_eq!(expiring.may_get_tokens(499), Ok(()));
        assert_eq!(expiring.may_get_tokens(500), Err(Refusal::Expired));
        assert_eq!(
            expiring.accepts(&claims(100, Some(0)), 500),
            Err(Refusal::Expired)
        );
        assert_eq!(Refusal::Disabled.to_string(), "account disabled");
        assert_eq!(Refusal::Revoked.to_string(), "token revoked");
    }

    #[test]
    fn a_generation_decides_whatever_the_clocks_say() {
        let account = AccountState {
            generation: 7,
            after: 1_000,
            ..AccountState::default()
        };
        // Issued from the current generation with a clock far behind: good.
        assert_eq!(account.accepts(&claims(10, Some(7)), 20), Ok(()));
        assert_eq!(account.accepts(&claims(10, Some(8)), 20), Ok(()));
        // Issued before the revoke-all with a clock far ahead: refused.
        assert_eq!(
            account.accepts(&claims(5_000, Some(6)), 5_000),
            Err(Refusal::Revoked)
        );
    }

    #[test]
    fn tokens_without_a_generation_keep_the_time_rule() {
        let legacy = AccountState {
            after: 1_000,
            ..AccountState::default()
        };
        assert_eq!(
            legacy.accepts(&claims(999, None), 1_001),
            Err(Refusal::Revoked)
        );
        assert_eq!(legacy.accepts(&claims(1_000, None), 1_001), Ok(()));
        let renewed = AccountState {
            generation: 1,
            ..legacy
        };
        assert_eq!(
            renewed.accepts(&claims(5_000, None), 5_000),
            Err(Refusal::Revoked),
            "an account with a generation refuses every token without one"
        );
    }
}
