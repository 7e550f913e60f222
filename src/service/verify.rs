//! Verifying a bearer token (`GET /verify`): every rule of SPEC §2, with
//! the signature step cached per token string under the keyring that
//! verified it ([`tessera_verify::verified`], shared with partners'
//! verifiers).

use std::sync::Arc;

use super::{InternalError, Service, VerifyError};
use crate::domain::keys::Keyring;
use crate::domain::user::{AccountError, Username};
use crate::store::StoreError;
use crate::token::Claims;
use tessera_verify::dpop::Presented;
use tessera_verify::scope::Scopes;
use tessera_verify::verdict::{Rules, verdict};
use tessera_verify::verified::VerifiedTokens;

/// The keyring every request reads, with the signatures verified under it:
/// a new keyring starts with an empty cache, so an entry can never outlive
/// the keys it was verified with.
pub(super) struct KeyState {
    pub(super) ring: Keyring,
    verified: VerifiedTokens,
}

impl KeyState {
    pub(super) fn new(ring: Keyring) -> Self {
        Self {
            ring,
            verified: VerifiedTokens::default(),
        }
    }
}

/// A valid token: its claims, and what it may do now.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The token's claims.
    pub claims: Arc<Claims>,
    /// Its effective scopes: those it was granted that its user still
    /// holds ([`tessera_verify::scope::effective`]).
    pub scopes: Scopes,
}

impl std::ops::Deref for VerifiedToken {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

/// How a token reached [`Service::verify_token`].
enum Using<'a> {
    Bearer,
    Inspected,
    Dpop {
        proof: Option<&'a str>,
        method: &'a str,
        url: &'a str,
    },
}

impl Service {
    /// Every rule of SPEC §2 for a token sent as `Authorization: Bearer`
    /// (a DPoP-bound token is refused so); the claims and effective scopes
    /// when it is valid.
    pub fn verify_bearer(&self, bearer: &str) -> Result<VerifiedToken, VerifyError> {
        self.verify_token(bearer, Using::Bearer)
    }

    /// Every rule of SPEC §2 for a token a resource server asks about
    /// (introspection): bound or not, it is looked at, not used.
    pub fn inspect(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        self.verify_token(token, Using::Inspected)
    }

    /// Every rule of SPEC §2 and §17 for a token sent as
    /// `Authorization: DPoP` with `proof` (the `DPoP` header, if any) for
    /// the request `method url` (the original one, behind forward-auth).
    pub fn verify_dpop(
        &self,
        token: &str,
        proof: Option<&str>,
        method: &str,
        url: &str,
    ) -> Result<VerifiedToken, VerifyError> {
        self.verify_token(token, Using::Dpop { proof, method, url })
    }

    fn verify_token(&self, token: &str, using: Using<'_>) -> Result<VerifiedToken, VerifyError> {
        let keys = self.keys.load();
        let now = self.clock.now();
        let rules = Rules {
            issuer: &self.settings.issuer,
            now,
            leeway_secs: self.settings.clock_leeway_secs,
        };
        let presented = match using {
            Using::Bearer => Presented::Bearer,
            Using::Inspected => Presented::Inspected,
            Using::Dpop { proof, method, url } => Presented::dpop(
                proof,
                method,
                url,
                now,
                self.settings.clock_leeway_secs,
                &self.dpop_replays,
            ),
        };
        let (claims, scopes) = verdict(
            &keys.verified,
            token,
            presented,
            rules,
            |kid| keys.ring.verifying_key(kid),
            |jti| self.store.is_revoked(jti),
            |claims| {
                let name = Username::parse(&claims.sub).map_err(|_| AccountError::Deleted)?;
                let user = self
                    .store
                    .user(&name)
                    .map_err(|e| match e {
                        StoreError::Unavailable(why) => VerifyError::Unavailable(why),
                        e => InternalError::from(e).into(),
                    })?
                    .ok_or(AccountError::Deleted)?;
                user.accepts(claims, now)?;
                Ok::<_, VerifyError>(tessera_verify::scope::effective(
                    claims.scope.as_deref(),
                    &user.scopes,
                ))
            },
        )?;
        Ok(VerifiedToken { claims, scopes })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> String {
        self.keys.load().ring.jwks().to_owned()
    }
}
