//! Partner users: the validated [`Username`], the stored [`User`] record, its
//! public JSON view, and the account-state rules that decide whether a user
//! may get tokens and whether a token of theirs is still good. The verdict
//! itself is [`tessera_verify::account`], shared with partners' verifiers:
//! a [`User`] only says which [`AccountState`] it is in.

use serde::{Deserialize, Serialize};

use crate::login::password::PasswordHash;
use crate::runtime::time;
use crate::token::Claims;
pub use tessera_verify::account::{AccountState, Refusal as AccountError};
use tessera_verify::scope::Scopes;

use crate::domain::networks::AllowedNetworks;
use crate::domain::secrets::{PreviousSecret, SecretInfo, SecretView};
use crate::domain::token_rate::TokenRate;

/// The longest username accepted.
pub const MAX_USERNAME_LEN: usize = 128;
/// The longest password accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
pub use crate::domain::values::MAX_NOTE_CHARS;

/// A username: 1–128 characters of `A-Z a-z 0-9 . _ @ -`. Parsed once at
/// the edge and kept parsed down to the store; deserialising one (a stored
/// record, an import line) checks it too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl TryFrom<String> for Username {
    type Error = CredentialRuleError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if Self::is_valid(&raw) {
            Ok(Self(raw))
        } else {
            Err(CredentialRuleError::BadUsername)
        }
    }
}

impl From<Username> for String {
    fn from(name: Username) -> Self {
        name.0
    }
}

/// Lets maps keyed by username be searched by `&str` (the same hash and
/// equality as the name's text).
impl std::borrow::Borrow<str> for Username {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Username {
    type Err = CredentialRuleError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// Why a username or password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialRuleError {
    /// Empty, too long, or a character outside the allowed set.
    #[error("username must be 1-128 characters of A-Z a-z 0-9 . _ @ -")]
    BadUsername,
    /// Empty or over 1024 bytes.
    #[error("password must be 1-1024 bytes")]
    BadPassword,
}

impl Username {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self, CredentialRuleError> {
        if Self::is_valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CredentialRuleError::BadUsername)
        }
    }

    fn is_valid(raw: &str) -> bool {
        !raw.is_empty()
            && raw.len() <= MAX_USERNAME_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the fields of a login were refused before any work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginFieldError {
    /// The username or the password is empty.
    #[error("missing username or password")]
    Missing,
    /// Longer than any username can be.
    #[error("username too long (at most {MAX_USERNAME_LEN} characters)")]
    UsernameTooLong,
    /// Longer than any password can be.
    #[error("password too long (at most {MAX_PASSWORD_LEN} bytes)")]
    PasswordTooLong,
}

/// The length rule of a login's fields, the same on every login endpoint
/// (`/generateToken`, `/oauth/token`): both present, neither longer than
/// a username or password can be, so an oversized guess costs no hash.
pub fn check_login_fields(username: &str, password: &str) -> Result<(), LoginFieldError> {
    if username.is_empty() || password.is_empty() {
        Err(LoginFieldError::Missing)
    } else if username.chars().count() > MAX_USERNAME_LEN {
        Err(LoginFieldError::UsernameTooLong)
    } else if password.len() > MAX_PASSWORD_LEN {
        Err(LoginFieldError::PasswordTooLong)
    } else {
        Ok(())
    }
}

/// Checks a password's length rule (1–1024 bytes).
pub fn check_password_rule(password: &str) -> Result<(), CredentialRuleError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        Err(CredentialRuleError::BadPassword)
    } else {
        Ok(())
    }
}

/// Whether an account is switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// May get tokens.
    Active,
    /// May not get tokens; its tokens stop verifying.
    Disabled,
}

