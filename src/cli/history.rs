//! `tessera revocations` and `tessera audit`: the revocation list and the
//! audit log, a page at a time.

use clap::Args;
use serde::Deserialize;

use super::Outcome;
use super::api::{AdminApi, CallError, Method};
use super::output::{Output, parse, query, table};
use crate::runtime::time;

/// `tessera revocations`.
#[derive(Debug, Args)]
pub struct RevocationsArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// At most this many (1-1000; default 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this jti (the `next` of the previous page).
    #[arg(long)]
    pub after: Option<String>,
}

/// `tessera audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// At most this many (1-1000; default 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Only events older than this seq (paging back).
    #[arg(long)]
    pub before: Option<u64>,
}

#[derive(Deserialize)]
struct Revocation {
    jti: String,
    exp: u64,
}

#[derive(Deserialize)]
struct Revocations {
    revocations: Vec<Revocation>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    seq: u64,
    at: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Deserialize)]
struct Events {
    events: Vec<Event>,
}

/// Lists revoked tokens.
pub async fn revocations(
    api: &impl AdminApi,
    out: Output,
    args: RevocationsArgs,
) -> Result<Outcome, CallError> {
    let path = format!(
        "/admin/revocations{}",
        query(&[
            ("limit", args.limit.map(|l| l.to_string())),
            ("after", args.after)
        ])
    );
    let answer = api.call(Method::GET, &path, None).await?;
    out.emit(&answer, || {
        let list: Revocations = parse(&answer)?;
        let rows: Vec<Vec<String>> = list
            .revocations
            .into_iter()
            .map(|r| vec![r.jti, time::rfc3339(r.exp)])
            .collect();
        let mut text = table(&["JTI", "EXPIRES_AT"], &rows);
        if let Some(next) = list.next {
            text.push_str(&format!("more: --after {next}\n"));
        }
        Ok(text)
    })?;
    Ok(Outcome::Done)
}

/// Lists audit events, newest first.
pub async fn audit(
    api: &impl AdminApi,
    out: Output,
    args: AuditArgs,
) -> Result<Outcome, CallError> {
    let path = format!(
        "/admin/audit{}",
        query(&[
            ("limit", args.limit.map(|l| l.to_string())),
            ("before", args.before.map(|b| b.to_string())),
        ])
    );
    let answer = api.call(Method::GET, &path, None).await?;
    out.emit(&answer, || {
        let list: Events = parse(&answer)?;
        let rows: Vec<Vec<String>> = list
            .events
            .into_iter()
            .map(|e| vec![e.seq.to_string(), e.at, e.action, e.target, e.detail])
            .collect();
        Ok(table(&["SEQ", "AT", "ACTION", "TARGET", "DETAIL"], &rows))
    })?;
    Ok(Outcome::Done)
}
