//! Revoking single tokens and forgetting revocations once every token they
//! concern has expired.

use std::time::Instant;

use super::{AdminError, InternalError, Service};
use crate::runtime::time;
use crate::store::{Action, snapshot};
use crate::store::{Audit, Page};
use crate::token;

/// How many of its own tokens a client may revoke at once.
pub const SELF_REVOKE_BURST: u32 = 10;
/// How fast a client's revocation allowance refills, per second.
pub const SELF_REVOKE_PER_SEC: f64 = 1.0;

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// A whole token (its signature must verify).
    Token(String),
    /// A jti with the expiry after which it can be forgotten.
    Jti {
        /// The token id.
        jti: String,
        /// Unix seconds.
        exp: u64,
    },
}

impl Service {
    /// Revokes one token, by its string (signature must verify, so no junk
    /// rows) or by `jti` and `exp`. Returns the `jti` and `exp` stored.
    pub async fn revoke_token(&self, target: RevokeTarget) -> Result<(String, u64), AdminError> {
        let (jti, exp) = match target {
            RevokeTarget::Token(t) => {
                let keys = self.keys.load();
                let c = token::verify_signature(&t, |kid| keys.ring.verifying_key(kid))
                    .map_err(|e| AdminError::Invalid(format!("not a token of this server: {e}")))?;
                (c.jti, c.exp)
            }
            RevokeTarget::Jti { jti, exp } => (jti, exp),
        };
        let audit = self.audit(
            Action::TokenRevoke,
            &jti,
            format!("exp {}", time::rfc3339(exp)),
        );
        self.record_revocation(jti.clone(), exp, audit).await?;
        Ok((jti, exp))
    }

    async fn record_revocation(
        &self,
        jti: String,
        exp: u64,
        audit: Audit,
    ) -> Result<(), AdminError> {
        snapshot::check_revocation(&jti, exp).map_err(AdminError::Invalid)?;
        self.blocking(move |s| s.revoke(&jti, exp, audit)).await
    }

    /// A partner revokes one of its own tokens (`/oauth/revoke`): as
    /// [`Service::revoke_token`], within the client's allowance
    /// ([`SELF_REVOKE_BURST`], then [`SELF_REVOKE_PER_SEC`]), so no partner
    /// can grow the store or the feed faster than that.
    pub async fn revoke_own_token(
        &self,
        client: &str,
        jti: String,
        exp: u64,
    ) -> Result<(), AdminError> {
        self.self_revocations
            .take(client, Instant::now())
            .map_err(AdminError::RateLimited)?;
        let audit = self.audit(
            Action::TokenSelfRevoke,
            &jti,
            format!("by partner {client}; exp {}", time::rfc3339(exp)),
        );
        self.record_revocation(jti, exp, audit).await?;
        Ok(())
    }

    /// A page of revocations sorted by jti.
    pub fn list_revocations(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, AdminError> {
        Ok(self
            .store
            .list_revocations(after, limit)
            .map_err(InternalError::from)?)
    }

    /// Forgets revocations whose `exp` has passed.
    pub(super) async fn prune_revocations(&self) -> Result<u64, AdminError> {
        let now = self.clock.now();
        self.blocking(move |s| s.prune_revocations(now)).await
    }
}
