//! `tessera user …`: provisioning partner users through the admin API.

use std::io::Read;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Outcome;
use super::api::{AdminApi, CallError, Method};
use super::output::{Output, encode, fields, or_dash, parse, query, table};
use crate::domain::secrets::SecretView;
use crate::domain::user::UserView;
use crate::runtime::time::parse_duration;

/// `tessera user` and its flags.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// The action.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// The `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; a password is generated and printed once unless
    /// --password-stdin gives one.
    Add {
        /// The login name.
        name: String,
        /// Read the password from stdin (one line) instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// When the account stops getting tokens (RFC 3339 UTC).
        #[arg(long)]
        expires_at: Option<String>,
        /// Token lifetime for this user (e.g. 15m, 1h); default: the server's.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Free text for operators.
        #[arg(long)]
        note: Option<String>,
        /// A scope its tokens may be granted (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A network its logins may come from, as CIDR (repeat for
        /// several); none: anywhere.
        #[arg(long = "allow-network")]
        networks: Vec<String>,
        /// At most this many tokens: N/s, N/min or N/h (per node).
        #[arg(long)]
        token_rate: Option<String>,
        /// Logins must carry a DPoP proof (tokens bound to the partner's key).
        #[arg(long)]
        dpop_required: bool,
    },
    /// List users, sorted by name.
    List {
        /// At most this many (1-1000; default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this name (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one user.
    Show {
        /// The login name.
        name: String,
    },
    /// Change a user's expiry, token lifetime, note, scopes, networks or
    /// token rate.
    Set {
        /// The login name.
        name: String,
        /// RFC 3339 UTC, or `never`.
        #[arg(long)]
        expires_at: Option<String>,
        /// A duration (15m, 1h), or `default` for the server's.
        #[arg(long, value_parser = parse_ttl_setting)]
        ttl: Option<TtlSetting>,
        /// New note; an empty one clears it.
        #[arg(long)]
        note: Option<String>,
        /// The scopes it holds from now on, comma-separated; an empty value
        /// clears them. Tokens already issued lose a scope taken away.
        #[arg(long)]
        scopes: Option<String>,
        /// The networks its logins may come from, comma-separated CIDRs;
        /// an empty value allows anywhere.
        #[arg(long)]
        networks: Option<String>,
        /// N/s, N/min or N/h; `none` for unlimited.
        #[arg(long)]
        token_rate: Option<String>,
        /// Whether logins must carry a DPoP proof: true or false.
        #[arg(long)]
        dpop_required: Option<bool>,
    },
    /// Stop a user getting tokens; their tokens stop verifying.
    Disable {
        /// The login name.
        name: String,
    },
    /// Let a disabled user get tokens again.
    Enable {
        /// The login name.
        name: String,
    },
    /// Set a new password: from stdin with --password-stdin, else a
    /// generated one, printed once.
    Passwd {
        /// The login name.
        name: String,
        /// Read the password from stdin (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a user a new secret while the current one stays valid for
    /// --grace (a rotation with an overlap): prints the new password once
    /// (unless --password-stdin gives one) and when the previous one ends.
    Rotate {
        /// The login name.
        name: String,
        /// How long the current secret stays valid: 0s to 30d (default 24h;
        /// 0s ends it at once).
        #[arg(long)]
        grace: Option<String>,
        /// Read the new password from stdin (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// End one of a user's secrets before its time (its id from
    /// `user show`): the previous one ends its grace now; ending the newest
    /// undoes the rotation. The only secret can not be ended.
    EndSecret {
        /// The login name.
        name: String,
        /// The secret's id (8 hex digits).
        id: String,
    },
    /// Revoke every token issued to the user so far.
    Revoke {
        /// The login name.
        name: String,
    },
    /// Delete a user; their tokens stop verifying.
    Delete {
        /// The login name.
        name: String,
    },
}

/// `--ttl` of `user set`.
#[derive(Debug, Clone, Copy)]
pub enum TtlSetting {
    /// Back to the server's default.
    Default,
    /// Whole seconds.
    Seconds(u64),
}

fn parse_ttl_setting(text: &str) -> Result<TtlSetting, String> {
    if text == "default" {
        return Ok(TtlSetting::Default);
    }
    parse_duration(text).map(|d| TtlSetting::Seconds(d.as_secs()))
}

/// Reads a password from stdin: the first line, without its line ending.
pub fn password_from_stdin() -> Result<String, CallError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CallError::Io(format!("could not read the password from stdin: {e}")))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(CallError::Io(
            "--password-stdin: stdin held no password; pipe one in, e.g. `printf %s \"$PW\" | tessera user …`".into(),
        ));
    }
    Ok(line)
}

