//! The command line (SPEC §6): `tessera serve`, and every admin action as a
//! command. One file per command group; each talks to the admin API through
//! [`api::AdminApi`], reached offline (the data dir, opened in this process)
//! or online (the server holding it, or `--admin-url`) by [`connect`], so
//! the output is the same either way. Exit codes: 0 done, 1 refused or
//! failed (message on stderr), 2 usage.

pub mod api;
pub mod apply;
pub mod backup;
pub mod connect;
pub mod history;
pub mod keys;
pub mod local;
pub mod output;
pub mod remote;
pub mod tokens;
pub mod users;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::ServeArgs;
pub use connect::Common;
use connect::{Needs, connect};
use output::Output;

/// Tessera: partner users, Ed25519 bearer tokens, forward-auth verification.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// What to do.
    /// The action.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the partner and admin HTTP APIs.
    Serve(Box<ServeArgs>),
    /// Partner users: add, list, show, set, disable, enable, passwd, revoke, delete.
    User(users::UserArgs),
    /// One token: revoke it or check it.
    Token(tokens::TokenArgs),
    /// Signing keys: list or rotate.
    Key(keys::KeyArgs),
    /// List revoked tokens.
    Revocations(history::RevocationsArgs),
    /// List admin actions, newest first.
    Audit(history::AuditArgs),
    /// Write a snapshot of everything (JSON Lines; holds keys and hashes).
    Export(backup::ExportArgs),
    /// Replace everything with a snapshot.
    Import(backup::ImportArgs),
    /// Make the users match a declarative TOML file.
    Apply(apply::ApplyArgs),
    /// Check a data dir's database file whole (offline: stop the server
    /// first); exit 0 when sound, 1 when damaged, with a summary.
    Check {
        /// The data dir holding tessera.redb.
        #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./data")]
        data_dir: std::path::PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (exit 0).
    Done,
    /// The answer is "no" (`token check` of an invalid token; exit 1).
    Refused,
}

fn exit(result: Result<Outcome, api::CallError>, out: Output) -> ExitCode {
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(e) => {
            let code = match &e {
                api::CallError::Refused { code, .. } => code.as_str(),
                api::CallError::Unreachable { .. } => "unreachable",
                api::CallError::Usage(_) => "usage",
                api::CallError::Io(_) => "io",
            };
            report_error(out, code, &e.to_string());
            match e {
                api::CallError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

/// An error on stderr: `error: MESSAGE`, or with `--json` one JSON object
/// `{"error": CODE, "message": MESSAGE}` (the admin API's shape), so
/// scripts parse failures like answers.
fn report_error(out: Output, code: &str, message: &str) {
    if out.json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": code, "message": message })
        );
    } else {
        eprintln!("error: {message}");
    }
}

/// Runs an admin command (anything but `serve`) and returns its exit code.
pub fn run_admin(command: Command) -> ExitCode {
    if let Command::Completions { shell } = command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "tessera", &mut script);
        return output::write_stdout(&script);
    }
    if let Command::Check { data_dir } = &command {
        return check(data_dir);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(command))
}

async fn dispatch(command: Command) -> ExitCode {
    use Needs::{CreateIfMissing, Existing};
    let (common, needs) = match &command {
        Command::User(a) => (
            &a.common,
            match a.command {
                users::UserCommand::List { .. } | users::UserCommand::Show { .. } => Existing,
                _ => CreateIfMissing,
            },
        ),
        Command::Token(a) => (&a.common, Existing),
        Command::Key(a) => (&a.common, Existing),
        Command::Revocations(a) => (&a.common, Existing),
        Command::Audit(a) => (&a.common, Existing),
        Command::Export(a) => (&a.common, Existing),
        Command::Import(a) => (&a.common, CreateIfMissing),
        Command::Apply(a) => (&a.common, CreateIfMissing),
        Command::Serve(_) | Command::Completions { .. } | Command::Check { .. } => {
            unreachable!("handled by the caller")
        }
    };
    let out = Output { json: common.json };
    let api = match connect(common, needs).await {
        Ok(api) => api,
        Err(message) => {
            report_error(out, "unreachable", &message);
            return ExitCode::from(1);
        }
    };
    exit(
        match command {
            Command::User(a) => users::run(&api, out, a.command).await,
            Command::Token(a) => tokens::run(&api, out, a.command).await,
            Command::Key(a) => keys::run(&api, out, a.command).await,
            Command::Revocations(a) => history::revocations(&api, out, a).await,
            Command::Audit(a) => history::audit(&api, out, a).await,
            Command::Export(a) => backup::export(&api, a).await,
            Command::Import(a) => backup::import(&api, out, a).await,
            Command::Apply(a) => apply::run(&api, out, a).await,
            Command::Serve(_) | Command::Completions { .. } | Command::Check { .. } => {
                unreachable!("handled by the caller")
            }
        },
        out,
    )
}

/// `tessera check`: the engine's integrity check and every record decoded.
fn check(data_dir: &std::path::Path) -> ExitCode {
    match crate::store::check_data_dir(data_dir) {
        Ok(s) => {
            println!(
                "{}: sound ({} users, {} keys, {} revocations, {} audit events)",
                data_dir.join(crate::data_dir::DB_FILE).display(),
                s.users,
                s.keys,
                s.revocations,
                s.audit_events
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
