//! Tessera: one self-contained binary that provisions partner users, issues
//! compact Ed25519-signed JWTs for them, verifies those tokens for any
//! service (or a forward-auth proxy), and keeps everything in one embedded
//! redb file.
//!
//! # Layout
//! - [`cli`], [`config`]: flags and env vars into a validated config.
//! - [`app`]: start-up (store, keys, admin token, listeners) and the run loop.
//! - [`http`]: the edge. One warp filter per route in `http::partner` and
//!   `http::admin`, bodies read under each route's limit and time
//!   (`http::body`), and `http::errors`, the one place every error becomes
//!   a status and body.
//! - [`service`]: the use cases, one file each — `issue`, `verify`,
//!   `users`, `revocations`, `keys`, `backup` — and their `error`s. Knows no
//!   HTTP and no storage engine.
//! - [`store`]: the [`store::Store`] trait, its redb backend (the only
//!   module that imports redb), the contract tests every backend passes, and
//!   `store::snapshot`, the export format with every import check.
//! - [`token`]: the pure JWT codec and token-level rules, from the
//!   `tessera-verify` crate (`verify/`) that partners' services use too.
//! - [`keys`]: the Ed25519 keyring, `kid` thumbprints, JWKS, rotation plan.
//! - [`password`]: hash schemes chosen by a password's shape, and the
//!   attempt that costs the guess's work whoever the user is.
//! - [`hash_pool`]: the bounded pool that runs login-time Argon2id.
//! - [`user`]: usernames, user records and the account-state rules.
//! - [`client`], [`throttle`]: which client a request counts as, and
//!   per-client brute-force throttling.
//! - [`metrics`]: Prometheus metrics. [`time`]: unix seconds, RFC 3339, and
//!   the injectable clock.
//!
//! # Where the rules live
//! - A disabled or expired account gets `token expired`:
//!   [`user::User::may_get_tokens`] decides, `http::errors` (`LoginError`)
//!   gives the seed's exact text, only after the password matched
//!   (`service::issue`).
//! - Revoke-all, delete and re-creation kill every earlier token whatever
//!   the clocks say: account generations, the verdict in
//!   `tessera_verify::account` (shared with partners' verifiers), drawn in
//!   `service::users` (`revoke_user_tokens`) from [`store::Store::next_generation`].
//! - A token counts as not yet valid past `--clock-leeway`, expired at
//!   `exp` exactly: [`token::check_claims`].
//! - The revocation feed's position and content come from one read:
//!   [`store::Store::changes`], served and cached by `service::feed`.
//! - A full disk answers 507 and heals without a restart; a damaged file is
//!   refused at start: [`store::redb`] (`writing`, `reopen`, `check_file`).
//! - The client is the rightmost untrusted `X-Forwarded-For` hop:
//!   [`client::client_key`].
//! - An import is all or nothing: the [`store::Store`] contract, each
//!   backend's `import`, and the checks in [`store::snapshot`].
//! - The JWKS carries the next key before it signs: [`keys::Keyring`] (every
//!   record is published) and [`keys::initial_records`] / [`keys::rotate`]
//!   (there is always a next key).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod change_log;
pub mod cli;
pub mod client;
pub mod config;
pub mod declaration;
pub mod error_chain;
pub mod hash_pool;
pub mod http;
pub mod instance;
pub mod keys;
pub mod metrics;
pub mod password;
pub mod rate_limit;
pub mod service;
pub mod store;
pub mod throttle;
pub mod time;
pub mod user;

pub use tessera_verify::token;
