//! The signed revocation feed (SPEC §8, §11): what a service that verifies
//! tokens itself must know to reach `/verify`'s verdict without asking —
//! revoked `jti`s and, per subject, the account state (generation,
//! disabled, deleted, `expires_at`: see [`crate::account`]). Tessera serves
//! it at `GET /revocations[?since=SEQ]` as a compact JWS with `typ`
//! `revocations+jwt`, signed by its active key, to callers that present
//! the deployment's feed token; [`RevocationState`] applies a full
//! snapshot or a delta and answers for a token's claims.
//!
//! Subjects appear only as base64url SHA-256 of the username
//! ([`subject_id`]), never in clear; since an unsalted hash of a name falls
//! to a word list, the feed itself is for holders of the feed token only.
//!
//! **Never backwards.** Every feed carries `seq`, the position in the
//! deployment's change log it describes (it only grows), and `iat`; a delta
//! also names the `since` it continues from. [`RevocationState::apply`]
//! refuses a feed that would take it back (an older `seq`, an `iat` older
//! than the one held by more than the leeway, or a delta that does not
//! continue from the `seq` held), so a cached or replayed old feed can not
//! revive a revoked token.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::account::AccountState;
pub use crate::account::Refusal;
use crate::scope::Scopes;
use crate::token::Claims;

/// The claims of a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedClaims {
    /// The issuer (the server's `--issuer`).
    pub iss: String,
    /// When the feed was made, unix seconds (the issuer's clock).
    pub iat: u64,
    /// The position in the change log this feed describes; it never goes
    /// down. Pass it back as `since` to get only what changed after it.
    pub seq: u64,
    /// For a delta, the `seq` it continues from; absent in a full feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// True when this is a whole snapshot (replace, don't merge).
    pub full: bool,
    /// Revoked token ids with the `exp` after which they can be forgotten.
    pub revoked: Vec<(String, u64)>,
    /// Per subject ([`subject_id`]), its state; in a delta, the new state of
    /// every subject that changed.
    pub subjects: HashMap<String, SubjectState>,
}

/// What a subject's account says about its tokens, as the feed carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectState {
    /// Tokens whose `gen` claim is below this are refused (revoke-all, or
    /// the account's creation: a re-created account never revives the
    /// tokens of the old one).
    #[serde(rename = "gen", default)]
    pub generation: u64,
    /// Tokens without a `gen` claim issued before this second are refused.
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
    /// The scopes the account holds now (absent: none). A token of this
    /// subject may use only those of its `scope` claim that are here; a
    /// subject absent from the feed has not changed since any live token
    /// was issued, so its tokens' claims hold as they are.
    #[serde(default, skip_serializing_if = "Scopes::is_empty")]
    pub scopes: Scopes,
}

impl SubjectState {
    /// The account state this entry describes.
    pub fn account(&self) -> AccountState {
        AccountState {
            generation: self.generation,
            after: self.after,
            disabled: self.disabled,
            deleted: self.deleted,
            expires_at: self.expires_at,
        }
    }

    /// The entry for an account, kept until `until`.
    pub fn new(account: AccountState, until: u64) -> Self {
        Self {
            generation: account.generation,
            after: account.after,
            disabled: account.disabled,
            deleted: account.deleted,
            expires_at: account.expires_at,
            until,
            scopes: Scopes::default(),
        }
    }

    /// This entry, saying the account holds `scopes`.
    pub fn with_scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }
}

/// Why a feed was not applied: it would take the state back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StaleFeed {
    /// Its `seq` is below the one held.
    #[error("feed seq {got} is older than the {held} already held")]
    OlderSeq {
        /// The feed's.
        got: u64,
        /// The state's.
        held: u64,
    },
    /// Its `iat` is older than the one held, by more than the leeway.
    #[error("feed issued at {got} is older than the one of {held} already held")]
    OlderIat {
        /// The feed's.
        got: u64,
        /// The state's.
        held: u64,
    },
    /// A delta that does not continue from the `seq` held.
    #[error("delta since {since:?} does not continue from seq {held:?}")]
    Discontinuous {
        /// The delta's `since`.
        since: Option<u64>,
        /// The state's `seq`, if any.
        held: Option<u64>,
    },
}

/// base64url (no padding) SHA-256 of a username: how a subject appears in
/// the feed.
pub fn subject_id(username: &str) -> String {
    B64.encode(Sha256::digest(username.as_bytes()))
}

