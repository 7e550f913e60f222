//! Every response shape in one place: plain-text partner replies, JSON admin
//! replies and errors, and the mapping of domain errors to status codes.
//! Internal errors are logged with their cause here and shown to clients
//! only as a plain 500.

use serde::Serialize;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use warp::http::{HeaderName, StatusCode};
use warp::reply::Response;

use crate::service::AdminError;

/// A response with `body` as `text/plain; charset=utf-8`.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(bytes::Bytes::new().into());
    *r.status_mut() = status;
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response {
    // Our reply types are plain structs: serialisation cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    raw_json(status, body)
}

/// A response whose body is already JSON text.
pub fn raw_json(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Adds a header (values are ours and always valid; an invalid one is skipped).
pub fn with_header(mut r: Response, name: HeaderName, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

/// Marks a response `Cache-Control: no-store`.
pub fn no_store(r: Response) -> Response {
    with_header(r, CACHE_CONTROL, "no-store")
}

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

/// An admin error body `{"error": code, "message": text}`.
pub fn admin_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        message: String,
    }
    json(
        status,
        &Body {
            error: code,
            message: message.into(),
        },
    )
}

/// Maps a failed operator action to its status and error code.
pub fn from_admin_error(err: AdminError) -> Response {
    match err {
        AdminError::Invalid(m) => admin_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
        AdminError::NotFound(m) => admin_error(StatusCode::NOT_FOUND, "not_found", m),
        AdminError::Conflict(m) => admin_error(StatusCode::CONFLICT, "conflict", m),
        AdminError::Internal(e) => internal(&e),
    }
}