/// A user as stored. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub username: Username,
    /// Active or disabled.
    pub status: AccountStatus,
    /// When the account was created.
    pub created_at: u64,
    /// When the account last changed.
    pub updated_at: u64,
    /// After this moment the account gets no tokens and its tokens fail.
    pub expires_at: Option<u64>,
    /// Overrides the server's token TTL for this user.
    pub token_ttl_secs: Option<u64>,
    /// Tokens issued before this second are invalid (set by revoke-all).
    pub tokens_valid_after: Option<u64>,
    /// Free text for operators.
    pub note: Option<String>,
    /// The current secret's hash and its scheme (the rest of the current
    /// secret is [`User::secret`]).
    pub password: PasswordHash,
    /// Drawn from the store's ever-growing counter when the account is
    /// created and at each revoke-all; tokens carry it (claim `gen`) and die
    /// once it passes theirs. 0 for accounts from before generations (see
    /// [`tessera_verify::account`]).
    #[serde(default)]
    pub generation: u64,
    /// The scopes the account holds (see [`tessera_verify::scope`]): its
    /// tokens are granted these, and may use them only while it still does.
    #[serde(default)]
    pub scopes: Scopes,
    /// Where its logins may come from (SPEC §15); empty: anywhere.
    #[serde(default)]
    pub allowed_networks: AllowedNetworks,
    /// At most this many logins with the right password; None: unlimited.
    #[serde(default)]
    pub token_rate: Option<TokenRate>,
    /// The current secret's id and times (id 0 and the account's last
    /// change for records from before secrets had ids).
    #[serde(default)]
    pub secret: SecretInfo,
    /// The secret a rotation replaced, while it may still be in its grace
    /// (see [`crate::domain::secrets`]).
    #[serde(default)]
    pub previous_secret: Option<PreviousSecret>,
    /// The last login with a right password (batched, within a minute).
    #[serde(default)]
    pub last_login_at: Option<u64>,
    /// Logins must carry a DPoP proof, so every token is bound to the
    /// partner's key (SPEC §17).
    #[serde(default)]
    pub dpop_required: bool,
}

impl User {
    /// A new active account created at `now` in `generation`, with no
    /// expiry, TTL override, revocation or note.
    pub fn new(username: &Username, password: PasswordHash, now: u64, generation: u64) -> Self {
        Self {
            username: username.clone(),
            status: AccountStatus::Active,
            created_at: now,
            updated_at: now,
            expires_at: None,
            token_ttl_secs: None,
            tokens_valid_after: None,
            note: None,
            password,
            generation,
            scopes: Scopes::default(),
            allowed_networks: AllowedNetworks::default(),
            token_rate: None,
            secret: SecretInfo::new(now, None),
            previous_secret: None,
            last_login_at: None,
            dpop_required: false,
        }
    }

    /// What the account says about its tokens, for the shared verdict (and
    /// the revocation feed).
    pub fn account_state(&self) -> AccountState {
        AccountState {
            generation: self.generation,
            after: self.created_at.max(self.tokens_valid_after.unwrap_or(0)),
            disabled: self.status == AccountStatus::Disabled,
            deleted: false,
            expires_at: self.expires_at,
        }
    }

    /// Whether the account may get a token at `now`.
    pub fn may_get_tokens(&self, now: u64) -> Result<(), AccountError> {
        self.account_state().may_get_tokens(now)
    }

    /// Whether a token with these claims is still good for this account.
    pub fn accepts(&self, claims: &Claims, now: u64) -> Result<(), AccountError> {
        self.account_state().accepts(claims, now)
    }

    /// The expiry of a token issued at `now`: `min(now + ttl, expires_at)`.
    pub fn token_exp(&self, now: u64, default_ttl: u64) -> u64 {
        let ttl = self.token_ttl_secs.unwrap_or(default_ttl);
        let exp = now.saturating_add(ttl);
        self.expires_at.map_or(exp, |e| exp.min(e))
    }

    /// The JSON view the admin API returns at `now` (no password hash; the
    /// secrets valid at `now`).
    pub fn view(&self, now: u64) -> UserView {
        UserView {
            username: self.username.to_string(),
            status: self.status,
            created_at: time::rfc3339(self.created_at),
            updated_at: time::rfc3339(self.updated_at),
            expires_at: self.expires_at.map(time::rfc3339),
            token_ttl_secs: self.token_ttl_secs,
            tokens_valid_after: self.tokens_valid_after.map(time::rfc3339),
            note: self.note.clone(),
            scopes: self.scopes.clone(),
            allowed_networks: self.allowed_networks.clone(),
            token_rate: self.token_rate,
            secrets: self.secret_views(now),
            last_login_at: self.last_login_at.map(time::rfc3339),
            dpop_required: self.dpop_required,
        }
    }
}

