//! Reading request bodies under a route's size limit and the body-read
//! timeout (SPEC §5 "Slow requests"), as warp filters declared on each
//! route, and streaming one (the import) chunk by chunk instead.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::Filter;

use super::errors::{BodyError, BodyRejection};

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
    match declared {
        Some(n) if n > limit as u64 => return Err(BodyError::TooLarge(limit)),
        // The seed's own request carries its credentials in the query
        // string: nothing to wait for, so no stream or timer is set up.
        Some(0) => return Ok(Bytes::new()),
        _ => {}
    }
    let read = async {
        let mut stream = std::pin::pin!(stream);
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
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

/// The whole body, at most `limit` bytes (413 past it, without reading it
/// when `Content-Length` already says so), arriving within `timeout` (408).
/// Chunked bodies are read as they come.
pub fn bytes(
    limit: usize,
    timeout: Duration,
) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared, stream| async move {
            read_body(stream, declared, limit, timeout)
                .await
                .map_err(|e| warp::reject::custom(BodyRejection(e)))
        })
}

/// Feeds a request body into `tx` chunk by chunk, each within `idle` of the
/// one before; on failure sends an `Err` (so the consumer aborts) and
/// returns why. Stops quietly when the consumer has stopped (it refused).
pub async fn stream_into<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
    idle: Duration,
) -> Result<(), BodyError> {
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => Err(BodyError::TimedOut),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(chunk))) => Ok(chunk),
        };
        match next {
            Ok(chunk) => {
                let mut buf = BytesMut::with_capacity(chunk.remaining());
                copy_chunk(&mut buf, chunk);
                if tx.send(Ok(buf.freeze())).await.is_err() {
                    return Ok(());
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
