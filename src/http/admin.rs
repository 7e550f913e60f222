//! The admin listener: every route of SPEC §3 behind the admin bearer token
//! (compared in constant time), JSON in and out, errors as
//! `{"error","message"}`. Each handler parses, calls one service function and
//! renders; the service commits durably before it returns.

use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::form;
use super::reply::{self, admin_error, from_admin_error, json, with_header};
use super::{AppState, Request};
use crate::service::{AdminError, NewUser, RevokeTarget, UserPatch};
use crate::store::{AuditEvent, Page};
use crate::time;
use crate::user::{AccountStatus, MAX_NOTE_CHARS, User, UserView};

/// Largest JSON body on the admin listener.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Default and largest page size.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// SHA-256 of an admin token, the form it is kept and compared in.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether the request head carries the admin token.
pub fn authorized(state: &AppState, headers: &warp::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(token_digest(token.trim()).ct_eq(&state.admin_token_digest))
}

/// The 401 for a request without the admin token. Its body is never read,
/// so the connection is closed rather than drained.
pub fn unauthorized() -> Response {
    let r = with_header(
        admin_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <admin token> (see the admin token file)",
        ),
        WWW_AUTHENTICATE,
        r#"Bearer realm="tessera-admin""#,
    );
    with_header(r, warp::http::header::CONNECTION, "close")
}

/// Routes one admin request (already authorized).
pub async fn handle(state: &AppState, req: Request) -> Response {
    let started = Instant::now();
    let segments: Result<Vec<String>, _> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|s| form::percent_decode(s, false))
        .collect();
    let Ok(segments) = segments else {
        return admin_error(StatusCode::BAD_REQUEST, "bad_request", "malformed path");
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (route, response) = route(state, &req, &segs).await;
    state
        .service
        .metrics()
        .observe("admin", route, started.elapsed().as_secs_f64());
    response
}

async fn route(state: &AppState, req: &Request, segs: &[&str]) -> (&'static str, Response) {
    let m = &req.method;
    let result = match segs {
        ["admin", "users"] => match *m {
            Method::POST => ("users.create", create_user(state, req).await),
            Method::GET => ("users.list", list_users(state, req)),
            _ => return ("users", not_allowed("GET, POST")),
        },
        ["admin", "users", name] => match *m {
            Method::GET => (
                "user.get",
                state
                    .service
                    .user(name)
                    .map(|u| json(StatusCode::OK, &u.view()))
                    .map_err(from_admin_error),
            ),
            Method::PATCH => ("user.patch", patch_user(state, req, name).await),
            Method::DELETE => (
                "user.delete",
                state
                    .service
                    .delete_user(name)
                    .await
                    .map(|()| reply::empty(StatusCode::NO_CONTENT))
                    .map_err(from_admin_error),
            ),
            _ => return ("user", not_allowed("GET, PATCH, DELETE")),
        },
        ["admin", "users", name, "password"] if *m == Method::POST => {
            ("user.password", set_password(state, req, name).await)
        }
        ["admin", "users", name, "revoke"] if *m == Method::POST => (
            "user.revoke",
            state
                .service
                .revoke_user_tokens(name)
                .await
                .map(|()| reply::empty(StatusCode::NO_CONTENT))
                .map_err(from_admin_error),
        ),
        ["admin", "revocations"] => match *m {
            Method::POST => ("revocations.create", revoke_token(state, req).await),
            Method::GET => ("revocations.list", list_revocations(state, req)),
            _ => return ("revocations", not_allowed("GET, POST")),
        },
        ["admin", "keys"] if *m == Method::GET => ("keys.list", keys(state)),
        ["admin", "keys", "rotate"] if *m == Method::POST => {
            ("keys.rotate", rotate(state, req).await)
        }
        ["admin", "audit"] if *m == Method::GET => ("audit", audit(state, req)),
        ["admin", "export"] if *m == Method::GET => ("export", Ok(export(state))),
        ["metrics"] if *m == Method::GET => ("metrics", Ok(metrics(state))),
        ["admin", "users", _, "password" | "revoke"]
        | ["admin", "keys", "rotate"]
        | ["admin", "import"] => {
            return ("method", not_allowed("POST"));
        }
        ["admin", "keys"] | ["admin", "audit"] | ["admin", "export"] | ["metrics"] => {
            return ("method", not_allowed("GET"));
        }
        _ => {
            return (
                "not_found",
                admin_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route {} {}", m, req.path),
                ),
            );
        }
    };
    let (name, outcome) = result;
    (name, outcome.unwrap_or_else(|e| e))
}

type Handled = Result<Response, Response>;

