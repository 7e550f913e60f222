//! The HTTP edge. warp parses HTTP and gathers each request into a
//! [`Request`] (method, path, query, headers, peer, body read under a size
//! limit); `partner` and `admin` route it with one `match` each and call one
//! service function per route. Both listeners run on hyper's HTTP/1
//! connection builder with a header-read timeout (slow-loris), TCP_NODELAY
//! and a graceful drain capped at 10 s.

// Handlers return `Result<Response, Response>`: the error is a finished 4xx
// on a cold path, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod form;
pub mod partner;
pub mod reply;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::TcpListener;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use crate::service::Service;
use crate::throttle::Throttle;

/// How long in-flight requests may run after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What every handler needs, shared by both listeners.
pub struct AppState {
    /// The use cases.
    pub service: Arc<Service>,
    /// Brute-force throttling of `/generateToken`.
    pub throttle: Throttle,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// SHA-256 of the admin token (compared in constant time).
    pub admin_token_digest: [u8; 32],
}

/// One request, gathered.
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, still percent-encoded.
    pub path: String,
    /// The raw query string ("" when absent).
    pub query: String,
    /// All headers.
    pub headers: HeaderMap,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The body, at most the route's limit.
    pub body: Bytes,
}

impl Request {
    /// A header as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The client address: the peer, or when the peer is a trusted proxy the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, trusted: &[IpNet]) -> IpAddr {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        let peer = self.peer.ip();
        if !is_trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        for value in self.headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return client;
            };
            for entry in text.rsplit(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(ip) if is_trusted(&ip) => client = ip,
                    Ok(ip) => return ip,
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

/// The peer address, put into each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// Which listener a request came in on; decides routes and body limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The partner API.
    Partner,
    /// The admin API.
    Admin,
}

impl Listener {
    /// The body limit for a path on this listener.
    fn body_limit(self, path: &str) -> usize {
        match (self, path) {
            (Listener::Partner, _) => partner::MAX_BODY_BYTES,
            (Listener::Admin, "/admin/import") => admin::MAX_IMPORT_BYTES,
            (Listener::Admin, _) => admin::MAX_JSON_BYTES,
        }
    }
}

enum BodyError {
    TooLarge(usize),
    Read(warp::Error),
}

async fn read_body<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut stream = std::pin::pin!(stream);
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(BodyError::Read)?;
        if buf.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            buf.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

fn too_large(listener: Listener, limit: usize) -> Response {
    let message = format!("request body too large (limit {limit} bytes)");
    let response = match listener {
        Listener::Partner => reply::text(StatusCode::PAYLOAD_TOO_LARGE, message),
        Listener::Admin => reply::admin_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message),
    };
    // The rest of the body is never read, so the connection can not be reused.
    reply::with_header(response, warp::http::header::CONNECTION, "close")
}

/// The warp filter for one listener: gather, then route.
pub fn routes(
    state: Arc<AppState>,
    listener: Listener,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream())
        .then(
            move |method,
                  path: warp::path::FullPath,
                  query,
                  headers: HeaderMap,
                  peer: Option<Peer>,
                  body| {
                let state = state.clone();
                async move {
                    let path = path.as_str().to_owned();
                    let declared = headers
                        .get(warp::http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let limit = listener.body_limit(&path);
                    let body = match read_body(body, declared, limit).await {
                        Ok(b) => b,
                        Err(BodyError::TooLarge(limit)) => return too_large(listener, limit),
                        Err(BodyError::Read(e)) => {
                            tracing::debug!(error = %e, "could not read request body");
                            return reply::text(
                                StatusCode::BAD_REQUEST,
                                "could not read request body",
                            );
                        }
                    };
                    let request = Request {
                        method,
                        path,
                        query,
                        headers,
                        peer: peer.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0),
                        body,
                    };
                    match listener {
                        Listener::Partner => partner::handle(&state, request).await,
                        Listener::Admin => admin::handle(&state, request).await,
                    }
                }
            },
        )
}

/// Serves `filter` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to [`DRAIN_TIMEOUT`]. A client that has
/// not sent its whole request head within `header_read_timeout` is cut off.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    let service = warp::service(filter);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
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
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let hyper_service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                let mut service = service.clone();
                tower_service::Service::call(&mut service, req)
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let connection = builder.serve_connection(TokioIo::new(stream), hyper_service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
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
