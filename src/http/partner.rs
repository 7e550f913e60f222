//! The partner listener: `POST /generateToken` (the seed contract, word for
//! word), `GET /verify` (forward-auth), the JWKS, and health checks.

use std::time::Instant;

use warp::http::header::{ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::http::{HeaderName, Method, StatusCode};
use warp::reply::Response;

use super::form::{self, Credentials};
use super::reply::{self, no_store, text, with_header};
use super::{AppState, Request};
use crate::service::{IssueError, VerifyError};
use crate::user::{MAX_PASSWORD_LEN, MAX_USERNAME_LEN};
use zeroize::Zeroizing;

/// The largest body `/generateToken` accepts.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

const INVALID_CREDENTIALS: &str = "invalid username or password";
const ACCOUNT_REFUSED: &str = "token expired";
const MISSING_FIELDS: &str = "missing username or password";
const TOO_MANY_ATTEMPTS: &str = "too many attempts";
const SERVER_BUSY: &str = "server busy";

/// Routes one partner request.
pub async fn handle(state: &AppState, req: Request) -> Response {
    let started = Instant::now();
    let (route, response) = match req.path.as_str() {
        "/generateToken" => ("generate_token", generate_token(state, &req).await),
        "/verify" => ("verify", verify(state, &req)),
        "/.well-known/jwks.json" => ("jwks", only_get(&req, || jwks(state))),
        "/healthz" => ("healthz", only_get(&req, || text(StatusCode::OK, "ok"))),
        "/readyz" => ("readyz", only_get(&req, || readyz(state))),
        _ => ("not_found", text(StatusCode::NOT_FOUND, "not found")),
    };
    state
        .service
        .metrics()
        .observe("partner", route, started.elapsed().as_secs_f64());
    response
}

fn only_get(req: &Request, ok: impl FnOnce() -> Response) -> Response {
    if req.method == Method::GET || req.method == Method::HEAD {
        ok()
    } else {
        with_header(
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            ALLOW,
            "GET, HEAD",
        )
    }
}

fn jwks(state: &AppState) -> Response {
    with_header(
        reply::raw_json(StatusCode::OK, state.service.jwks()),
        warp::http::header::CACHE_CONTROL,
        &format!("public, max-age={}", crate::service::JWKS_MAX_AGE_SECS),
    )
}

fn readyz(state: &AppState) -> Response {
    if state.service.ready() {
        text(StatusCode::OK, "ready")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

fn body_is_form(req: &Request) -> bool {
    match req.header("content-type") {
        None => true,
        Some(ct) => ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }),
    }
}

/// Reads and checks the credentials; Err is the 4xx to send.
fn read_credentials(req: &Request) -> Result<(Zeroizing<String>, Zeroizing<String>), Response> {
    let body = if req.body.is_empty() {
        ""
    } else if !body_is_form(req) {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send credentials as application/x-www-form-urlencoded or in the query string",
        ));
    } else {
        std::str::from_utf8(&req.body)
            .map_err(|_| text(StatusCode::BAD_REQUEST, "request body is not valid UTF-8"))?
    };
    let Credentials { username, password } = form::credentials(&req.query, body).map_err(|e| {
        text(
            StatusCode::BAD_REQUEST,
            format!("malformed credentials: {e}"),
        )
    })?;
    let (Some(username), Some(password)) =
        (username.map(Zeroizing::new), password.map(Zeroizing::new))
    else {
        return Err(text(StatusCode::BAD_REQUEST, MISSING_FIELDS));
    };
    if username.is_empty() || password.is_empty() {
        return Err(text(StatusCode::BAD_REQUEST, MISSING_FIELDS));
    }
    if username.chars().count() > MAX_USERNAME_LEN {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!("username too long (at most {MAX_USERNAME_LEN} characters)"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!("password too long (at most {MAX_PASSWORD_LEN} bytes)"),
        ));
    }
    Ok((username, password))
}

