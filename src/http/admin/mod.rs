//! The admin listener: every route of SPEC §3 behind the admin bearer token
//! (checked from the request head before any body is read, compared in
//! constant time), one filter per path, JSON in and out. Each handler
//! parses, calls one service function and renders; the service commits
//! durably before it returns. Failures become responses in `errors`.
//!
//! This file holds the admin token check, the route table and the
//! parameter parsing every handler shares; each resource family has its
//! own file: [`users`], [`revocations`] (and `/admin/tokens/check`),
//! [`keys`], [`audit`], [`data`] (export, import, apply).

use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use warp::Filter;
use warp::http::header::CONTENT_TYPE;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::errors::{ApiError, TooManyAttempts, Unauthorized};
use super::filters::{peer, raw_query, with_state};
use super::form;
use super::methods::methods;
use super::reply::{self, with_header};
use super::secrets::SecretRefusal;
use super::state::AppState;
use crate::domain::user::Username;
use crate::domain::values::Note;
use crate::runtime::time;
use crate::service::{AdminError, SecretUse};

mod audit;
mod data;
mod keys;
mod revocations;
mod secrets;
mod users;

use self::audit::audit;
pub use self::data::MAX_APPLY_BYTES;
use self::data::{apply, export, import};
use self::keys::{keys, rotate};
use self::revocations::{check_token, revocations};
use self::secrets::user_secrets;
use self::users::{user, user_password, user_revoke, users};

/// Largest JSON body on the admin listener.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Default and largest page size.
pub(super) const DEFAULT_LIMIT: usize = 100;
pub(super) const MAX_LIMIT: usize = 1000;

pub(super) type Handled = Result<Response, ApiError>;

/// Passes only requests whose head carries the admin token; nothing after
/// it (no body) runs for anyone else.
pub(super) fn admin_token(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone + use<> {
    with_state(state)
        .and(warp::header::headers_cloned())
        .and(peer())
        .and_then(
            |state: Arc<AppState>, headers: HeaderMap, peer: std::net::SocketAddr| async move {
                let client = AppState::admin_client_key(peer);
                state
                    .check_bearer_secret(SecretUse::AdminApi, &client, &headers)
                    .map_err(|refusal| match refusal {
                        SecretRefusal::Absent | SecretRefusal::Wrong => {
                            warp::reject::custom(Unauthorized)
                        }
                        SecretRefusal::Throttled(wait) => {
                            warp::reject::custom(TooManyAttempts(wait))
                        }
                    })
            },
        )
        .untuple_one()
}

/// Every admin route, behind the admin token.
pub fn routes(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static + use<>
{
    let users = users(state)
        .or(user(state))
        .unify()
        .or(user_password(state))
        .unify()
        .or(user_revoke(state))
        .unify()
        .or(user_secrets(state))
        .unify()
        .boxed();
    let rest = revocations(state)
        .or(keys(state))
        .unify()
        .or(rotate(state))
        .unify()
        .or(audit(state))
        .unify()
        .or(export(state))
        .unify()
        .or(import(state))
        .unify()
        .or(apply(state))
        .unify()
        .or(check_token(state))
        .unify()
        .or(metrics(state))
        .unify()
        .boxed();
    // The console authenticates with its own session, the one exception
    // to the bearer rule; a session opens nothing under /admin.
    crate::http::console::routes(state)
        .or(instance(state))
        .unify()
        .or(admin_token(state).and(users.or(rest).unify()))
        .unify()
}

/// `GET /instance?nonce=N`, the one route without the admin token: proves
/// to the CLI that this is the server its data dir's `admin.url` names
/// ([`crate::runtime::instance`]), before the CLI sends the token. It reads no body
/// and reveals nothing but a MAC of the caller's nonce.
pub(super) fn instance(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("instance")
        .and(warp::get())
        .and(with_state(state))
        .and(raw_query())
        .and_then(|state: Arc<AppState>, query: String| async move {
            let Some(key) = state.instance_key else {
                return Err(warp::reject::custom(Unauthorized));
            };
            let nonce = form::parse_pairs(&query)
                .ok()
                .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "nonce"))
                .map(|(_, v)| v)
                .filter(|n| !n.is_empty() && n.len() <= 128);
            Ok::<_, warp::Rejection>(match nonce {
                Some(n) => reply::text(StatusCode::OK, crate::runtime::instance::proof(&key, &n)),
                None => ApiError::BadRequest("pass ?nonce=".into()).response(),
            })
        })
}

/// Runs a handler, records its latency, renders its failure.
pub(super) async fn respond(
    state: &AppState,
    route: &'static str,
    handled: impl Future<Output = Handled>,
) -> Response {
    let started = Instant::now();
    let response = handled.await.unwrap_or_else(ApiError::response);
    state.observe("admin", route, started);
    response
}

/// The JSON body of a request (an empty body reads as `{}`), refusing
/// unknown fields (400).
pub(super) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads `name` from the query string (the last one wins).
pub(super) fn query_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    let pairs = form::parse_pairs(query)
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    Ok(pairs
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v))
}

pub(super) fn limit_param(query: &str) -> Result<usize, ApiError> {
    match query_param(query, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

pub(super) fn parse_time(field: &str, text: &str) -> Result<u64, ApiError> {
    time::parse_rfc3339(text).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

/// A `note` from a body, checked ([`Note`]).
pub(super) fn note(text: Option<String>) -> Result<Option<String>, ApiError> {
    text.map(|t| Note::parse(t).map(Note::into_inner))
        .transpose()
        .map_err(|e| ApiError::invalid(format!("note {e}")))
}

/// A `{username}` path segment: percent-decoded and parsed; a name that
/// breaks the rules can not exist, so it is a 404 like any unknown user.
pub(super) fn username(segment: &str) -> Result<Username, ApiError> {
    let decoded = form::percent_decode(segment, false)
        .map_err(|_| ApiError::BadRequest("malformed path".into()))?;
    Username::parse(&decoded).map_err(|_| AdminError::no_user(&decoded).into())
}

/// Distinguishes an absent field (None) from an explicit null (Some(None)).
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---- /metrics ----

pub(super) fn metrics(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("metrics")
        .and(methods(&[Method::GET], "GET"))
        .and(with_state(state))
        .map(|state: Arc<AppState>| {
            let (users, revocations) = state.service.counts();
            with_header(
                reply::text(
                    StatusCode::OK,
                    state
                        .service
                        .metrics()
                        .render(users, revocations, state.service.writable()),
                ),
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        })
}
