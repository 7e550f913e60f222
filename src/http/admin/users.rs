//! `/admin/users`, `/admin/users/{name}` and its `password` and `revoke`
//! actions.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tessera_verify::scope::Scopes;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::domain::networks::AllowedNetworks;
use crate::domain::token_rate::TokenRate;
use crate::domain::user::{AccountStatus, UserView};
use crate::http::admin::{
    Handled, MAX_JSON_BYTES, json_body, limit_param, note, nullable, parse_time, query_param,
    respond, username,
};
use crate::http::errors::ApiError;
use crate::http::filters::{raw_query, with_state};
use crate::http::methods::methods;
use crate::http::reply::json;
use crate::http::state::AppState;
use crate::http::{body, reply};
use crate::service::{NewUser, UserPatch};
use crate::store::Page;

pub(super) fn users(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "users")
        .and(methods(&[Method::GET, Method::POST], "GET, POST"))
        .and(warp::method())
        .and(with_state(state))
        .and(raw_query())
        .and(body::bytes(MAX_JSON_BYTES, state.body_read_timeout))
        .then(
            |m: Method, state: Arc<AppState>, query: String, body: Bytes| async move {
                if m == Method::POST {
                    respond(&state, "users.create", create_user(&state, &body)).await
                } else {
                    respond(&state, "users.list", async { list_users(&state, &query) }).await
                }
            },
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateUserBody {
    username: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    token_ttl_secs: Option<u64>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    allowed_networks: Option<Vec<String>>,
    #[serde(default)]
    token_rate: Option<String>,
    #[serde(default)]
    dpop_required: bool,
}

/// An `allowed_networks` list from a request body, checked and normalised
/// (422 naming the network).
fn networks(list: Option<Vec<String>>) -> Result<AllowedNetworks, ApiError> {
    AllowedNetworks::parse(&list.unwrap_or_default())
        .map_err(|e| ApiError::invalid(format!("allowed_networks: {e}")))
}

/// A `token_rate` from a request body (422 naming the forms).
fn token_rate(text: &str) -> Result<TokenRate, ApiError> {
    TokenRate::parse(text).map_err(|e| ApiError::invalid(format!("token_rate: {e}")))
}

/// A `scopes` list from a request body, checked (422 naming the scope).
pub(super) fn scopes(names: Option<Vec<String>>) -> Result<Scopes, ApiError> {
    Scopes::new(names.unwrap_or_default()).map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Serialize)]
pub(super) struct CreatedUser<'a> {
    #[serde(flatten)]
    user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

pub(super) async fn create_user(state: &AppState, body: &[u8]) -> Handled {
    let b: CreateUserBody = json_body(body)?;
    let note = note(b.note)?;
    let scopes = scopes(b.scopes)?;
    let allowed_networks = networks(b.allowed_networks)?;
    let token_rate = b.token_rate.as_deref().map(token_rate).transpose()?;
    let expires_at = b
        .expires_at
        .as_deref()
        .map(|t| parse_time("expires_at", t))
        .transpose()?;
    let (user, password) = state
        .service
        .create_user(NewUser {
            username: b.username,
            password: b.password,
            expires_at,
            token_ttl_secs: b.token_ttl_secs,
            note,
            scopes,
            allowed_networks,
            token_rate,
            dpop_required: b.dpop_required,
        })
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedUser {
            user: user.view(state.service.now()),
            password: password.as_ref().map(|p| p.as_str()),
        },
    ))
}

#[derive(Serialize)]
pub(super) struct UserList {
    users: Vec<UserView>,
    next: Option<String>,
}

pub(super) fn list_users(state: &AppState, query: &str) -> Handled {
    let limit = limit_param(query)?;
    let after = query_param(query, "after")?;
    let Page { items, next } = state.service.list_users(after.as_deref(), limit)?;
    let now = state.service.now();
    Ok(json(
        StatusCode::OK,
        &UserList {
            users: items.iter().map(|u| u.view(now)).collect(),
            next,
        },
    ))
}

// ---- /admin/users/{name} ----

