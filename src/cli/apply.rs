//! `tessera apply FILE [--prune] [--dry-run]`: make the users match a
//! declarative TOML file (SPEC §6) through `POST /admin/apply`, in one
//! transaction. The file is checked here first so every error names the
//! file, the user and the field before anything is sent.

use std::path::PathBuf;

use clap::Args;

use super::Outcome;
use super::api::{AdminApi, CallError, Method};
use super::output::{Output, parse};
use crate::domain::declaration::{self, ApplyReport, ApplyRequest};

/// `tessera apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// The declarative file (TOML, `[[user]]` tables).
    pub file: PathBuf,
    /// Delete users the file does not name.
    #[arg(long)]
    pub prune: bool,
    /// Print the changes without making them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Reads and checks a declarative file; errors start with its path.
pub fn read(path: &std::path::Path) -> Result<declaration::DeclarationFile, CallError> {
    let in_file = |e: String| CallError::Io(format!("{}: {e}", path.display()));
    let text =
        std::fs::read_to_string(path).map_err(|e| in_file(format!("could not read it: {e}")))?;
    let file = declaration::parse_toml(&text).map_err(in_file)?;
    declaration::check_all(&file.users).map_err(in_file)?;
    Ok(file)
}

/// One line per change, the generated passwords, and the summary.
pub fn render(report: &ApplyReport, dry_run: bool) -> String {
    let (create, update, delete) = if dry_run {
        ("would create", "would update", "would delete")
    } else {
        ("created", "updated", "deleted")
    };
    let mut text = String::new();
    for (verb, names) in [
        (create, &report.created),
        (update, &report.updated),
        (delete, &report.deleted),
    ] {
        for name in names {
            text.push_str(&format!("{verb} {name}\n"));
        }
    }
    for (user, password) in &report.passwords {
        text.push_str(&format!("password for {user}: {password}\n"));
    }
    text.push_str(&report.summary());
    text.push('\n');
    if dry_run {
        text.push_str("dry run: nothing was changed\n");
    }
    text
}

/// Runs `apply` with `file`, what [`read`] made of `args.file` (read once,
/// before anything was opened for it).
pub async fn run(
    api: &impl AdminApi,
    out: Output,
    args: ApplyArgs,
    file: declaration::DeclarationFile,
) -> Result<Outcome, CallError> {
    let request = ApplyRequest {
        users: file.users,
        prune: args.prune,
        dry_run: args.dry_run,
    };
    let body = serde_json::to_vec(&request).map_err(|e| CallError::Io(e.to_string()))?;
    let answer = api
        .call(Method::POST, "/admin/apply", Some(body))
        .await
        .map_err(|e| e.reworded(|m| format!("{}: {m}", args.file.display())))?;
    out.emit(&answer, || Ok(render(&parse(&answer)?, args.dry_run)))?;
    Ok(Outcome::Done)
}
