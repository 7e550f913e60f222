//! `partner_service` on axum, with the same command line: `GET /whoami`
//! answers 200 with the token's `sub` through the [`Verified`] extractor,
//! or 401 with the RFC 6750 challenge. Needs the `axum` feature:
//!
//! ```text
//! cargo run -p tessera-verify --features axum --example axum_service -- \
//!     --tessera-url URL --listen ADDR --feed-token-file FILE
//! ```

use axum::Router;
use axum::routing::get;
use clap::Parser;
use tessera_verify::Verified;

mod shared;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = shared::Args::parse();
    let (verifier, _poller) = shared::verifier(&args).await?;
    let app = Router::new()
        .route(
            "/whoami",
            get(|claims: Verified| async move { claims.sub.clone() }),
        )
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
