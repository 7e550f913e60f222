//! `/admin/keys` and `/admin/keys/rotate`.

use std::sync::Arc;

use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::http::admin::{query_param, respond};
use crate::http::errors::ApiError;
use crate::http::filters::{raw_query, with_state};
use crate::http::methods::methods;
use crate::http::reply::json;
use crate::http::state::AppState;
use crate::runtime::time;
use crate::service::KeyView;

pub(super) fn key_views(keys: Vec<KeyView>) -> serde_json::Value {
    let keys: Vec<_> = keys
        .into_iter()
        .map(|k| {
            serde_json::json!({
                "kid": k.kid,
                "status": k.status,
                "created_at": time::rfc3339(k.created_at),
                "retired_at": k.retired_at.map(time::rfc3339),
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

pub(super) fn keys(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "keys")
        .and(methods(&[Method::GET], "GET"))
        .and(with_state(state))
        .then(|state: Arc<AppState>| async move {
            respond(&state, "keys.list", async {
                Ok(json(StatusCode::OK, &key_views(state.service.keys()?)))
            })
            .await
        })
}

pub(super) fn rotate(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "keys" / "rotate")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(raw_query())
        .then(|state: Arc<AppState>, query: String| async move {
            respond(&state, "keys.rotate", async {
                let force = match query_param(&query, "force")?.as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => return Err(ApiError::invalid("force must be true or false")),
                };
                let keys = state.service.rotate_keys(force).await?;
                Ok(json(StatusCode::OK, &key_views(keys)))
            })
            .await
        })
}
