//! What every adapter (warp, tower, axum) shares: reading the token of an
//! `Authorization: Bearer` (RFC 6750 §2.1) or `DPoP` (RFC 9449 §7.1)
//! header with the request it came with ([`RequestParts`]), and the
//! `WWW-Authenticate` challenge of a refusal, written once.

use crate::scope::Scopes;
use crate::verifier::Reason;

/// The realm the adapters name in their challenges.
pub const REALM: &str = "tessera";

/// The token of an `Authorization` header value, if it is a Bearer one
/// (the scheme is case-insensitive).
///
/// ```
/// use tessera_verify::bearer::bearer_token;
/// assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Some("abc.def.ghi"));
/// assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
/// assert_eq!(bearer_token(Some("Basic dXNlcjpwdw==")), None);
/// assert_eq!(bearer_token(None), None);
/// ```
pub fn bearer_token(value: Option<&str>) -> Option<&str> {
    let (scheme, token) = value?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// How a request's token came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: DPoP <token>`.
    Dpop(&'a str),
}

/// What an adapter reads of a request to verify its token.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `DPoP` header (an adapter passes `Some("")` for one sent twice,
    /// which no proof is).
    pub dpop: Option<&'a str>,
    /// The request's method.
    pub method: &'a str,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The request's path (no query).
    pub path: &'a str,
}

impl<'a> RequestParts<'a> {
    /// The token and how it came; None without a Bearer or DPoP one.
    ///
    /// ```
    /// use tessera_verify::bearer::{Presented, RequestParts};
    /// let parts = |authorization| RequestParts { authorization, dpop: None, method: "GET", host: None, path: "/" };
    /// assert_eq!(parts(Some("DPoP abc")).token(), Some(Presented::Dpop("abc")));
    /// assert_eq!(parts(Some("bearer abc")).token(), Some(Presented::Bearer("abc")));
    /// assert_eq!(parts(Some("Basic abc")).token(), None);
    /// ```
    pub fn token(&self) -> Option<Presented<'a>> {
        if let Some(token) = bearer_token(self.authorization) {
            return Some(Presented::Bearer(token));
        }
        let (scheme, token) = self.authorization?.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("dpop") && !token.is_empty()).then_some(Presented::Dpop(token))
    }
}

impl<'a> RequestParts<'a> {
    /// The parts of an `http` request (the tower layer, the axum extractor).
    #[cfg(any(feature = "tower", feature = "axum"))]
    pub fn of_http(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a http::HeaderMap,
    ) -> Self {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
        };
        let dpop = match headers.get_all("dpop").iter().count() {
            0 | 1 => header("dpop"),
            _ => Some(""),
        };
        Self {
            authorization: header("authorization"),
            dpop,
            method: method.as_str(),
            host: header("host").or_else(|| uri.authority().map(|a| a.as_str())),
            path: uri.path(),
        }
    }
}

/// A request's token however it came (`Authorization: Bearer`, or `DPoP`
/// with its proof for the request's method and URL: the verifier's
/// `public_url`, else `http://` and its `Host`, and its path), holding
/// every scope of `required`: what the warp filter, the tower layer and
/// the axum extractor all call. `Err(None)`: no token.
#[cfg(feature = "client")]
pub fn verify_request(
    verifier: &crate::Verifier,
    request: &RequestParts<'_>,
    required: &Scopes,
) -> Result<std::sync::Arc<crate::token::Claims>, Option<Reason>> {
    let claims = match request.token().ok_or(None)? {
        Presented::Bearer(token) => verifier.verify(token),
        Presented::Dpop(token) => {
            let url = match verifier.public_url() {
                Some(base) => format!("{}{}", base.trim_end_matches('/'), request.path),
                None => format!("http://{}{}", request.host.unwrap_or(""), request.path),
            };
            verifier.verify_dpop(token, request.dpop, request.method, &url)
        }
    };
    claims
        .and_then(|c| verifier.holding(c, required))
        .map_err(Some)
}

/// The `WWW-Authenticate` value for a refusal (RFC 6750 §3): no error code
/// when no token came, `invalid_token` and the reason otherwise.
///
/// ```
/// use tessera_verify::bearer::challenge;
/// assert_eq!(challenge("tessera", None), r#"Bearer realm="tessera""#);
/// ```
pub fn challenge(realm: &str, refusal: Option<&Reason>) -> String {
    match refusal {
        None => format!(r#"Bearer realm="{realm}""#),
        Some(Reason::InsufficientScope) => {
            format!(r#"Bearer realm="{realm}", error="insufficient_scope""#)
        }
        // RFC 9449 §7.1: a DPoP challenge, naming the proof or the token.
        Some(Reason::Presentation(e)) => {
            let code = match e {
                crate::dpop::PresentationError::Proof(_) => "invalid_dpop_proof",
                crate::dpop::PresentationError::Binding(_) => "invalid_token",
            };
            format!(
                r#"DPoP algs="{}", error="{code}", error_description="{e}""#,
                crate::dpop::ALGORITHMS.join(" ")
            )
        }
        Some(r) => {
            format!(r#"Bearer realm="{realm}", error="invalid_token", error_description="{r}""#)
        }
    }
}

/// The status and `WWW-Authenticate` value for a refused request (RFC 6750
/// §3.1): 403 with `error="insufficient_scope"` and the `scope` required
/// for a valid token lacking one, else 401 with [`challenge`].
///
/// ```
/// use tessera_verify::{Reason, bearer::refusal, scope::Scopes};
/// let required = Scopes::new(["sync"]).unwrap();
/// assert_eq!(
///     refusal(Some(&Reason::InsufficientScope), &required),
///     (403, r#"Bearer realm="tessera", error="insufficient_scope", scope="sync""#.to_owned())
/// );
/// assert_eq!(refusal(None, &required).0, 401);
/// ```
pub fn refusal(reason: Option<&Reason>, required: &Scopes) -> (u16, String) {
    match reason {
        Some(Reason::InsufficientScope) => (
            403,
            format!(r#"Bearer realm="{REALM}", error="insufficient_scope", scope="{required}""#),
        ),
        other => (401, challenge(REALM, other)),
    }
}
