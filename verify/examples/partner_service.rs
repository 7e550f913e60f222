//! A partner-facing service protected by Tessera tokens, verified offline,
//! on warp:
//!
//! ```text
//! partner_service --tessera-url URL --listen ADDR --feed-token-file FILE
//!                 [--issuer ISS] [--poll DUR] [--max-staleness DUR] [--leeway DUR]
//!                 [--ca-file PEM]
//! ```
//! `FILE` holds the deployment's feed token (Tessera's
//! `<data-dir>/feed.token`), which reading the revocation feed requires.
//! Logs `listening addr=ADDR`. `GET /whoami` answers 200 with the token's
//! `sub`, or 401 with the RFC 6750 `WWW-Authenticate` challenge.
//! `axum_service` is the same service on axum.

use std::sync::Arc;

use clap::Parser;
use tessera_verify::{Claims, warp_filter};
use warp::Filter;

mod shared;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = shared::Args::parse();
    let (verifier, _poller) = shared::verifier(&args).await?;
    let whoami = warp::path!("whoami")
        .and(warp::get())
        .and(warp_filter::bearer(verifier))
        .map(|c: Arc<Claims>| c.sub.clone())
        .recover(warp_filter::recover);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    warp::serve(whoami).incoming(listener).run().await;
    Ok(())
}
