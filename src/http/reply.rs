//! Response shapes: plain-text partner replies, JSON admin replies and the
//! admin error body, headers. Which error gets which status is decided in
//! `errors`.

use serde::Serialize;
use std::time::Duration;

use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use warp::http::{HeaderName, StatusCode};
use warp::reply::Response;

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

/// Whole seconds to put in `Retry-After` for a wait: rounded up, and at
/// least 1 (a client told "0" would retry at once and be refused again).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// `r` with `Retry-After` for `wait` ([`retry_after_secs`]).
pub fn with_retry_after(r: Response, wait: Duration) -> Response {
    with_header(r, RETRY_AFTER, &retry_after_secs(wait).to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{retry_after_secs, text, with_retry_after};

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_never_says_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }

    #[test]
    fn a_retry_after_header_keeps_the_answer() {
        let r = with_retry_after(
            text(warp::http::StatusCode::TOO_MANY_REQUESTS, "wait"),
            Duration::from_millis(2500),
        );
        assert_eq!(r.status(), warp::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "3");
    }
}
