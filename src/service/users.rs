//! Provisioning partner users: create, read, list, change, set a password,
//! revoke all their tokens, delete. Each mutation is one store transaction
//! with its audit event, committed before it returns.

use zeroize::Zeroizing;

use super::{AdminError, InternalError, Service, crypto};
use crate::domain::networks::AllowedNetworks;
use crate::domain::token_rate::TokenRate;
use crate::domain::user::{AccountStatus, User, Username, check_password_rule};
use crate::domain::values::TokenTtl;
use crate::login::login_check;
use crate::login::password::{self, PasswordHash};
use crate::runtime::time;
use crate::store::{Action, Page, UserChange};
use tessera_verify::scope::Scopes;

/// A new user, as the operator asks for it.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name (validated here: 422 when it breaks the rules).
    pub username: String,
    /// The password, or None to generate one.
    pub password: Option<String>,
    /// Unix seconds, or None.
    pub expires_at: Option<u64>,
    /// Seconds (1 s to 366 days), or None for the server default.
    pub token_ttl_secs: Option<u64>,
    /// Free text.
    pub note: Option<String>,
    /// What its tokens may be granted.
    pub scopes: Scopes,
    /// Where its logins may come from; empty: anywhere.
    pub allowed_networks: AllowedNetworks,
    /// At most this many logins with the right password; None: unlimited.
    pub token_rate: Option<TokenRate>,
    /// Logins need a DPoP proof.
    pub dpop_required: bool,
}

/// A change to a user: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New status.
    pub status: Option<AccountStatus>,
    /// New expiry or clear.
    pub expires_at: Option<Option<u64>>,
    /// New TTL or clear.
    pub token_ttl_secs: Option<Option<u64>>,
    /// New note or clear.
    pub note: Option<Option<String>>,
    /// New scopes (empty clears). Taking one away binds at once for tokens
    /// already issued: they may use only the scopes the user still holds.
    pub scopes: Option<Scopes>,
    /// New allowed networks (empty: anywhere).
    pub allowed_networks: Option<AllowedNetworks>,
    /// New token rate or clear (unlimited).
    pub token_rate: Option<Option<TokenRate>>,
    /// Whether logins need a DPoP proof from now on.
    pub dpop_required: Option<bool>,
}

impl UserPatch {
    /// The fields this patch touches, for the audit log.
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    fn fields(&self) -> Vec<&'static str> {
        [
            ("status", self.status.is_some()),
            ("expires_at", self.expires_at.is_some()),
            ("token_ttl_secs", self.token_ttl_secs.is_some()),
            ("note", self.note.is_some()),
            ("scopes", self.scopes.is_some()),
            ("allowed_networks", self.allowed_networks.is_some()),
            ("token_rate", self.token_rate.is_some()),
            ("dpop_required", self.dpop_required.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    fn apply(self, u: &mut User) {
        if let Some(s) = self.status {
            u.status = s;
        }
        if let Some(e) = self.expires_at {
            u.expires_at = e;
        }
        if let Some(t) = self.token_ttl_secs {
            u.token_ttl_secs = t;
        }
        if let Some(n) = self.note {
            u.note = n;
        }
        if let Some(s) = self.scopes {
            u.scopes = s;
        }
        if let Some(n) = self.allowed_networks {
            u.allowed_networks = n;
        }
        if let Some(r) = self.token_rate {
            u.token_rate = r;
        }
        if let Some(d) = self.dpop_required {
            u.dpop_required = d;
        }
    }
}

fn validate_ttl(ttl: Option<u64>) -> Result<(), AdminError> {
    ttl.map_or(Ok(()), |t| {
        TokenTtl::from_secs(t)
            .map(drop)
            .map_err(AdminError::Invalid)
    })
}

fn validate_time(field: &str, t: Option<u64>) -> Result<(), AdminError> {
    t.map_or(Ok(()), |t| {
        time::check_in_range(field, t)
            .map(|_| ())
            .map_err(AdminError::Invalid)
    })
}

impl Service {
    /// Hashes a new password with the scheme its shape calls for; generates
    /// a UUID v4 when none is given. Argon2id runs on tokio's blocking pool,
    /// never behind login checks. Returns the generated password, if any.
    pub(super) async fn hash_new_password(
        &self,
        chosen: Option<String>,
    ) -> Result<(PasswordHash, Option<Zeroizing<String>>), AdminError> {
        match chosen {
            None => {
                let generated = Zeroizing::new(password::generate().map_err(crypto)?);
                let hash = password::hash_generated(&generated).map_err(crypto)?;
                Ok((hash, Some(generated)))
            }
            Some(pw) => {
                let pw = Zeroizing::new(pw);
                check_password_rule(&pw)?;
                let hash = tokio::task::spawn_blocking(move || password::hash_new(&pw))
                    .await
                    .map_err(InternalError::from)?
                    .map_err(crypto)?;
                Ok((hash, None))
            }
        }
    }

    /// Whether `stored` accepts `given` (an operator's password in a
    /// declarative file, compared to decide whether anything changes):
    /// [`login_check::check`], off the async threads when the hash is slow.
    pub(super) async fn password_matches(
        &self,
        stored: &PasswordHash,
        given: &str,
    ) -> Result<bool, AdminError> {
        if !stored.is_slow() {
            return Ok(login_check::check(stored, true, given.as_bytes()));
        }
        let (stored, given) = (stored.clone(), Zeroizing::new(given.to_owned()));
        Ok(
            tokio::task::spawn_blocking(move || {
                login_check::check(&stored, true, given.as_bytes())
            })
            .await
            .map_err(InternalError::from)?,
        )
    }

    /// Records that a TTL is in force, so retired keys are kept long enough.
    async fn note_ttl(&self, ttl: Option<u64>) -> Result<(), AdminError> {
        if let Some(t) = ttl {
            self.blocking(move |s| s.raise_ttl_high_water(t)).await?;
        }
        Ok(())
    }

    /// Creates a user; returns it and the generated password, if any.
    pub async fn create_user(
        &self,
        new: NewUser,
    ) -> Result<(User, Option<Zeroizing<String>>), AdminError> {
        let name = Username::parse(&new.username)?;
        validate_ttl(new.token_ttl_secs)?;
        validate_time("expires_at", new.expires_at)?;
        let (hash, generated) = self.hash_new_password(new.password).await?;
        let generation = self.draw_generation().await?;
        let user = User {
            expires_at: new.expires_at,
            token_ttl_secs: new.token_ttl_secs,
            note: new.note,
            scopes: new.scopes,
            allowed_networks: new.allowed_networks,
            token_rate: new.token_rate,
            dpop_required: new.dpop_required,
            ..User::new(&name, hash, self.clock.now(), generation)
        };
        let detail = format!("password {}", user.password.scheme());
        let audit = self.audit(Action::UserCreate, name.as_str(), detail);
        self.note_ttl(user.token_ttl_secs).await?;
        let stored = user.clone();
        if !self
            .blocking(move |s| s.create_user(&stored, audit))
            .await?
        {
            return Err(AdminError::Conflict(format!("user {name} already exists")));
        }
        Ok((user, generated))
    }

    /// One user.
    pub fn user(&self, name: &Username) -> Result<User, AdminError> {
        self.store
            .user(name)
            .map_err(InternalError::from)?
            .ok_or_else(|| AdminError::no_user(name.as_str()))
    }

    /// A page of users sorted by name.
    pub fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Page<User>, AdminError> {
        Ok(self
            .store
            .list_users(after, limit)
            .map_err(InternalError::from)?)
    }

    pub(super) async fn update_user(
        &self,
        name: &Username,
        action: Action,
        detail: String,
        change: impl FnOnce(&mut User) + Send + 'static,
    ) -> Result<User, AdminError> {
        let audit = self.audit(action, name.as_str(), detail);
        let now = self.clock.now();
        let target = name.clone();
        let change: UserChange<'static> = Box::new(move |u: &mut User| {
            change(u);
            u.updated_at = now;
        });
        self.blocking(move |s| s.update_user(&target, change, audit))
            .await?
            .ok_or_else(|| AdminError::no_user(name.as_str()))
    }

