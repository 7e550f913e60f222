//! The partner listener, one filter per route: `POST /generateToken` (the
//! seed contract, word for word), `GET /verify` (forward-auth), the JWKS,
//! and health checks. Each handler parses, calls one service function and
//! renders; failures become responses in `errors`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tessera_verify::dpop::{PresentationError, ProofError};
use tessera_verify::scope::Scopes;
use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::http::{HeaderMap, HeaderName, Method, StatusCode};
use warp::reply::Response;
use zeroize::Zeroizing;

use super::body;
use super::errors::{self, LoginError, TOO_MANY_ATTEMPTS};
use super::filters::{Scheme, access_token, dpop_proof, login_proof, peer, raw_query, with_state};
use super::form::{self, Credentials};
use super::methods::methods;
use super::reply::{self, no_store, text, with_header, with_retry_after};
use super::secrets::SecretRefusal;
use super::state::AppState;
use crate::domain::user::{LoginFieldError, check_login_fields};
use crate::service::{SecretUse, VerifyError};

/// The largest body `/generateToken` accepts.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

const GET: &[Method] = &[Method::GET, Method::HEAD];

/// Every partner route, most-requested first.
pub fn routes(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static + use<>
{
    generate_token(state)
        .or(verify(state))
        .unify()
        .or(jwks(state))
        .unify()
        .or(healthz())
        .unify()
        .or(readyz(state))
        .unify()
        .or(super::oauth::routes(state))
        .unify()
        .or(feed(state))
        .unify()
}

/// None for a feed-token holder (always, however many wrong tokens its
/// address sent); 401 for anyone else, and 429 for an address that sent
/// wrong tokens too often.
fn feed_refusal(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Option<Response> {
    let unauthorized = || {
        with_header(
            text(StatusCode::UNAUTHORIZED, "feed token required"),
            warp::http::header::WWW_AUTHENTICATE,
            "Bearer realm=\"tessera\"",
        )
    };
    let client = state.client_key(peer, headers);
    match state.check_bearer_secret(SecretUse::Feed, &client, headers) {
        Ok(()) => None,
        Err(SecretRefusal::Absent | SecretRefusal::Wrong) => Some(unauthorized()),
        Err(SecretRefusal::Throttled(wait)) => Some(with_retry_after(
            text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_ATTEMPTS),
            wait,
        )),
    }
}

/// `GET /revocations[?since=SEQ]`: the signed revocation feed, for holders
/// of the feed token only (it names which partners exist, as hashes that a
/// word list would reverse); anyone else gets 401.
fn feed(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("revocations")
        .and(methods(GET, "GET, HEAD"))
        .and(with_state(state))
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(peer())
        .then(
            |state: Arc<AppState>, query: String, headers: HeaderMap, peer: SocketAddr| async move {
                let started = Instant::now();
                if let Some(refusal) = feed_refusal(&state, &headers, peer) {
                    state.observe("partner", "revocations", started);
                    return refusal;
                }
                let since = form::parse_pairs(&query).ok().and_then(|pairs| {
                    pairs
                        .into_iter()
                        .rev()
                        .find(|(k, _)| k == "since")
                        .map(|(_, v)| v)
                });
                let response = match state.service.revocation_feed(since.as_deref()).await {
                    Ok(jws) => no_store(with_header(
                        Response::new(jws.into()),
                        CONTENT_TYPE,
                        "application/jwt",
                    )),
                    Err(e) => errors::ApiError::from(e).response(),
                };
                state.observe("partner", "revocations", started);
                response
            },
        )
}

fn generate_token(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("generateToken")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(peer())
        .and(body::bytes(MAX_BODY_BYTES, state.body_read_timeout))
        .then(issue)
}

fn verify(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    // Any method: nginx `auth_request` forwards the original one.
    warp::path!("verify")
        .and(with_state(state))
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .map(|state: Arc<AppState>, headers: HeaderMap, query: String| {
            let started = Instant::now();
            let response = check_bearer(&state, &headers, &query);
            state.observe("partner", "verify", started);
            response
        })
}

fn jwks(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path(".well-known")
        .and(warp::path("jwks.json"))
        .and(warp::path::end())
        .and(methods(GET, "GET, HEAD"))
        .and(with_state(state))
        .map(|state: Arc<AppState>| {
            with_header(
                reply::raw_json(StatusCode::OK, state.service.jwks()),
                CACHE_CONTROL,
                &format!("public, max-age={}", crate::service::JWKS_MAX_AGE_SECS),
            )
        })
}

fn healthz() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(methods(GET, "GET, HEAD"))
        .map(|| text(StatusCode::OK, "ok"))
}

fn readyz(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("readyz")
        .and(methods(GET, "GET, HEAD"))
        .and(with_state(state))
        .map(|state: Arc<AppState>| {
            if !state.service.ready() {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
            } else if state.service.writable() {
                text(StatusCode::OK, "ready")
            } else {
                // Logins and verification go on; admin changes get 507.
                text(
                    StatusCode::OK,
                    "ready; storage full: admin changes are refused until there is room",
                )
            }
        })
}

fn body_is_form(headers: &HeaderMap) -> bool {
    match headers.get("content-type").map(|v| v.to_str()) {
        None => true,
        Some(Err(_)) => false,
        Some(Ok(ct)) => ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }),
    }
}

type Secret = Zeroizing<String>;

