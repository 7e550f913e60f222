//! `/admin/audit`: the audit trail, newest first, paged.

use std::sync::Arc;

use serde::Serialize;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::http::admin::{limit_param, query_param, respond};
use crate::http::errors::ApiError;
use crate::http::filters::{raw_query, with_state};
use crate::http::methods::methods;
use crate::http::reply::json;
use crate::http::state::AppState;
use crate::runtime::time;
use crate::store::AuditEvent;

#[derive(Serialize)]
pub(super) struct AuditView {
    seq: u64,
    at: String,
    action: String,
    target: String,
    detail: String,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            at: time::rfc3339(e.at),
            action: e.action,
            target: e.target,
            detail: e.detail,
        }
    }
}

pub(super) fn audit(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + use<> {
    warp::path!("admin" / "audit")
        .and(methods(&[Method::GET], "GET"))
        .and(with_state(state))
        .and(raw_query())
        .then(|state: Arc<AppState>, query: String| async move {
            respond(&state, "audit", async {
                let limit = limit_param(&query)?;
                let before = match query_param(&query, "before")? {
                    None => None,
                    Some(v) => Some(
                        v.parse::<u64>()
                            .map_err(|_| ApiError::invalid("before must be a seq number"))?,
                    ),
                };
                let events: Vec<AuditView> = state
                    .service
                    .audit_events(before, limit)?
                    .into_iter()
                    .map(AuditView::from)
                    .collect();
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({ "events": events }),
                ))
            })
            .await
        })
}
