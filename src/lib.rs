//! Tessera: one self-contained binary that provisions partner users, issues
//! compact Ed25519-signed JWTs for them, verifies those tokens for any
//! service (or a forward-auth proxy), and keeps everything in one embedded
//! redb file, or in PostgreSQL shared by a cluster of nodes.
//!
//! # Layout
//! - [`cli`], [`config`]: flags and env vars into a validated config.
//! - [`app`]: start-up (store, keys, admin token, listeners) and the run loop.
//! - [`http`]: the edge. One warp filter per route in `http::partner`,
//!   `http::oauth` and `http::admin` (a file per resource family), bodies
//!   read under each route's limit and time (`http::body`), TLS
//!   (`http::tls`), the connection cap per address (`http::per_address`), and
//!   `http::errors`, the one place every error becomes a status and body.
//!   The admin console (`http::console`, SPEC §16) is server-rendered pages
//!   on the admin listener, with its own sessions and CSRF checks, calling
//!   the same service functions as `http::admin`.
//! - [`service`]: the use cases, one file each — `issue`, `verify`,
//!   `users`, `revocations`, `keys`, `feed`, `apply`, `backup`, `secrets` —
//!   and their `error`s. Knows no HTTP and no storage engine.
//! - [`store`]: the [`store::Store`] trait, its backends ([`store::redb`],
//!   the only module that imports redb; [`store::postgres`], the only one
//!   that speaks SQL), the contract tests every backend passes, the typed
//!   audit actions ([`store::Action`]), and `store::snapshot`, the export
//!   format with every import check.
//! - [`login`]: what a login is made of — the client a request counts as,
//!   password schemes, the Argon2id pool, the per-key throttle and rate
//!   limit.
//! - [`domain`]: users and their account-state rules, the Ed25519 keyring,
//!   the small values an operator sets, the declarative user document.
//! - [`runtime`]: process plumbing — the data dir's files, the instance
//!   check, the clock, metrics, the change log, error messages.
//! - [`token`]: the pure JWT codec and token-level rules, from the
//!   `tessera-verify` crate (`verify/`) that partners' services use too.
//!
//! # Where the rules live
//! - **The order of a token's checks** (signature, issuer and times,
//!   revoked `jti`, account): [`tessera_verify::verdict::verdict`], used by
//!   `/verify` (`service::verify`) and the offline
//!   `tessera_verify::Verifier` alike.
//! - **Expired or invalid.** A token is expired at `exp` exactly and not
//!   yet valid past `--clock-leeway`: [`token::check_claims`]; every other
//!   token-level refusal (shape, `alg`, key, signature, issuer) is
//!   [`token::TokenError`] from [`token::verify_signature`]. A disabled or
//!   expired *account* gets the seed's `token expired` at login:
//!   [`domain::user::User::may_get_tokens`] decides, only after the password
//!   matched (`service::issue`), and `http::errors` (`LoginError`) words it.
//! - **How a password is checked.** [`login::login_check::LoginCheck::plan`]
//!   plans two checks, one per secret a user may hold (the current one and,
//!   during a rotation's grace, the previous one), each against the user's
//!   hash or a dummy of the guess's scheme ([`login::login_check::Attempt::plan`]),
//!   so an unknown user, one secret and two all cost the same;
//!   [`login::login_check::check`] does the work in constant time, on
//!   [`login::hash_pool`] for Argon2id (`service::issue`).
//! - **A secret's life** (rotation with a grace, never more than two,
//!   ending one early, the grace running out, recording its last use):
//!   [`domain::secrets`]; made durable and audited by `service::rotation`,
//!   uses batched by [`service::PendingUses`], graces ended by
//!   [`store::Store::expire_secrets`] in the minute's prune.
//! - **A login's fields** are both present and no longer than a credential
//!   can be: [`domain::user::check_login_fields`], for `/generateToken` and
//!   `/oauth/token`; no `scope` asked (or a blank one) means all the user's:
//!   [`tessera_verify::scope::Scopes::requested`].
//! - **The throttle behind a proxy.** The client is the rightmost
//!   `X-Forwarded-For` hop that is not in `--trusted-proxies`:
//!   [`login::client::client`], which is also the address a user's allowed
//!   networks are checked against ([`domain::networks::AllowedNetworks`],
//!   after the password matched, `service::issue`); failures are charged
//!   per client and refunded on success: [`login::throttle::Throttle::charge`], in the bounded
//!   [`login::per_key::PerKey`] table (as is the partners' revocation rate).
//!   Every `Retry-After` is rounded once: [`http::reply::retry_after_secs`].
//! - **A user's token rate** ([`domain::token_rate::TokenRate`]) is counted
//!   per node on the app's clock in the same kind of table
//!   ([`login::rate_limit::RateLimit::take_with`]), for `/generateToken`
//!   and `/oauth/token` together, after the password matched.
//! - **When an old signing key is dropped.** [`domain::keys::rotate`] retires the
//!   active key with `drop_after = now + the longest TTL ever configured`
//!   ([`service::Settings::longest_token_ttl`] of
//!   [`store::Store::ttl_high_water`]; the feed and the audit pruning read it
//!   there too), so no token it signed outlives it;
//!   [`domain::keys::without_expired`] drops it, run by `service.prune()` every
//!   minute from [`app::App::run`]. The JWKS carries the next key before it
//!   signs ([`domain::keys::initial_records`]: there is always a next key).
//! - **How a revocation reaches others.** Another cluster node: the
//!   revocation row is stamped with a version and NOTIFYed; each node's
//!   catch-up (`store::postgres::replica`) reads every row past the version
//!   it reached. A partner's verifier: [`store::Store::changes`] reads the
//!   feed's position and content in one read, `service::feed` signs and
//!   caches it, and [`tessera_verify::feed::RevocationState::apply`] folds
//!   it in. What reaches the feed is decided by the type of each audited
//!   change, [`store::Action::feed_effect`], never by its text; an import
//!   records every user it changed or removed ([`store::ImportChange`]),
//!   and a full view names them ([`store::FullView`]).
//! - Revoke-all, delete and re-creation kill every earlier token whatever
//!   the clocks say: account generations, the verdict in
//!   `tessera_verify::account` (shared with partners' verifiers), drawn in
//!   `service::users` (`revoke_user_tokens`) from [`store::Store::next_generation`].
//! - Scopes: [`tessera_verify::scope`] (names, and the effective scopes: the
//!   token's that the user still holds).
//! - A full disk answers 507 and heals without a restart; a damaged file is
//!   refused at start, checked through a copy-on-write view so it is never
//!   changed: [`store::redb`] (`writing`, `reopen`, `check_file`, `overlay`).
//! - Bearer secrets (admin token for the admin API and introspection, the
//!   feed token): which secret a use takes and the constant-time comparison,
//!   [`http::secrets`]; the right one is never throttled, wrong ones are
//!   counted per use (`service::secrets`).
//! - An import is all or nothing: the [`store::Store`] contract, each
//!   backend's `import`, and the checks in [`store::snapshot`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod login;
pub mod runtime;
pub mod service;
pub mod store;

pub use tessera_verify::token;
