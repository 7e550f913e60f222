//! `tessera-verify`: everything a service needs to check a Tessera token
//! itself, without the server. The token codec and every token-level rule
//! of SPEC §2 live here once and are used by the server too, so the two can
//! never disagree on what a valid token is.
//!
//! # Layout
//! - [`token`]: the pure JWT codec — claims in, compact EdDSA JWS out, and
//!   the reverse with the shape, header, key, signature, issuer and time
//!   rules. No I/O; the clock is passed in.
//! - [`account`]: the account verdict (disabled, expired, deleted,
//!   revoke-all and re-creation by generation), shared with the server.
//! - [`verdict`]: the order of a token's checks (signature, issuer and
//!   times, revoked `jti`, account), written once for the server's
//!   `/verify` and the [`verifier::Verifier`].
//! - [`scope`]: scope names, and a token's effective scopes.
//! - [`verified`]: the bounded cache of token strings whose signature
//!   verified under one keyring, for the server's `/verify` and the
//!   [`verifier::Verifier`] alike.
//! - [`dpop`]: DPoP proofs (RFC 9449): the proof rules, the replay cache,
//!   and how a bound (`cnf.jkt`) or unbound token may be presented.
//! - [`jwk`]: the JWK form of the keys and their RFC 7638 thumbprints,
//!   written by the server and read by the verifier.
//! - [`feed`]: the signed revocation feed's format and the state a
//!   verifier builds from it, answering for revocations and account rules.
//! - [`verifier`] (feature `client`, on by default): the polling
//!   [`verifier::Verifier`] that keeps the JWKS and the feed fresh
//!   (`verifier::fetch`) and gives `/verify`'s verdict offline.
//! - [`warp_filter`] (feature `warp`): `bearer(verifier)`, extracting the
//!   claims, with RFC 6750 rejection replies.
//! - [`tower_layer`] (feature `tower`): [`tower_layer::BearerLayer`] for
//!   axum, tonic or any tower stack.
//! - [`axum_extract`] (feature `axum`): the [`Verified`] extractor.
//! - [`bearer`] (feature `client`): the header parsing and RFC 6750
//!   challenge the adapters share.
//!
//! # Features
//! `client` (the [`Verifier`]; rustls with the Mozilla roots), `warp`,
//! `tower` and `axum` (each implies `client`). `default = ["client", "warp",
//! "tower"]`; with none, only the codec and rules ([`token`], [`account`],
//! [`feed`]) remain, with no async runtime or HTTP client.
//!
//! # Example
//! ```no_run
//! use tessera_verify::{Verifier, VerifierConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::new("https://auth.example.com")
//!     .feed_token_file("/etc/tessera/feed.token".as_ref())?;
//! let verifier = Verifier::new(config);
//! verifier.refresh().await?;          // keys and revocations, once
//! let _poller = verifier.spawn();     // then kept fresh until dropped
//! let claims = verifier.verify("eyJhbGciOiJFZERTQSJ9.e30.c2ln")?;
//! println!("partner {}", claims.sub);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
#[cfg(feature = "axum")]
pub mod axum_extract;
#[cfg(feature = "client")]
pub mod bearer;
pub mod dpop;
pub mod feed;
pub mod jwk;
pub mod scope;
pub mod token;
#[cfg(feature = "tower")]
pub mod tower_layer;
pub mod verdict;
pub mod verified;
#[cfg(feature = "client")]
pub mod verifier;
#[cfg(feature = "warp")]
pub mod warp_filter;

pub use account::{AccountState, Refusal};
#[cfg(feature = "axum")]
pub use axum_extract::{Unauthorized, Verified};
pub use feed::{FeedClaims, RevocationState, StaleFeed};
/// The HTTP client crate the [`Verifier`] uses, for building a client to
/// pass in ([`VerifierConfig::http_client`]) with a matching version.
#[cfg(feature = "client")]
pub use reqwest;
pub use token::{Claims, TokenError};
#[cfg(feature = "tower")]
pub use tower_layer::BearerLayer;
#[cfg(feature = "client")]
pub use verifier::{FetchError, Poller, Reason, Verifier, VerifierConfig, WhenStale};

/// The README's examples, compiled as doc tests (with the features they
/// use).
#[cfg(all(doctest, feature = "axum", feature = "warp"))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
