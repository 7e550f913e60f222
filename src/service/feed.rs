//! The signed revocation feed (SPEC §8, §11): what a partner's service
//! needs to reach `/verify`'s verdict offline, as a compact JWS signed by
//! the active key.
//!
//! - **Nothing lost.** The position (`seq`, the audit log's last `seq`) and
//!   the content come from one consistent read of the store
//!   ([`crate::store::Store::changes`]), never the position from the store
//!   and the content from memory that may lag the commit. A delta is
//!   "every subject and `jti` an event after `since` named", with their
//!   state in that same view; an import, an unknown or too old `since`, or
//!   a long backlog gets a full snapshot instead.
//! - **Bounded cost.** A full snapshot is built off the request threads,
//!   once per change of the log (and at least every
//!   [`FULL_FEED_MAX_AGE_SECS`] so its `iat` stays fresh), and served from
//!   memory to every caller in between; concurrent callers wait for one
//!   build.
//! - Only entries that can still refuse a live token are sent: a token
//!   lives at most the longest TTL ever configured, so a subject untouched
//!   for that long can refuse none.
//!
//! Who may read it is decided at the edge (`http::partner`, the feed
//! token).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{AdminError, InternalError, Service};
use crate::domain::user::{AccountState, User};
use crate::store::{Changes, last_changed};
use crate::token::{self, FEED_TYP};
use tessera_verify::feed::{FeedClaims, SubjectState, subject_id};

/// Deltas longer than this many audit events are sent as a full snapshot.
const MAX_DELTA_EVENTS: usize = 10_000;
/// A cached full feed is rebuilt after this many seconds even when nothing
/// changed, so verifiers that refuse a feed issued longer ago than their
/// `max_staleness` (5 min by default) never see a stale one.
pub const FULL_FEED_MAX_AGE_SECS: u64 = 60;

/// A full feed, signed, and the log position it describes.
pub(super) struct CachedFeed {
    head: u64,
    built_at: u64,
    jws: Bytes,
}

/// What the feed says about a subject: its account state, or deleted (at
/// `at`), kept until no token it could refuse is alive.
fn subject_state(user: Option<&User>, at: u64, max_ttl: u64) -> SubjectState {
    match user {
        Some(u) => SubjectState::new(u.account_state(), last_changed(u).saturating_add(max_ttl))
            .with_scopes(u.scopes.clone()),
        None => SubjectState::new(
            AccountState {
                generation: u64::MAX,
                after: u64::MAX,
                disabled: false,
                deleted: true,
                expires_at: None,
            },
            at.saturating_add(max_ttl),
        ),
    }
}

impl Service {
    /// The longest any token can live ([`Settings::longest_token_ttl`](super::Settings::longest_token_ttl)).
    fn max_token_ttl(&self) -> Result<u64, AdminError> {
        let high = self.store.ttl_high_water().map_err(InternalError::from)?;
        Ok(self.settings.longest_token_ttl(high))
    }

    /// The feed's claims from one read of the store: a delta after `since`
    /// when it can be one, else a full snapshot. Blocks (a full snapshot
    /// reads every user): call it off the request threads.
    pub fn feed_claims(&self, since: Option<u64>) -> Result<FeedClaims, AdminError> {
        let now = self.clock.now();
        let max_ttl = self.max_token_ttl()?;
        let horizon = now.saturating_sub(max_ttl);
        let changes = self
            .store
            .changes(since, MAX_DELTA_EVENTS, horizon)
            .map_err(InternalError::from)?;
        Ok(self.claims_from(changes, since, now, max_ttl))
    }

    fn claims_from(
        &self,
        changes: Changes,
        since: Option<u64>,
        now: u64,
        max_ttl: u64,
    ) -> FeedClaims {
        let mut subjects = HashMap::with_capacity(changes.users.len());
        for (name, user, at) in &changes.users {
            let state = subject_state(user.as_ref(), *at, max_ttl);
            if changes.delta || state.until > now {
                subjects.insert(subject_id(name), state);
            }
        }
        FeedClaims {
            iss: self.settings.issuer.clone(),
            iat: now,
            seq: changes.head,
            since: since.filter(|_| changes.delta),
            full: !changes.delta,
            revoked: changes
                .revoked
                .into_iter()
                .filter(|(_, exp)| *exp > now)
                .collect(),
            subjects,
        }
    }

    fn sign_feed(&self, claims: &FeedClaims) -> String {
        let keys = self.keys.load();
        let active = keys.ring.active();
        token::encode_jws(FEED_TYP, &active.kid, claims, active)
    }

    /// `GET /revocations[?since=SEQ]`: the feed as a compact JWS (`typ`
    /// `revocations+jwt`) signed by the active key. A `since` that is not a
    /// number is answered with a full snapshot, as an unknown one is. The
    /// bytes are shared with the cache: serving a cached feed copies nothing.
    pub async fn revocation_feed(
        self: &Arc<Self>,
        since: Option<&str>,
    ) -> Result<Bytes, AdminError> {
        if let Some(since) = since.and_then(|s| s.parse::<u64>().ok()) {
            let me = Arc::clone(self);
            let claims = tokio::task::spawn_blocking(move || me.feed_claims(Some(since)))
                .await
                .map_err(InternalError::from)??;
            if !claims.full {
                return Ok(Bytes::from(self.sign_feed(&claims)));
            }
            // It came back whole: cache it for the callers that follow.
            return Ok(self.cache_full_feed(&claims).await);
        }
        self.full_feed().await
    }

    async fn cache_full_feed(&self, claims: &FeedClaims) -> Bytes {
        let jws = Bytes::from(self.sign_feed(claims));
        let mut cached = self.full_feed.lock().await;
        if cached.as_ref().is_none_or(|c| c.head <= claims.seq) {
            *cached = Some(CachedFeed {
                head: claims.seq,
                built_at: claims.iat,
                jws: jws.clone(),
            });
        }
        jws
    }

    /// The full feed: the cached one while the log has not moved and it is
    /// young enough, else built once on a blocking thread while other
    /// callers wait for it.
    async fn full_feed(self: &Arc<Self>) -> Result<Bytes, AdminError> {
        let mut cached = self.full_feed.lock().await;
        let me = Arc::clone(self);
        let head = tokio::task::spawn_blocking(move || me.store.audit_events(None, 1))
            .await
            .map_err(InternalError::from)?
            .map_err(InternalError::from)?
            .first()
            .map_or(0, |e| e.seq);
        let now = self.clock.now();
        if let Some(c) = cached.as_ref()
            && c.head == head
            && now.saturating_sub(c.built_at) < FULL_FEED_MAX_AGE_SECS
            && c.built_at <= now
        {
            return Ok(c.jws.clone());
        }
        let me = Arc::clone(self);
        let claims = tokio::task::spawn_blocking(move || me.feed_claims(None))
            .await
            .map_err(InternalError::from)??;
        let jws = Bytes::from(self.sign_feed(&claims));
        *cached = Some(CachedFeed {
            head: claims.seq,
            built_at: claims.iat,
            jws: jws.clone(),
        });
        Ok(jws)
    }
}
