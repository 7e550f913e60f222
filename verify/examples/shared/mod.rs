//! What the sample services share: the command line and the verifier it
//! configures (first refresh, then a poller for as long as it is held).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tessera_verify::{Poller, Verifier, VerifierConfig};

/// A sample service that checks Tessera tokens without asking Tessera.
#[derive(Parser)]
pub struct Args {
    /// Tessera's partner URL (JWKS and revocation feed).
    #[arg(long)]
    pub tessera_url: String,
    /// Where this service listens.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The `iss` tokens must carry.
    #[arg(long, default_value = "tessera")]
    pub issuer: String,
    /// How often the revocation feed is polled.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// How long the feed may go unrefreshed before tokens are refused.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub max_staleness: Duration,
    /// The file holding Tessera's feed token (`<data-dir>/feed.token`).
    #[arg(long)]
    pub feed_token_file: std::path::PathBuf,
    /// How far in the future a token's `iat` may lie (clocks disagree).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub leeway: Duration,
    /// A PEM file of CAs to trust besides the Mozilla roots (a Tessera
    /// behind a private CA).
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Where clients reach this service (`https://api.example.com`), for
    /// the `htu` of DPoP proofs; default: `http://` and the request's Host.
    #[arg(long)]
    pub public_url: Option<String>,
}

/// The verifier `args` describe, refreshed once and then polled until the
/// returned [`Poller`] is dropped.
pub async fn verifier(args: &Args) -> Result<(Arc<Verifier>, Poller), Box<dyn std::error::Error>> {
    let mut config = VerifierConfig::new(&args.tessera_url)
        .feed_token_file(&args.feed_token_file)
        .map_err(|e| format!("--feed-token-file {}: {e}", args.feed_token_file.display()))?;
    if let Some(ca) = &args.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
        config = config.root_ca_pem(&pem)?;
    }
    config.leeway = args.leeway;
    config.issuer = args.issuer.clone();
    config.poll = args.poll;
    config.max_staleness = args.max_staleness;
    config.public_url = args.public_url.clone();
    let verifier = Verifier::new(config);
    if let Err(e) = verifier.refresh().await {
        eprintln!("first refresh failed ({e}); tokens are refused until one succeeds");
    }
    let poller = verifier.spawn();
    Ok((verifier, poller))
}
