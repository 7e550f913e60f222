//! A partner-facing service protected by Tessera tokens, verified offline:
//!
//! ```text
//! partner_service --tessera-url URL --listen ADDR --feed-token-file FILE
//!                 [--issuer ISS] [--poll DUR] [--max-staleness DUR] [--leeway DUR]
//! ```
//! `FILE` holds the deployment's feed token (Tessera's
//! `<data-dir>/feed.token`), which reading the revocation feed requires.
//! Logs `listening addr=ADDR`. `GET /whoami` answers 200 with the token's
//! `sub`, or 401 with the RFC 6750 `WWW-Authenticate` challenge.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tessera_verify::token::Claims;
use tessera_verify::verifier::{Verifier, VerifierConfig};
use tessera_verify::warp_filter;
use warp::Filter;

/// A sample service that checks Tessera tokens without asking Tessera.
#[derive(Parser)]
struct Args {
    /// Tessera's partner URL (JWKS and revocation feed).
    #[arg(long)]
    tessera_url: String,
    /// Where this service listens.
    #[arg(long)]
    listen: SocketAddr,
    /// The `iss` tokens must carry.
    #[arg(long, default_value = "tessera")]
    issuer: String,
    /// How often the revocation feed is polled.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// How long the feed may go unrefreshed before tokens are refused.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    max_staleness: Duration,
    /// The file holding Tessera's feed token (`<data-dir>/feed.token`).
    #[arg(long)]
    feed_token_file: std::path::PathBuf,
    /// How far in the future a token's `iat` may lie (clocks disagree).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    leeway: Duration,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = VerifierConfig::new(args.tessera_url.trim_end_matches('/'))
        .feed_token_file(&args.feed_token_file)
        .map_err(|e| format!("--feed-token-file {}: {e}", args.feed_token_file.display()))?;
    config.leeway = args.leeway;
    config.issuer = args.issuer;
    config.poll = args.poll;
    config.max_staleness = args.max_staleness;
    let verifier = Verifier::new(config);
    if let Err(e) = verifier.refresh().await {
        eprintln!("first refresh failed ({e}); tokens are refused until one succeeds");
    }
    let _poller = verifier.spawn();
    let whoami = warp::path!("whoami")
        .and(warp::get())
        .and(warp_filter::bearer(Arc::clone(&verifier)))
        .map(|c: Arc<Claims>| c.sub.clone())
        .recover(warp_filter::recover);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    warp::serve(whoami).incoming(listener).run().await;
    Ok(())
}
