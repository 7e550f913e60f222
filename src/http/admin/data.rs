//! `/admin/export`, `/admin/import` and `/admin/apply`: the whole user
//! base out and in, and declarative files.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use warp::Filter;
use warp::http::header::{CONNECTION, CONTENT_TYPE};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::domain::declaration;
use crate::domain::declaration::ApplyBodyError;
use crate::http::admin::respond;
use crate::http::body;
use crate::http::errors::{ApiError, Listener};
use crate::http::filters::with_state;
use crate::http::methods::methods;
use crate::http::reply::{json, with_header};
use crate::http::state::AppState;

/// The export channel as a body stream.
pub(super) struct ExportStream(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_util::Stream for ExportStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

pub(super) fn export(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "export")
        .and(methods(&[Method::GET], "GET"))
        .and(with_state(state))
        .map(|state: Arc<AppState>| {
            let body = warp::reply::stream(ExportStream(state.service.export()));
            with_header(
                warp::Reply::into_response(body),
                CONTENT_TYPE,
                "application/x-ndjson",
            )
        })
}

/// `POST /admin/import`: the body is streamed into the service as it
/// arrives (never gathered), each chunk within the body-read timeout of
/// the one before.
pub(super) fn import(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "import")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(warp::body::stream())
        .then(|state: Arc<AppState>, stream| async move {
            let started = Instant::now();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let feed = body::stream_into(stream, tx, state.body_read_timeout);
            let (fed, imported) = tokio::join!(feed, state.service.import(rx));
            let response = match (fed, imported) {
                (Err(e), _) => e.response(Listener::Admin),
                (Ok(()), Ok(counts)) => json(StatusCode::OK, &counts),
                // The rest of a refused snapshot is never read.
                (Ok(()), Err(e)) => with_header(ApiError::from(e).response(), CONNECTION, "close"),
            };
            state.observe("admin", "import", started);
            response
        })
}

// ---- /admin/apply ----

/// Largest declarative document over the API (about 10,000 users).
pub const MAX_APPLY_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn apply(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "apply")
        .and(methods(&[Method::POST], "POST"))
        .and(with_state(state))
        .and(body::bytes(MAX_APPLY_BYTES, state.body_read_timeout))
        .then(|state: Arc<AppState>, body: Bytes| async move {
            respond(&state, "apply", async {
                let request = declaration::parse_apply_json(&body).map_err(|e| match e {
                    ApplyBodyError::Malformed(e) => {
                        ApiError::BadRequest(format!("invalid JSON body: {e}"))
                    }
                    ApplyBodyError::Entry(e) => ApiError::invalid(e),
                })?;
                let desired = declaration::check_all(&request.users).map_err(ApiError::invalid)?;
                let report = state
                    .service
                    .apply(desired, request.prune, request.dry_run)
                    .await?;
                Ok(json(StatusCode::OK, &report))
            })
            .await
        })
}
