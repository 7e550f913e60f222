//! The admin console (SPEC §16): server-rendered pages on the admin
//! listener only, under `/console`. Routes here are the one exception to
//! the admin listener's bearer rule: they authenticate with a console
//! session ([`session`]), and a session opens nothing under `/admin`.
//! Every state-changing request is a POST carrying the session's CSRF
//! token from a same-origin page ([`guard`]), answered with a redirect
//! (303) so a reload never re-submits; every action calls the same
//! service function as the admin API, so the change, its audit event and
//! its durability are the same. No script: every action is a form.

pub mod guard;
pub mod pages;
pub mod session;

mod actions;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use maud::Markup;
use warp::Filter;
use warp::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;

use self::session::Live;
use super::body;
use super::filters::{peer, raw_query, with_state};
use super::state::AppState;

/// The policy of every console response: nothing but this origin's own
/// stylesheet and form targets, no script at all, never in a frame.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's stylesheet, compiled into the binary.
const STYLESHEET: &str = include_str!("console.css");

/// Largest console form body.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// One request as the console sees it.
pub(super) struct Request {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    peer: SocketAddr,
    body: Bytes,
}

/// Every console route.
pub fn routes(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path("console")
        .and(warp::path::full())
        .and(warp::method())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(peer())
        .and(with_state(state))
        .and(body::bytes(MAX_FORM_BYTES, state.body_read_timeout))
        .then(
            |path: FullPath,
             method: Method,
             query: String,
             headers: HeaderMap,
             peer: SocketAddr,
             state: Arc<AppState>,
             body: Bytes| async move {
                let started = std::time::Instant::now();
                let request = Request {
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    headers,
                    peer,
                    body,
                };
                let response = with_console_headers(actions::handle(&state, request).await);
                state.observe("admin", "console", started);
                response
            },
        )
}

/// The headers SPEC §16 puts on every console response.
fn with_console_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// A page.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut r = Response::new(markup.into_string().into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A redirect after a POST (or to where a page lives): 303 See Other.
fn see_other(location: &str) -> Response {
    let mut r = Response::new(Bytes::new().into());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The session cookie, set (`Some`) or cleared.
fn with_session_cookie(mut r: Response, cookie: Option<&str>, secure: bool) -> Response {
    let value = match cookie {
        Some(c) => format!(
            "{}={c}; HttpOnly; SameSite=Strict; Path=/console",
            session::COOKIE
        ),
        None => format!(
            "{}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0",
            session::COOKIE
        ),
    };
    let value = if secure { value + "; Secure" } else { value };
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// The console's stylesheet.
fn stylesheet() -> Response {
    let mut r = Response::new(STYLESHEET.into());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

/// 403 for a POST that is not the console's own (no or wrong CSRF token,
/// another origin): nothing was changed.
fn forbidden(live: Option<&Live>) -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::layout(
            "Forbidden",
            live.map(|l| l.csrf.as_str()),
            Some(
                "This form did not come from this console's own page (or its session changed); nothing was changed. Go back, reload, and try again.",
            ),
            maud::html! {},
        ),
    )
}
