//! The HTTP edge. warp parses HTTP and gathers each request into a
//! [`Request`] (method, path, query, headers, peer, body read under a size
//! limit and a time limit); `partner` and `admin` route it with one `match`
//! each and call one service function per route. The admin listener checks
//! the admin token from the request head before it reads any body, and
//! streams `/admin/import` into the service instead of gathering it. Both
//! listeners run on hyper's HTTP/1 connection builder with a header-read
//! timeout (slow-loris), at most `max_connections` connections at once,
//! TCP_NODELAY and a graceful drain capped at 10 s.

// Handlers return `Result<Response, Response>`: the error is a finished 4xx
// on a cold path, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod form;
pub mod partner;
pub mod reply;

use std::future::Future;
use std::net::SocketAddr;
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

use crate::client::{self, ClientKey};
use crate::service::Service;

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
    /// How long a request body may take to arrive (for the streamed import:
    /// the longest pause between two chunks).
    pub body_read_timeout: Duration,
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

    /// The client this request is counted under for throttling (SPEC §5
    /// "Client addresses").
    pub fn client_key(&self, trusted: &[IpNet]) -> ClientKey {
        let forwarded = self
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        client::client_key(self.peer.ip(), forwarded, trusted)
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
    /// The body limit on this listener (the import is streamed, not held).
    fn body_limit(self) -> usize {
        match self {
            Listener::Partner => partner::MAX_BODY_BYTES,
            Listener::Admin => admin::MAX_JSON_BYTES,
        }
    }
}

/// Why a request body could not be read.
pub enum BodyError {
    /// Over the route's limit (413).
    TooLarge(usize),
    /// Did not arrive within the body-read timeout (408).
    TimedOut,
    /// The connection broke (400).
    Read(warp::Error),
}

fn copy_chunk(buf: &mut BytesMut, mut chunk: impl Buf) {
    while chunk.has_remaining() {
        let piece = chunk.chunk();
        buf.extend_from_slice(piece);
        let n = piece.len();
        chunk.advance(n);
    }
}

async fn read_body<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let read = async {
        let mut stream = std::pin::pin!(stream);
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BodyError::Read)?;
            if buf.len() + chunk.remaining() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            copy_chunk(&mut buf, chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

/// Feeds a request body into `tx` chunk by chunk, each within `idle`
/// of the one before; on failure sends an `Err` (so the consumer aborts)
/// and returns why.
pub async fn stream_body<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
    idle: Duration,
) -> Result<(), BodyError> {
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => Err(BodyError::TimedOut),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => Err(BodyError::Read(e)),
            Ok(Some(Ok(chunk))) => Ok(chunk),
        };
        match next {
            Ok(chunk) => {
                let mut buf = BytesMut::with_capacity(chunk.remaining());
                copy_chunk(&mut buf, chunk);
                if tx.send(Ok(buf.freeze())).await.is_err() {
                    return Ok(()); // the consumer stopped early (refused)
                }
            }
            Err(e) => {
                let reason = match &e {
                    BodyError::TimedOut => "the upload stalled past the body-read timeout",
                    _ => "the upload broke off",
                };
                let _ = tx.send(Err(reason.to_owned())).await;
                return Err(e);
            }
        }
    }
}

/// The response for a body that could not be read. The rest of the body is
/// never read, so the connection is closed.
pub fn body_error(listener: Listener, e: BodyError) -> Response {
    let (status, code, message) = match e {
        BodyError::TooLarge(limit) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body too large (limit {limit} bytes)"),
        ),
        BodyError::TimedOut => (
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "request body not received in time".to_owned(),
        ),
        BodyError::Read(e) => {
            tracing::debug!(error = %e, "could not read request body");
            (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "could not read request body".to_owned(),
            )
        }
    };
    let response = match listener {
        Listener::Partner => reply::text(status, message),
        Listener::Admin => reply::admin_error(status, code, message),
    };
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
                    if listener == Listener::Admin {
                        // Authenticate from the head: a stranger's body is
                        // never read (SPEC §5 "Authenticate before reading").
                        if !admin::authorized(&state, &headers) {
                            return admin::unauthorized();
                        }
                        if path == "/admin/import" && method == Method::POST {
                            return admin::import(&state, body).await;
                        }
                    }
                    let declared = headers
                        .get(warp::http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let limit = listener.body_limit();
                    let body = match read_body(body, declared, limit, state.body_read_timeout).await
                    {
                        Ok(b) => b,
                        Err(e) => return body_error(listener, e),
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

/// Limits every connection of a listener is served under.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's
    /// accept queue, so the process never runs out of file descriptors.
    pub max_connections: usize,
}

/// Serves `filter` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to [`DRAIN_TIMEOUT`]. A client that has
/// not sent its whole request head within `header_read_timeout` is cut off.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    let service = warp::service(filter);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
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
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let connection = builder.serve_connection(TokioIo::new(stream), hyper_service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
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
