//! The HTTP edge: one warp filter per route on each listener (`partner`,
//! `admin`), each route declaring its method, body limit and handler, and
//! one `recover` per listener (`errors`: the one place errors become
//! statuses). The admin listener checks the admin token from the request
//! head before any route reads a body, and streams `/admin/import` into the
//! service instead of gathering it. Both listeners run on hyper's HTTP/1
//! connection builder ([`serve`]) with a header-read timeout (slow-loris),
//! at most `max_connections` connections at once, TCP_NODELAY and a
//! graceful drain capped at 10 s.

pub mod admin;
pub mod body;
pub mod errors;
pub mod form;
pub mod oauth;
pub mod partner;
pub mod per_address;
pub mod reply;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::TcpListener;
use warp::Filter;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;

use crate::login::client::{self, ClientKey};
use crate::service::Service;

pub use errors::Listener;

/// How long in-flight requests may run after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What every handler needs, shared by both listeners.
pub struct AppState {
    /// The use cases.
    pub service: Arc<Service>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// SHA-256 of the admin token (compared in constant time).
    pub admin_token_digest: [u8; 32],
    /// The key `GET /instance` proves this server holds ([`crate::runtime::instance`]);
    /// None when no `admin.url` names this server.
    pub instance_key: Option<[u8; 32]>,
    /// SHA-256 of the feed token, which `GET /revocations` requires; None
    /// keeps the feed closed to everyone.
    pub feed_token_digest: Option<[u8; 32]>,
    /// How long a request body may take to arrive (for the streamed import:
    /// the longest pause between two chunks).
    pub body_read_timeout: Duration,
    /// Where clients reach the partner API (`--public-url`), for the OAuth
    /// server metadata.
    pub public_url: String,
}

impl AppState {
    /// The client a request is counted under for throttling (SPEC §5
    /// "Client addresses").
    pub fn client_key(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientKey {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        client::client_key(peer.ip(), forwarded, &self.trusted_proxies)
    }

    /// The client a request to the admin listener is counted under: its
    /// TCP peer alone. The admin listener is the operator's; it believes no
    /// `X-Forwarded-For`, so rotating one buys no fresh attempts there.
    pub fn admin_client_key(peer: SocketAddr) -> ClientKey {
        ClientKey::from_ip(peer.ip())
    }

    /// Records one request's latency under its listener and route.
    pub fn observe(&self, listener: &'static str, route: &'static str, started: Instant) {
        self.service
            .metrics()
            .observe(listener, route, started.elapsed().as_secs_f64());
    }
}

/// The peer address, put into each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The TCP peer of the request.
fn peer() -> impl Filter<Extract = (SocketAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .map(|p: Option<Peer>| p.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0))
}

/// The raw query string ("" when absent).
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The token of `Authorization: Bearer <token>`, the one bearer parser of
/// every listener (`/verify`, the admin token, the feed token,
/// introspection): None when there is no such header, another scheme or an
/// empty token; `Err` when the header is not text.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(warp::http::header::AUTHORIZATION)?;
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

/// Shares the state with a handler.
fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

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

/// Limits every connection of a listener is served under.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's
    /// accept queue, so the process never runs out of file descriptors.
    pub max_connections: usize,
    /// Connections one address may hold at once ([`per_address`]).
    pub max_connections_per_address: usize,
    /// Peers the per-address cap does not apply to (the partner
    /// listener's trusted proxies; none on the admin listener).
    pub uncapped: Arc<[ipnet::IpNet]>,
    /// `--access-log`: one line per request (see [`log_access`]).
    pub access_log: bool,
}

/// One access-log line: method, path, status, duration and caller. Never
/// the query string (where `/generateToken` carries passwords) nor any
/// header (where bearer tokens travel).
fn log_access(method: &Method, path: &str, status: u16, peer: SocketAddr, started: Instant) {
    tracing::info!(
        target: "tessera::access",
        method = %method,
        path,
        status,
        source = %peer,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
}

/// One line per change a request made (see [`crate::runtime::change_log`]): the
/// audit action and target, the caller's address and the answer's status.
fn log_changes(
    changes: &[crate::runtime::change_log::Change],
    peer: SocketAddr,
    status: warp::http::StatusCode,
) {
    for (action, target) in changes {
        let outcome = if status.is_success() {
            "done"
        } else if status.is_client_error() {
            "refused"
        } else {
            "failed"
        };
        tracing::info!(
            action,
            target = %target,
            source = %peer,
            status = status.as_u16(),
            outcome,
            "change"
        );
    }
}

/// Serves `filter` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to [`DRAIN_TIMEOUT`]. A client that has
/// not sent its whole request head (with `tls`: finished its handshake)
/// within `header_read_timeout` is cut off.
pub async fn serve(
    listener: TcpListener,
    filter: impl Routes,
    limits: ConnectionLimits,
    tls: Option<Arc<tls::TlsListener>>,
    shutdown: impl Future<Output = ()>,
) {
    let service = warp::service(filter);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address =
        per_address::PerAddress::new(limits.max_connections_per_address, limits.uncapped.clone());
    let (header_read_timeout, access_log) = (limits.header_read_timeout, limits.access_log);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(address_slot) = per_address.take(peer.ip()) else {
            // One address holds its share of the slots already: close this
            // one at once, so the rest stay free for everyone else.
            tracing::debug!(%peer, "connection refused: this address holds its cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let hyper_service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                let access = access_log.then(|| {
                    (
                        req.method().clone(),
                        req.uri().path().to_owned(),
                        Instant::now(),
                    )
                });
                let mut service = service.clone();
                let answer = tower_service::Service::call(&mut service, req);
                async move {
                    let (answer, changes) = crate::runtime::change_log::collect(answer).await;
                    if let Ok(response) = &answer {
                        log_changes(&changes, peer, response.status());
                        if let Some((method, path, started)) = access {
                            log_access(&method, &path, response.status().as_u16(), peer, started);
                        }
                    }
                    answer
                }
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let watcher = graceful.watcher();
        // The certificate current now: a reload changes later connections.
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let ended = match acceptor {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), hyper_service);
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), hyper_service);
                            watcher.watch(connection).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((slot, address_slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after the drain timeout; closing them");
    }
}