/// What a verifier knows from the feeds applied so far.
#[derive(Debug, Clone, Default)]
pub struct RevocationState {
    seq: Option<u64>,
    iat: u64,
    revoked: HashMap<String, u64>,
    subjects: HashMap<String, SubjectState>,
}

impl RevocationState {
    /// The `seq` to pass as `since` next time (None before the first feed).
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    /// The `iat` of the last feed applied (0 before the first).
    pub fn issued_at(&self) -> u64 {
        self.iat
    }

    /// Applies a feed: a full one replaces everything, a delta merges (a
    /// subject's new state replaces its old one). Entries past their time
    /// are forgotten. A feed that would take the state back — see
    /// [`StaleFeed`]; `leeway` is how far the issuers' clocks may disagree —
    /// is refused and changes nothing.
    pub fn apply(&mut self, feed: FeedClaims, now: u64, leeway: u64) -> Result<(), StaleFeed> {
        if let Some(held) = self.seq {
            if feed.seq < held {
                return Err(StaleFeed::OlderSeq {
                    got: feed.seq,
                    held,
                });
            }
            if feed.iat.saturating_add(leeway) < self.iat {
                return Err(StaleFeed::OlderIat {
                    got: feed.iat,
                    held: self.iat,
                });
            }
        }
        if !feed.full && (feed.since.is_none() || feed.since != self.seq) {
            return Err(StaleFeed::Discontinuous {
                since: feed.since,
                held: self.seq,
            });
        }
        if feed.full {
            self.revoked.clear();
            self.subjects.clear();
        }
        self.revoked.extend(feed.revoked);
        self.subjects.extend(feed.subjects);
        self.seq = Some(feed.seq);
        self.iat = self.iat.max(feed.iat);
        self.revoked.retain(|_, exp| *exp > now);
        self.subjects.retain(|_, s| s.until > now);
        Ok(())
    }

    /// The feed's verdict on a token whose signature, issuer and times
    /// already passed: its `jti` and its subject's account
    /// ([`AccountState::accepts`]).
    pub fn check(&self, claims: &Claims, now: u64) -> Result<(), Refusal> {
        if self.is_revoked(&claims.jti) {
            return Err(Refusal::Revoked);
        }
        self.account_accepts(claims, now)
    }

    /// Whether this `jti` is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// The account rules alone (the token's subject as the feed holds it):
    /// what [`RevocationState::check`] applies after the `jti`.
    pub fn account_accepts(&self, claims: &Claims, now: u64) -> Result<(), Refusal> {
        if self.subjects.is_empty() {
            return Ok(()); // the common case: no hash of the subject to compute
        }
        match self.subjects.get(&subject_id(&claims.sub)) {
            Some(s) => s.account().accepts(claims, now),
            None => Ok(()),
        }
    }

