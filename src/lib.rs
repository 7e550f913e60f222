//! Tessera: one self-contained binary that provisions partner users, issues
//! compact Ed25519-signed JWTs for them, verifies those tokens for any
//! service (or a forward-auth proxy), and keeps everything in one embedded
//! redb file.
//!
//! # Layout
//! - [`cli`], [`config`]: flags and env vars into a validated config.
//! - [`app`]: start-up (store, keys, admin token, listeners) and the run loop.
//! - [`http`]: the HTTP edge; `partner` and `admin` route requests to the
//!   service, `reply` maps results to responses, `form` decodes credentials.
//! - [`service`]: the use cases; knows no HTTP and no redb.
//! - [`token`]: the pure JWT codec and token-level verification rules, from
//!   the `tessera-verify` crate (`verify/`), shared with partners' services.
//! - [`keys`]: the Ed25519 keyring, `kid` thumbprints, JWKS, rotation plan.
//! - [`password`]: hash schemes, constant-time verify, dummy verify.
//! - [`hash_pool`]: the bounded thread pool that runs Argon2id.
//! - [`user`]: usernames, user records and account-state rules.
//! - [`store`]: the only module that imports redb.
//! - [`client`]: which client a request counts as (proxies, ports, /64s).
//! - [`throttle`]: bounded per-client brute-force throttling.
//! - [`metrics`]: Prometheus metrics.
//! - [`time`]: unix seconds, RFC 3339, and an injectable clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod hash_pool;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod password;
pub mod service;
pub mod store;
pub mod throttle;
pub mod time;
pub mod user;

pub use tessera_verify::token;
