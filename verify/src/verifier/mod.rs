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
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ed25519_dalek::VerifyingKey;
use parking_lot::Mutex;

use crate::feed::{FeedClaims, Refusal, RevocationState, StaleFeed};
use crate::jwk::Jwks;
use crate::scope::Scopes;
use crate::token::{self, Claims, FEED_TYP, TokenError};
use crate::verdict::{Rules, verdict};
use crate::verified::VerifiedTokens;

mod config;
#[cfg(test)]
mod tests;

pub use self::config::{Clock, VerifierConfig, WhenStale};

/// The largest feed accepted (10,000 revocations and 1,000 subjects measured 688 KB).
const MAX_FEED_BYTES: usize = 64 << 20;
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
}

/// Why a refresh failed (the verifier keeps its last state).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed or the answer was not a 200.
    #[error("could not fetch {what}: {source}")]
    Http {
        /// `JWKS` or `revocation feed`.
        what: &'static str,
        /// The cause (the HTTP client's error, boxed: no dependency's type
        /// is part of this API).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration can not work (a URL that does not parse, a CA
    /// file without certificates).
    #[error("{0}")]
    Config(String),
    /// The JWKS did not parse.
    #[error("malformed JWKS: {0}")]
    Jwks(String),
    /// The feed's signature, `typ`, key or issuer did not check out.
    #[error("revocation feed refused: {0}")]
    Feed(String),
    /// The feed is older than the state held (a replay or a stale cache).
    #[error("revocation feed refused: {0}")]
    Stale(#[from] StaleFeed),
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
}

/// The background poller of a [`Verifier`] ([`Verifier::spawn`]): it
/// stops when this handle is dropped (or the verifier is).
#[derive(Debug)]
#[must_use = "the poller stops when this handle is dropped"]
pub struct Poller(Option<tokio::task::JoinHandle<()>>);

impl Poller {
    /// Stops the poller and waits until it has ended: once this returns,
    /// it sends no request any more (dropping the handle stops it too, but
    /// a request in flight may still complete meanwhile).
    pub async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// The `max-age` of a `Cache-Control` value, if any.
fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
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

    async fn fetch_jwks(&self) -> Result<(HashMap<String, VerifyingKey>, Duration), FetchError> {
        let (url, _) = self.config.endpoints()?;
        let http = |source: reqwest::Error| FetchError::Http {
            what: "JWKS",
            source: Box::new(source),
        };
        let r = self.http.get(url).send().await.map_err(http)?;
        let r = r.error_for_status().map_err(http)?;
        let age = max_age(
            r.headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        )
        .unwrap_or(Duration::from_secs(300));
        let jwks: Jwks = r.json().await.map_err(http)?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            if let Some(key) = k.ed25519_key().map_err(FetchError::Jwks)? {
                keys.insert(k.kid, key);
            }
        }
        Ok((keys, age))
    }

    async fn fetch_feed(
        &self,
        keys: &HashMap<String, VerifyingKey>,
        since: Option<u64>,
    ) -> Result<FeedClaims, FetchError> {
        let (_, mut url) = self.config.endpoints()?;
        if let Some(c) = since {
            url.query_pairs_mut().append_pair("since", &c.to_string());
        }
        let http = |source: reqwest::Error| FetchError::Http {
            what: "revocation feed",
            source: Box::new(source),
        };
        let mut request = self.http.get(url);
        if let Some(t) = &self.config.feed_token {
            request = request.bearer_auth(t);
        }
        let r = request.send().await.map_err(http)?;
        let text = r
            .error_for_status()
            .map_err(http)?
            .text()
            .await
            .map_err(http)?;
        let feed: FeedClaims =
            token::verify_jws(&text, MAX_FEED_BYTES, Some(FEED_TYP), |kid| keys.get(kid))
                .map_err(|e| FetchError::Feed(e.to_string()))?;
        if feed.iss != self.config.issuer {
            return Err(FetchError::Feed(format!("issuer {:?}", feed.iss)));
        }
        Ok(feed)
    }

    /// Fetches the JWKS when its `max-age` has run out (or `force_keys`),
    /// then the feed since the last `seq`, and publishes the result. A
    /// failure is logged and kept for [`Verifier::last_error`]; the state
    /// held stays as it was.
    pub async fn refresh_with(&self, force_keys: bool) -> Result<(), FetchError> {
        let result = self.try_refresh(force_keys).await;
        let mut last = self.last_error.lock();
        match &result {
            Ok(()) => *last = None,
            Err(e) => {
                tracing::warn!(error = %e, url = %self.config.tessera_url, "tessera-verify: refresh failed; keeping the last state");
                *last = Some(e.to_string());
            }
        }
        result
    }

    async fn try_refresh(&self, force_keys: bool) -> Result<(), FetchError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let old = self.snapshot.load_full();
        let (keys, fresh_until, keys_changed) =
            if force_keys || old.keys.is_empty() || Instant::now() >= old.jwks_fresh_until {
                let (keys, age) = self.fetch_jwks().await?;
                let changed = keys.keys().ne(old.keys.keys()) || keys.len() != old.keys.len();
                (keys, Instant::now() + age, changed)
            } else {
                (old.keys.clone(), old.jwks_fresh_until, false)
            };
        let feed = self.fetch_feed(&keys, old.feed.seq()).await?;
        let mut state = old.feed.clone();
        let now = (self.config.clock)();
        state.apply(feed, now, self.config.leeway.as_secs())?;
        self.snapshot.store(Arc::new(Snapshot {
            keys,
            jwks_fresh_until: fresh_until,
            feed: state,
            refreshed: Some(now),
            verified: if keys_changed {
                Arc::default()
            } else {
                old.verified.clone()
            },
        }));
        Ok(())
    }

    /// [`Verifier::refresh_with`] without forcing the keys.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        self.refresh_with(false).await
    }

    /// Polls every `poll` (and at once, keys included, after an unknown
    /// `kid`) until the returned [`Poller`] or every handle to the
    /// verifier is dropped. A failed refresh leaves the last state in
    /// place, which ages toward stale.
    pub fn spawn(self: &Arc<Self>) -> Poller {
        let weak: Weak<Self> = Arc::downgrade(self);
        Poller(Some(tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { return };
                let _ = me.refresh_with(false).await;
                let poll = me.config.poll;
                // Wait without holding the verifier, so dropping it ends us.
                let wake = Arc::clone(&me.wake);
                drop(me);
                let woken = tokio::select! {
                    () = tokio::time::sleep(poll) => false,
                    () = wake.notified() => true,
                };
                if woken && let Some(me) = weak.upgrade() {
                    let _ = me.refresh_with(true).await;
                }
            }
        })))
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

    /// Asks the poller to refetch the JWKS now, at most every 30 s.
    fn unknown_kid(&self) {
        let mut last = self.last_kid_refetch.lock();
        if last.is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFETCH) {
            *last = Some(Instant::now());
            self.wake.notify_one();
        }
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
        if required.is_empty() {
            return Ok(claims);
        }
        let held = self.snapshot.load().feed.effective_scopes(&claims);
        match held.first_missing(required) {
            Some(_) => Err(Reason::InsufficientScope),
            None => Ok(claims),
        }
    }

    /// Every rule `/verify` applies, offline: the token's shape, header,
    /// key and signature (cached per token string), issuer and times, then
    /// the feed's revocations and account rules.
    pub fn verify(&self, bearer: &str) -> Result<Arc<Claims>, Reason> {
        let s = self.snapshot.load();
        let now = (self.config.clock)();
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