fn wants_json(req: &Request) -> bool {
    req.header("accept").is_some_and(|a| {
        a.split(',').any(|m| {
            m.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
    })
}

async fn generate_token(state: &AppState, req: &Request) -> Response {
    no_store(generate_token_inner(state, req).await)
}

async fn generate_token_inner(state: &AppState, req: &Request) -> Response {
    let metrics = state.service.metrics();
    if req.method != Method::POST {
        return with_header(
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            ALLOW,
            "POST",
        );
    }
    let client = req.client_key(&state.trusted_proxies);
    let (username, password) = match read_credentials(req) {
        Ok(c) => c,
        Err(r) => {
            metrics.token_request("bad_request");
            return r;
        }
    };
    match state
        .service
        .issue_token(&client, &username, &password)
        .await
    {
        Ok(issued) => {
            metrics.token_request("issued");
            tracing::debug!(user = %*username, "token issued");
            if wants_json(req) {
                reply::json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "access_token": issued.token,
                        "token_type": "Bearer",
                        "expires_in": issued.expires_in,
                    }),
                )
            } else {
                text(StatusCode::OK, issued.token)
            }
        }
        Err(IssueError::InvalidCredentials) => {
            metrics.token_request("invalid_credentials");
            text(StatusCode::UNAUTHORIZED, INVALID_CREDENTIALS)
        }
        Err(IssueError::Throttled(wait)) => {
            metrics.token_request("throttled");
            throttled(wait.as_secs_f64().ceil() as u64)
        }
        Err(IssueError::Busy) => {
            metrics.token_request("busy");
            with_header(
                text(StatusCode::SERVICE_UNAVAILABLE, SERVER_BUSY),
                RETRY_AFTER,
                "1",
            )
        }
        Err(IssueError::AccountState(reason)) => {
            metrics.token_request("account_refused");
            tracing::info!(user = %*username, %reason, "token refused");
            text(StatusCode::FORBIDDEN, ACCOUNT_REFUSED)
        }
        Err(IssueError::Internal(e)) => {
            metrics.token_request("error");
            reply::internal(&e)
        }
    }
}

fn throttled(retry_after_secs: u64) -> Response {
    with_header(
        text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_ATTEMPTS),
        RETRY_AFTER,
        &retry_after_secs.max(1).to_string(),
    )
}

/// Extracts the token from `Authorization: Bearer <token>`; None when absent.
fn bearer(req: &Request) -> Option<Result<&str, ()>> {
    let value = req.headers.get(warp::http::header::AUTHORIZATION)?;
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

fn verify(state: &AppState, req: &Request) -> Response {
    let metrics = state.service.metrics();
    let challenge = |description: &str| {
        let r = text(StatusCode::UNAUTHORIZED, "unauthorized");
        let value = if description.is_empty() {
            r#"Bearer realm="tessera""#.to_owned()
        } else {
            format!(
                r#"Bearer realm="tessera", error="invalid_token", error_description="{description}""#
            )
        };
        no_store(with_header(r, WWW_AUTHENTICATE, &value))
    };
    let token = match bearer(req) {
        None => {
            metrics.verify_request("no_token");
            return challenge("");
        }
        Some(Err(())) => {
            metrics.verify_request("malformed");
            return challenge("malformed token");
        }
        Some(Ok(t)) => t,
    };
    match state.service.verify_bearer(token) {
        Ok(claims) => {
            metrics.verify_request("valid");
            let r = no_store(reply::empty(StatusCode::OK));
            let r = with_header(r, HeaderName::from_static("x-auth-subject"), &claims.sub);
            let r = with_header(r, HeaderName::from_static("x-auth-token-id"), &claims.jti);
            with_header(
                r,
                HeaderName::from_static("x-auth-expires-at"),
                &claims.exp.to_string(),
            )
        }
        Err(VerifyError::Internal(e)) => {
            metrics.verify_request("error");
            reply::internal(&e)
        }
        Err(e) => {
            metrics.verify_request(e.outcome());
            challenge(&e.to_string())
        }
    }
}
