//! `/admin/users/{name}/secrets` (rotate: a new secret while the current
//! one stays valid for a grace) and `/admin/users/{name}/secrets/{id}`
//! (end one early): SPEC §15.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::domain::secrets::{Grace, SecretView};
use crate::http::admin::{Handled, MAX_JSON_BYTES, json_body, respond, username};
use crate::http::errors::ApiError;
use crate::http::filters::with_state;
use crate::http::methods::methods;
use crate::http::reply::json;
use crate::http::state::AppState;
use crate::http::{body, reply};

pub(super) fn user_secrets(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    let rotate = warp::path!("admin" / "users" / String / "secrets")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(body::bytes(MAX_JSON_BYTES, state.body_read_timeout))
        .then(
            |name: String, state: Arc<AppState>, body: Bytes| async move {
                respond(&state, "user.secrets", rotate(&state, &name, &body)).await
            },
        );
    let end = warp::path!("admin" / "users" / String / "secrets" / String)
        .and(methods(&[Method::DELETE], "DELETE"))
        .and(with_state(state))
        .then(
            |name: String, id: String, state: Arc<AppState>| async move {
                respond(&state, "user.secret", async {
                    state.service.end_secret(&username(&name)?, &id).await?;
                    Ok(reply::empty(StatusCode::NO_CONTENT))
                })
                .await
            },
        );
    rotate.or(end).unify()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    grace: Option<String>,
}

/// The answer to a rotation: the generated password (once), the new
/// secret, and the previous one with its expiry (null after `grace: 0s`).
#[derive(Serialize)]
struct RotateAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    secret: SecretView,
    previous: Option<SecretView>,
}

async fn rotate(state: &AppState, name: &str, body: &[u8]) -> Handled {
    let name = username(name)?;
    let b: RotateBody = json_body(body)?;
    let grace = match b.grace.as_deref() {
        None => Grace::default(),
        Some(text) => Grace::parse(text).map_err(|e| ApiError::invalid(format!("grace: {e}")))?,
    };
    let rotated = state
        .service
        .rotate_secret(&name, b.password, grace)
        .await?;
    let (secret, previous) = rotated.user.rotation_views(state.service.now());
    Ok(json(
        StatusCode::CREATED,
        &RotateAnswer {
            password: rotated.password.as_ref().map(|p| p.as_str()),
            secret,
            previous,
        },
    ))
}
