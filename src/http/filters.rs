//! The small filters every route is built from: the TCP peer, the raw
//! query, the shared state, and the one `Authorization: Bearer` parser.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::Filter;
use warp::http::HeaderMap;

use super::state::AppState;
use crate::service::{IssueError, LoginProof};
use tessera_verify::dpop::ProofError;

/// The peer address, put into each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub(super) SocketAddr);

/// The TCP peer of the request.
pub(super) fn peer() -> impl Filter<Extract = (SocketAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .map(|p: Option<Peer>| p.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0))
}

/// The raw query string ("" when absent).
pub(super) fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The token of `Authorization: Bearer <token>`, the one bearer parser of
/// every listener (`/verify`, the admin token, the feed token,
/// introspection): None when there is no such header, another scheme or an
/// empty token; `Err` when the header is not text.
pub(super) fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    match access_token(headers)? {
        Ok((Scheme::Bearer, token)) => Some(Ok(token)),
        Ok((Scheme::Dpop, _)) => None,
        Err(()) => Some(Err(())),
    }
}

/// How an access token is sent in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1), with a `DPoP` proof header beside it.
    Dpop,
}

/// The scheme and token of `Authorization: Bearer|DPoP <token>`: None
/// when there is no such header, another scheme or an empty token; `Err`
/// when the header is not text.
pub(super) fn access_token(headers: &HeaderMap) -> Option<Result<(Scheme, &str), ()>> {
    let value = headers.get(warp::http::header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    let token = token.trim();
    if token.is_empty() {
        None
    } else {
        Some(Ok((scheme, token)))
    }
}

/// Shares the state with a handler.
pub(super) fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// The `DPoP` header of a request (RFC 9449 §4.1): None when absent;
/// `Err` when it is sent more than once or is not text, which no valid
/// proof is.
pub(super) fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| ()),
        (Some(_), Some(_)) => Err(()),
    }
}

/// The DPoP proof of a login request, with the endpoint URL it must name
/// (`AppState::public_endpoint`): None without one; a `DPoP` header sent
/// twice or not as text is a malformed proof.
pub(super) fn login_proof<'a>(
    headers: &'a HeaderMap,
    url: &'a str,
) -> Result<Option<LoginProof<'a>>, IssueError> {
    match dpop_proof(headers) {
        Ok(None) => Ok(None),
        Ok(Some(proof)) => Ok(Some(LoginProof { proof, url })),
        Err(()) => Err(IssueError::InvalidDpopProof(ProofError::Malformed)),
    }
}