    /// Applies a patch; `Some(None)` clears a field.
    pub async fn patch_user(&self, name: &Username, patch: UserPatch) -> Result<User, AdminError> {
        if let Some(ttl) = patch.token_ttl_secs {
            validate_ttl(ttl)?;
            self.note_ttl(ttl).await?;
        }
        if let Some(e) = patch.expires_at {
            validate_time("expires_at", e)?;
        }
        let detail = format!("changed {}", patch.fields().join(", "));
        self.update_user(name, Action::UserUpdate, detail, move |u| patch.apply(u))
            .await
    }

    /// Sets (or generates) a new password that replaces every secret at
    /// once (a rotation with an overlap is [`Service::rotate_secret`]);
    /// returns the generated one.
    pub async fn set_password(
        &self,
        name: &Username,
        chosen: Option<String>,
    ) -> Result<Option<Zeroizing<String>>, AdminError> {
        // Fail fast on a missing user before paying for a hash.
        self.user(name)?;
        let (hash, generated) = self.hash_new_password(chosen).await?;
        let detail = format!("password {}", hash.scheme());
        let now = self.clock.now();
        self.update_user(name, Action::UserPassword, detail, move |u| {
            u.replace_secrets(hash, now)
        })
        .await?;
        Ok(generated)
    }

    /// Invalidates every token issued to the user so far: the account
    /// moves to a fresh generation, so every token issued before this
    /// returns dies and every one issued after it lives, whatever the
    /// clocks of the hosts involved say. `tokens_valid_after` (the next
    /// second) is kept for operators and for tokens without a generation.
    pub async fn revoke_user_tokens(&self, name: &Username) -> Result<(), AdminError> {
        self.user(name)?;
        let generation = self.draw_generation().await?;
        let valid_after = self.clock.now() + 1;
        let detail = format!(
            "generation {generation}, tokens_valid_after {}",
            time::rfc3339(valid_after)
        );
        self.update_user(name, Action::UserRevokeTokens, detail, move |u| {
            u.tokens_valid_after = Some(valid_after);
            u.generation = u.generation.max(generation);
        })
        .await?;
        Ok(())
    }

    /// A generation no account has had yet (see [`User::generation`]).
    pub(super) async fn draw_generation(&self) -> Result<u64, AdminError> {
        self.blocking(|s| s.next_generation()).await
    }

    /// Deletes a user; their tokens fail from then on.
    pub async fn delete_user(&self, name: &Username) -> Result<(), AdminError> {
        let audit = self.audit(Action::UserDelete, name.as_str(), String::new());
        let target = name.clone();
        if self
            .blocking(move |s| s.delete_user(&target, audit))
            .await?
        {
            Ok(())
        } else {
            Err(AdminError::no_user(name.as_str()))
        }
    }
}
