//! The small filters every route is built from: the TCP peer, the raw
//! query, the shared state, and the one `Authorization: Bearer` parser.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::Filter;
use warp::http::HeaderMap;

use super::state::AppState;

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
    let value = headers.get(warp::http::header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.is_empty() {
        None
    } else {
        Some(Ok(token))
    }
}

/// Shares the state with a handler.
pub(super) fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}
