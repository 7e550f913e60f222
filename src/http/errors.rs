//! Every error the HTTP edge can answer with, and the one place each maps
//! to a status and body: domain errors of the service ([`IssueError`],
//! [`VerifyError`], [`AdminError`]), the edge's own (bad query, bad JSON,
//! unreadable bodies), and the rejections of routing (no such route, wrong
//! method, no admin token), turned into responses by each listener's
//! `recover`. Partner answers are plain text (the seed contract's exact
//! strings); admin answers are `{"error","message"}` JSON. Internal errors
//! are logged with their cause chain and shown only as a plain 500.

use std::convert::Infallible;

use tessera_verify::scope::Scopes;
use warp::http::StatusCode;
use warp::http::header::{ALLOW, CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::reply::Response;

use super::methods::MethodNotAllowed;
use super::reply::{admin_error, no_store, text, with_header, with_retry_after};
use crate::service::{AdminError, IssueError, VerifyError};
use tessera_verify::dpop::PresentationError;

/// The seed contract's answer for unknown users and wrong passwords.
pub const INVALID_CREDENTIALS: &str = "invalid username or password";
/// A scope the user does not hold was asked for (`/generateToken`'s `scope`).
pub const INVALID_SCOPE: &str = "invalid scope";
/// The seed contract's answer for accounts that may not get tokens.
pub const ACCOUNT_REFUSED: &str = "token expired";
/// A login from outside the user's allowed networks (SPEC §15).
pub const ADDRESS_NOT_ALLOWED: &str = "address not allowed";
/// A login past the user's token rate (SPEC §15).
pub const TOO_MANY_TOKENS: &str = "too many tokens";
/// The answer when a field is missing or empty.
pub const MISSING_FIELDS: &str = "missing username or password";
/// A client (or address) refused for now after too many failures.
pub const TOO_MANY_ATTEMPTS: &str = "too many attempts";
/// The answer while the hash pool is full.
pub const SERVER_BUSY: &str = "server busy";

/// Logs an internal error with its cause chain; the client sees a plain 500.
pub fn internal(err: &(dyn std::error::Error + 'static)) -> Response {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!(error = %chain, "internal error");
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Which listener a response is for: decides its body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The partner API: plain text.
    Partner,
    /// The admin API: JSON errors.
    Admin,
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the route's limit (413).
    TooLarge(usize),
    /// Did not arrive within the body-read timeout (408).
    TimedOut,
    /// The connection broke (400).
    Read(String),
}

impl BodyError {
    /// The answer on `listener`. The rest of the body is never read, so the
    /// connection is closed.
    pub fn response(self, listener: Listener) -> Response {
        let (status, code, message) = match self {
            BodyError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body too large (limit {limit} bytes)"),
            ),
            BodyError::TimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "request body not received in time".to_owned(),
            ),
            BodyError::Read(e) => {
                tracing::debug!(error = %e, "could not read request body");
                (
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "could not read request body".to_owned(),
                )
            }
        };
        let response = match listener {
            Listener::Partner => text(status, message),
            Listener::Admin => admin_error(status, code, message),
        };
        with_header(response, CONNECTION, "close")
    }
}

/// A body-reading failure as a rejection (the route's body filter failed).
#[derive(Debug)]
pub struct BodyRejection(pub BodyError);
impl warp::reject::Reject for BodyRejection {}

/// An admin request without the admin token.
#[derive(Debug)]
pub struct Unauthorized;
impl warp::reject::Reject for Unauthorized {}

/// An admin request from an address that presented wrong tokens too often:
/// refused for this long, whatever it presents now.
#[derive(Debug)]
pub struct TooManyAttempts(pub std::time::Duration);
impl warp::reject::Reject for TooManyAttempts {}

/// A failed `/generateToken` (or other login endpoint) on the partner API.
#[derive(Debug)]
pub enum LoginError {
    /// The use case refused.
    Issue(IssueError),
    /// A field is missing or empty.
    MissingFields,
    /// The request is malformed (bad encoding, over-long field).
    BadRequest(String),
    /// A body of another media type.
    UnsupportedMediaType,
}

impl From<IssueError> for LoginError {
    fn from(e: IssueError) -> Self {
        Self::Issue(e)
    }
}

