//! The use cases' errors. Each says what went wrong in domain terms; the
//! HTTP edge (`http::errors`) is the one place that maps them to statuses.

use crate::domain::keys;
use crate::domain::user::{AccountError, CredentialRuleError};
use crate::store::StoreError;
use crate::token::TokenError;
use tessera_verify::dpop::{PresentationError, ProofError};

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Unknown user or wrong password (indistinguishable on purpose).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password matched but the account may not get tokens.
    #[error("account may not get tokens: {0}")]
    AccountState(AccountError),
    /// The client is locked out after too many failures; retry after this.
    #[error("too many attempts")]
    Throttled(std::time::Duration),
    /// Every hashing thread is busy and the queue is full; nothing was
    /// checked and nothing was counted against the client.
    #[error("server busy")]
    Busy,
    /// The password matched, but the client's address is outside the
    /// user's allowed networks (not a throttle failure).
    #[error("address not allowed")]
    AddressNotAllowed,
    /// The password matched, but the user's token rate is used up; the
    /// next token is allowed after this long.
    #[error("too many tokens")]
    TokenRate(std::time::Duration),
    /// A scope was asked for that the user does not hold (checked only
    /// after the password matched, so it tells a stranger nothing).
    #[error("invalid scope: the user does not hold {0:?}")]
    InvalidScope(String),
    /// The `DPoP` proof sent with the login breaks a rule (SPEC §17);
    /// checked before the password, so it costs no hash.
    #[error("invalid dpop proof: {0}")]
    InvalidDpopProof(ProofError),
    /// The password matched, but the user's logins need a DPoP proof and
    /// none came.
    #[error("dpop proof required")]
    DpopRequired,
    /// Something broke inside; logged, shown as a plain 500.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A token-level rule failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The account refuses the token.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Presented the wrong way, or with a proof that breaks a rule
    /// (SPEC §17).
    #[error(transparent)]
    Presentation(#[from] PresentationError),
    /// The account could not be read now (a cluster node cut off from
    /// its database): 503, try again; never a verdict either way.
    #[error("account state unavailable: {0}")]
    Unavailable(String),
    /// Something broke inside; logged, shown as a plain 500.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl VerifyError {
    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Token(TokenError::Malformed) => "malformed",
            Self::Token(TokenError::UnsupportedAlgorithm | TokenError::CriticalHeader) => {
                "bad_header"
            }
            Self::Token(TokenError::UnknownKey) => "unknown_key",
            Self::Token(TokenError::BadSignature) => "bad_signature",
            Self::Token(TokenError::WrongIssuer) => "wrong_issuer",
            Self::Token(TokenError::NotYetValid) => "not_yet_valid",
            Self::Token(TokenError::Expired) => "expired",
            // A rule a newer tessera-verify adds.
            Self::Token(_) => "invalid",
            Self::Presentation(PresentationError::Proof(_)) => "invalid_dpop_proof",
            Self::Presentation(PresentationError::Binding(_)) => "dpop_binding",
            Self::Account(AccountError::Revoked) => "revoked",
            Self::Account(_) => "account",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "error",
        }
    }
}

/// A failure that is not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random source or a hash failed.
    #[error("{0}")]
    Crypto(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The stored keys do not form a keyring.
    #[error(transparent)]
    Keyring(#[from] keys::KeyringError),
}

/// Wraps a crypto or randomness failure.
pub(crate) fn crypto(e: impl std::fmt::Display) -> InternalError {
    InternalError::Crypto(e.to_string())
}

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Input that breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No such user, key or revocation.
    #[error("{0}")]
    NotFound(String),
    /// The action conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The database can not take writes now (cluster mode: unreachable;
    /// or being reopened): nothing was changed, retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// The change can not be made durable: the disk is full. Nothing was
    /// changed; it works again once there is room, without a restart.
    #[error("{0}")]
    StorageFull(String),
    /// Too many changes from one partner: retry after this long.
    #[error("too many revocations from this client; retry later")]
    RateLimited(std::time::Duration),
    /// Something broke inside.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl AdminError {
    /// The answer for a user that does not exist.
    pub fn no_user(name: &str) -> Self {
        Self::NotFound(format!("no user named {name:?}"))
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadSnapshot(_) => AdminError::Invalid(e.to_string()),
            StoreError::Unavailable(_) => AdminError::Unavailable(e.to_string()),
            StoreError::Conflict(m) => AdminError::Conflict(m),
            StoreError::StorageFull(_) | StoreError::WriteFailed(_) => {
                AdminError::StorageFull(e.to_string())
            }
            other => AdminError::Internal(other.into()),
        }
    }
}

impl From<CredentialRuleError> for AdminError {
    fn from(e: CredentialRuleError) -> Self {
        AdminError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_failure_keeps_its_meaning_for_the_operator() {
        let conflict = AdminError::from(StoreError::Conflict("changed on another node".into()));
        assert!(matches!(conflict, AdminError::Conflict(m) if m == "changed on another node"));
        assert!(matches!(
            AdminError::from(StoreError::Unavailable("down".into())),
            AdminError::Unavailable(_)
        ));
        assert!(matches!(
            AdminError::from(StoreError::StorageFull("/d".into())),
            AdminError::StorageFull(_)
        ));
        assert!(matches!(
            AdminError::from(StoreError::WriteFailed("eio".into())),
            AdminError::StorageFull(_)
        ));
    }
}
