//! The admin listener: every route of SPEC §3 behind the admin bearer token
//! (checked from the request head before any body is read, compared in
//! constant time), one filter per path, JSON in and out. Each handler
//! parses, calls one service function and renders; the service commits
//! durably before it returns. Failures become responses in `errors`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_verify::scope::Scopes;
use warp::Filter;
use warp::http::header::{CONNECTION, CONTENT_TYPE};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::errors::{ApiError, Listener, Unauthorized, methods};
use super::reply::{self, json, with_header};
use super::{AppState, body, form, raw_query, with_state};
use crate::declaration;
use crate::service::{AdminError, KeyView, NewUser, RevokeTarget, UserPatch, VerifyError};
use crate::store::{AuditEvent, Page};
use crate::time;
use crate::user::{AccountStatus, MAX_NOTE_CHARS, User, UserView, Username};

/// Largest JSON body on the admin listener.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Default and largest page size.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

type Handled = Result<Response, ApiError>;

/// SHA-256 of an admin token, the form it is kept and compared in.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` is the admin token, compared in constant time.
pub fn token_matches(state: &AppState, token: &str) -> bool {
    bool::from(token_digest(token).ct_eq(&state.admin_token_digest))
}

/// Whether the request carries the admin token as a Bearer.
pub fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    matches!(super::bearer(headers), Some(Ok(token)) if token_matches(state, token))
}

/// Passes only requests whose head carries the admin token; nothing after
/// it (no body) runs for anyone else.
fn admin_token(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone + use<> {
    with_state(state)
        .and(warp::header::headers_cloned())
        .and(super::peer())
        .and_then(
            |state: Arc<AppState>, headers: HeaderMap, peer: std::net::SocketAddr| async move {
                if !headers.contains_key(warp::http::header::AUTHORIZATION) {
                    return Err(warp::reject::custom(Unauthorized));
                }
                let client = state.client_key(peer, &headers);
                match state
                    .service
                    .check_secret(&client, "admin token", is_admin(&state, &headers))
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(warp::reject::custom(Unauthorized)),
                    Err(wait) => Err(warp::reject::custom(super::errors::TooManyAttempts(wait))),
                }
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
    instance(state)
        .or(admin_token(state).and(users.or(rest).unify()))
        .unify()
}

/// `GET /instance?nonce=N`, the one route without the admin token: proves
/// to the CLI that this is the server its data dir's `admin.url` names
/// ([`crate::instance`]), before the CLI sends the token. It reads no body
/// and reveals nothing but a MAC of the caller's nonce.
fn instance(
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
                Some(n) => reply::text(StatusCode::OK, crate::instance::proof(&key, &n)),
                None => ApiError::BadRequest("pass ?nonce=".into()).response(),
            })
        })
}

/// Runs a handler, records its latency, renders its failure.
async fn respond(
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
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads `name` from the query string (the last one wins).
fn query_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    let pairs = form::parse_pairs(query)
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    Ok(pairs
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v))
}

fn limit_param(query: &str) -> Result<usize, ApiError> {
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

fn parse_time(field: &str, text: &str) -> Result<u64, ApiError> {
    time::parse_rfc3339(text).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

fn check_note(note: &Option<String>) -> Result<(), ApiError> {
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => Err(ApiError::invalid(format!(
            "note must be at most {MAX_NOTE_CHARS} characters"
        ))),
        _ => Ok(()),
    }
}

/// A `{username}` path segment: percent-decoded and parsed; a name that
/// breaks the rules can not exist, so it is a 404 like any unknown user.
fn username(segment: &str) -> Result<Username, ApiError> {
    let decoded = form::percent_decode(segment, false)
        .map_err(|_| ApiError::BadRequest("malformed path".into()))?;
    Username::parse(&decoded).map_err(|_| AdminError::no_user(&decoded).into())
}

/// Distinguishes an absent field (None) from an explicit null (Some(None)).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---- /admin/users ----

fn users(
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
struct CreateUserBody {
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
}

/// A `scopes` list from a request body, checked (422 naming the scope).
fn scopes(names: Option<Vec<String>>) -> Result<Scopes, ApiError> {
    Scopes::new(names.unwrap_or_default()).map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Serialize)]
struct CreatedUser<'a> {
    #[serde(flatten)]
    user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

async fn create_user(state: &AppState, body: &[u8]) -> Handled {
    let b: CreateUserBody = json_body(body)?;
    check_note(&b.note)?;
    let scopes = scopes(b.scopes)?;
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
            note: b.note,
            scopes,
        })
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedUser {
            user: user.view(),
            password: password.as_ref().map(|p| p.as_str()),
        },
    ))
}

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
    next: Option<String>,
}

fn list_users(state: &AppState, query: &str) -> Handled {
    let limit = limit_param(query)?;
    let after = query_param(query, "after")?;
    let Page { items, next } = state.service.list_users(after.as_deref(), limit)?;
    Ok(json(
        StatusCode::OK,
        &UserList {
            users: items.iter().map(User::view).collect(),
            next,
        },
    ))
}

// ---- /admin/users/{name} ----

