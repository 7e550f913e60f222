//! The OAuth 2.0 surface on the partner listener (SPEC §7): each user is a
//! confidential client (`client_id` = username, `client_secret` =
//! password). `POST /oauth/token` (RFC 6749 §4.4 client_credentials),
//! `POST /oauth/introspect` (RFC 7662), `POST /oauth/revoke` (RFC 7009) and
//! the server metadata (RFC 8414). Credentials go through the same
//! [`Service::authenticate`](crate::service::Service::authenticate) as
//! `/generateToken`: one throttle, one hashing path, one set of rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tessera_verify::scope::Scopes;
use warp::Filter;
use warp::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use zeroize::Zeroizing;

use super::filters::{bearer, login_proof, peer, with_state};
use super::methods::methods;
use super::oauth_error::OAuthError;
use super::reply::{self, json, with_header};
use super::secrets::SecretRefusal;
use super::state::AppState;
use super::{body, form};
use crate::domain::user::{
    LoginFieldError, MAX_PASSWORD_LEN, MAX_USERNAME_LEN, check_login_fields,
};
use crate::service::{AdminError, IssueError, SecretUse};

/// The largest form body the OAuth endpoints accept.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Every OAuth route.
pub fn routes(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static + use<>
{
    token(state)
        .or(introspect(state))
        .unify()
        .or(revoke(state))
        .unify()
        .or(metadata(state))
        .unify()
}

/// A form POST to `/oauth/<name>`: the form's parameters, the head, the peer.
fn form_post(
    state: &Arc<AppState>,
    name: &'static str,
) -> impl Filter<Extract = (Arc<AppState>, HeaderMap, SocketAddr, Bytes), Error = warp::Rejection>
+ Clone
+ use<> {
    warp::path("oauth")
        .and(warp::path(name))
        .and(warp::path::end())
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(warp::header::headers_cloned())
        .and(peer())
        .and(body::bytes(MAX_BODY_BYTES, state.body_read_timeout))
}

type Secret = Zeroizing<String>;

/// The parameters of a form body; a parameter given twice is an
/// `invalid_request` (RFC 6749 §3.2).
fn parameters(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, Secret>, OAuthError> {
    if !body.is_empty() {
        let form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "send parameters as application/x-www-form-urlencoded",
            ));
        }
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    let pairs = form::parse_pairs(text)
        .map_err(|e| OAuthError::invalid_request(format!("malformed form body: {e}")))?;
    let mut out = HashMap::new();
    for (name, value) in pairs {
        if out.insert(name.clone(), Zeroizing::new(value)).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} is repeated"
            )));
        }
    }
    Ok(out)
}

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMethod {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
}

/// Client credentials from HTTP Basic (id and secret form-urlencoded
/// first, RFC 6749 §2.3.1) or from the body; both at once is an
/// `invalid_request`, neither an `invalid_client`.
fn client_credentials(
    headers: &HeaderMap,
    params: &mut HashMap<String, Secret>,
) -> Result<(Secret, Secret, AuthMethod), OAuthError> {
    let basic = match headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        Some(Ok(v)) => v
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, encoded)| decode_basic(encoded.trim()))
            .transpose()?,
        Some(Err(_)) => {
            return Err(OAuthError::invalid_request(
                "unreadable Authorization header",
            ));
        }
        None => None,
    };
    let posted = (params.remove("client_id"), params.remove("client_secret"));
    let (id, secret, method) = match (basic, posted) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both",
            ));
        }
        (Some((id, secret)), (None, None)) => (id, secret, AuthMethod::Basic),
        (None, (Some(id), Some(secret))) => (id, secret, AuthMethod::Post),
        (None, _) => {
            return Err(OAuthError::invalid_client(
                "client authentication required",
                false,
            ));
        }
    };
    let basic = method == AuthMethod::Basic;
    check_login_fields(&id, &secret).map_err(|e| match e {
        LoginFieldError::Missing => {
            OAuthError::invalid_client("empty client_id or client_secret", basic)
        }
        LoginFieldError::UsernameTooLong => OAuthError::invalid_request(format!(
            "client_id too long (at most {MAX_USERNAME_LEN} characters)"
        )),
        LoginFieldError::PasswordTooLong => OAuthError::invalid_request(format!(
            "client_secret too long (at most {MAX_PASSWORD_LEN} bytes)"
        )),
    })?;
    Ok((id, secret, method))
}