/// Reads and checks the credentials of a login request.
fn read_credentials(
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Secret, Secret, Option<Scopes>), LoginError> {
    let body = if body.is_empty() {
        ""
    } else if !body_is_form(headers) {
        return Err(LoginError::UnsupportedMediaType);
    } else {
        std::str::from_utf8(body)
            .map_err(|_| LoginError::BadRequest("request body is not valid UTF-8".into()))?
    };
    let Credentials {
        username,
        password,
        scope,
    } = form::credentials(query, body)
        .map_err(|e| LoginError::BadRequest(format!("malformed credentials: {e}")))?;
    let scope = Scopes::requested(scope.as_deref())
        .map_err(|e| LoginError::BadRequest(format!("invalid scope: {e}")))?;
    let (Some(username), Some(password)) =
        (username.map(Zeroizing::new), password.map(Zeroizing::new))
    else {
        return Err(LoginError::MissingFields);
    };
    check_login_fields(&username, &password).map_err(|e| match e {
        LoginFieldError::Missing => LoginError::MissingFields,
        e => LoginError::BadRequest(e.to_string()),
    })?;
    Ok((username, password, scope))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|m| {
                m.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            })
        })
}

/// `POST /generateToken`.
async fn issue(
    state: Arc<AppState>,
    query: String,
    headers: HeaderMap,
    peer: SocketAddr,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let metrics = state.service.metrics();
    let result = async {
        let (username, password, scope) = read_credentials(&query, &headers, &body)?;
        let client = state.client(peer, &headers);
        let url = state.public_endpoint("/generateToken");
        let proof = login_proof(&headers, &url)?;
        let issued = state
            .service
            .issue_token(&client, &username, &password, scope.as_ref(), proof)
            .await?;
        tracing::debug!(user = %*username, "token issued");
        Ok::<_, LoginError>(issued)
    }
    .await;
    let response = match result {
        Ok(issued) => {
            metrics.token_request("generate_token", "issued");
            if wants_json(&headers) {
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
        Err(e) => {
            metrics.token_request("generate_token", e.outcome());
            if let LoginError::Issue(crate::service::IssueError::AccountState(reason)) = &e {
                tracing::info!(%reason, "token refused");
            }
            e.response()
        }
    };
    state.observe("partner", "generate_token", started);
    no_store(response)
}

/// The scopes a `/verify` caller requires: every `scope` query parameter
/// and every `X-Required-Scope` header (each a space-separated list).
fn required_scopes(headers: &HeaderMap, query: &str) -> Result<Scopes, String> {
    let mut names = form::scope_values(query).map_err(|e| e.to_string())?;
    for value in headers.get_all("x-required-scope") {
        let value = value
            .to_str()
            .map_err(|_| "X-Required-Scope is not text".to_owned())?;
        names.push(value.to_owned());
    }
    Scopes::parse(&names.join(" ")).map_err(|e| e.to_string())
}

/// A `DPoP` token at `/verify`: the proof is checked against the original
/// request, which the proxy passes as `X-Forwarded-Method`, `-Proto`,
/// `-Host` and `-Uri` (it must overwrite, never pass on, a client's own).
/// A missing one fails the proof's `htm` or `htu`.
fn verify_dpop(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
) -> Result<crate::service::VerifiedToken, VerifyError> {
    let forwarded = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let proof = dpop_proof(headers)
        .map_err(|()| VerifyError::Presentation(PresentationError::Proof(ProofError::Malformed)))?;
    let url = format!(
        "{}://{}{}",
        forwarded("x-forwarded-proto"),
        forwarded("x-forwarded-host"),
        forwarded("x-forwarded-uri")
    );
    state
        .service
        .verify_dpop(token, proof, forwarded("x-forwarded-method"), &url)
}

/// `GET /verify`.
fn check_bearer(state: &AppState, headers: &HeaderMap, query: &str) -> Response {
    let metrics = state.service.metrics();
    let required = match required_scopes(headers, query) {
        Ok(r) => r,
        Err(e) => {
            // The protected service's configuration, not the client's token.
            metrics.verify_request("bad_request");
            return no_store(text(
                StatusCode::BAD_REQUEST,
                format!("invalid required scope: {e}"),
            ));
        }
    };
    let (scheme, token) = match access_token(headers) {
        None => {
            metrics.verify_request("no_token");
            return errors::bearer_challenge(None);
        }
        Some(Err(())) => {
            metrics.verify_request("malformed");
            return errors::bearer_challenge(Some("malformed token"));
        }
        Some(Ok(t)) => t,
    };
    let verdict = match scheme {
        Scheme::Bearer => state.service.verify_bearer(token),
        Scheme::Dpop => verify_dpop(state, headers, token),
    };
    match verdict {
        Ok(claims) if claims.scopes.first_missing(&required).is_some() => {
            metrics.verify_request("insufficient_scope");
            errors::insufficient_scope(&required)
        }
        Ok(claims) => {
            metrics.verify_request("valid");
            let r = no_store(reply::empty(StatusCode::OK));
            let r = match claims.scopes.to_claim() {
                Some(scope) => with_header(r, HeaderName::from_static("x-auth-scope"), &scope),
                None => r,
            };
            let r = with_header(r, HeaderName::from_static("x-auth-subject"), &claims.sub);
            let r = with_header(r, HeaderName::from_static("x-auth-token-id"), &claims.jti);
            with_header(
                r,
                HeaderName::from_static("x-auth-expires-at"),
                &claims.exp.to_string(),
            )
        }
        Err(e) => {
            metrics.verify_request(e.outcome());
            errors::verify_error(&e)
        }
    }
}
