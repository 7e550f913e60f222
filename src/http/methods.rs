//! Which methods a route takes: a filter that passes only those and
//! rejects the rest with [`MethodNotAllowed`], answered as a 405 with the
//! route's `Allow` header (rather than a 404 from the routes tried after
//! it).

use warp::Filter;
use warp::http::Method;

/// The path exists but not with this method.
#[derive(Debug)]
pub struct MethodNotAllowed {
    /// The `Allow` header.
    pub allow: &'static str,
}
impl warp::reject::Reject for MethodNotAllowed {}

/// A filter passing only the given methods; anything else is a 405 with
/// `Allow` (rather than a 404 from the routes tried after it).
pub fn methods(
    allowed: &'static [Method],
    allow: &'static str,
) -> impl warp::Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::method()
        .and_then(move |m: Method| async move {
            if allowed.contains(&m) {
                Ok(())
            } else {
                Err(warp::reject::custom(MethodNotAllowed { allow }))
            }
        })
        .untuple_one()
}