fn decode_basic(encoded: &str) -> Result<(Secret, Secret), OAuthError> {
    let bad = || OAuthError::invalid_request("malformed Basic credentials");
    let raw = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| bad())?);
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = form::percent_decode(id, true).map_err(|_| bad())?;
    let secret = form::percent_decode(secret, true).map_err(|_| bad())?;
    Ok((Zeroizing::new(id), Zeroizing::new(secret)))
}

/// Authenticates the calling client through the shared login path.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    params: &mut HashMap<String, Secret>,
) -> Result<(String, AuthMethod), OAuthError> {
    let (id, secret, method) = client_credentials(headers, params)?;
    let client = state.client(peer, headers);
    state
        .service
        .authenticate(&client, &id, &secret)
        .await
        .map_err(|e| OAuthError::from_issue(e, method == AuthMethod::Basic))?;
    Ok((id.to_string(), method))
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
fn no_cache(r: Response) -> Response {
    with_header(
        with_header(r, CACHE_CONTROL, "no-store"),
        PRAGMA,
        "no-cache",
    )
}

fn token(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    form_post(state, "token").then(
        |state: Arc<AppState>, headers: HeaderMap, peer: SocketAddr, body: Bytes| async move {
            let started = Instant::now();
            let metrics = state.service.metrics();
            let response = match issue(&state, &headers, peer, &body).await {
                Ok(r) => {
                    metrics.token_request("oauth_token", "issued");
                    r
                }
                Err(e) => {
                    metrics.token_request("oauth_token", e.outcome());
                    e.response()
                }
            };
            state.observe("partner", "oauth_token", started);
            no_cache(response)
        },
    )
}

/// `POST /oauth/token`: checks the request's shape before any hash work,
/// then authenticates and issues through the same path as
/// `/generateToken`.
async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let mut params = parameters(headers, body)?;
    let (id, secret, method) = client_credentials(headers, &mut params)?;
    match params.get("grant_type").map(|g| g.as_str()) {
        None | Some("") => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => return Err(OAuthError::unsupported_grant_type()),
    }
    // RFC 6749 §3.3: a subset of the client's scopes.
    let requested = Scopes::requested(params.get("scope").map(|s| s.as_str()))
        .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let client = state.client(peer, headers);
    let basic = method == AuthMethod::Basic;
    let url = state.public_endpoint("/oauth/token");
    let proof = login_proof(headers, &url).map_err(|e| OAuthError::from_issue(e, basic))?;
    let issued = state
        .service
        .issue_token(&client, &id, &secret, requested.as_ref(), proof)
        .await
        .map_err(|e| OAuthError::from_issue(e, basic))?;
    let mut answer = serde_json::json!({
        "access_token": issued.token,
        "token_type": if issued.bound { "DPoP" } else { "Bearer" },
        "expires_in": issued.expires_in,
    });
    if let Some(scope) = issued.scope.to_claim() {
        answer["scope"] = scope.into();
    }
    Ok(json(StatusCode::OK, &answer))
}