fn user_path(name: &str) -> String {
    format!("/admin/users/{}", encode(name))
}

fn body(value: Value) -> Option<Vec<u8>> {
    Some(value.to_string().into_bytes())
}

/// A comma-separated option as a list; an empty value is an empty list.
fn comma_list(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A user as `field: value` lines.
pub fn show(u: &UserView) -> String {
    fields(&[
        ("username", u.username.clone()),
        ("status", json!(u.status).as_str().unwrap_or("").to_owned()),
        ("created_at", u.created_at.clone()),
        ("updated_at", u.updated_at.clone()),
        ("expires_at", or_dash(u.expires_at.as_ref())),
        ("token_ttl_secs", or_dash(u.token_ttl_secs)),
        ("tokens_valid_after", or_dash(u.tokens_valid_after.as_ref())),
        ("note", or_dash(u.note.as_ref())),
        (
            "scopes",
            if u.scopes.is_empty() {
                "-".to_owned()
            } else {
                u.scopes.to_string()
            },
        ),
        (
            "allowed_networks",
            if u.allowed_networks.is_empty() {
                "- (anywhere)".to_owned()
            } else {
                u.allowed_networks.to_string()
            },
        ),
        ("token_rate", or_dash(u.token_rate.as_ref())),
        ("dpop_required", u.dpop_required.to_string()),
        ("last_login_at", or_dash(u.last_login_at.as_ref())),
    ]) + &secrets_table(&u.secrets)
}

/// A user's secrets, newest first, as a table.
fn secrets_table(secrets: &[SecretView]) -> String {
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.created_at.clone(),
                or_dash(s.expires_at.as_ref()),
                or_dash(s.last_used_at.as_ref()),
            ]
        })
        .collect();
    format!(
        "secrets:\n{}",
        table(&["ID", "CREATED_AT", "EXPIRES_AT", "LAST_USED_AT"], &rows)
    )
}

#[derive(Deserialize)]
struct Created {
    #[serde(flatten)]
    user: UserView,
    password: Option<String>,
}

