//! The order of the checks every token passes, written once for the
//! server's `/verify` and the offline [`Verifier`](crate::Verifier): the
//! signature (cached per token string, [`crate::verified`]), the token's
//! own issuer and times ([`token::check_claims`]), how it was presented
//! (a DPoP-bound token only with a proof by its key, an unbound one only
//! as Bearer: [`dpop::check_presentation`]), its revoked `jti`, and last
//! the account's verdict. Local and cheap first, the account (a store
//! read on the server) only for a token that passed everything else; the
//! first failure is the answer, so both sides give the same reason for the
//! same token.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;

use crate::account::Refusal;
use crate::dpop::{self, PresentationError, Presented};
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

/// Checks `token`, presented as `presented`, in the order of the module
/// docs. `find_key` looks up a `kid`, `is_revoked` a `jti`, and `account`
/// gives the account's verdict (and whatever the caller reads with it,
/// such as the user's scopes).
pub fn verdict<'k, T, E>(
    verified: &VerifiedTokens,
    token: &str,
    presented: Presented<'_>,
    rules: Rules<'_>,
    find_key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
    is_revoked: impl FnOnce(&str) -> bool,
    account: impl FnOnce(&Claims) -> Result<T, E>,
) -> Result<(Arc<Claims>, T), E>
where
    E: From<TokenError> + From<Refusal> + From<PresentationError>,
{
    let claims = verified.claims(token, find_key)?;
    token::check_claims(&claims, rules.issuer, rules.now, rules.leeway_secs)?;
    dpop::check_presentation(token, claims.bound_to(), presented)?;
    if is_revoked(&claims.jti) {
        return Err(Refusal::Revoked.into());
    }
    let held = account(&claims)?;
    Ok((claims, held))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::{Rules, verdict};
    use crate::account::Refusal;
    use crate::dpop::{BindingError, PresentationError, Presented};
    use crate::token::{Claims, TokenError, encode, encoded_header};
    use crate::verified::VerifiedTokens;

    const NOW: u64 = 1_900_000_000;

    /// The refusal of each step, so the first failing step is the answer.
    #[derive(Debug, PartialEq)]
    enum Why {
        Token(TokenError),
        Account(Refusal),
        Presented(PresentationError),
    }
    impl From<PresentationError> for Why {
        fn from(e: PresentationError) -> Self {
            Self::Presented(e)
        }
    }
    impl From<TokenError> for Why {
        fn from(e: TokenError) -> Self {
            Self::Token(e)
        }
    }
    impl From<Refusal> for Why {
        fn from(e: Refusal) -> Self {
            Self::Account(e)
        }
    }

    fn token(exp: u64) -> (String, SigningKey) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let claims = Claims {
            iss: "tessera".into(),
            sub: "channel_user".into(),
            iat: NOW,
            exp,
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            generation: None,
            scope: None,
            cnf: None,
        };
        (encode(&claims, &encoded_header("k1"), &key), key)
    }

    fn run(
        bearer: &str,
        key: &SigningKey,
        revoked: bool,
        account: Result<u8, Refusal>,
        asked: &std::cell::Cell<u8>,
    ) -> Result<u8, Why> {
        let vk = key.verifying_key();
        let rules = Rules {
            issuer: "tessera",
            now: NOW,
            leeway_secs: 60,
        };
        verdict(
            &VerifiedTokens::default(),
            bearer,
            Presented::Bearer,
            rules,
            |kid| (kid == "k1").then_some(&vk),
            |jti| {
                assert_eq!(jti, "AAAAAAAAAAAAAAAAAAAAAA");
                asked.set(asked.get() | 1);
                revoked
            },
            |claims| {
                assert_eq!(claims.sub, "channel_user");
                asked.set(asked.get() | 2);
                account.map_err(Why::from)
            },
        )
        .map(|(_, held)| held)
    }

    #[test]
    fn each_step_in_order_and_the_first_failure_answers() {
        let (good, key) = token(NOW + 3600);
        let asked = std::cell::Cell::new(0);
        assert_eq!(run(&good, &key, false, Ok(9), &asked), Ok(9));
        assert_eq!(asked.get(), 3, "both the jti and the account were asked");

        let asked = std::cell::Cell::new(0);
        assert_eq!(
            run(&good, &key, true, Ok(9), &asked),
            Err(Why::Account(Refusal::Revoked))
        );
        assert_eq!(asked.get(), 1, "a revoked jti never reads the account");

        let asked = std::cell::Cell::new(0);
        assert_eq!(
            run(&good, &key, false, Err(Refusal::Disabled), &asked),
            Err(Why::Account(Refusal::Disabled))
        );

        let (expired, key) = token(NOW);
        let asked = std::cell::Cell::new(0);
        assert_eq!(
            run(&expired, &key, true, Err(Refusal::Disabled), &asked),
            Err(Why::Token(TokenError::Expired)),
            "the token's own times come before revocation and account"
        );
        assert_eq!(asked.get(), 0);

        let other = SigningKey::from_bytes(&[8; 32]);
        let asked = std::cell::Cell::new(0);
        assert_eq!(
            run(&good, &other, false, Ok(9), &asked),
            Err(Why::Token(TokenError::BadSignature))
        );
        assert_eq!(asked.get(), 0);
    }

    #[test]
    fn how_a_token_is_presented_comes_before_revocation_and_the_account() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bound = Claims {
            iss: "tessera".into(),
            sub: "channel_user".into(),
            iat: NOW,
            exp: NOW + 3600,
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            generation: None,
            scope: None,
            cnf: Some(crate::token::Confirmation {
                jkt: "a-thumbprint".into(),
            }),
        };
        let token = encode(&bound, &encoded_header("k1"), &key);
        let asked = std::cell::Cell::new(0);
        assert_eq!(
            run(&token, &key, true, Err(Refusal::Disabled), &asked),
            Err(Why::Presented(BindingError::BoundTokenAsBearer.into())),
            "a bound token as Bearer"
        );
        assert_eq!(asked.get(), 0);
    }
}
