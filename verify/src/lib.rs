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
//! - [`feed`]: the signed revocation feed's format and the state a
//!   verifier builds from it, answering for revocations and account rules.
//! - [`verifier`] (feature `client`, on by default): the polling
//!   [`verifier::Verifier`] that keeps the JWKS and the feed fresh and gives
//!   `/verify`'s verdict offline.
//! - [`warp_filter`] (feature `warp`): `bearer(verifier)`, extracting the
//!   claims, with RFC 6750 rejection replies.
//! - [`tower_layer`] (feature `tower`): [`tower_layer::BearerLayer`] for
//!   axum, tonic or any tower stack.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod feed;
pub mod token;
#[cfg(feature = "tower")]
pub mod tower_layer;
#[cfg(feature = "client")]
pub mod verifier;
#[cfg(feature = "warp")]
pub mod warp_filter;
