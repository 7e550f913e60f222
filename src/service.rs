//! The use cases: issue a token for credentials, verify a bearer, and every
//! operator action. Knows nothing of HTTP; talks to redb only through
//! `store`. Hot-path state (keyring, revoked jtis, verified signatures) lives
//! in memory and is replaced whenever a mutation commits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::{Mutex, mpsc};
use zeroize::Zeroizing;

use crate::client::ClientKey;
use crate::config::ThrottleConfig;
use crate::hash_pool::{HashPool, PoolError};
use crate::keys::{self, KeyStatus, Keyring, RotateError};
use crate::metrics::Metrics;
use crate::password::{self, Attempt, PasswordHash};
use crate::snapshot::{self, ImportCounts};
use crate::store::{Audit, AuditEvent, Page, Store, StoreError};
use crate::throttle::{self, Throttle};
use crate::time::{self, Clock};
use crate::token::{self, Claims, TokenError};
use crate::user::{
    AccountError, AccountStatus, CredentialRuleError, User, Username, check_password_rule,
};

/// How long verifiers may cache the JWKS (its `Cache-Control: max-age`), and
/// so the shortest time between two key rotations.
pub const JWKS_MAX_AGE_SECS: u64 = 300;
/// How many verified token signatures are remembered.
const VERIFIED_CACHE_CAPACITY: usize = 8192;

/// Settings the use cases need from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `iss` claim.
    pub issuer: String,
    /// Token lifetime for users without their own `token_ttl_secs`.
    pub default_ttl_secs: u64,
    /// Login throttling per client.
    pub throttle: ThrottleConfig,
    /// Argon2id login checks that may wait for a hashing thread.
    pub hash_queue: usize,
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Unknown user or wrong password (indistinguishable on purpose).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password matched but the account may not get tokens.
    #[error("account may not get tokens: {0}")]
    AccountState(AccountError),
    /// The client is locked out after too many failures; retry after this.
    #[error("too many attempts")]
    Throttled(Duration),
    /// Every hashing thread is busy and the queue is full; nothing was
    /// checked and nothing was counted against the client.
    #[error("server busy")]
    Busy,
    /// Something broke inside; logged, shown as a plain 500.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A token-level rule failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token's `jti` was revoked.
    #[error("token revoked")]
    Revoked,
    /// The account refuses the token.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Something broke inside; logged, shown as a plain 500.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl VerifyError {
    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Token(TokenError::Malformed) => "malformed",
            Self::Token(TokenError::UnsupportedAlgorithm | TokenError::CriticalHeader) => {
                "bad_header"
            }
            Self::Token(TokenError::UnknownKey) => "unknown_key",
            Self::Token(TokenError::BadSignature) => "bad_signature",
            Self::Token(TokenError::WrongIssuer) => "wrong_issuer",
            Self::Token(TokenError::NotYetValid) => "not_yet_valid",
            Self::Token(TokenError::Expired) => "expired",
            Self::Revoked | Self::Account(AccountError::Revoked) => "revoked",
            Self::Account(_) => "account",
            Self::Internal(_) => "error",
        }
    }
}

/// A failure that is not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random source or a hash failed.
    #[error("{0}")]
    Crypto(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The stored keys do not form a keyring.
    #[error(transparent)]
    Keyring(#[from] keys::KeyringError),
}

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Input that breaks a rule (422).
    #[error("{0}")]
    Invalid(String),
    /// No such user, key or revocation (404).
    #[error("{0}")]
    NotFound(String),
    /// The action conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Something broke inside (500).
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadSnapshot(_) => AdminError::Invalid(e.to_string()),
            other => AdminError::Internal(other.into()),
        }
    }
}

impl From<CredentialRuleError> for AdminError {
    fn from(e: CredentialRuleError) -> Self {
        AdminError::Invalid(e.to_string())
    }
}

