//! `tessera key list|rotate`: the signing keyring.

use clap::{Args, Subcommand};
use serde::Deserialize;

use super::Outcome;
use super::api::{AdminApi, CallError, Method};
use super::output::{Output, or_dash, parse, table};

/// `tessera key` and its flags.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// The action.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// The `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys: next, active and retired.
    List,
    /// Make the next key active (at most once per JWKS max-age unless --force).
    Rotate {
        /// Rotate even if the last rotation was within the JWKS max-age.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Deserialize)]
struct Key {
    kid: String,
    status: String,
    created_at: String,
    retired_at: Option<String>,
}

#[derive(Deserialize)]
struct Keys {
    keys: Vec<Key>,
}

fn render(answer: &[u8]) -> Result<String, CallError> {
    let keys: Keys = parse(answer)?;
    let rows: Vec<Vec<String>> = keys
        .keys
        .into_iter()
        .map(|k| vec![k.kid, k.status, k.created_at, or_dash(k.retired_at)])
        .collect();
    Ok(table(&["KID", "STATUS", "CREATED_AT", "RETIRED_AT"], &rows))
}

/// Runs a `key` subcommand.
pub async fn run(
    api: &impl AdminApi,
    out: Output,
    command: KeyCommand,
) -> Result<Outcome, CallError> {
    let answer = match command {
        KeyCommand::List => api.call(Method::GET, "/admin/keys", None).await?,
        KeyCommand::Rotate { force } => {
            let path = if force {
                "/admin/keys/rotate?force=true"
            } else {
                "/admin/keys/rotate"
            };
            api.call(Method::POST, path, None)
                .await
                // The API's advice names its query parameter.
                .map_err(|e| e.reworded(|m| m.replace("?force=true", "--force")))?
        }
    };
    out.emit(&answer, || render(&answer))?;
    Ok(Outcome::Done)
}
