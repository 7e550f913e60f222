//! `/admin/revocations` and `/admin/tokens/check`.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::http::admin::{Handled, MAX_JSON_BYTES, json_body, limit_param, query_param, respond};
use crate::http::body;
use crate::http::errors::ApiError;
use crate::http::filters::{raw_query, with_state};
use crate::http::methods::methods;
use crate::http::reply::json;
use crate::http::state::AppState;
use crate::service::{AdminError, RevokeTarget, VerifyError};
use crate::store::Page;

pub(super) fn revocations(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "revocations")
        .and(methods(&[Method::GET, Method::POST], "GET, POST"))
        .and(warp::method())
        .and(with_state(state))
        .and(raw_query())
        .and(body::bytes(MAX_JSON_BYTES, state.body_read_timeout))
        .then(
            |m: Method, state: Arc<AppState>, query: String, body: Bytes| async move {
                if m == Method::POST {
                    respond(&state, "revocations.create", revoke_token(&state, &body)).await
                } else {
                    respond(&state, "revocations.list", async {
                        list_revocations(&state, &query)
                    })
                    .await
                }
            },
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
}

pub(super) async fn revoke_token(state: &AppState, body: &[u8]) -> Handled {
    let b: RevokeBody = json_body(body)?;
    let target = match b {
        RevokeBody {
            token: Some(t),
            jti: None,
            exp: None,
        } => RevokeTarget::Token(t),
        RevokeBody {
            token: None,
            jti: Some(jti),
            exp: Some(exp),
        } => RevokeTarget::Jti { jti, exp },
        _ => {
            return Err(ApiError::invalid(
                r#"send {"token":"…"} or {"jti":"…","exp":N}"#,
            ));
        }
    };
    let (jti, exp) = state.service.revoke_token(target).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "jti": jti, "exp": exp }),
    ))
}

pub(super) fn list_revocations(state: &AppState, query: &str) -> Handled {
    let limit = limit_param(query)?;
    let after = query_param(query, "after")?;
    let Page { items, next } = state.service.list_revocations(after.as_deref(), limit)?;
    let revocations: Vec<_> = items
        .into_iter()
        .map(|(jti, exp)| serde_json::json!({ "jti": jti, "exp": exp }))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "revocations": revocations, "next": next }),
    ))
}

// ---- /admin/tokens/check ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckBody {
    token: String,
}

/// `POST /admin/tokens/check` `{"token":"…"}`: `/verify`'s verdict for a
/// token, as JSON, so an operator (`tessera token check`) can ask the admin
/// API what a partner's service would be told: `{"valid":true, sub, jti,
/// iat, exp}` or `{"valid":false, "reason": <the /verify error_description>}`.
pub(super) fn check_token(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "tokens" / "check")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(body::bytes(MAX_JSON_BYTES, state.body_read_timeout))
        .then(|state: Arc<AppState>, body: Bytes| async move {
            respond(&state, "tokens.check", async {
                let b: CheckBody = json_body(&body)?;
                let verdict = match state.service.verify_bearer(b.token.trim()) {
                    Ok(c) => serde_json::json!({
                        "valid": true,
                        "sub": c.sub,
                        "jti": c.jti,
                        "iat": c.iat,
                        "exp": c.exp,
                    }),
                    Err(VerifyError::Internal(e)) => return Err(AdminError::Internal(e).into()),
                    Err(VerifyError::Unavailable(why)) => {
                        return Err(AdminError::Unavailable(why).into());
                    }
                    Err(e) => serde_json::json!({ "valid": false, "reason": e.to_string() }),
                };
                Ok(json(StatusCode::OK, &verdict))
            })
            .await
        })
}
