//! Revoking single tokens and forgetting revocations once every token they
//! concern has expired.

use super::{AdminError, InternalError, Service};
use crate::store::Page;
use crate::store::snapshot;
use crate::time;
use crate::token;

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
        snapshot::check_revocation(&jti, exp).map_err(AdminError::Invalid)?;
        let audit = self.audit("token.revoke", &jti, format!("exp {}", time::rfc3339(exp)));
        let (j, e) = (jti.clone(), exp);
        self.blocking(move |s| s.revoke(&j, e, audit)).await?;
        Ok((jti, exp))
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
