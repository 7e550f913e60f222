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
use connect::{Backend, Needs, connect};
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

/// A command line clap refused: help and version print as clap prints
/// them (exit 0); any other error is a usage error (exit 2), printed as
/// clap prints it, or — when the command line asks for `--json` — as the
/// one JSON object `{"error": "usage", "message": …}` cli.md promises.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || !std::env::args_os().any(|a| a == "--json")
    {
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    }
    let message = e.render().to_string();
    let message = message.trim().trim_start_matches("error: ");
    report_error(Output { json: true }, "usage", message);
    ExitCode::from(2)
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
        // A dry run changes nothing, so it creates nothing either.
        Command::Apply(a) if a.dry_run => (&a.common, Existing),
        Command::Apply(a) => (&a.common, CreateIfMissing),
        Command::Serve(_) | Command::Completions { .. } | Command::Check { .. } => {
            unreachable!("handled by the caller")
        }
    };
    let out = Output { json: common.json };
    // What the command reads is checked before a database could be made
    // for it: a missing or broken input file creates nothing.
    let declared = match &command {
        Command::Apply(a) => apply::read(&a.file),
        Command::Import(a) => backup::check_input(&a.file).map(|()| Default::default()),
        _ => Ok(Default::default()),
    };
    let declared = match declared {
        Ok(declared) => declared,
        Err(e) => return exit(Err(e), out),
    };
    let new_store = NewStore::before(common);
    let api = match connect(common, needs).await {
        Ok(api) => api,
        Err(message) => {
            report_error(out, "unreachable", &message);
            return ExitCode::from(1);
        }
    };
    if let (Some(new), Backend::Offline(_)) = (&new_store, &api)
        && !out.json
    {
        eprintln!(
            "note: no Tessera database in {}: created a new one (pass --data-dir, or --admin-url for a server elsewhere)",
            new.dir.display()
        );
    }
    let result = match command {
        Command::User(a) => users::run(&api, out, a.command).await,
        Command::Token(a) => tokens::run(&api, out, a.command).await,
        Command::Key(a) => keys::run(&api, out, a.command).await,
        Command::Revocations(a) => history::revocations(&api, out, a).await,
        Command::Audit(a) => history::audit(&api, out, a).await,
        Command::Export(a) => backup::export(&api, a).await,
        Command::Import(a) => backup::import(&api, out, a).await,
        Command::Apply(a) => apply::run(&api, out, a, declared).await,
        Command::Serve(_) | Command::Completions { .. } | Command::Check { .. } => {
            unreachable!("handled by the caller")
        }
    };
    let offline = matches!(api, Backend::Offline(_));
    drop(api);
    if let (Some(new), true, Err(_)) = (new_store, offline, &result) {
        new.remove();
    }
    exit(result, out)
}

/// A data dir this command is about to create a database in, so that a
/// failed command can take it away again: a command that fails creates
/// nothing.
struct NewStore {
    dir: std::path::PathBuf,
    dir_existed: bool,
}

impl NewStore {
    /// Some when `common`'s data dir holds no database yet (and no server
    /// is named by `--admin-url`).
    fn before(common: &Common) -> Option<Self> {
        let dir = &common.data_dir;
        (common.admin_url.is_none() && !dir.join(crate::runtime::data_dir::DB_FILE).exists()).then(
            || Self {
                dir: dir.clone(),
                dir_existed: dir.exists(),
            },
        )
    }

    /// Removes the database the failed command created, and the data dir
    /// if the command created that too (and nothing else is in it).
    fn remove(self) {
        let _ = std::fs::remove_file(self.dir.join(crate::runtime::data_dir::DB_FILE));
        if !self.dir_existed {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// `tessera check`: the engine's integrity check and every record decoded.
fn check(data_dir: &std::path::Path) -> ExitCode {
    match crate::store::check_data_dir(data_dir) {
        Ok(s) => {
            println!(
                "{}: sound ({} users, {} keys, {} revocations, {} audit events)",
                data_dir.join(crate::runtime::data_dir::DB_FILE).display(),
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