/// A new user, as the operator asks for it.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name (validated here).
    pub username: String,
    /// The password, or None to generate one.
    pub password: Option<String>,
    /// Unix seconds, or None.
    pub expires_at: Option<u64>,
    /// Seconds (> 0), or None for the server default.
    pub token_ttl_secs: Option<u64>,
    /// Free text.
    pub note: Option<String>,
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
}

/// A key as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyView {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// next, active or retired.
    pub status: KeyStatus,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 or null.
    pub retired_at: Option<String>,
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// A whole token (its signature must verify).
    Token(String),
    /// A jti with the expiry after which it can be forgotten.
    Jti {
        /// The token id.
        jti: String,
        /// Unix seconds.
        exp: u64,
    },
}

/// Size of the chunks an export is streamed in.
const EXPORT_CHUNK: usize = 64 * 1024;

/// Buffers export output and hands it to the HTTP response in chunks; stops
/// the export (BrokenPipe) when the client has gone away.
struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Remembers token strings whose signature and claim types verified, so the
/// hot path (a partner sending one token all hour) skips the signature check.
/// Time, revocation and account rules are still checked on every call.
/// Each keyring has its own cache, so an entry verified under one keyring
/// can never be found under the next.
#[derive(Default)]
struct VerifiedCache(RwLock<HashMap<Box<str>, Arc<Claims>>>);

impl VerifiedCache {
    /// A poisoned lock only means a panic elsewhere mid-insert; a miss is
    /// always safe (the signature is then checked again).
    fn get(&self, token: &str) -> Option<Arc<Claims>> {
        self.0.read().ok()?.get(token).cloned()
    }

    fn insert(&self, token: &str, claims: &Arc<Claims>) {
        if let Ok(mut map) = self.0.write() {
            if map.len() >= VERIFIED_CACHE_CAPACITY {
                map.clear();
            }
            map.insert(token.into(), claims.clone());
        }
    }
}

/// The keyring every request reads, with the signatures verified under it.
struct KeyState {
    ring: Keyring,
    verified: VerifiedCache,
}

impl KeyState {
    fn new(ring: Keyring) -> Self {
        Self {
            ring,
            verified: VerifiedCache::default(),
        }
    }
}

/// The running service: every use case, shared by both listeners.
pub struct Service {
    store: Arc<Store>,
    settings: Settings,
    clock: Clock,
    metrics: Metrics,
    /// Replaced whole, under `key_changes`, after each commit of keys.
    keys: ArcSwap<KeyState>,
    throttle: Throttle,
    hash_pool: HashPool,
    key_changes: Mutex<()>,
}

fn crypto(e: impl std::fmt::Display) -> InternalError {
    InternalError::Crypto(e.to_string())
}

impl Service {
    /// Loads (or on first start creates) the keyring and revocation set.
    pub fn start(store: Store, settings: Settings, clock: Clock) -> Result<Self, InternalError> {
        let now = clock.now();
        let mut records = store.keys()?;
        if records.is_empty() {
            records = keys::initial_records(now).map_err(crypto)?;
            store.replace_keys(&records, None)?;
            tracing::info!(
                count = records.len(),
                "created signing keys (active and next)"
            );
        }
        store.raise_ttl_high_water(settings.default_ttl_secs)?;
        let keyring = Keyring::load(&records)?;
        let hash_pool = HashPool::new(HashPool::default_threads(), settings.hash_queue);
        // Build the Argon2id dummy hash on the thread that will reuse its memory.
        hash_pool.spawn(password::warm_up);
        Ok(Self {
            store: Arc::new(store),
            throttle: Throttle::new(settings.throttle, throttle::DEFAULT_CAPACITY),
            settings,
            clock,
            metrics: Metrics::new(),
            keys: ArcSwap::from_pointee(KeyState::new(keyring)),
            hash_pool,
            key_changes: Mutex::new(()),
        })
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Publishes a new keyring (with an empty verified-token cache). Call
    /// with `key_changes` held, right after the keys were committed.
    fn set_keyring(&self, ring: Keyring) {
        self.keys.store(Arc::new(KeyState::new(ring)));
    }

    /// Runs a store call on the blocking pool (writes fsync).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(InternalError::from)??)
    }