impl LoginError {
    /// The plain-text answer (the seed's exact strings).
    pub fn response(self) -> Response {
        match self {
            Self::Issue(IssueError::InvalidCredentials) => {
                text(StatusCode::UNAUTHORIZED, INVALID_CREDENTIALS)
            }
            Self::Issue(IssueError::InvalidScope(_)) => {
                text(StatusCode::BAD_REQUEST, INVALID_SCOPE)
            }
            Self::Issue(IssueError::AccountState(_)) => {
                text(StatusCode::FORBIDDEN, ACCOUNT_REFUSED)
            }
            Self::Issue(IssueError::Throttled(wait)) => {
                with_retry_after(text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_ATTEMPTS), wait)
            }
            Self::Issue(IssueError::AddressNotAllowed) => {
                text(StatusCode::FORBIDDEN, ADDRESS_NOT_ALLOWED)
            }
            Self::Issue(IssueError::TokenRate(wait)) => {
                with_retry_after(text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_TOKENS), wait)
            }
            Self::Issue(IssueError::Busy) => with_header(
                text(StatusCode::SERVICE_UNAVAILABLE, SERVER_BUSY),
                RETRY_AFTER,
                "1",
            ),
            Self::Issue(IssueError::InvalidDpopProof(_)) => {
                text(StatusCode::BAD_REQUEST, "invalid dpop proof")
            }
            Self::Issue(IssueError::DpopRequired) => {
                text(StatusCode::BAD_REQUEST, "dpop proof required")
            }
            Self::Issue(IssueError::Internal(e)) => internal(&e),
            Self::MissingFields => text(StatusCode::BAD_REQUEST, MISSING_FIELDS),
            Self::BadRequest(reason) => text(StatusCode::BAD_REQUEST, reason),
            Self::UnsupportedMediaType => text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send credentials as application/x-www-form-urlencoded or in the query string",
            ),
        }
    }

    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Issue(e) => issue_outcome(e),
            Self::MissingFields | Self::BadRequest(_) | Self::UnsupportedMediaType => "bad_request",
        }
    }
}

/// The metrics label of a refused login, the same on every login endpoint.
pub(super) fn issue_outcome(e: &IssueError) -> &'static str {
    match e {
        IssueError::InvalidCredentials => "invalid_credentials",
        IssueError::AccountState(_) => "account_refused",
        IssueError::Throttled(_) => "throttled",
        IssueError::Busy => "busy",
        IssueError::InvalidScope(_) => "invalid_scope",
        IssueError::AddressNotAllowed => "address_not_allowed",
        IssueError::TokenRate(_) => "token_rate",
        IssueError::InvalidDpopProof(_) => "invalid_dpop_proof",
        IssueError::DpopRequired => "dpop_required",
        IssueError::Internal(_) => "error",
    }
}

