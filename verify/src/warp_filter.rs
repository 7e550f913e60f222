//! `bearer(verifier)`: a warp filter that extracts a request's verified
//! [`Claims`] from `Authorization: Bearer`, and [`handle_rejection`], which
//! answers a refusal as RFC 6750 §3 says: 401 with `WWW-Authenticate:
//! Bearer realm=…` (no error code without a token; `invalid_token` and
//! `/verify`'s reason otherwise).

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;
use warp::http::StatusCode;
use warp::http::header::WWW_AUTHENTICATE;
use warp::http::{HeaderMap, Method};
use warp::path::FullPath;

use crate::bearer::{RequestParts, refusal, verify_request};
use crate::scope::Scopes;
use crate::token::Claims;
use crate::verifier::{Reason, Verifier};

/// Why a request was refused; carried in the warp rejection.
#[derive(Debug)]
#[non_exhaustive]
pub enum BearerRejection {
    /// No `Authorization: Bearer` token.
    Missing,
    /// The token was refused.
    Invalid(Reason),
    /// A valid token without every scope of these (403).
    InsufficientScope(Scopes),
}

impl warp::reject::Reject for BearerRejection {}

/// Extracts the verified claims, or rejects with a [`BearerRejection`].
///
/// ```
/// # let verifier = tessera_verify::Verifier::new(tessera_verify::VerifierConfig::new("https://auth.example.com"));
/// use warp::Filter;
/// let hello = warp::path!("hello")
///     .and(tessera_verify::warp_filter::bearer(verifier))
///     .map(|claims: std::sync::Arc<tessera_verify::Claims>| format!("hello {}", claims.sub))
///     .recover(tessera_verify::warp_filter::recover);
/// # let _ = hello;
/// ```
pub fn bearer(
    verifier: Arc<Verifier>,
) -> impl Filter<Extract = (Arc<Claims>,), Error = warp::Rejection> + Clone {
    authorized(verifier, Scopes::default())
}

/// [`bearer`] that also requires every scope of `required` (see
/// [`Verifier::verify_scoped`]); a valid token lacking one is answered 403
/// `insufficient_scope` by [`recover`].
///
/// ```
/// # let verifier = tessera_verify::Verifier::new(tessera_verify::VerifierConfig::new("https://auth.example.com"));
/// use warp::Filter;
/// use tessera_verify::scope::Scopes;
/// let sync = warp::path!("calendar" / "sync")
///     .and(tessera_verify::warp_filter::bearer_scoped(verifier, Scopes::new(["calendar"]).unwrap()))
///     .map(|claims: std::sync::Arc<tessera_verify::Claims>| format!("syncing for {}", claims.sub))
///     .recover(tessera_verify::warp_filter::recover);
/// # let _ = sync;
/// ```
pub fn bearer_scoped(
    verifier: Arc<Verifier>,
    required: Scopes,
) -> impl Filter<Extract = (Arc<Claims>,), Error = warp::Rejection> + Clone {
    authorized(verifier, required)
}

/// The token of `Authorization: Bearer`, or of `Authorization: DPoP`
/// with its `DPoP` proof for this request ([`Verifier::verify_request`]).
fn authorized(
    verifier: Arc<Verifier>,
    required: Scopes,
) -> impl Filter<Extract = (Arc<Claims>,), Error = warp::Rejection> + Clone {
    let required = Arc::new(required);
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(move |method: Method, path: FullPath, headers: HeaderMap| {
            let (verifier, required) = (verifier.clone(), required.clone());
            async move {
                let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
                let dpop = match headers.get_all("dpop").iter().count() {
                    0 | 1 => header("dpop"),
                    _ => Some(""),
                };
                let parts = RequestParts {
                    authorization: header("authorization"),
                    dpop,
                    method: method.as_str(),
                    host: header("host"),
                    path: path.as_str(),
                };
                verify_request(&verifier, &parts, &required).map_err(|r| match r {
                    None => warp::reject::custom(BearerRejection::Missing),
                    Some(Reason::InsufficientScope) => warp::reject::custom(
                        BearerRejection::InsufficientScope((*required).clone()),
                    ),
                    Some(r) => warp::reject::custom(BearerRejection::Invalid(r)),
                })
            }
        })
}

/// Answers a [`BearerRejection`] with 401 and the RFC 6750 challenge
/// (realm `tessera`); passes other rejections on.
pub async fn handle_rejection(
    r: warp::Rejection,
) -> Result<warp::reply::Response, warp::Rejection> {
    let none = Scopes::default();
    let (reason, required) = match r.find::<BearerRejection>() {
        Some(BearerRejection::Missing) => (None, &none),
        Some(BearerRejection::Invalid(reason)) => (Some(*reason), &none),
        Some(BearerRejection::InsufficientScope(required)) => {
            (Some(Reason::InsufficientScope), required)
        }
        None => return Err(r),
    };
    let (status, value) = refusal(reason.as_ref(), required);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    let text = if status == StatusCode::FORBIDDEN {
        "insufficient scope"
    } else {
        "unauthorized"
    };
    let reply = warp::reply::with_status(text, status);
    let reply = warp::reply::with_header(reply, WWW_AUTHENTICATE, value);
    Ok(warp::Reply::into_response(reply))
}

/// [`handle_rejection`] for filters that must not fail (`recover`'s type).
pub async fn recover(r: warp::Rejection) -> Result<warp::reply::Response, Infallible> {
    Ok(handle_rejection(r).await.unwrap_or_else(|_| {
        warp::Reply::into_response(warp::reply::with_status("not found", StatusCode::NOT_FOUND))
    }))
}