/// The user object of SPEC §3 (the CLI reads it back from the API).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub username: String,
    /// `active` or `disabled`.
    pub status: AccountStatus,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// RFC 3339 UTC or null.
    pub expires_at: Option<String>,
    /// Seconds or null.
    pub token_ttl_secs: Option<u64>,
    /// RFC 3339 UTC or null.
    pub tokens_valid_after: Option<String>,
    /// Free text or null.
    pub note: Option<String>,
    /// Sorted; `[]` when none.
    #[serde(default)]
    pub scopes: Scopes,
    /// Normalised CIDRs; `[]`: anywhere.
    #[serde(default)]
    pub allowed_networks: AllowedNetworks,
    /// `N/s`, `N/min`, `N/h`, or null: unlimited.
    #[serde(default)]
    pub token_rate: Option<TokenRate>,
    /// The valid secrets, newest first (SPEC §15).
    #[serde(default)]
    pub secrets: Vec<SecretView>,
    /// RFC 3339 UTC, or null before the first login.
    #[serde(default)]
    pub last_login_at: Option<String>,
    /// Logins need a DPoP proof.
    #[serde(default)]
    pub dpop_required: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        let name = Username::parse("u").unwrap();
        User::new(
            &name,
            PasswordHash::Argon2id { phc: String::new() },
            1000,
            0,
        )
    }

    fn claims(iat: u64) -> Claims {
        Claims {
            iss: "tessera".into(),
            sub: "u".into(),
            iat,
            exp: iat + 60,
            jti: "j".into(),
            generation: None,
            scope: None,
            cnf: None,
        }
    }

    #[test]
    fn login_fields_are_both_present_and_no_longer_than_a_credential() {
        let name = "u".repeat(MAX_USERNAME_LEN);
        let password = "p".repeat(MAX_PASSWORD_LEN);
        assert_eq!(check_login_fields(&name, &password), Ok(()));
        assert_eq!(check_login_fields("", "p"), Err(LoginFieldError::Missing));
        assert_eq!(check_login_fields("u", ""), Err(LoginFieldError::Missing));
        // Characters, not bytes, for the username.
        assert_eq!(
            check_login_fields(&"é".repeat(MAX_USERNAME_LEN), "p"),
            Ok(())
        );
        assert_eq!(
            check_login_fields(&format!("{name}u"), "p"),
            Err(LoginFieldError::UsernameTooLong)
        );
        assert_eq!(
            check_login_fields("u", &format!("{password}p")),
            Err(LoginFieldError::PasswordTooLong)
        );
    }

    #[test]
    fn username_rules() {
        assert!(Username::parse("channel_user").is_ok());
        assert!(Username::parse("a.b-c@d_E9").is_ok());
        assert!(Username::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a b", "ü", "a/b", "a\0", "a%20"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Username>(&format!("{bad:?}")).is_err());
        }
        let name: Username = serde_json::from_str("\"ok\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"ok\"");
        assert!(Username::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn password_length_rule_is_exact() {
        assert_eq!(check_password_rule("p"), Ok(()));
        assert_eq!(check_password_rule(&"p".repeat(MAX_PASSWORD_LEN)), Ok(()));
        assert_eq!(
            check_password_rule(&"p".repeat(MAX_PASSWORD_LEN + 1)),
            Err(CredentialRuleError::BadPassword)
        );
        assert_eq!(
            check_password_rule(""),
            Err(CredentialRuleError::BadPassword)
        );
    }

    #[test]
    fn account_state_rules() {
        let mut u = user();
        assert_eq!(u.may_get_tokens(5000), Ok(()));
        u.expires_at = Some(5000);
        assert_eq!(u.may_get_tokens(4999), Ok(()));
        assert_eq!(u.may_get_tokens(5000), Err(AccountError::Expired));
        u.expires_at = None;
        u.status = AccountStatus::Disabled;
        assert_eq!(u.may_get_tokens(5000), Err(AccountError::Disabled));
    }

    #[test]
    fn tokens_before_creation_or_revoke_all_are_refused() {
        let mut u = user();
        assert_eq!(u.accepts(&claims(999), 1001), Err(AccountError::Revoked));
        assert_eq!(u.accepts(&claims(1000), 1001), Ok(()));
        u.tokens_valid_after = Some(1500);
        assert_eq!(u.accepts(&claims(1499), 1600), Err(AccountError::Revoked));
        assert_eq!(u.accepts(&claims(1500), 1600), Ok(()));
        u.generation = 3;
        let current = Claims {
            generation: Some(3),
            scope: None,
            ..claims(1)
        };
        assert_eq!(u.accepts(&current, 1600), Ok(()), "the generation decides");
        assert_eq!(u.accepts(&claims(1500), 1600), Err(AccountError::Revoked));
    }

    #[test]
    fn token_never_outlives_account() {
        let mut u = user();
        assert_eq!(u.token_exp(2000, 3600), 5600);
        u.token_ttl_secs = Some(60);
        assert_eq!(u.token_exp(2000, 3600), 2060);
        u.expires_at = Some(2030);
        assert_eq!(u.token_exp(2000, 3600), 2030);
    }
}