/// The `/verify` challenge (RFC 6750 §3): no error code without a token,
/// `invalid_token` with the reason otherwise.
pub fn bearer_challenge(description: Option<&str>) -> Response {
    let value = match description {
        None => r#"Bearer realm="tessera""#.to_owned(),
        Some(d) => {
            format!(r#"Bearer realm="tessera", error="invalid_token", error_description="{d}""#)
        }
    };
    no_store(with_header(
        text(StatusCode::UNAUTHORIZED, "unauthorized"),
        WWW_AUTHENTICATE,
        &value,
    ))
}

/// A valid token without a required scope (RFC 6750 §3.1): 403 with the
/// scopes the resource requires.
pub fn insufficient_scope(required: &Scopes) -> Response {
    let value =
        format!(r#"Bearer realm="tessera", error="insufficient_scope", scope="{required}""#);
    no_store(with_header(
        text(StatusCode::FORBIDDEN, "insufficient scope"),
        WWW_AUTHENTICATE,
        &value,
    ))
}

/// A refused bearer token.
pub fn verify_error(e: &VerifyError) -> Response {
    match e {
        VerifyError::Internal(inner) => internal(inner),
        VerifyError::Unavailable(why) => {
            tracing::warn!(reason = %why, "verify: account state unavailable, answered 503");
            with_header(
                text(StatusCode::SERVICE_UNAVAILABLE, SERVER_BUSY),
                RETRY_AFTER,
                "1",
            )
        }
        VerifyError::Presentation(e) => dpop_challenge(e),
        other => bearer_challenge(Some(&other.to_string())),
    }
}

/// The `/verify` challenge for a token presented the wrong way or with a
/// bad proof (RFC 9449 §7.1): `DPoP` with the algorithms accepted, and
/// `invalid_dpop_proof` for the proof or `invalid_token` for the token.
pub fn dpop_challenge(e: &PresentationError) -> Response {
    let code = match e {
        PresentationError::Proof(_) => "invalid_dpop_proof",
        PresentationError::Binding(_) => "invalid_token",
    };
    let value = format!(
        r#"DPoP algs="{}", error="{code}", error_description="{e}""#,
        tessera_verify::dpop::ALGORITHMS.join(" ")
    );
    no_store(with_header(
        text(StatusCode::UNAUTHORIZED, "unauthorized"),
        WWW_AUTHENTICATE,
        &value,
    ))
}

/// A failed admin request.
#[derive(Debug)]
pub enum ApiError {
    /// The use case refused.
    Admin(AdminError),
    /// The request itself is malformed: bad JSON, unknown fields, a bad
    /// query string (400).
    BadRequest(String),
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        Self::Admin(e)
    }
}

impl ApiError {
    /// A rule broken by the input (422).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Admin(AdminError::Invalid(message.into()))
    }

    /// The JSON answer.
    pub fn response(self) -> Response {
        match self {
            Self::BadRequest(m) => admin_error(StatusCode::BAD_REQUEST, "bad_request", m),
            Self::Admin(AdminError::Invalid(m)) => {
                admin_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            Self::Admin(AdminError::NotFound(m)) => {
                admin_error(StatusCode::NOT_FOUND, "not_found", m)
            }
            Self::Admin(AdminError::Conflict(m)) => {
                admin_error(StatusCode::CONFLICT, "conflict", m)
            }
            Self::Admin(AdminError::Unavailable(m)) => {
                // Cluster mode with the database unreachable: nothing was
                // written; the node keeps serving tokens from memory.
                with_header(
                    admin_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
                    RETRY_AFTER,
                    "1",
                )
            }
            Self::Admin(AdminError::StorageFull(m)) => {
                // Nothing was written; logins and verification go on.
                admin_error(StatusCode::INSUFFICIENT_STORAGE, "storage_full", m)
            }
            Self::Admin(e @ AdminError::RateLimited(wait)) => with_retry_after(
                admin_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string()),
                wait,
            ),
            Self::Admin(AdminError::Internal(e)) => internal(&e),
        }
    }
}

/// Turns a routing rejection into the partner API's answer.
pub async fn recover_partner(r: warp::Rejection) -> Result<Response, Infallible> {
    Ok(recover(r, Listener::Partner))
}

/// Turns a routing rejection into the admin API's answer.
pub async fn recover_admin(r: warp::Rejection) -> Result<Response, Infallible> {
    Ok(recover(r, Listener::Admin))
}

fn recover(r: warp::Rejection, listener: Listener) -> Response {
    if let Some(TooManyAttempts(wait)) = r.find::<TooManyAttempts>() {
        let response = with_retry_after(
            admin_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong admin tokens from this address; retry later",
            ),
            *wait,
        );
        return with_header(response, CONNECTION, "close");
    }
    if r.find::<Unauthorized>().is_some() {
        let response = with_header(
            admin_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <admin token> (see the admin token file)",
            ),
            WWW_AUTHENTICATE,
            r#"Bearer realm="tessera-admin""#,
        );
        // Its body is never read, so the connection is closed, not drained.
        return with_header(response, CONNECTION, "close");
    }
    if let Some(BodyRejection(e)) = r.find::<BodyRejection>() {
        let e = match e {
            BodyError::TooLarge(n) => BodyError::TooLarge(*n),
            BodyError::TimedOut => BodyError::TimedOut,
            BodyError::Read(m) => BodyError::Read(m.clone()),
        };
        return e.response(listener);
    }
    if let Some(m) = r.find::<MethodNotAllowed>() {
        let response = match listener {
            Listener::Partner => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            Listener::Admin => admin_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            ),
        };
        return with_header(response, ALLOW, m.allow);
    }
    if !r.is_not_found() {
        tracing::debug!(rejection = ?r, "unhandled rejection");
    }
    match listener {
        Listener::Partner => text(StatusCode::NOT_FOUND, "not found"),
        Listener::Admin => admin_error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}
