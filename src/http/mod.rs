//! The HTTP edge: one warp filter per route on each listener (`partner`,
//! `admin`), each route declaring its method, body limit and handler, and
//! one `recover` per listener (`errors`: the one place errors become
//! statuses). The admin listener checks the admin token from the request
//! head before any route reads a body, and streams `/admin/import` into the
//! service instead of gathering it. Both listeners run on hyper's HTTP/1
//! connection builder ([`server::serve`]) with a header-read timeout (slow-loris),
//! at most `max_connections` connections at once, TCP_NODELAY and a
//! graceful drain capped at 10 s.

pub mod admin;
pub mod body;
pub mod errors;
pub mod form;
pub mod methods;
pub mod oauth;
pub mod oauth_error;
pub mod partner;
pub mod per_address;
pub mod reply;
pub mod secrets;
pub mod tls;

pub mod console;
pub mod filters;
pub mod server;
pub mod state;

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;
use warp::reply::Response;

use self::state::AppState;

/// A listener's whole filter: its routes, then its one `recover`.
pub trait Routes:
    Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
}
impl<F> Routes for F where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
}

/// Every route of the partner listener.
pub fn partner_routes(state: &Arc<AppState>) -> impl Routes + use<> {
    partner::routes(state)
        .recover(errors::recover_partner)
        .unify()
}

/// Every route of the admin listener, behind the admin token.
pub fn admin_routes(state: &Arc<AppState>) -> impl Routes + use<> {
    admin::routes(state).recover(errors::recover_admin).unify()
}