    /// Checks a login guess against a user's hash (None: unknown user) with
    /// the work of the guess's shape (SPEC §4). Argon2id runs on the bounded
    /// hash pool and is counted only if it runs; the fast scheme runs here.
    async fn check_login(
        &self,
        stored: Option<&PasswordHash>,
        guess: &str,
    ) -> Result<bool, IssueError> {
        let attempt = Attempt::plan(stored, guess);
        let target = attempt.target();
        if !target.is_slow() {
            self.metrics.password_check(target.scheme());
            return Ok(password::check(
                target,
                attempt.can_match(),
                guess.as_bytes(),
            ));
        }
        let counter = self.metrics.password_check_counter(target.scheme());
        let (target, can_match) = (target.clone(), attempt.can_match());
        let guess = Zeroizing::new(guess.to_owned());
        self.hash_pool
            .run(move || {
                counter.inc();
                password::check(&target, can_match, guess.as_bytes())
            })
            .await
            .map_err(|e| match e {
                PoolError::Busy => IssueError::Busy,
                PoolError::Stopped => IssueError::Internal(crypto(e)),
            })
    }

    /// Hashes a new password with the scheme its shape calls for; generates
    /// a UUID v4 when none is given. Argon2id runs on tokio's blocking pool,
    /// never behind login checks. Returns the generated password, if any.
    async fn hash_new_password(
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

    /// `POST /generateToken` and `POST /oauth/token`: charges the attempt to
    /// the client's throttle, checks the credentials (the work depends only
    /// on the guess's shape), refunds the charge when the password matched
    /// or was never checked, then checks the account state and signs.
    pub async fn issue_token(
        &self,
        client: &ClientKey,
        username: &str,
        password: &str,
    ) -> Result<IssuedToken, IssueError> {
        let charge = self
            .throttle
            .charge(client, Instant::now())
            .map_err(IssueError::Throttled)?;
        let user = match Username::parse(username) {
            Ok(name) => self
                .store
                .user(name.as_str())
                .map_err(InternalError::from)?,
            Err(_) => None,
        };
        let matched = match self
            .check_login(user.as_ref().map(|u| &u.password), password)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.throttle.refund(client, charge);
                return Err(e);
            }
        };
        let Some(user) = user.filter(|_| matched) else {
            tracing::info!(client = %client, "failed login");
            if let Some(lockout) = charge.lockout {
                tracing::warn!(client = %client, seconds = lockout.as_secs(), "client throttled after repeated failed logins");
            }
            return Err(IssueError::InvalidCredentials);
        };
        self.throttle.refund(client, charge);
        let now = self.clock.now();
        user.may_get_tokens(now).map_err(IssueError::AccountState)?;
        let exp = user.token_exp(now, self.settings.default_ttl_secs);
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: user.username,
            iat: now,
            exp,
            jti: token::new_jti(),
        };
        let keys = self.keys.load();
        let active = keys.ring.active();
        Ok(IssuedToken {
            token: token::encode(&claims, &active.header_b64, active),
            expires_in: exp.saturating_sub(now),
        })
    }

    /// `GET /verify`: every rule of SPEC §2, the signature step cached per
    /// token string.
    pub fn verify_bearer(&self, bearer: &str) -> Result<Arc<Claims>, VerifyError> {
        let keys = self.keys.load();
        let claims = match keys.verified.get(bearer) {
            Some(c) => c,
            None => {
                let c = Arc::new(token::verify_signature(bearer, |kid| {
                    keys.ring.verifying_key(kid)
                })?);
                keys.verified.insert(bearer, &c);
                c
            }
        };
        let now = self.clock.now();
        token::check_claims(&claims, &self.settings.issuer, now)?;
        if self.store.is_revoked(&claims.jti) {
            return Err(VerifyError::Revoked);
        }
        let user = self
            .store
            .user(&claims.sub)
            .map_err(InternalError::from)?
            .ok_or(AccountError::Deleted)?;
        user.accepts(&claims, now)?;
        Ok(claims)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> String {
        self.keys.load().ring.jwks().to_owned()
    }

    /// Readiness: the store answers and a signing key is loaded.
    pub fn ready(&self) -> bool {
        self.store.user_count().is_ok()
    }

    fn audit(&self, action: &'static str, target: &str, detail: String) -> Audit {
        Audit {
            at: self.clock.now(),
            action,
            target: target.to_owned(),
            detail,
        }
    }

    fn require_user(&self, username: &str) -> Result<Username, AdminError> {
        Username::parse(username)
            .map_err(|_| AdminError::NotFound(format!("no user named {username:?}")))
    }

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
        let (hash, generated) = self.hash_new_password(new.password).await?;
        let user = User {
            expires_at: new.expires_at,
            token_ttl_secs: new.token_ttl_secs,
            note: new.note,
            ..User::new(&name, hash, self.clock.now())
        };
        let detail = format!("password {}", user.password.scheme());
        let audit = self.audit("user.create", name.as_str(), detail);
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
    pub fn user(&self, username: &str) -> Result<User, AdminError> {
        let name = self.require_user(username)?;
        self.store
            .user(name.as_str())
            .map_err(InternalError::from)?
            .ok_or_else(|| AdminError::NotFound(format!("no user named {username:?}")))
    }

    /// A page of users sorted by name.
    pub fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Page<User>, AdminError> {
        Ok(self
            .store
            .list_users(after, limit)
            .map_err(InternalError::from)?)
    }

    async fn update_user(
        &self,
        username: &str,
        action: &'static str,
        detail: String,
        change: impl FnOnce(&mut User) + Send + 'static,
    ) -> Result<User, AdminError> {
        let name = self.require_user(username)?;
        let audit = self.audit(action, name.as_str(), detail);
        let now = self.clock.now();
        let target = name.to_string();
        self.blocking(move |s| {
            s.update_user(
                &target,
                |u| {
                    change(u);
                    u.updated_at = now;
                },
                audit,
            )
        })
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no user named {username:?}")))
    }

    /// Applies a patch; `Some(None)` clears a field.
    pub async fn patch_user(&self, username: &str, patch: UserPatch) -> Result<User, AdminError> {
        if let Some(ttl) = patch.token_ttl_secs {
            validate_ttl(ttl)?;
            self.note_ttl(ttl).await?;
        }
        let mut changed = Vec::new();
        if patch.status.is_some() {
            changed.push("status");
        }
        if patch.expires_at.is_some() {
            changed.push("expires_at");
        }
        if patch.token_ttl_secs.is_some() {
            changed.push("token_ttl_secs");
        }
        if patch.note.is_some() {
            changed.push("note");
        }
        let detail = format!("changed {}", changed.join(", "));
        self.update_user(username, "user.update", detail, move |u| {
            if let Some(s) = patch.status {
                u.status = s;
            }
            if let Some(e) = patch.expires_at {
                u.expires_at = e;
            }
            if let Some(t) = patch.token_ttl_secs {
                u.token_ttl_secs = t;
            }
            if let Some(n) = patch.note {
                u.note = n;
            }
        })
        .await
    }

    /// Sets (or generates) a new password; returns the generated one.
    pub async fn set_password(
        &self,
        username: &str,
        chosen: Option<String>,
    ) -> Result<Option<Zeroizing<String>>, AdminError> {
        // Fail fast on a missing user before paying for a hash.
        self.user(username)?;
        let (hash, generated) = self.hash_new_password(chosen).await?;
        let detail = format!("password {}", hash.scheme());
        self.update_user(username, "user.password", detail, move |u| {
            u.password = hash
        })
        .await?;
        Ok(generated)
    }

    /// Invalidates every token issued to the user so far, including those of
    /// the current second.
    pub async fn revoke_user_tokens(&self, username: &str) -> Result<(), AdminError> {
        let valid_after = self.clock.now() + 1;
        let detail = format!("tokens_valid_after {}", time::rfc3339(valid_after));
        self.update_user(username, "user.revoke_tokens", detail, move |u| {
            u.tokens_valid_after = Some(valid_after);
        })
        .await?;
        Ok(())
    }

    /// Deletes a user; their tokens fail from then on.
    pub async fn delete_user(&self, username: &str) -> Result<(), AdminError> {
        let name = self.require_user(username)?;
        let audit = self.audit("user.delete", name.as_str(), String::new());
        let target = name.to_string();
        if self
            .blocking(move |s| s.delete_user(&target, audit))
            .await?
        {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!("no user named {username:?}")))
        }
    }

    /// Revokes one token, by its string (signature must verify) or by jti.
    pub async fn revoke_token(&self, target: RevokeTarget) -> Result<(String, u64), AdminError> {
        let (jti, exp) = match target {
            RevokeTarget::Token(t) => {
                let keys = self.keys.load();
                let c = token::verify_signature(&t, |kid| keys.ring.verifying_key(kid))
                    .map_err(|e| AdminError::Invalid(format!("not a token of this server: {e}")))?;
                (c.jti, c.exp)
            }
            RevokeTarget::Jti { jti, exp } => (jti, exp),
        };
        snapshot::check_revocation(&jti, exp).map_err(AdminError::Invalid)?;
        let audit = self.audit("token.revoke", &jti, format!("exp {}", time::rfc3339(exp)));
        let (j, e) = (jti.clone(), exp);
        self.blocking(move |s| s.revoke(&j, e, audit)).await?;
        Ok((jti, exp))
    }

    /// A page of revocations sorted by jti.
    pub fn list_revocations(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, AdminError> {
        Ok(self
            .store
            .list_revocations(after, limit)
            .map_err(InternalError::from)?)
    }

    /// The keyring as the admin API shows it.
    pub fn keys(&self) -> Result<Vec<KeyView>, AdminError> {
        Ok(self
            .store
            .keys()
            .map_err(InternalError::from)?
            .into_iter()
            .map(|r| KeyView {
                kid: r.kid,
                status: r.status,
                created_at: time::rfc3339(r.created_at),
                retired_at: r.retired_at.map(time::rfc3339),
            })
            .collect())
    }

    /// Promotes the next key, makes a new next key, retires the old active
    /// key until its last token can have expired.
    pub async fn rotate_keys(&self, force: bool) -> Result<Vec<KeyView>, AdminError> {
        let _guard = self.key_changes.lock().await;
        let now = self.clock.now();
        let records = self.blocking(|s| s.keys()).await?;
        let max_ttl = self.blocking(|s| s.ttl_high_water()).await?;
        let rotated = keys::rotate(&records, now, max_ttl, JWKS_MAX_AGE_SECS, force).map_err(
            |e| match e {
                RotateError::TooSoon { .. } => AdminError::Conflict(e.to_string()),
                other => AdminError::Internal(crypto(other)),
            },
        )?;
        let ring = Keyring::load(&rotated).map_err(InternalError::from)?;
        let new_active = ring.active().kid.clone();
        let audit = self.audit(
            "key.rotate",
            &new_active,
            "next key promoted to active".into(),
        );
        let to_store = rotated.clone();
        self.blocking(move |s| s.replace_keys(&to_store, Some(audit)))
            .await?;
        self.set_keyring(ring);
        self.keys()
    }

    /// Audit events newest first.
    pub fn audit_events(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AdminError> {
        Ok(self
            .store
            .audit_events(before, limit)
            .map_err(InternalError::from)?)
    }

    /// Starts a JSON Lines snapshot of users, keys and revocations, taken in
    /// one read transaction; 64 KiB chunks arrive on the returned channel as
    /// they are written, so memory stays flat however many users there are.
    /// A failure midway ends the stream with an error (the snapshot then
    /// lacks its end line, which an import refuses).
    pub fn export(&self) -> mpsc::Receiver<std::io::Result<Bytes>> {
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(EXPORT_CHUNK),
            };
            if let Err(e) = store.export(&mut out, now) {
                tracing::error!(error = %e, "export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        rx
    }

    /// Replaces users, keys and revocations with a snapshot, atomically.
    /// The snapshot arrives as chunks (an `Err` chunk: the upload broke off,
    /// and nothing changes) and is read one line at a time on the blocking
    /// pool, so it is never held whole in memory.
    pub async fn import(
        &self,
        mut chunks: mpsc::Receiver<Result<Bytes, String>>,
    ) -> Result<ImportCounts, AdminError> {
        let _guard = self.key_changes.lock().await;
        let at = self.clock.now();
        let counts = self
            .blocking(move |s| {
                let lines = snapshot::Lines::new(std::iter::from_fn(|| chunks.blocking_recv()));
                s.import(lines, |c| Audit {
                    at,
                    action: "store.import",
                    target: "-".into(),
                    detail: format!(
                        "{} users, {} keys, {} revocations",
                        c.users, c.keys, c.revocations
                    ),
                })
            })
            .await?;
        let records = self.blocking(|s| s.keys()).await?;
        self.set_keyring(Keyring::load(&records).map_err(InternalError::from)?);
        Ok(counts)
    }

    /// Forgets revocations whose tokens have expired and retired keys past
    /// their retention. Returns (revocations, keys) removed.
    pub async fn prune(&self) -> Result<(u64, usize), AdminError> {
        let now = self.clock.now();
        let pruned = self.blocking(move |s| s.prune_revocations(now)).await?;
        let _guard = self.key_changes.lock().await;
        let records = self.blocking(|s| s.keys()).await?;
        let kept = keys::without_expired(&records, now);
        let dropped = records.len() - kept.len();
        if dropped > 0 {
            let ring = Keyring::load(&kept).map_err(InternalError::from)?;
            let audit = self.audit(
                "key.drop",
                "-",
                format!("{dropped} retired keys past retention"),
            );
            self.blocking(move |s| s.replace_keys(&kept, Some(audit)))
                .await?;
            self.set_keyring(ring);
        }
        Ok((pruned, dropped))
    }

    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let users = self.store.user_count().unwrap_or(0);
        let revocations = self.store.revocation_count();
        self.metrics.render(users, revocations)
    }
}

fn validate_ttl(ttl: Option<u64>) -> Result<(), AdminError> {
    ttl.map_or(Ok(()), |t| {
        snapshot::check_ttl(t).map_err(AdminError::Invalid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_900_000_000;

    fn service(dir: &std::path::Path, clock: Clock) -> Service {
        let store = Store::open(dir).unwrap();
        Service::start(
            store,
            Settings {
                issuer: "tessera".into(),
                default_ttl_secs: 3600,
                throttle: ThrottleConfig {
                    failures: 10,
                    window: Duration::from_secs(300),
                    lockout: Duration::from_secs(60),
                    max_lockout: Duration::from_secs(3600),
                },
                hash_queue: 64,
            },
            clock,
        )
        .unwrap()
    }

    fn local() -> ClientKey {
        ClientKey::from_ip(std::net::Ipv4Addr::LOCALHOST.into())
    }

    async fn user_with_token(s: &Service, name: &str) -> String {
        let (_, pw) = s
            .create_user(NewUser {
                username: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        s.issue_token(&local(), name, &pw.unwrap())
            .await
            .unwrap()
            .token
    }

    #[tokio::test]
    async fn issue_then_verify_and_account_rules() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::fixed(T0);
        let s = service(dir.path(), clock.clone());
        let t = user_with_token(&s, "alice").await;
        let c = s.verify_bearer(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.iat, c.exp), ("alice", T0, T0 + 3600));

        s.patch_user(
            "alice",
            UserPatch {
                status: Some(AccountStatus::Disabled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            s.verify_bearer(&t),
            Err(VerifyError::Account(AccountError::Disabled))
        ));
        s.patch_user(
            "alice",
            UserPatch {
                status: Some(AccountStatus::Active),
                expires_at: Some(Some(T0 + 10)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(s.verify_bearer(&t).is_ok());
        clock.set(T0 + 10);
        assert!(matches!(
            s.verify_bearer(&t),
            Err(VerifyError::Account(AccountError::Expired))
        ));
        s.patch_user(
            "alice",
            UserPatch {
                expires_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        clock.set(T0 + 3600);
        assert!(matches!(
            s.verify_bearer(&t),
            Err(VerifyError::Token(TokenError::Expired))
        ));
    }

    #[tokio::test]
    async fn recreated_user_does_not_revive_old_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::fixed(T0);
        let s = service(dir.path(), clock.clone());
        let t = user_with_token(&s, "bob").await;
        s.delete_user("bob").await.unwrap();
        assert!(matches!(
            s.verify_bearer(&t),
            Err(VerifyError::Account(AccountError::Deleted))
        ));
        clock.set(T0 + 1);
        user_with_token(&s, "bob").await;
        assert!(matches!(
            s.verify_bearer(&t),
            Err(VerifyError::Account(AccountError::Revoked))
        ));
    }

    #[tokio::test]
    async fn revoke_all_kills_tokens_of_the_same_second() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::fixed(T0);
        let s = service(dir.path(), clock.clone());
        let t = user_with_token(&s, "carol").await;
        s.revoke_user_tokens("carol").await.unwrap();
        assert!(matches!(
            s.verify_bearer(&t),
            Err(VerifyError::Account(AccountError::Revoked))
        ));
        clock.set(T0 + 1);
        let pw = s.set_password("carol", None).await.unwrap().unwrap();
        let t2 = s.issue_token(&local(), "carol", &pw).await.unwrap().token;
        assert!(s.verify_bearer(&t2).is_ok());
    }

    #[tokio::test]
    async fn revoked_jti_is_refused_and_pruned_after_exp() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::fixed(T0);
        let s = service(dir.path(), clock.clone());
        let t = user_with_token(&s, "dave").await;
        s.revoke_token(RevokeTarget::Token(t.clone()))
            .await
            .unwrap();
        assert!(matches!(s.verify_bearer(&t), Err(VerifyError::Revoked)));
        assert!(
            s.revoke_token(RevokeTarget::Token("junk".into()))
                .await
                .is_err()
        );
        assert_eq!(s.prune().await.unwrap().0, 0);
        clock.set(T0 + 3600);
        assert_eq!(s.prune().await.unwrap().0, 1);
        assert!(s.list_revocations(None, 10).unwrap().items.is_empty());
    }

    #[tokio::test]
    async fn rotation_keeps_old_tokens_until_retention_ends() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::fixed(T0);
        let s = service(dir.path(), clock.clone());
        let old = user_with_token(&s, "erin").await;
        assert!(matches!(
            s.rotate_keys(false).await,
            Err(AdminError::Conflict(_))
        ));
        clock.set(T0 + JWKS_MAX_AGE_SECS);
        let keys = s.rotate_keys(false).await.unwrap();
        assert_eq!(keys.len(), 3);
        assert!(s.verify_bearer(&old).is_ok());
        let pw = s.set_password("erin", None).await.unwrap().unwrap();
        let new = s.issue_token(&local(), "erin", &pw).await.unwrap().token;
        assert_ne!(new.split('.').next(), old.split('.').next(), "new kid");
        clock.set(T0 + JWKS_MAX_AGE_SECS + 3600);
        let jwks_before: serde_json::Value = serde_json::from_str(&s.jwks()).unwrap();
        assert_eq!(jwks_before["keys"].as_array().unwrap().len(), 3);
        assert_eq!(s.prune().await.unwrap().1, 1);
        assert_eq!(s.keys().unwrap().len(), 2);
        let jwks: serde_json::Value = serde_json::from_str(&s.jwks()).unwrap();
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            2,
            "the dropped key leaves the JWKS"
        );
    }
}