#[derive(Deserialize)]
struct UserList {
    users: Vec<UserView>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Rotation {
    password: Option<String>,
    secret: SecretView,
    previous: Option<SecretView>,
}

#[derive(Deserialize)]
struct Generated {
    password: String,
}

/// Runs a `user` subcommand.
pub async fn run(
    api: &impl AdminApi,
    out: Output,
    command: UserCommand,
) -> Result<Outcome, CallError> {
    match command {
        UserCommand::Add {
            name,
            password_stdin,
            expires_at,
            ttl,
            note,
            scopes,
            networks,
            token_rate,
            dpop_required,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let request = json!({
                "username": name,
                "password": password,
                "expires_at": expires_at,
                "token_ttl_secs": ttl.map(|d| d.as_secs()),
                "note": note,
                "scopes": scopes,
                "allowed_networks": networks,
                "token_rate": token_rate,
                "dpop_required": dpop_required,
            });
            let answer = api
                .call(Method::POST, "/admin/users", body(request))
                .await?;
            out.emit(&answer, || {
                let c: Created = parse(&answer)?;
                let mut text = format!("created user {}\n", c.user.username);
                if let Some(pw) = c.password {
                    text.push_str(&format!("password: {pw}\n"));
                }
                Ok(text)
            })?;
        }
        UserCommand::List { limit, after } => {
            let path = format!(
                "/admin/users{}",
                query(&[("limit", limit.map(|l| l.to_string())), ("after", after)])
            );
            let answer = api.call(Method::GET, &path, None).await?;
            out.emit(&answer, || {
                let list: UserList = parse(&answer)?;
                let rows: Vec<Vec<String>> = list
                    .users
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            json!(u.status).as_str().unwrap_or("").to_owned(),
                            or_dash(u.expires_at.as_ref()),
                            or_dash(u.token_ttl_secs),
                            or_dash(u.note.as_ref()),
                        ]
                    })
                    .collect();
                let mut text = table(
                    &["USERNAME", "STATUS", "EXPIRES_AT", "TTL_SECS", "NOTE"],
                    &rows,
                );
                if let Some(next) = list.next {
                    text.push_str(&format!("more: --after {next}\n"));
                }
                Ok(text)
            })?;
        }
        UserCommand::Show { name } => {
            let answer = api.call(Method::GET, &user_path(&name), None).await?;
            out.emit(&answer, || Ok(show(&parse(&answer)?)))?;
        }
        UserCommand::Set {
            name,
            expires_at,
            ttl,
            note,
            scopes,
            networks,
            token_rate,
            dpop_required,
        } => {
            let mut patch = serde_json::Map::new();
            if let Some(e) = expires_at {
                let value = if e == "never" { Value::Null } else { json!(e) };
                patch.insert("expires_at".into(), value);
            }
            if let Some(t) = ttl {
                let value = match t {
                    TtlSetting::Default => Value::Null,
                    TtlSetting::Seconds(s) => json!(s),
                };
                patch.insert("token_ttl_secs".into(), value);
            }
            if let Some(n) = note {
                let value = if n.is_empty() { Value::Null } else { json!(n) };
                patch.insert("note".into(), value);
            }
            if let Some(s) = scopes {
                patch.insert("scopes".into(), json!(comma_list(&s)));
            }
            if let Some(n) = networks {
                patch.insert("allowed_networks".into(), json!(comma_list(&n)));
            }
            if let Some(r) = token_rate {
                let value = if r == "none" { Value::Null } else { json!(r) };
                patch.insert("token_rate".into(), value);
            }
            if let Some(d) = dpop_required {
                patch.insert("dpop_required".into(), json!(d));
            }
            if patch.is_empty() {
                return Err(CallError::Usage(
                    "nothing to change: give --expires-at, --ttl, --note, --scopes, --networks, --token-rate or --dpop-required".into(),
                ));
            }
            let answer = api
                .call(Method::PATCH, &user_path(&name), body(Value::Object(patch)))
                .await?;
            out.emit(&answer, || Ok(show(&parse(&answer)?)))?;
        }
        UserCommand::Disable { name } => set_status(api, out, &name, "disabled").await?,
        UserCommand::Enable { name } => set_status(api, out, &name, "active").await?,
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let answer = api
                .call(
                    Method::POST,
                    &format!("{}/password", user_path(&name)),
                    body(json!({ "password": password })),
                )
                .await?;
            out.emit(&answer, || {
                if answer.is_empty() {
                    Ok(format!("password of {name} set\n"))
                } else {
                    let g: Generated = parse(&answer)?;
                    Ok(format!(
                        "password of {name} set\npassword: {}\n",
                        g.password
                    ))
                }
            })?;
        }
        UserCommand::Rotate {
            name,
            grace,
            password_stdin,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let answer = api
                .call(
                    Method::POST,
                    &format!("{}/secrets", user_path(&name)),
                    body(json!({ "password": password, "grace": grace })),
                )
                .await?;
            out.emit(&answer, || {
                let r: Rotation = parse(&answer)?;
                let mut text = format!(
                    "new secret {} of {name}
",
                    r.secret.id
                );
                if let Some(pw) = r.password {
                    text.push_str(&format!(
                        "password: {pw}
"
                    ));
                }
                text.push_str(&match r.previous {
                    Some(p) => format!(
                        "previous secret {} still valid until {}
",
                        p.id,
                        or_dash(p.expires_at.as_ref())
                    ),
                    None => "the previous secret ended at once
"
                    .to_owned(),
                });
                Ok(text)
            })?;
        }
        UserCommand::EndSecret { name, id } => {
            let path = format!("{}/secrets/{}", user_path(&name), encode(&id));
            let answer = api.call(Method::DELETE, &path, None).await?;
            out.emit(&answer, || {
                Ok(format!(
                    "secret {id} of {name} ended
"
                ))
            })?;
        }
        UserCommand::Revoke { name } => {
            let answer = api
                .call(Method::POST, &format!("{}/revoke", user_path(&name)), None)
                .await?;
            out.emit(&answer, || {
                Ok(format!("revoked every token issued to {name} so far\n"))
            })?;
        }
        UserCommand::Delete { name } => {
            let answer = api.call(Method::DELETE, &user_path(&name), None).await?;
            out.emit(&answer, || Ok(format!("deleted user {name}\n")))?;
        }
    }
    Ok(Outcome::Done)
}

async fn set_status(
    api: &impl AdminApi,
    out: Output,
    name: &str,
    status: &str,
) -> Result<(), CallError> {
    let answer = api
        .call(
            Method::PATCH,
            &user_path(name),
            body(json!({ "status": status })),
        )
        .await?;
    out.emit(&answer, || Ok(format!("user {name} is {status}\n")))
}
