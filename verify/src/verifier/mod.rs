//! The polling [`Verifier`] (feature `client`): verifies Tessera tokens
//! offline with every rule `/verify` applies. It keeps the JWKS (refetched
//! when its `max-age` runs out, and for an unknown `kid` at most every
//! 30 s) and the signed revocation feed (polled with `since`), and refuses
//! tokens with `revocation state stale` once the feed could not be
//! refreshed for longer than `max_staleness`, or the newest feed it holds
//! was issued longer ago than that (unless told to accept). It never goes
//! back: a feed older than the one it holds is refused and logged
//! ([`crate::feed::StaleFeed`]). [`Verifier::is_fresh`],
//! [`Verifier::last_refresh`] and [`Verifier::last_error`] are for a
//! readiness probe; the poller stops when its [`Poller`] is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ed25519_dalek::VerifyingKey;
use parking_lot::Mutex;

use crate::dpop::{self, PresentationError, Presented, ReplayCache};
use crate::feed::{Refusal, RevocationState};
use crate::scope::Scopes;
use crate::token::{Claims, TokenError};
use crate::verdict::{Rules, verdict};
use crate::verified::VerifiedTokens;

mod config;
mod fetch;
#[cfg(test)]
mod tests;

pub use self::config::{Clock, VerifierConfig, WhenStale};
pub use self::fetch::{FetchError, Poller};

/// The shortest time between two JWKS fetches caused by unknown `kid`s.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);