    /// What a token that passed [`RevocationState::check`] may do: the
    /// scopes of its claim that its subject still holds (see
    /// [`crate::scope::effective`]).
    pub fn effective_scopes(&self, claims: &Claims) -> Scopes {
        let Some(claim) = claims.scope.as_deref() else {
            return Scopes::default();
        };
        match self.subjects.get(&subject_id(&claims.sub)) {
            Some(s) => crate::scope::effective(Some(claim), &s.scopes),
            None => Scopes::parse(claim).unwrap_or_default(),
        }
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
            generation: None,
            scope: None,
            cnf: None,
        }
    }

    fn state(after: u64) -> SubjectState {
        SubjectState {
            generation: 0,
            after,
            disabled: false,
            deleted: false,
            expires_at: None,
            until: 10_000,
            scopes: Scopes::default(),
        }
    }

    /// A feed at `seq`: full, or a delta continuing from `since`.
    fn feed_at(
        seq: u64,
        since: Option<u64>,
        revoked: &[(&str, u64)],
        subjects: &[(&str, SubjectState)],
    ) -> FeedClaims {
        FeedClaims {
            iss: "tessera".into(),
            iat: 100,
            seq,
            since,
            full: since.is_none(),
            revoked: revoked.iter().map(|(j, e)| ((*j).to_owned(), *e)).collect(),
            subjects: subjects
                .iter()
                .map(|(n, s)| (subject_id(n), s.clone()))
                .collect(),
        }
    }

    fn full(revoked: &[(&str, u64)], subjects: &[(&str, SubjectState)]) -> FeedClaims {
        feed_at(7, None, revoked, subjects)
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
        let renewed = SubjectState {
            generation: 5,
            ..state(0)
        };
        s.apply(
            full(
                &[("gone", 2000)],
                &[
                    ("d", disabled),
                    ("x", deleted),
                    ("e", expiring),
                    ("r", state(300)),
                    ("g", renewed),
                ],
            ),
            100,
            0,
        )
        .unwrap();
        assert_eq!(s.seq(), Some(7));
        assert_eq!(s.len(), (1, 5));
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
        let generation = |g| Claims {
            generation: Some(g),
            scope: None,
            ..claims("g", 9_000, "j")
        };
        assert_eq!(s.check(&generation(4), 100), Err(Refusal::Revoked));
        assert_eq!(s.check(&generation(5), 100), Ok(()));
    }

    #[test]
    fn deltas_merge_and_full_snapshots_replace() {
        let mut s = RevocationState::default();
        let disabled = SubjectState {
            disabled: true,
            ..state(0)
        };
        s.apply(full(&[("a", 2000)], &[("d", disabled)]), 100, 0)
            .unwrap();
        s.apply(
            feed_at(8, Some(7), &[("b", 2000)], &[("d", state(0))]),
            100,
            0,
        )
        .unwrap();
        assert_eq!(s.seq(), Some(8));
        assert_eq!(s.check(&claims("d", 100, "a"), 100), Err(Refusal::Revoked));
        assert_eq!(s.check(&claims("d", 100, "b"), 100), Err(Refusal::Revoked));
        assert_eq!(s.check(&claims("d", 100, "c"), 100), Ok(()), "re-enabled");
        s.apply(feed_at(9, None, &[], &[]), 100, 0).unwrap();
        assert!(s.is_empty(), "a full snapshot replaces");
        s.apply(feed_at(9, None, &[("a", 2000)], &[]), 100, 0)
            .unwrap();
        assert!(!s.is_empty(), "a jti alone");
        s.apply(feed_at(9, None, &[], &[("d", state(0))]), 100, 0)
            .unwrap();
        assert!(!s.is_empty(), "a subject alone");
    }

    #[test]
    fn a_feed_that_would_go_back_is_refused_and_changes_nothing() {
        let mut s = RevocationState::default();
        assert_eq!(
            s.apply(feed_at(7, Some(6), &[], &[]), 100, 0),
            Err(StaleFeed::Discontinuous {
                since: Some(6),
                held: None
            }),
            "a delta needs a state to continue"
        );
        s.apply(feed_at(10, None, &[("revoked", 2000)], &[]), 100, 0)
            .unwrap();
        // A replayed older full feed would forget the revocation.
        assert_eq!(
            s.apply(feed_at(9, None, &[], &[]), 100, 0),
            Err(StaleFeed::OlderSeq { got: 9, held: 10 })
        );
        // A delta from elsewhere in the log would skip changes.
        assert_eq!(
            s.apply(feed_at(12, Some(11), &[], &[]), 100, 0),
            Err(StaleFeed::Discontinuous {
                since: Some(11),
                held: Some(10)
            })
        );
        assert_eq!(
            s.apply(feed_at(12, None, &[], &[]), 100, 0),
            Ok(()),
            "a full feed may jump ahead"
        );
        let mut older = feed_at(12, None, &[], &[]);
        older.iat = 40;
        assert_eq!(
            s.apply(older.clone(), 100, 59),
            Err(StaleFeed::OlderIat { got: 40, held: 100 })
        );
        assert_eq!(s.apply(older, 100, 60), Ok(()), "within the leeway");
        assert_eq!(s.issued_at(), 100, "iat never goes back");
        assert_eq!(s.check(&claims("u", 100, "revoked"), 100), Ok(()));
        // The same seq again (nothing changed) is fine.
        assert_eq!(s.apply(feed_at(12, Some(12), &[], &[]), 100, 0), Ok(()));
    }

    #[test]
    fn entries_are_forgotten_once_nothing_they_concern_is_alive() {
        let mut s = RevocationState::default();
        let short = SubjectState {
            until: 200,
            disabled: true,
            ..state(0)
        };
        s.apply(full(&[("a", 150), ("b", 151)], &[("d", short)]), 100, 0)
            .unwrap();
        s.apply(feed_at(7, Some(7), &[], &[]), 150, 0).unwrap();
        assert_eq!(s.len(), (1, 1), "a jti is kept while exp > now");
        s.apply(feed_at(7, Some(7), &[], &[]), 200, 0).unwrap();
        assert_eq!(s.len(), (0, 0));
    }
}
