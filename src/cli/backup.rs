//! `tessera export` and `tessera import`: the JSON Lines snapshot of
//! SPEC §3, streamed (never held whole), with a progress bar on stderr when
//! stderr is a terminal and nothing extra when it is not.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::Outcome;
use super::api::{AdminApi, CallError, Chunks};
use super::output::{Output, parse};
use crate::runtime::data_dir;

/// `tessera export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// Write to this file (created 0600: it holds the signing keys)
    /// instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `tessera import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Where the admin API is, and how to print.
    #[command(flatten)]
    pub common: super::Common,
    /// The snapshot file, or `-` for stdin.
    pub file: PathBuf,
}

/// Bytes read per upload chunk.
const CHUNK: usize = 64 * 1024;

fn progress(len: Option<u64>, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(&format!(
                "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {verb} {{bytes}} ({{bytes_per_sec}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Streams the snapshot to a file or stdout.
pub async fn export(api: &impl AdminApi, args: ExportArgs) -> Result<Outcome, CallError> {
    let io = |what: &str, e: std::io::Error| CallError::Io(format!("{what}: {e}"));
    let Some(path) = &args.output else {
        download(api, &mut std::io::stdout()).await?;
        return Ok(Outcome::Done);
    };
    // A new private file beside the target, renamed over it once complete:
    // never through a symlink planted at the path, never into a file
    // someone else owns, and a failed export leaves the old file as it was.
    let mut file = data_dir::private_file_beside(path).map_err(|e| {
        io(
            &format!("could not create a file beside {}", path.display()),
            e,
        )
    })?;
    let written = download(api, file.as_file_mut()).await?;
    data_dir::commit_private(file, path)
        .map_err(|e| io(&format!("could not write {}", path.display()), e))?;
    println!("wrote {} ({written} bytes)", path.display());
    Ok(Outcome::Done)
}

/// Streams `/admin/export` into `target` with a progress bar; the bytes
/// written.
async fn download(api: &impl AdminApi, target: &mut (dyn Write + Send)) -> Result<u64, CallError> {
    let bar = progress(None, "exported");
    let mut written = 0u64;
    let mut sink = |chunk: &[u8]| {
        target.write_all(chunk)?;
        written += chunk.len() as u64;
        bar.set_position(written);
        Ok(())
    };
    let result = api.download("/admin/export", &mut sink).await;
    bar.finish_and_clear();
    result?;
    target
        .flush()
        .map_err(|e| CallError::Io(format!("could not write the export: {e}")))?;
    Ok(written)
}

#[derive(Deserialize)]
struct Counts {
    users: u64,
    keys: u64,
    revocations: u64,
}

/// Checks that an import's input can be read (`-` is stdin) before
/// anything is opened for it.
pub fn check_input(file: &std::path::Path) -> Result<(), CallError> {
    if file.as_os_str() == "-" {
        return Ok(());
    }
    std::fs::File::open(file)
        .map(drop)
        .map_err(|e| CallError::Io(format!("{}: could not read it: {e}", file.display())))
}

/// Streams a snapshot file (or stdin) into the store.
pub async fn import(
    api: &impl AdminApi,
    out: Output,
    args: ImportArgs,
) -> Result<Outcome, CallError> {
    let from_stdin = args.file.as_os_str() == "-";
    let (mut reader, len): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Option<u64>) =
        if from_stdin {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let file = tokio::fs::File::open(&args.file).await.map_err(|e| {
                CallError::Io(format!("could not open {}: {e}", args.file.display()))
            })?;
            let len = file.metadata().await.ok().map(|m| m.len());
            (Box::new(file), len)
        };
    let bar = progress(len, "imported");
    let (tx, rx) = mpsc::channel(4);
    let reading = {
        let bar = bar.clone();
        async move {
            loop {
                let mut buf = vec![0u8; CHUNK];
                match reader.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        bar.inc(n as u64);
                        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        }
    };
    let (_, answer) = tokio::join!(reading, api.upload("/admin/import", Chunks(rx)));
    bar.finish_and_clear();
    let answer = answer?;
    out.emit(&answer, || {
        let c: Counts = parse(&answer)?;
        Ok(format!(
            "imported {} users, {} keys, {} revocations\n",
            c.users, c.keys, c.revocations
        ))
    })?;
    Ok(Outcome::Done)
}
