//! [`Verified`] (feature `axum`): an axum extractor for a request's
//! verified [`Claims`]. A handler that takes `Verified` runs only for a
//! valid `Authorization: Bearer` token; anything else is answered 401 with
//! the RFC 6750 challenge ([`Unauthorized`]). The router's state must give
//! the [`Verifier`] (`Arc<Verifier>: FromRef<S>`), or use
//! [`crate::tower_layer::BearerLayer`] in front, whose verdict the
//! extractor then reuses.

use std::ops::Deref;
use std::sync::Arc;

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::WWW_AUTHENTICATE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::bearer::{REALM, RequestParts, challenge, verify_request};
use crate::token::Claims;
use crate::verifier::{Reason, Verifier};

/// The verified claims of the request's bearer token.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use tessera_verify::{Verified, Verifier, VerifierConfig};
///
/// let verifier = Verifier::new(VerifierConfig::new("https://auth.example.com"));
/// let app: Router = Router::new()
///     .route("/hello", get(|claims: Verified| async move { format!("hello {}", claims.sub) }))
///     .with_state(verifier);
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct Verified(pub Arc<Claims>);

impl Deref for Verified {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Verified
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Unauthorized> {
        if let Some(claims) = parts.extensions.get::<Arc<Claims>>() {
            // BearerLayer already verified this request.
            return Ok(Self(claims.clone()));
        }
        let request = RequestParts::of_http(&parts.method, &parts.uri, &parts.headers);
        verify_request(
            &Arc::<Verifier>::from_ref(state),
            &request,
            &crate::scope::Scopes::default(),
        )
        .map(Self)
        .map_err(Unauthorized)
    }
}

/// A refused request: answered 401 with `WWW-Authenticate: Bearer
/// realm="tessera"` (and `error="invalid_token"` with the reason when a
/// token came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthorized(pub Option<Reason>);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = match self.0 {
            Some(Reason::InsufficientScope) => {
                (StatusCode::FORBIDDEN, "insufficient scope").into_response()
            }
            _ => (StatusCode::UNAUTHORIZED, "unauthorized").into_response(),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge(REALM, self.0.as_ref())) {
            response.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        response
    }
}
