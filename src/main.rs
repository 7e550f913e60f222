//! The `tessera` binary: parse the command line, set up logging, run, and
//! turn failures into a message with its cause chain and a non-zero exit.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tessera::app::App;
use tessera::cli::{Cli, Command};
use tessera::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc returns the 19 MiB Argon2id working sets to the OS instead of
/// keeping them in per-thread glibc arenas (peak RSS), and is faster for the
/// many small allocations of the request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    init_logging_at("info", format);
}

/// Logs to stderr at `default_level` unless `TESSERA_LOG` says otherwise.
fn init_logging_at(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn report(err: &(dyn std::error::Error + 'static)) -> ExitCode {
    let mut message = format!("error: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}

/// Installs the SIGINT/SIGTERM handlers now (before the listeners are
/// announced, so a signal right after start-up is never lost) and returns a
/// future that resolves on the first of them. SIGHUP is taken too, so it
/// never ends the server (its default action): it reloads certificates
/// where there are any (`App::run`) and is otherwise ignored — a renewal
/// hook's `kill -HUP $(pidof tessera)` must not stop plain instances.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => return,
                _ = terminate.recv() => return,
                _ = hangup.recv() => tracing::debug!("SIGHUP: reloads certificates, never stops"),
            }
        }
    })
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return tessera::cli::usage_error(e),
    };
    match cli.command {
        Command::Serve(args) => {
            let config = match Config::from_args(*args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(config.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return report(&e),
            };
            runtime.block_on(async {
                let shutdown = match shutdown_signal() {
                    Ok(s) => s,
                    Err(e) => return report(&e),
                };
                match App::build(config).await {
                    Ok(app) => {
                        tracing::info!(startup_ms = started.elapsed().as_millis() as u64, "ready");
                        app.run(shutdown).await;
                        ExitCode::SUCCESS
                    }
                    Err(e) => report(&e),
                }
            })
        }
        admin => {
            init_logging_at("warn", LogFormat::Text);
            tessera::cli::run_admin(admin)
        }
    }
}