fn user(
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

fn get_user(state: &AppState, name: &str) -> Handled {
    let user = state.service.user(&username(name)?)?;
    Ok(json(StatusCode::OK, &user.view()))
}

async fn delete_user(state: &AppState, name: &str) -> Handled {
    state.service.delete_user(&username(name)?).await?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUserBody {
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
}

async fn patch_user(state: &AppState, name: &str, body: &[u8]) -> Handled {
    let name = username(name)?;
    let b: PatchUserBody = json_body(body)?;
    if b.status == Some(None) {
        return Err(ApiError::invalid(
            "status can not be null: send \"active\" or \"disabled\"",
        ));
    }
    if let Some(note) = &b.note {
        check_note(note)?;
    }
    let new_scopes = b.scopes.map(scopes).transpose()?;
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
                note: b.note,
                scopes: new_scopes,
            },
        )
        .await?;
    Ok(json(StatusCode::OK, &user.view()))
}

// ---- /admin/users/{name}/password and /revoke ----

fn user_password(
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
struct PasswordBody {
    #[serde(default)]
    password: Option<String>,
}

async fn set_password(state: &AppState, name: &str, body: &[u8]) -> Handled {
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

fn user_revoke(
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

// ---- /admin/revocations ----

fn revocations(
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
struct RevokeBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
}

async fn revoke_token(state: &AppState, body: &[u8]) -> Handled {
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

fn list_revocations(state: &AppState, query: &str) -> Handled {
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
struct CheckBody {
    token: String,
}

/// `POST /admin/tokens/check` `{"token":"…"}`: `/verify`'s verdict for a
/// token, as JSON, so an operator (`tessera token check`) can ask the admin
/// API what a partner's service would be told: `{"valid":true, sub, jti,
/// iat, exp}` or `{"valid":false, "reason": <the /verify error_description>}`.
fn check_token(
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

// ---- /admin/keys ----

fn key_views(keys: Vec<KeyView>) -> serde_json::Value {
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

fn keys(
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

fn rotate(
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

// ---- /admin/audit ----

#[derive(Serialize)]
struct AuditView {
    seq: u64,
    at: String,
    action: String,
    target: String,
    detail: String,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            at: time::rfc3339(e.at),
            action: e.action,
            target: e.target,
            detail: e.detail,
        }
    }
}

fn audit(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "audit")
        .and(methods(&[Method::GET], "GET"))
        .and(with_state(state))
        .and(raw_query())
        .then(|state: Arc<AppState>, query: String| async move {
            respond(&state, "audit", async {
                let limit = limit_param(&query)?;
                let before = match query_param(&query, "before")? {
                    None => None,
                    Some(v) => Some(
                        v.parse::<u64>()
                            .map_err(|_| ApiError::invalid("before must be a seq number"))?,
                    ),
                };
                let events: Vec<AuditView> = state
                    .service
                    .audit_events(before, limit)?
                    .into_iter()
                    .map(AuditView::from)
                    .collect();
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({ "events": events }),
                ))
            })
            .await
        })
}

// ---- /admin/export and /admin/import ----

/// The export channel as a body stream.
struct ExportStream(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_util::Stream for ExportStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn export(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "export")
        .and(methods(&[Method::GET], "GET"))
        .and(with_state(state))
        .map(|state: Arc<AppState>| {
            let body = warp::reply::stream(ExportStream(state.service.export()));
            with_header(
                warp::Reply::into_response(body),
                CONTENT_TYPE,
                "application/x-ndjson",
            )
        })
}

/// `POST /admin/import`: the body is streamed into the service as it
/// arrives (never gathered), each chunk within the body-read timeout of
/// the one before.
fn import(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "import")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(warp::body::stream())
        .then(|state: Arc<AppState>, stream| async move {
            let started = Instant::now();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let feed = body::stream_into(stream, tx, state.body_read_timeout);
            let (fed, imported) = tokio::join!(feed, state.service.import(rx));
            let response = match (fed, imported) {
                (Err(e), _) => e.response(Listener::Admin),
                (Ok(()), Ok(counts)) => json(StatusCode::OK, &counts),
                // The rest of a refused snapshot is never read.
                (Ok(()), Err(e)) => with_header(ApiError::from(e).response(), CONNECTION, "close"),
            };
            state.observe("admin", "import", started);
            response
        })
}

// ---- /admin/apply ----

/// Largest declarative document over the API (about 10,000 users).
pub const MAX_APPLY_BYTES: usize = 4 * 1024 * 1024;

fn apply(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "apply")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(body::bytes(MAX_APPLY_BYTES, state.body_read_timeout))
        .then(|state: Arc<AppState>, body: Bytes| async move {
            respond(&state, "apply", async {
                let request = declaration::parse_apply_json(&body)
                    .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
                let desired = declaration::check_all(&request.users).map_err(ApiError::invalid)?;
                let report = state
                    .service
                    .apply(desired, request.prune, request.dry_run)
                    .await?;
                Ok(json(StatusCode::OK, &report))
            })
            .await
        })
}

// ---- /metrics ----

fn metrics(
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
