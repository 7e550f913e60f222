//! The OAuth 2.0 error protocol (RFC 6749 §5.2, RFC 7009): how a failed
//! `/oauth/token`, `/oauth/revoke` or introspection request is answered,
//! as JSON `{"error","error_description"}` with the registered codes, a
//! Basic challenge when the client used HTTP Basic, and `Retry-After`.

use warp::http::StatusCode;
use warp::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use warp::reply::Response;

use super::errors::{
    ACCOUNT_REFUSED, ADDRESS_NOT_ALLOWED, SERVER_BUSY, TOO_MANY_ATTEMPTS, internal, issue_outcome,
};
use super::reply::{retry_after_secs, with_header};
use crate::service::{AdminError, IssueError};

/// A failed OAuth 2.0 request: JSON `{"error","error_description"}` with
/// the RFC 6749 §5.2 codes.
#[derive(Debug)]
pub enum OAuthError {
    /// Client authentication or issuing failed; `basic` when the client
    /// used HTTP Basic (a 401 then carries `WWW-Authenticate: Basic`).
    Issue {
        /// Why.
        error: IssueError,
        /// Whether HTTP Basic was used.
        basic: bool,
    },
    /// The request itself is refused.
    Request {
        /// 400 or 401.
        status: StatusCode,
        /// The RFC 6749 error code.
        code: &'static str,
        /// A human description.
        description: String,
        /// Whether to answer with a Basic challenge.
        basic: bool,
    },
    /// An operator action (the revocation) failed.
    Admin(AdminError),
    /// Something broke inside.
    Internal(crate::service::InternalError),
}

impl OAuthError {
    fn request(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self::Request {
            status,
            code,
            description: description.into(),
            basic: false,
        }
    }

    /// 400 `invalid_request`: a missing, repeated or malformed parameter.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::request(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_client`.
    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self::Request {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: description.into(),
            basic,
        }
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type() -> Self {
        Self::request(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        )
    }

    /// 400 `invalid_scope`: Tessera has no scopes yet.
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::request(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// 400 `unauthorized_client`.
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::request(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Issue { error, .. } => issue_outcome(error),
            Self::Request { .. } => "bad_request",
            Self::Admin(_) | Self::Internal(_) => "error",
        }
    }

    /// The JSON answer.
    pub fn response(self) -> Response {
        let (status, code, description, basic, retry_after) = match self {
            Self::Request {
                status,
                code,
                description,
                basic,
            } => (status, code, description, basic, None),
            Self::Issue { error, basic } => match error {
                IssueError::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "invalid client credentials".to_owned(),
                    basic,
                    None,
                ),
                IssueError::AccountState(_) => (
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    ACCOUNT_REFUSED.to_owned(),
                    false,
                    None,
                ),
                IssueError::Throttled(wait) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "invalid_client",
                    TOO_MANY_ATTEMPTS.to_owned(),
                    false,
                    Some(retry_after_secs(wait)),
                ),
                IssueError::AddressNotAllowed => (
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    ADDRESS_NOT_ALLOWED.to_owned(),
                    false,
                    None,
                ),
                IssueError::TokenRate(wait) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "slow_down",
                    "token rate exceeded".to_owned(),
                    false,
                    Some(retry_after_secs(wait)),
                ),
                IssueError::InvalidScope(missing) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("the client does not hold the scope {missing:?}"),
                    false,
                    None,
                ),
                IssueError::Busy => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    SERVER_BUSY.to_owned(),
                    false,
                    Some(1),
                ),
                IssueError::InvalidDpopProof(e) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_dpop_proof",
                    e.to_string(),
                    false,
                    None,
                ),
                IssueError::DpopRequired => (
                    StatusCode::BAD_REQUEST,
                    "invalid_dpop_proof",
                    "dpop proof required".to_owned(),
                    false,
                    None,
                ),
                IssueError::Internal(e) => return internal(&e),
            },
            Self::Admin(AdminError::Internal(e)) | Self::Internal(e) => return internal(&e),
            Self::Admin(AdminError::Unavailable(m)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                m,
                false,
                Some(1),
            ),
            Self::Admin(AdminError::StorageFull(m)) => (
                StatusCode::INSUFFICIENT_STORAGE,
                "temporarily_unavailable",
                m,
                false,
                None,
            ),
            Self::Admin(AdminError::RateLimited(wait)) => (
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many revocations from this client; retry later".to_owned(),
                false,
                Some(retry_after_secs(wait)),
            ),
            Self::Admin(e) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                e.to_string(),
                false,
                None,
            ),
        };
        let mut r = super::reply::json(
            status,
            &serde_json::json!({ "error": code, "error_description": description }),
        );
        if basic && status == StatusCode::UNAUTHORIZED {
            r = with_header(r, WWW_AUTHENTICATE, r#"Basic realm="tessera""#);
        }
        if let Some(secs) = retry_after {
            r = with_header(r, RETRY_AFTER, &secs.to_string());
        }
        r
    }
}