/// Why a token was refused. `Display` is `/verify`'s reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// A token-level rule.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Revoked, or the account refuses it.
    #[error(transparent)]
    Feed(#[from] Refusal),
    /// The feed could not be refreshed for longer than `max_staleness`.
    #[error("revocation state stale")]
    Stale,
    /// A valid token without a scope the resource requires (403, not 401).
    #[error("insufficient scope")]
    InsufficientScope,
    /// Presented the wrong way: a DPoP-bound token as Bearer, an unbound
    /// one as DPoP, or with a proof that breaks a rule ([`crate::dpop`]).
    #[error(transparent)]
    Presentation(#[from] PresentationError),
}

/// The keys and feed state every `verify` reads, replaced whole.
struct Snapshot {
    keys: HashMap<String, VerifyingKey>,
    jwks_fresh_until: Instant,
    feed: RevocationState,
    /// When the feed was last refreshed, by the configured clock (unix
    /// seconds); None before the first.
    refreshed: Option<u64>,
    /// Shared by snapshots of one keyring; a new keyring starts empty.
    verified: Arc<VerifiedTokens>,
}

/// Verifies Tessera tokens offline; see the module docs.
///
/// ```
/// use std::collections::HashMap;
/// use ed25519_dalek::SigningKey;
/// use tessera_verify::feed::RevocationState;
/// use tessera_verify::token::{self, Claims};
/// use tessera_verify::{Verifier, VerifierConfig};
///
/// // Keys and feed state at hand (a real service calls refresh/spawn).
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let keys = HashMap::from([("k1".to_owned(), key.verifying_key())]);
/// let mut config = VerifierConfig::new("https://auth.example.com");
/// config.clock = std::sync::Arc::new(|| 1_800_000_000);
/// let verifier = Verifier::from_parts(config, keys, RevocationState::default());
///
/// let claims = Claims {
///     iss: "tessera".into(),
///     sub: "channel_user".into(),
///     iat: 1_800_000_000,
///     exp: 1_800_003_600,
///     jti: "0123456789abcdefghijkl".into(),
///     generation: None,
///     scope: None,
///     cnf: None,
/// };
/// let header = token::encoded_header("k1");
/// let jwt = token::encode(&claims, &header, &key);
/// assert_eq!(verifier.verify(&jwt).unwrap().sub, "channel_user");
/// assert!(verifier.verify("not.a.token").is_err());
/// ```
pub struct Verifier {
    config: VerifierConfig,
    http: reqwest::Client,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises refreshes; holds when an unknown `kid` last caused one.
    refreshing: tokio::sync::Mutex<()>,
    last_kid_refetch: Mutex<Option<Instant>>,
    /// The last refresh's error, cleared by a refresh that succeeds.
    last_error: Mutex<Option<String>>,
    wake: Arc<tokio::sync::Notify>,
    /// The DPoP proofs this process accepted lately ([`dpop::PROOFS_REMEMBERED`]).
    dpop_replays: ReplayCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.snapshot.load();
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("keys", &snapshot.keys.len())
            .field("feed_seq", &snapshot.feed.seq())
            .field("refreshed", &snapshot.refreshed)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier that has fetched nothing yet: call [`Verifier::refresh`]
    /// (or [`Verifier::spawn`]) before it accepts anything.
    pub fn new(config: VerifierConfig) -> Arc<Self> {
        let http = config.http_client.clone().unwrap_or_else(|| {
            let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
            for root in &config.roots {
                builder = builder.add_root_certificate(root.clone());
            }
            builder.build().unwrap_or_default()
        });
        Arc::new(Self {
            config,
            http,
            snapshot: ArcSwap::from_pointee(Snapshot {
                keys: HashMap::new(),
                jwks_fresh_until: Instant::now(),
                feed: RevocationState::default(),
                refreshed: None,
                verified: Arc::default(),
            }),
            refreshing: tokio::sync::Mutex::new(()),
            last_kid_refetch: Mutex::new(None),
            last_error: Mutex::new(None),
            wake: Arc::new(tokio::sync::Notify::new()),
            dpop_replays: ReplayCache::new(dpop::PROOFS_REMEMBERED),
        })
    }

    /// A verifier from keys and a feed state already at hand (tests,
    /// benchmarks, or a service that loads them itself), fresh as of now.
    pub fn from_parts(
        config: VerifierConfig,
        keys: HashMap<String, VerifyingKey>,
        feed: RevocationState,
    ) -> Arc<Self> {
        let v = Self::new(config);
        v.snapshot.store(Arc::new(Snapshot {
            keys,
            jwks_fresh_until: Instant::now() + Duration::from_secs(300),
            feed,
            refreshed: Some((v.config.clock)()),
            verified: Arc::default(),
        }));
        v
    }

    /// When the feed was last applied, by the configured clock (unix
    /// seconds); None before the first refresh.
    pub fn last_refresh(&self) -> Option<u64> {
        self.snapshot.load().refreshed
    }

    /// The error of the last refresh, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Whether the revocation state is fresh: refreshed within
    /// `max_staleness`, from a feed issued within `max_staleness` (plus
    /// the leeway for the issuer's clock). Tokens are refused while it is
    /// not, unless `when_stale` is `Accept`.
    pub fn is_fresh(&self) -> bool {
        self.fresh_at(&self.snapshot.load(), (self.config.clock)())
    }

    fn fresh_at(&self, s: &Snapshot, now: u64) -> bool {
        let max = self.config.max_staleness.as_secs();
        let issued_within = max.saturating_add(self.config.leeway.as_secs());
        s.refreshed.is_some_and(|t| now.saturating_sub(t) <= max)
            && (s.feed.seq().is_none() || now.saturating_sub(s.feed.issued_at()) <= issued_within)
    }

    /// [`Verifier::verify`], and the token may use every scope of
    /// `required`: those of its `scope` claim its user still holds, as the
    /// feed says ([`crate::scope`]).
    ///
    /// ```
    /// # use tessera_verify::{Verifier, VerifierConfig, Reason, scope::Scopes};
    /// # let verifier = Verifier::new(VerifierConfig::new("https://auth.example.com"));
    /// let sync = Scopes::new(["sync"]).unwrap();
    /// assert!(verifier.verify_scoped("not.a.token", &sync).is_err());
    /// ```
    pub fn verify_scoped(&self, bearer: &str, required: &Scopes) -> Result<Arc<Claims>, Reason> {
        let claims = self.verify(bearer)?;
        self.holding(claims, required)
    }

    /// Where clients reach the service this verifier guards (the
    /// configured `public_url`), for DPoP proofs' `htu`.
    pub fn public_url(&self) -> Option<&str> {
        self.config.public_url.as_deref()
    }

    /// `claims` if their effective scopes (as the feed says) hold every
    /// one of `required`; [`Reason::InsufficientScope`] otherwise.
    pub fn holding(&self, claims: Arc<Claims>, required: &Scopes) -> Result<Arc<Claims>, Reason> {
        if required.is_empty() {
            return Ok(claims);
        }
        let held = self.snapshot.load().feed.effective_scopes(&claims);
        match held.first_missing(required) {
            Some(_) => Err(Reason::InsufficientScope),
            None => Ok(claims),
        }
    }

    /// Every rule `/verify` applies, offline, to a token sent as
    /// `Authorization: Bearer`: the token's shape, header, key and
    /// signature (cached per token string), issuer and times, that it is
    /// not DPoP-bound, then the feed's revocations and account rules.
    pub fn verify(&self, bearer: &str) -> Result<Arc<Claims>, Reason> {
        self.verify_presented(bearer, None)
    }

    /// [`Verifier::verify`] for a token sent as `Authorization: DPoP` with
    /// `proof` (the `DPoP` header, if any) on the request `method url` as
    /// the client made it (scheme, host with port, path; the query is
    /// ignored): it must be bound to the proof's key, and the proof must
    /// pass every rule of [`crate::dpop`], once.
    pub fn verify_dpop(
        &self,
        token: &str,
        proof: Option<&str>,
        method: &str,
        url: &str,
    ) -> Result<Arc<Claims>, Reason> {
        self.verify_presented(token, Some((proof, method, url)))
    }

    fn verify_presented(
        &self,
        bearer: &str,
        dpop: Option<(Option<&str>, &str, &str)>,
    ) -> Result<Arc<Claims>, Reason> {
        let s = self.snapshot.load();
        let now = (self.config.clock)();
        let presented = match dpop {
            None => Presented::Bearer,
            Some((proof, method, url)) => Presented::dpop(
                proof,
                method,
                url,
                now,
                self.config.leeway.as_secs(),
                &self.dpop_replays,
            ),
        };
        if self.config.when_stale == WhenStale::Refuse && !self.fresh_at(&s, now) {
            return Err(Reason::Stale);
        }
        let rules = Rules {
            issuer: &self.config.issuer,
            now,
            leeway_secs: self.config.leeway.as_secs(),
        };
        let (claims, ()) = verdict(
            &s.verified,
            bearer,
            presented,
            rules,
            |kid| s.keys.get(kid),
            |jti| s.feed.is_revoked(jti),
            |claims| s.feed.account_accepts(claims, now).map_err(Reason::from),
        )
        .inspect_err(|e| {
            if matches!(e, Reason::Token(TokenError::UnknownKey)) {
                self.unknown_kid();
            }
        })?;
        Ok(claims)
    }
}
