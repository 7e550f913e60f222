//! The command line: `tessera serve [flags]`. Thin: parses, then hands a
//! validated [`Config`](crate::config::Config) to the app.

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;

/// Tessera: partner users, Ed25519 bearer tokens, forward-auth verification.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the partner and admin HTTP APIs.
    Serve(ServeArgs),
}