pub(super) fn user(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "users" / String)
        .and(methods(
            &[Method::GET, Method::PATCH, Method::DELETE],
            "GET, PATCH, DELETE",
        ))
        .and(warp::method())
        .and(with_state(state))
        .and(body::bytes(MAX_JSON_BYTES, state.body_read_timeout))
        .then(
            |name: String, m: Method, state: Arc<AppState>, body: Bytes| async move {
                match m {
                    Method::PATCH => {
                        respond(&state, "user.patch", patch_user(&state, &name, &body)).await
                    }
                    Method::DELETE => {
                        respond(&state, "user.delete", delete_user(&state, &name)).await
                    }
                    _ => respond(&state, "user.get", async { get_user(&state, &name) }).await,
                }
            },
        )
}

pub(super) fn get_user(state: &AppState, name: &str) -> Handled {
    let user = state.service.user(&username(name)?)?;
    Ok(json(StatusCode::OK, &user.view(state.service.now())))
}

pub(super) async fn delete_user(state: &AppState, name: &str) -> Handled {
    state.service.delete_user(&username(name)?).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchUserBody {
    #[serde(default, deserialize_with = "nullable")]
    status: Option<Option<AccountStatus>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    token_ttl_secs: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    note: Option<Option<String>>,
    /// `null` or `[]` clears.
    #[serde(default, deserialize_with = "nullable")]
    scopes: Option<Option<Vec<String>>>,
    /// `null` or `[]`: anywhere.
    #[serde(default, deserialize_with = "nullable")]
    allowed_networks: Option<Option<Vec<String>>>,
    /// `null`: unlimited.
    #[serde(default, deserialize_with = "nullable")]
    token_rate: Option<Option<String>>,
    #[serde(default)]
    dpop_required: Option<bool>,
}

pub(super) async fn patch_user(state: &AppState, name: &str, body: &[u8]) -> Handled {
    let name = username(name)?;
    let b: PatchUserBody = json_body(body)?;
    if b.status == Some(None) {
        return Err(ApiError::invalid(
            "status can not be null: send \"active\" or \"disabled\"",
        ));
    }
    let new_note = b.note.map(note).transpose()?;
    let new_scopes = b.scopes.map(scopes).transpose()?;
    let new_networks = b.allowed_networks.map(networks).transpose()?;
    let new_rate = match b.token_rate {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(Some(token_rate(&t)?)),
    };
    let expires_at = match b.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(Some(parse_time("expires_at", &t)?)),
    };
    let user = state
        .service
        .patch_user(
            &name,
            UserPatch {
                status: b.status.flatten(),
                expires_at,
                token_ttl_secs: b.token_ttl_secs,
                note: new_note,
                scopes: new_scopes,
                allowed_networks: new_networks,
                token_rate: new_rate,
                dpop_required: b.dpop_required,
            },
        )
        .await?;
    Ok(json(StatusCode::OK, &user.view(state.service.now())))
}

// ---- /admin/users/{name}/password and /revoke ----

pub(super) fn user_password(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "users" / String / "password")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(body::bytes(MAX_JSON_BYTES, state.body_read_timeout))
        .then(
            |name: String, state: Arc<AppState>, body: Bytes| async move {
                respond(&state, "user.password", set_password(&state, &name, &body)).await
            },
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    #[serde(default)]
    password: Option<String>,
}

pub(super) async fn set_password(state: &AppState, name: &str, body: &[u8]) -> Handled {
    let name = username(name)?;
    let b: PasswordBody = json_body(body)?;
    Ok(match state.service.set_password(&name, b.password).await? {
        Some(generated) => json(
            StatusCode::OK,
            &serde_json::json!({ "password": generated.as_str() }),
        ),
        None => reply::empty(StatusCode::NO_CONTENT),
    })
}

pub(super) fn user_revoke(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "users" / String / "revoke")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .then(|name: String, state: Arc<AppState>| async move {
            respond(&state, "user.revoke", async {
                state.service.revoke_user_tokens(&username(&name)?).await?;
                Ok(reply::empty(StatusCode::NO_CONTENT))
            })
            .await
        })
}
