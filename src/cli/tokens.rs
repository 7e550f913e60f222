//! `tessera token revoke|check`: one token, by its text or its `jti`.
//! A token may be given as `-` to read it from stdin (out of `ps`).

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use super::Outcome;
use super::api::{AdminApi, CallError, Method};
use super::output::{Output, fields, parse};
use crate::runtime::time;

/// `tessera token` and its flags.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// The action.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// The `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke one token: give the token (or `-` to read it from stdin), or
    /// its --jti and --exp.
    Revoke {
        /// The token, or `-` for stdin.
        #[arg(required_unless_present = "jti", conflicts_with_all = ["jti", "exp"])]
        token: Option<String>,
        /// The token's `jti` claim.
        #[arg(long, requires = "exp")]
        jti: Option<String>,
        /// The token's `exp` claim (unix seconds).
        #[arg(long, requires = "jti")]
        exp: Option<u64>,
    },
    /// What /verify would answer for a token: exit 0 valid, 1 invalid.
    Check {
        /// The token, or `-` for stdin.
        token: String,
    },
}

fn token_text(arg: String) -> Result<String, CallError> {
    if arg != "-" {
        return Ok(arg);
    }
    let text = std::io::read_to_string(std::io::stdin())
        .map_err(|e| CallError::Io(format!("could not read the token from stdin: {e}")))?;
    Ok(text.trim().to_owned())
}

#[derive(Deserialize)]
struct Revoked {
    jti: String,
    exp: u64,
}

#[derive(Deserialize)]
struct Verdict {
    valid: bool,
    reason: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
    exp: Option<u64>,
}

/// Runs a `token` subcommand.
pub async fn run(
    api: &impl AdminApi,
    out: Output,
    command: TokenCommand,
) -> Result<Outcome, CallError> {
    match command {
        TokenCommand::Revoke { token, jti, exp } => {
            let request = match (token, jti, exp) {
                (Some(t), _, _) => json!({ "token": token_text(t)? }),
                (None, Some(jti), Some(exp)) => json!({ "jti": jti, "exp": exp }),
                _ => return Err(CallError::Usage("give a token, or --jti and --exp".into())),
            };
            let answer = api
                .call(
                    Method::POST,
                    "/admin/revocations",
                    Some(request.to_string().into_bytes()),
                )
                .await?;
            out.emit(&answer, || {
                let r: Revoked = parse(&answer)?;
                Ok(format!(
                    "revoked token {} (kept on the list until {})\n",
                    r.jti,
                    time::rfc3339(r.exp)
                ))
            })?;
            Ok(Outcome::Done)
        }
        TokenCommand::Check { token } => {
            let request = json!({ "token": token_text(token)? });
            let answer = api
                .call(
                    Method::POST,
                    "/admin/tokens/check",
                    Some(request.to_string().into_bytes()),
                )
                .await?;
            let verdict: Verdict = parse(&answer)?;
            out.emit(&answer, || {
                Ok(if verdict.valid {
                    fields(&[
                        ("valid", "yes".into()),
                        ("sub", verdict.sub.clone().unwrap_or_default()),
                        ("jti", verdict.jti.clone().unwrap_or_default()),
                        (
                            "expires_at",
                            verdict.exp.map(time::rfc3339).unwrap_or_default(),
                        ),
                    ])
                } else {
                    fields(&[
                        ("valid", "no".into()),
                        ("reason", verdict.reason.clone().unwrap_or_default()),
                    ])
                })
            })?;
            Ok(if verdict.valid {
                Outcome::Done
            } else {
                Outcome::Refused
            })
        }
    }
}
