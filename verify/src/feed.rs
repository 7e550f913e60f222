//! The signed revocation feed (SPEC §8): what a service that verifies
//! tokens itself must know to reach `/verify`'s verdict without asking —
//! revoked `jti`s and, per subject, the account rules (revoke-all, disabled,
//! deleted, re-created, `expires_at`). Tessera serves it at
//! `GET /revocations[?since=CURSOR]` as a compact JWS with `typ`
//! `revocations+jwt`, signed by its active key; [`RevocationState`] applies
//! a full snapshot or a delta and answers for a token's claims.
//!
//! Subjects appear only as base64url SHA-256 of the username
//! ([`subject_id`]), never in clear.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::token::Claims;

/// The claims of a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedClaims {
    /// The issuer (the server's `--issuer`).
    pub iss: String,
    /// When the feed was made, unix seconds.
    pub iat: u64,
    /// Pass back as `since` to get only what changed after this feed.
    pub cursor: String,
    /// True when this is a whole snapshot (replace, don't merge).
    pub full: bool,
    /// Revoked token ids with the `exp` after which they can be forgotten.
    pub revoked: Vec<(String, u64)>,
    /// Per subject ([`subject_id`]), its state; in a delta, the new state of
    /// every subject that changed.
    pub subjects: HashMap<String, SubjectState>,
}

/// What a subject's account says about its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectState {
    /// Tokens issued before this second are refused (revoke-all, or the
    /// account was created then: a re-created account never revives the
    /// tokens of the old one).
    pub after: u64,
    /// The account is disabled.
    pub disabled: bool,
    /// The account was deleted.
    pub deleted: bool,
    /// From this second on the account refuses its tokens.
    pub expires_at: Option<u64>,
    /// After this second no token this entry could refuse is alive, and the
    /// entry can be forgotten.
    pub until: u64,
}

/// Why the feed refuses a token. `Display` is `/verify`'s reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The `jti` is revoked, or the token predates a revoke-all or the
    /// account's creation.
    #[error("token revoked")]
    Revoked,
    /// The account is disabled.
    #[error("account disabled")]
    Disabled,
    /// The account is past its `expires_at`.
    #[error("account expired")]
    Expired,
    /// The account was deleted.
    #[error("account deleted")]
    Deleted,
}

/// base64url (no padding) SHA-256 of a username: how a subject appears in
/// the feed.
pub fn subject_id(username: &str) -> String {
    B64.encode(Sha256::digest(username.as_bytes()))
}

/// What a verifier knows from the feeds applied so far.
#[derive(Debug, Clone, Default)]
pub struct RevocationState {
    cursor: Option<String>,
    revoked: HashMap<String, u64>,
    subjects: HashMap<String, SubjectState>,
}

impl RevocationState {
    /// The cursor to pass as `since` next time (None before the first feed).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Applies a feed: a full one replaces everything, a delta merges (a
    /// subject's new state replaces its old one). Entries past their time
    /// are forgotten.
    pub fn apply(&mut self, feed: FeedClaims, now: u64) {
        if feed.full {
            self.revoked.clear();
            self.subjects.clear();
        }
        self.revoked.extend(feed.revoked);
        self.subjects.extend(feed.subjects);
        self.cursor = Some(feed.cursor);
        self.revoked.retain(|_, exp| *exp > now);
        self.subjects.retain(|_, s| s.until > now);
    }

    /// The feed's verdict on a token whose signature, issuer and times
    /// already passed: its `jti` and its subject's account.
    pub fn check(&self, claims: &Claims, now: u64) -> Result<(), Refusal> {
        if self.revoked.contains_key(&claims.jti) {
            return Err(Refusal::Revoked);
        }
        if self.subjects.is_empty() {
            return Ok(()); // the common case: no hash of the subject to compute
        }
        let Some(s) = self.subjects.get(&subject_id(&claims.sub)) else {
            return Ok(());
        };
        if s.deleted {
            return Err(Refusal::Deleted);
        }
        if s.disabled {
            return Err(Refusal::Disabled);
        }
        if s.expires_at.is_some_and(|e| now >= e) {
            return Err(Refusal::Expired);
        }
        if claims.iat < s.after {
            return Err(Refusal::Revoked);
        }
        Ok(())
    }

    /// How many revoked `jti`s and subjects are held.
    pub fn len(&self) -> (usize, usize) {
        (self.revoked.len(), self.subjects.len())
    }

