//! What every adapter (warp, tower, axum) shares: reading the token of an
//! `Authorization: Bearer` header (RFC 6750 §2.1) and the
//! `WWW-Authenticate` challenge of a refusal (§3), written once.

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
