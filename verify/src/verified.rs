//! Token strings whose signature already verified under one keyring, with
//! their claims: the hot path (a partner sending one token all hour) skips
//! the Ed25519 check. Used by the server's `/verify` and by the
//! [`Verifier`](crate::Verifier) alike, so both bound and key it the same.
//!
//! Only the signature and claim types are remembered: time, revocation,
//! account and scope rules are checked on every call by the caller. One
//! cache belongs to one keyring; whoever swaps the keyring starts a new
//! cache, so an entry can never outlive the keys it was verified with.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;

use crate::token::{self, Claims, TokenError};

/// How many verified tokens are remembered per keyring. Bounded by
/// `quick_cache`, which evicts the least used entries (never the whole
/// cache at once, so a burst of new tokens can not make every partner's
/// token pay the signature check again).
pub const CAPACITY: usize = 8192;

/// Verified token strings and their claims for one keyring; see the module
/// docs.
pub struct VerifiedTokens(quick_cache::sync::Cache<Box<str>, Arc<Claims>>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(CAPACITY))
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("len", &self.0.len())
            .finish()
    }
}

impl VerifiedTokens {
    /// The claims of `bearer`: remembered if its signature verified before,
    /// otherwise [`token::verify_signature`] under the key `find_key` names
    /// (and remembered when it passes). A refusal is never remembered.
    pub fn claims<'k>(
        &self,
        bearer: &str,
        find_key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
    ) -> Result<Arc<Claims>, TokenError> {
        if let Some(claims) = self.0.get(bearer) {
            return Ok(claims);
        }
        let claims = Arc::new(token::verify_signature(bearer, find_key)?);
        self.0.insert(bearer.into(), claims.clone());
        Ok(claims)
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn signed(key: &SigningKey, sub: &str) -> String {
        let claims = Claims {
            iss: "tessera".into(),
            sub: sub.into(),
            iat: 1_000,
            exp: 2_000,
            jti: format!("jti-{sub}"),
            generation: None,
            scope: None,
            cnf: None,
        };
        token::encode(&claims, &token::encoded_header("k1"), key)
    }

    #[test]
    fn a_verified_token_is_remembered_and_answered_without_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let vk = key.verifying_key();
        let cache = VerifiedTokens::default();
        let t = signed(&key, "alice");
        assert_eq!(cache.claims(&t, |_| Some(&vk)).unwrap().sub, "alice");
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_empty());
        // Debug shows the size, never a token.
        assert_eq!(format!("{cache:?}"), "VerifiedTokens { len: 1 }");
        // The second call does not look the key up: the signature is known.
        assert_eq!(cache.claims(&t, |_| None).unwrap().sub, "alice");
    }

    #[test]
    fn a_refused_token_is_not_remembered() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let vk = key.verifying_key();
        let cache = VerifiedTokens::default();
        let t = signed(&key, "alice");
        assert_eq!(
            cache.claims(&t, |_| Some(&other)).unwrap_err(),
            TokenError::BadSignature
        );
        assert!(cache.is_empty());
        assert_eq!(
            cache.claims(&t, |_| None).unwrap_err(),
            TokenError::UnknownKey
        );
        assert!(cache.claims(&t, |_| Some(&vk)).is_ok());
    }

    #[test]
    fn it_stays_bounded() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let vk = key.verifying_key();
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY + 500 {
            cache
                .claims(&signed(&key, &format!("u{i}")), |_| Some(&vk))
                .unwrap();
        }
        assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
        assert!(cache.len() > CAPACITY / 2, "{} entries", cache.len());
    }
}