/// The `token` parameter of introspection and revocation (required).
fn token_param(params: &HashMap<String, Secret>) -> Result<&str, OAuthError> {
    params
        .get("token")
        .map(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is required"))
}

/// A form-POST endpoint answering JSON or an [`OAuthError`], timed under
/// `route` and marked uncacheable.
fn endpoint<F, Fut>(
    state: &Arc<AppState>,
    name: &'static str,
    route: &'static str,
    handler: F,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<F, Fut>
where
    F: Fn(Arc<AppState>, HeaderMap, SocketAddr, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, OAuthError>> + Send,
{
    form_post(state, name).then(
        move |state: Arc<AppState>, headers: HeaderMap, peer: SocketAddr, body: Bytes| {
            let handler = handler.clone();
            async move {
                let started = Instant::now();
                let response = handler(state.clone(), headers, peer, body)
                    .await
                    .unwrap_or_else(OAuthError::response);
                state.observe("partner", route, started);
                no_cache(response)
            }
        },
    )
}

fn introspect(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    endpoint(state, "introspect", "oauth_introspect", introspection)
}

/// `POST /oauth/introspect` (RFC 7662): the verdict is `/verify`'s.
async fn introspection(
    state: Arc<AppState>,
    headers: HeaderMap,
    peer: SocketAddr,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let mut params = parameters(&headers, &body)?;
    if bearer(&headers).is_some() {
        // The admin token: a wrong one counts against the address (in
        // introspection's own count), the right one always passes.
        let client = state.client_key(peer, &headers);
        let refused = |error| OAuthError::Issue {
            error,
            basic: false,
        };
        state
            .check_bearer_secret(SecretUse::Introspection, &client, &headers)
            .map_err(|refusal| match refusal {
                SecretRefusal::Absent | SecretRefusal::Wrong => {
                    refused(IssueError::InvalidCredentials)
                }
                SecretRefusal::Throttled(wait) => refused(IssueError::Throttled(wait)),
            })?;
    } else {
        authenticate(&state, &headers, peer, &mut params).await?;
    }
    let token = token_param(&params)?;
    let verdict = match state.service.inspect(token) {
        Ok(c) => {
            let mut v = serde_json::json!({
                "active": true,
                "sub": c.sub,
                "client_id": c.sub,
                "iss": c.iss,
                "iat": c.iat,
                "exp": c.exp,
                "jti": c.jti,
                "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
            });
            // RFC 9449 §6.2: the key a bound token is bound to.
            if let Some(cnf) = &c.cnf {
                v["cnf"] = serde_json::json!({ "jkt": cnf.jkt });
            }
            // RFC 7662: what the token may do now.
            if let Some(scope) = c.scopes.to_claim() {
                v["scope"] = scope.into();
            }
            v
        }
        Err(crate::service::VerifyError::Internal(e)) => return Err(OAuthError::Internal(e)),
        Err(crate::service::VerifyError::Unavailable(why)) => {
            return Err(OAuthError::Admin(AdminError::Unavailable(why)));
        }
        Err(_) => serde_json::json!({ "active": false }),
    };
    Ok(json(StatusCode::OK, &verdict))
}

fn revoke(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    endpoint(state, "revoke", "oauth_revoke", revocation)
}

/// `POST /oauth/revoke` (RFC 7009): the caller's own valid token is
/// revoked; an invalid or unknown token is a 200 too (nothing to do);
/// another client's valid token is refused and stays valid.
async fn revocation(
    state: Arc<AppState>,
    headers: HeaderMap,
    peer: SocketAddr,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let mut params = parameters(&headers, &body)?;
    let (caller, _) = authenticate(&state, &headers, peer, &mut params).await?;
    let token = token_param(&params)?;
    match state.service.verify_bearer(token) {
        Ok(c) if c.sub == caller => {
            state
                .service
                .revoke_own_token(&caller, c.jti.clone(), c.exp)
                .await
                .map_err(OAuthError::Admin)?;
            Ok(reply::empty(StatusCode::OK))
        }
        Ok(_) => Err(OAuthError::unauthorized_client(
            "the token was issued to another client",
        )),
        Err(crate::service::VerifyError::Internal(e)) => Err(OAuthError::Internal(e)),
        // Not "nothing to do": whether the token is valid is unknown.
        Err(crate::service::VerifyError::Unavailable(why)) => {
            Err(OAuthError::Admin(AdminError::Unavailable(why)))
        }
        Err(_) => Ok(reply::empty(StatusCode::OK)),
    }
}

fn metadata(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path(".well-known")
        .and(warp::path("oauth-authorization-server"))
        .and(warp::path::end())
        .and(methods(&[Method::GET, Method::HEAD], "GET, HEAD"))
        .and(with_state(state))
        .map(|state: Arc<AppState>| {
            let base = state.public_url.trim_end_matches('/');
            let methods = ["client_secret_basic", "client_secret_post"];
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "issuer": state.service.issuer(),
                    "token_endpoint": format!("{base}/oauth/token"),
                    "jwks_uri": format!("{base}/.well-known/jwks.json"),
                    "introspection_endpoint": format!("{base}/oauth/introspect"),
                    "revocation_endpoint": format!("{base}/oauth/revoke"),
                    "grant_types_supported": ["client_credentials"],
                    "token_endpoint_auth_methods_supported": methods,
                    "introspection_endpoint_auth_methods_supported": methods,
                    "revocation_endpoint_auth_methods_supported": methods,
                    "response_types_supported": [],
                    "dpop_signing_alg_values_supported": tessera_verify::dpop::ALGORITHMS,
                }),
            )
        })
}

impl OAuthError {
    fn from_issue(e: IssueError, basic: bool) -> Self {
        Self::Issue { error: e, basic }
    }
}
