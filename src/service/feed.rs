//! The signed revocation feed (SPEC §8): what a partner's service needs to
//! reach `/verify`'s verdict offline, as a compact JWS signed by the active
//! key. The cursor is the audit log's last `seq`, so a delta is "every
//! subject and `jti` an admin mutation touched since", read back from the
//! log; an import, an unknown cursor or a long backlog gets a full
//! snapshot instead. Only entries that can still refuse a live token are
//! sent: a token lives at most the longest TTL ever configured, so a
//! subject untouched for that long can refuse none.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use super::{AdminError, InternalError, Service};
use crate::store::AuditEvent;
use crate::token::{self, FEED_TYP};
use crate::user::{AccountStatus, User, Username};
use tessera_verify::feed::{FeedClaims, SubjectState, subject_id};

/// Deltas longer than this many audit events are sent as a full snapshot.
const MAX_DELTA_EVENTS: usize = 10_000;
/// Audit events read per page while walking the log back.
const AUDIT_PAGE: usize = 1000;

/// What the feed says about an existing user.
fn user_state(user: &User, max_ttl: u64) -> SubjectState {
    let changed = user
        .created_at
        .max(user.updated_at)
        .max(user.tokens_valid_after.unwrap_or(0));
    SubjectState {
        after: user.created_at.max(user.tokens_valid_after.unwrap_or(0)),
        disabled: user.status == AccountStatus::Disabled,
        deleted: false,
        expires_at: user.expires_at,
        until: changed.saturating_add(max_ttl),
    }
}

/// What the feed says about a user deleted at `at`.
fn deleted_state(at: u64, max_ttl: u64) -> SubjectState {
    SubjectState {
        after: u64::MAX,
        disabled: false,
        deleted: true,
        expires_at: None,
        until: at.saturating_add(max_ttl),
    }
}

impl Service {
    /// The audit events after `seq` (all when None), oldest first, or None
    /// when there are more than `limit`.
    fn audit_since(&self, seq: u64, limit: usize) -> Result<Option<Vec<AuditEvent>>, AdminError> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = self.audit_events(before, AUDIT_PAGE)?;
            let done = page.len() < AUDIT_PAGE;
            for e in page {
                if e.seq <= seq {
                    out.reverse();
                    return Ok(Some(out));
                }
                before = Some(e.seq);
                out.push(e);
                if out.len() > limit {
                    return Ok(None);
                }
            }
            if done {
                out.reverse();
                return Ok(Some(out));
            }
        }
    }

    /// The longest any token can live: the TTL high-water mark.
    fn max_token_ttl(&self) -> Result<u64, AdminError> {
        let high = self.store.ttl_high_water().map_err(InternalError::from)?;
        Ok(high.max(self.settings.default_ttl_secs))
    }

    /// The current state of one subject named in the audit log.
    fn subject_now(&self, name: &str, at: u64, max_ttl: u64) -> Result<SubjectState, AdminError> {
        let user = match Username::parse(name) {
            Ok(n) => self.store.user(&n).map_err(InternalError::from)?,
            Err(_) => None,
        };
        Ok(user.map_or_else(|| deleted_state(at, max_ttl), |u| user_state(&u, max_ttl)))
    }

    /// The feed's claims: a delta after `since` when it can be one, else a
    /// full snapshot.
    pub fn feed_claims(&self, since: Option<&str>) -> Result<FeedClaims, AdminError> {
        let now = self.clock.now();
        let max_ttl = self.max_token_ttl()?;
        let head = self.audit_events(None, 1)?.first().map_or(0, |e| e.seq);
        let delta = match since.and_then(|c| c.parse::<u64>().ok()) {
            Some(c) if c <= head => self
                .audit_since(c, MAX_DELTA_EVENTS)?
                .filter(|events| events.iter().all(|e| e.action != "store.import")),
            _ => None,
        };
        let mut claims = FeedClaims {
            iss: self.settings.issuer.clone(),
            iat: now,
            cursor: head.to_string(),
            full: delta.is_none(),
            revoked: Vec::new(),
            subjects: HashMap::new(),
        };
        match delta {
            Some(events) => {
                let mut jtis = BTreeSet::new();
                for e in &events {
                    if e.action.starts_with("user.") {
                        let state = self.subject_now(&e.target, e.at, max_ttl)?;
                        claims.subjects.insert(subject_id(&e.target), state);
                    } else if e.action == "token.revoke" {
                        jtis.insert(e.target.clone());
                    }
                }
                claims.revoked = jtis
                    .into_iter()
                    .filter_map(|j| self.store.revocation(&j).map(|exp| (j, exp)))
                    .filter(|(_, exp)| *exp > now)
                    .collect();
            }
            None => self.full_snapshot(&mut claims, now, max_ttl)?,
        }
        Ok(claims)
    }

    /// Every revocation and every subject that can still refuse a live
    /// token: users changed within the longest TTL, and users deleted
    /// within it (from the audit log).
    fn full_snapshot(
        &self,
        claims: &mut FeedClaims,
        now: u64,
        max_ttl: u64,
    ) -> Result<(), AdminError> {
        let mut after = None;
        loop {
            let page = self.list_revocations(after.as_deref(), 1000)?;
            claims
                .revoked
                .extend(page.items.into_iter().filter(|(_, exp)| *exp > now));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut after = None;
        loop {
            let page = self.list_users(after.as_deref(), 1000)?;
            for u in &page.items {
                let state = user_state(u, max_ttl);
                if state.until > now {
                    claims
                        .subjects
                        .insert(subject_id(u.username.as_str()), state);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut before = None;
        'log: loop {
            let page = self.audit_events(before, AUDIT_PAGE)?;
            let done = page.len() < AUDIT_PAGE;
            for e in page {
                if e.at.saturating_add(max_ttl) <= now {
                    break 'log;
                }
                before = Some(e.seq);
                if e.action == "user.delete"
                    && let Entry::Vacant(slot) = claims.subjects.entry(subject_id(&e.target))
                {
                    slot.insert(self.subject_now(&e.target, e.at, max_ttl)?);
                }
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    /// `GET /revocations`: the feed as a compact JWS (`typ`
    /// `revocations+jwt`) signed by the active key.
    pub fn revocation_feed(&self, since: Option<&str>) -> Result<String, AdminError> {
        let claims = self.feed_claims(since)?;
        let keys = self.keys.load();
        let active = keys.ring.active();
        Ok(token::encode_jws(FEED_TYP, &active.kid, &claims, active))
    }
}
