//! What reaches a follower of changes (the revocation feed): which users
//! and `jti`s a delta names, decided by each audited change's type
//! ([`Action::feed_effect`]), never by its text; what a full view names;
//! and the changes an import records so that both see it.

use super::{Action, Audit, AuditEvent, FeedEffect};
use crate::domain::user::User;

/// What a delta names: users with the time of their last event, and
/// `jti`s, each once and sorted.
pub type DeltaTargets = (Vec<(String, u64)>, Vec<String>);

/// What changed in the store, read in one consistent view (one read
/// transaction, or one `REPEATABLE READ` snapshot), so that the position
/// `head` and the content always describe the same moment: a follower that
/// continues from `head` can never skip a change (the revocation feed).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The last audit `seq` of the view (0 when the log is empty).
    pub head: u64,
    /// True when this is everything after the `since` asked for; false
    /// when it is a full view (no `since`, an unknown or too old one, too
    /// many events, or an import in between).
    pub delta: bool,
    /// Users with their state in the view, or None when deleted, with the
    /// time of their last event. A delta: every user an event after `since`
    /// named. A full view: every user changed at or after `horizon`, and
    /// every user deleted at or after it.
    pub users: Vec<(String, Option<User>, u64)>,
    /// Revoked `jti`s held in the view with their `exp`. A delta: those
    /// revoked after `since`; a full view: all.
    pub revoked: Vec<(String, u64)>,
}

impl Changes {
    /// Sorts the audit events after `since` (oldest first) into what a
    /// delta names: users and `jti`s, each once. None when they can not be
    /// a delta: a gap after `since`, more than `max_events`, or an import.
    pub fn delta_targets(
        since: u64,
        events: &[AuditEvent],
        max_events: usize,
    ) -> Option<DeltaTargets> {
        let effect =
            |e: &AuditEvent| Action::parse(&e.action).map_or(FeedEffect::None, Action::feed_effect);
        if events.len() > max_events
            || events.first().is_some_and(|e| e.seq != since + 1)
            || events.iter().any(|e| effect(e) == FeedEffect::Everything)
        {
            return None;
        }
        let mut users = std::collections::BTreeMap::new();
        let mut jtis = std::collections::BTreeSet::new();
        for e in events {
            match effect(e) {
                FeedEffect::User => {
                    users.insert(e.target.clone(), e.at);
                }
                FeedEffect::Token => {
                    jtis.insert(e.target.clone());
                }
                FeedEffect::None | FeedEffect::Everything => {}
            }
        }
        Some((users.into_iter().collect(), jtis.into_iter().collect()))
    }
}

/// The users a full view names (see [`Changes::users`]), written once for
/// every backend: each user changed at or after the horizon, or named by a
/// user-changing event at or after it (an import restores old timestamps,
/// so only its events say the user changed), and a tombstone for each
/// named user that no longer exists. `named` maps a user to the time of
/// its newest such event ([`FullView::note_event`]).
#[derive(Debug, Default)]
pub struct FullView {
    horizon: u64,
    named: std::collections::BTreeMap<String, u64>,
    users: Vec<(String, Option<User>, u64)>,
}

impl FullView {
    /// A view of what changed at or after `horizon` (unix seconds).
    pub fn new(horizon: u64) -> Self {
        Self {
            horizon,
            ..Self::default()
        }
    }

    /// Notes an audit event; events may come in any order.
    pub fn note_event(&mut self, action: &str, target: &str, at: u64) {
        let changes_user = Action::parse(action).map(Action::feed_effect) == Some(FeedEffect::User);
        if changes_user && at >= self.horizon {
            let newest = self.named.entry(target.to_owned()).or_insert(at);
            *newest = (*newest).max(at);
        }
    }

    /// Offers an existing user (in name order); kept when it changed.
    pub fn offer_user(&mut self, name: &str, user: User) {
        let named = self.named.remove(name).is_some();
        if named || last_changed(&user) >= self.horizon {
            self.users.push((name.to_owned(), Some(user), 0));
        }
    }

    /// The users: the kept ones, then a tombstone for every named user
    /// that was not offered (deleted), by name.
    pub fn into_users(mut self) -> Vec<(String, Option<User>, u64)> {
        let deleted = std::mem::take(&mut self.named);
        self.users
            .extend(deleted.into_iter().map(|(name, at)| (name, None, at)));
        self.users
    }
}

/// What an import did to a user that existed before it, recorded as a
/// change ([`Action::UserImport`]) so the feed names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportChange {
    /// The snapshot holds the user with another record.
    Changed,
    /// The snapshot does not hold the user.
    Removed,
}

impl ImportChange {
    /// The audit detail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Removed => "removed",
        }
    }

    /// The events of one import at `at`: each changed user, then each
    /// removed one, in the order given (by name).
    pub fn events<'a>(
        at: u64,
        changed: &'a [String],
        removed: &'a [String],
    ) -> impl Iterator<Item = Audit> + 'a {
        let each = |kind: ImportChange, names: &'a [String]| {
            names.iter().map(move |name| Audit {
                at,
                action: Action::UserImport,
                target: name.clone(),
                detail: kind.as_str().to_owned(),
            })
        };
        each(Self::Changed, changed).chain(each(Self::Removed, removed))
    }
}

/// When a user last changed in a way the feed reports (created, updated,
/// revoked-all), unix seconds.
pub fn last_changed(user: &User) -> u64 {
    user.created_at
        .max(user.updated_at)
        .max(user.tokens_valid_after.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, action: Action, target: &str) -> AuditEvent {
        Audit {
            at: seq * 10,
            action,
            target: target.into(),
            detail: String::new(),
        }
        .into_event(seq)
    }

    #[test]
    fn a_delta_holds_at_most_max_events() {
        let events: Vec<_> = (1..=4)
            .map(|s| event(s, Action::UserUpdate, &format!("u{s}")))
            .collect();
        let (users, jtis) = Changes::delta_targets(0, &events[..3], 3).expect("3 of 3");
        assert_eq!(users.len(), 3);
        assert!(jtis.is_empty());
        assert!(Changes::delta_targets(0, &events, 3).is_none(), "4 of 3");
        assert!(Changes::delta_targets(1, &events[1..], 3).is_some());
        assert!(
            Changes::delta_targets(0, &events[1..], 3).is_none(),
            "a gap"
        );
    }

    #[test]
    fn a_delta_names_users_and_tokens_by_the_actions_type() {
        let events = [
            event(1, Action::UserCreate, "a"),
            event(2, Action::TokenSelfRevoke, "j1"),
            event(3, Action::KeyRotate, "k"),
            event(4, Action::UserImport, "b"),
            event(5, Action::UserDelete, "a"),
            event(6, Action::TokenRevoke, "j0"),
        ];
        let (users, jtis) = Changes::delta_targets(0, &events, 10).unwrap();
        assert_eq!(users, [("a".to_owned(), 50), ("b".to_owned(), 40)]);
        assert_eq!(jtis, ["j0", "j1"]);
        let with_import = [
            event(1, Action::UserCreate, "a"),
            event(2, Action::StoreImport, "-"),
        ];
        assert!(Changes::delta_targets(0, &with_import, 10).is_none());
    }
}
