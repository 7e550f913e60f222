//! The accept loop both listeners run on: hyper's HTTP/1 connection
//! builder with warp's service, a header-read timeout (slow-loris), a
//! 64 KiB head limit, at most `max_connections` connections at once and
//! `max_connections_per_address` from one address, TCP_NODELAY, the
//! access and change logs, and a graceful drain capped at 10 s — none of
//! which `warp::serve` exposes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use warp::http::Method;

use super::Routes;
use super::filters::Peer;
use super::per_address::PerAddress;
use super::tls::TlsListener;
use crate::runtime::change_log;

/// How long in-flight requests may run after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Limits every connection of a listener is served under.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's
    /// accept queue, so the process never runs out of file descriptors.
    pub max_connections: usize,
    /// Connections one address may hold at once ([`super::per_address`]).
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
fn log_changes(changes: &[change_log::Change], peer: SocketAddr, status: warp::http::StatusCode) {
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
    tls: Option<Arc<TlsListener>>,
    shutdown: impl Future<Output = ()>,
) {
    let service = warp::service(filter);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address, limits.uncapped.clone());
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
                    let (answer, changes) = change_log::collect(answer).await;
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