    /// True before anything is held.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.subjects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, iat: u64, jti: &str) -> Claims {
        Claims {
            iss: "tessera".into(),
            sub: sub.into(),
            iat,
            exp: iat + 3600,
            jti: jti.into(),
        }
    }

    fn state(after: u64) -> SubjectState {
        SubjectState {
            after,
            disabled: false,
            deleted: false,
            expires_at: None,
            until: 10_000,
        }
    }

    fn feed(full: bool, revoked: &[(&str, u64)], subjects: &[(&str, SubjectState)]) -> FeedClaims {
        FeedClaims {
            iss: "tessera".into(),
            iat: 100,
            cursor: "7".into(),
            full,
            revoked: revoked.iter().map(|(j, e)| ((*j).to_owned(), *e)).collect(),
            subjects: subjects.iter().map(|(n, s)| (subject_id(n), *s)).collect(),
        }
    }

    #[test]
    fn subjects_are_hashed() {
        assert_eq!(
            subject_id("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn each_rule_refuses_with_verifys_reason() {
        let mut s = RevocationState::default();
        assert!(s.is_empty());
        let disabled = SubjectState {
            disabled: true,
            ..state(0)
        };
        let deleted = SubjectState {
            deleted: true,
            ..state(0)
        };
        let expiring = SubjectState {
            expires_at: Some(500),
            ..state(0)
        };
        s.apply(
            feed(
                true,
                &[("gone", 2000)],
                &[
                    ("d", disabled),
                    ("x", deleted),
                    ("e", expiring),
                    ("r", state(300)),
                ],
            ),
            100,
        );
        assert_eq!(s.cursor(), Some("7"));
        assert_eq!(s.len(), (1, 4));
        assert_eq!(
            s.check(&claims("ok", 100, "gone"), 100),
            Err(Refusal::Revoked)
        );
        assert_eq!(s.check(&claims("ok", 100, "j"), 100), Ok(()));
        assert_eq!(s.check(&claims("d", 100, "j"), 100), Err(Refusal::Disabled));
        assert_eq!(s.check(&claims("x", 100, "j"), 100), Err(Refusal::Deleted));
        assert_eq!(s.check(&claims("e", 100, "j"), 499), Ok(()));
        assert_eq!(s.check(&claims("e", 100, "j"), 500), Err(Refusal::Expired));
        assert_eq!(s.check(&claims("r", 299, "j"), 400), Err(Refusal::Revoked));
        assert_eq!(s.check(&claims("r", 300, "j"), 400), Ok(()));
        assert_eq!(Refusal::Disabled.to_string(), "account disabled");
    }

    #[test]
    fn deltas_merge_and_full_snapshots_replace() {
        let mut s = RevocationState::default();
        s.apply(
            feed(
                true,
                &[("a", 2000)],
                &[(
                    "d",
                    SubjectState {
                        disabled: true,
                        ..state(0)
                    },
                )],
            ),
            100,
        );
        s.apply(feed(false, &[("b", 2000)], &[("d", state(0))]), 100);
        assert_eq!(s.check(&claims("d", 100, "a"), 100), Err(Refusal::Revoked));
        assert_eq!(s.check(&claims("d", 100, "b"), 100), Err(Refusal::Revoked));
        assert_eq!(s.check(&claims("d", 100, "c"), 100), Ok(()), "re-enabled");
        s.apply(feed(true, &[], &[]), 100);
        assert!(s.is_empty(), "a full snapshot replaces");
        s.apply(feed(true, &[("a", 2000)], &[]), 100);
        assert!(!s.is_empty(), "a jti alone");
        s.apply(feed(true, &[], &[("d", state(0))]), 100);
        assert!(!s.is_empty(), "a subject alone");
    }

    #[test]
    fn entries_are_forgotten_once_nothing_they_concern_is_alive() {
        let mut s = RevocationState::default();
        let short = SubjectState {
            until: 200,
            disabled: true,
            ..state(0)
        };
        s.apply(feed(true, &[("a", 150), ("b", 151)], &[("d", short)]), 100);
        s.apply(feed(false, &[], &[]), 150);
        assert_eq!(s.len(), (1, 1), "a jti is kept while exp > now");
        s.apply(feed(false, &[], &[]), 200);
        assert_eq!(s.len(), (0, 0));
    }
}