fn not_allowed(allow: &str) -> Response {
    with_header(
        admin_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        ),
        ALLOW,
        allow,
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    admin_error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn invalid(message: impl Into<String>) -> Response {
    admin_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

/// Parses a JSON body (an empty body reads as `{}`), refusing unknown fields.
fn body<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, Response> {
    let bytes: &[u8] = if req.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(bytes).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

/// Reads `name` from the query string.
fn query_param(req: &Request, name: &str) -> Result<Option<String>, Response> {
    let pairs = form::parse_pairs(&req.query)
        .map_err(|e| bad_request(format!("malformed query string: {e}")))?;
    Ok(pairs
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v))
}

fn limit_param(req: &Request) -> Result<usize, Response> {
    match query_param(req, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(invalid(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

fn parse_time(field: &str, text: &str) -> Result<u64, Response> {
    time::parse_rfc3339(text).map_err(|e| invalid(format!("{field}: {e}")))
}

fn check_note(note: &Option<String>) -> Result<(), Response> {
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => Err(invalid(format!(
            "note must be at most {MAX_NOTE_CHARS} characters"
        ))),
        _ => Ok(()),
    }
}

/// Distinguishes an absent field (None) from an explicit null (Some(None)).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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
}

#[derive(Serialize)]
struct CreatedUser<'a> {
    #[serde(flatten)]
    user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

async fn create_user(state: &AppState, req: &Request) -> Handled {
    let b: CreateUserBody = body(req)?;
    check_note(&b.note)?;
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
        })
        .await
        .map_err(from_admin_error)?;
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

fn list_users(state: &AppState, req: &Request) -> Handled {
    let limit = limit_param(req)?;
    let after = query_param(req, "after")?;
    let Page { items, next } = state
        .service
        .list_users(after.as_deref(), limit)
        .map_err(from_admin_error)?;
    Ok(json(
        StatusCode::OK,
        &UserList {
            users: items.iter().map(User::view).collect(),
            next,
        },
    ))
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
}

async fn patch_user(state: &AppState, req: &Request, name: &str) -> Handled {
    let b: PatchUserBody = body(req)?;
    if b.status == Some(None) {
        return Err(invalid(
            "status can not be null: send \"active\" or \"disabled\"",
        ));
    }
    if let Some(note) = &b.note {
        check_note(note)?;
    }
    let expires_at = match b.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(Some(parse_time("expires_at", &t)?)),
    };
    let user = state
        .service
        .patch_user(
            name,
            UserPatch {
                status: b.status.flatten(),
                expires_at,
                token_ttl_secs: b.token_ttl_secs,
                note: b.note,
            },
        )
        .await
        .map_err(from_admin_error)?;
    Ok(json(StatusCode::OK, &user.view()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[serde(default)]
    password: Option<String>,
}

async fn set_password(state: &AppState, req: &Request, name: &str) -> Handled {
    let b: PasswordBody = body(req)?;
    match state.service.set_password(name, b.password).await {
        Ok(Some(generated)) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "password": generated.as_str() }),
        )),
        Ok(None) => Ok(reply::empty(StatusCode::NO_CONTENT)),
        Err(e) => Err(from_admin_error(e)),
    }
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

async fn revoke_token(state: &AppState, req: &Request) -> Handled {
    let b: RevokeBody = body(req)?;
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
        _ => return Err(invalid(r#"send {"token":"…"} or {"jti":"…","exp":N}"#)),
    };
    let (jti, exp) = state
        .service
        .revoke_token(target)
        .await
        .map_err(from_admin_error)?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "jti": jti, "exp": exp }),
    ))
}

fn list_revocations(state: &AppState, req: &Request) -> Handled {
    let limit = limit_param(req)?;
    let after = query_param(req, "after")?;
    let Page { items, next } = state
        .service
        .list_revocations(after.as_deref(), limit)
        .map_err(from_admin_error)?;
    let revocations: Vec<_> = items
        .into_iter()
        .map(|(jti, exp)| serde_json::json!({ "jti": jti, "exp": exp }))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "revocations": revocations, "next": next }),
    ))
}

fn keys(state: &AppState) -> Handled {
    let keys = state.service.keys().map_err(from_admin_error)?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "keys": keys })))
}

async fn rotate(state: &AppState, req: &Request) -> Handled {
    let force = match query_param(req, "force")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("force must be true or false")),
    };
    let keys = state
        .service
        .rotate_keys(force)
        .await
        .map_err(from_admin_error)?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "keys": keys })))
}

#[derive(Serialize)]
struct AuditList {
    events: Vec<AuditEvent>,
}

fn audit(state: &AppState, req: &Request) -> Handled {
    let limit = limit_param(req)?;
    let before = match query_param(req, "before")? {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| invalid("before must be a seq number"))?,
        ),
    };
    let events = state
        .service
        .audit_events(before, limit)
        .map_err(from_admin_error)?;
    Ok(json(StatusCode::OK, &AuditList { events }))
}

/// The export channel as a body stream.
struct ExportStream(tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>);

impl futures_util::Stream for ExportStream {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn export(state: &AppState) -> Response {
    let body = warp::reply::stream(ExportStream(state.service.export()));
    with_header(
        warp::Reply::into_response(body),
        CONTENT_TYPE,
        "application/x-ndjson",
    )
}

/// `POST /admin/import`: the body is streamed into the service as it
/// arrives (never gathered), each chunk within the body-read timeout of the
/// one before.
pub async fn import<B: bytes::Buf>(
    state: &AppState,
    body: impl futures_util::Stream<Item = Result<B, warp::Error>>,
) -> Response {
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let feed = super::stream_body(body, tx, state.body_read_timeout);
    let (fed, imported) = tokio::join!(feed, state.service.import(rx));
    let response = match (fed, imported) {
        (Err(e), _) => super::body_error(super::Listener::Admin, e),
        (Ok(()), Ok(counts)) => json(StatusCode::OK, &counts),
        (Ok(()), Err(AdminError::Invalid(m))) => with_header(
            invalid(m),
            warp::http::header::CONNECTION,
            "close", // the rest of a refused snapshot is never read
        ),
        (Ok(()), Err(other)) => from_admin_error(other),
    };
    state
        .service
        .metrics()
        .observe("admin", "import", started.elapsed().as_secs_f64());
    response
}

fn metrics(state: &AppState) -> Response {
    with_header(
        reply::text(StatusCode::OK, state.service.metrics_text()),
        CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}
