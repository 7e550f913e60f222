//! What an audit event records, as a type: every admin mutation names one
//! [`Action`], and the action — not its text — decides whether and how the
//! change reaches offline verifiers through the revocation feed
//! ([`FeedEffect`]). The text is what the audit log stores and shows; it
//! is read back only through [`Action::parse`], so a renamed action can
//! not silently stop revocations from reaching partners.

/// One kind of audited change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A user was created.
    UserCreate,
    /// A user's fields were changed.
    UserUpdate,
    /// A user's password was replaced.
    UserPassword,
    /// Every token a user held was revoked.
    UserRevokeTokens,
    /// A user was deleted.
    UserDelete,
    /// A user got a new secret; the previous one stays for its grace.
    UserSecretRotate,
    /// One of a user's secrets was ended early.
    UserSecretDelete,
    /// A previous secret's grace ran out.
    UserSecretExpire,
    /// An import replaced or removed this user (its detail says which).
    UserImport,
    /// One token was revoked by its `jti`.
    TokenRevoke,
    /// A partner revoked one of its own tokens (`/oauth/revoke`).
    TokenSelfRevoke,
    /// The signing keys were rotated.
    KeyRotate,
    /// A retired signing key was dropped.
    KeyDrop,
    /// A snapshot replaced the store's content.
    StoreImport,
}

/// What a change means to a follower of the revocation feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEffect {
    /// Nothing a verifier holds.
    None,
    /// The state of the user named by the event's target.
    User,
    /// The revocation of the `jti` named by the event's target.
    Token,
    /// Possibly everything: a delta can not span it.
    Everything,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 14] = [
        Self::UserCreate,
        Self::UserUpdate,
        Self::UserPassword,
        Self::UserRevokeTokens,
        Self::UserDelete,
        Self::UserSecretRotate,
        Self::UserSecretDelete,
        Self::UserSecretExpire,
        Self::UserImport,
        Self::TokenRevoke,
        Self::TokenSelfRevoke,
        Self::KeyRotate,
        Self::KeyDrop,
        Self::StoreImport,
    ];

    /// The name the audit log stores and shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::UserPassword => "user.password",
            Self::UserRevokeTokens => "user.revoke_tokens",
            Self::UserDelete => "user.delete",
            Self::UserSecretRotate => "user.secret.rotate",
            Self::UserSecretDelete => "user.secret.delete",
            Self::UserSecretExpire => "user.secret.expire",
            Self::UserImport => "user.import",
            Self::TokenRevoke => "token.revoke",
            Self::TokenSelfRevoke => "token.self_revoke",
            Self::KeyRotate => "key.rotate",
            Self::KeyDrop => "key.drop",
            Self::StoreImport => "store.import",
        }
    }

    /// The action a stored name stands for; None for a name this build
    /// does not know (it then reaches no verifier).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// How a change of this kind reaches the feed.
    pub fn feed_effect(self) -> FeedEffect {
        match self {
            Self::UserCreate
            | Self::UserUpdate
            | Self::UserPassword
            | Self::UserRevokeTokens
            | Self::UserDelete
            | Self::UserImport => FeedEffect::User,
            Self::TokenRevoke | Self::TokenSelfRevoke => FeedEffect::Token,
            Self::StoreImport => FeedEffect::Everything,
            // A secret opens logins, not tokens: rotating changes none.
            Self::UserSecretRotate | Self::UserSecretDelete | Self::UserSecretExpire => {
                FeedEffect::None
            }
            Self::KeyRotate | Self::KeyDrop => FeedEffect::None,
        }
    }

    /// Whether a partner, not an operator, caused it: such events are kept
    /// only while the token they concern may live (never longer than
    /// `--audit-retention`), so partners can not grow the audit log.
    pub fn by_partner(self) -> bool {
        matches!(self, Self::TokenSelfRevoke)
    }

    /// The names of the partner-caused actions ([`Action::by_partner`]).
    pub fn partner_caused() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|a| a.by_partner())
            .map(Self::as_str)
            .collect()
    }

    /// The names of the actions that change a user's state for the feed
    /// (a database query matches them).
    pub fn user_changes() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|a| a.feed_effect() == FeedEffect::User)
            .map(Self::as_str)
            .collect()
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_action() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!(Action::parse("user.renamed"), None);
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len(), "names are unique");
    }

    #[test]
    fn what_reaches_the_feed() {
        assert_eq!(Action::UserDelete.feed_effect(), FeedEffect::User);
        assert_eq!(Action::UserImport.feed_effect(), FeedEffect::User);
        assert_eq!(Action::UserRevokeTokens.feed_effect(), FeedEffect::User);
        assert_eq!(Action::TokenRevoke.feed_effect(), FeedEffect::Token);
        assert_eq!(Action::TokenSelfRevoke.feed_effect(), FeedEffect::Token);
        assert_eq!(Action::partner_caused(), ["token.self_revoke"]);
        assert!(!Action::TokenRevoke.by_partner());
        assert_eq!(Action::StoreImport.feed_effect(), FeedEffect::Everything);
        assert_eq!(Action::KeyRotate.feed_effect(), FeedEffect::None);
        assert_eq!(Action::KeyDrop.feed_effect(), FeedEffect::None);
        assert_eq!(Action::UserSecretRotate.feed_effect(), FeedEffect::None);
        assert_eq!(Action::UserSecretDelete.feed_effect(), FeedEffect::None);
        assert_eq!(Action::UserSecretExpire.feed_effect(), FeedEffect::None);
        assert_eq!(
            Action::user_changes(),
            [
                "user.create",
                "user.update",
                "user.password",
                "user.revoke_tokens",
                "user.delete",
                "user.import"
            ]
        );
    }
}
