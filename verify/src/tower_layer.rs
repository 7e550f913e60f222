//! [`BearerLayer`]: a tower layer (for axum, tonic, or any tower stack)
//! that lets a request through only with a valid `Authorization: Bearer`
//! token, putting its `Arc<Claims>` into the request's extensions, and
//! answers anything else 401 with the RFC 6750 challenge.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};

use crate::bearer::{RequestParts, refusal as refusal_of, verify_request};
use crate::scope::Scopes;
use crate::verifier::Verifier;

/// Wraps services with bearer-token verification.
///
/// ```
/// # let verifier = tessera_verify::Verifier::new(tessera_verify::VerifierConfig::new("https://auth.example.com"));
/// let app = axum::Router::<()>::new()
///     .route("/hello", axum::routing::get(|| async { "hello" }))
///     .layer(tessera_verify::tower_layer::BearerLayer::new(verifier));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct BearerLayer {
    verifier: Arc<Verifier>,
    required: Arc<Scopes>,
}

impl BearerLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            required: Arc::default(),
        }
    }

    /// The same layer, also requiring every scope of `required`: a valid
    /// token lacking one is answered 403 `insufficient_scope`.
    ///
    /// ```
    /// # let verifier = tessera_verify::Verifier::new(tessera_verify::VerifierConfig::new("https://auth.example.com"));
    /// use tessera_verify::{scope::Scopes, tower_layer::BearerLayer};
    /// let calendar = axum::Router::<()>::new()
    ///     .route("/calendar/sync", axum::routing::post(|| async { "synced" }))
    ///     .layer(BearerLayer::new(verifier).requiring(Scopes::new(["calendar"]).unwrap()));
    /// # let _ = calendar;
    /// ```
    pub fn requiring(mut self, required: Scopes) -> Self {
        self.required = Arc::new(required);
        self
    }
}

impl<S> tower_layer::Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            verifier: self.verifier.clone(),
            required: self.required.clone(),
        }
    }
}

/// The service [`BearerLayer`] makes.
#[derive(Clone, Debug)]
pub struct Bearer<S> {
    inner: S,
    verifier: Arc<Verifier>,
    required: Arc<Scopes>,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Bearer<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<ResBody>, S::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let parts = RequestParts::of_http(req.method(), req.uri(), req.headers());
        let verdict = verify_request(&self.verifier, &parts, &self.required);
        match verdict {
            Ok(claims) => {
                req.extensions_mut().insert(claims);
                Box::pin(self.inner.call(req))
            }
            Err(refusal) => {
                let (status, value) = refusal_of(refusal.as_ref(), &self.required);
                let mut r = Response::new(ResBody::default());
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers_mut().insert(WWW_AUTHENTICATE, v);
                }
                Box::pin(async move { Ok(r) })
            }
        }
    }
}
