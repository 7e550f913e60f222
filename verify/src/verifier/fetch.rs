//! How a [`Verifier`] stays current: fetching the JWKS and the signed
//! revocation feed (a delta after the sequence it holds, or a full
//! snapshot), applying them in one swap, refetching keys early for an
//! unknown `kid`, and the background [`Poller`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use super::{Snapshot, UNKNOWN_KID_REFETCH, Verifier};
use crate::feed::{FeedClaims, StaleFeed};
use crate::jwk::Jwks;
use crate::token::{self, FEED_TYP};

/// The largest feed accepted (10,000 revocations and 1,000 subjects measured 688 KB).
const MAX_FEED_BYTES: usize = 64 << 20;

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
pub(super) fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
}

impl Verifier {
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

    /// Asks the poller to refetch the JWKS now, at most every 30 s.
    pub(super) fn unknown_kid(&self) {
        let mut last = self.last_kid_refetch.lock();
        if last.is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFETCH) {
            *last = Some(Instant::now());
            self.wake.notify_one();
        }
    }
}
