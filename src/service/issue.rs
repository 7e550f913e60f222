//! Issuing a token for credentials (`POST /generateToken`, and every other
//! login endpoint through the same function): throttle charge, password
//! check with the work of the guess's shape, refund, account state, sign.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use zeroize::Zeroizing;

use super::last_used::worth_noting;
use super::secrets::SecretUse;
use super::{IssueError, Service, crypto};
use crate::domain::user::{User, Username};
use crate::login::client::{Client, ClientKey};
use crate::login::hash_pool::PoolError;
use crate::login::login_check::{LoginCheck, OwnedLoginCheck, Which};
use crate::token::{self, Claims};
use tessera_verify::dpop;
use tessera_verify::scope::Scopes;
use tessera_verify::token::Confirmation;

/// How long a login refused with [`IssueError::Busy`] waits before it is
/// answered. Refusing costs little CPU but not none: a flood that keeps the
/// hash queue full would otherwise re-send as fast as the CPU can refuse,
/// and take the cores the real partners' logins need. Paused, a flood gets
/// at most (its connections / 250 ms) answers a second, for the price of a
/// timer each; honest clients are told `Retry-After: 1` anyway.
pub const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// A DPoP proof sent with a login (SPEC §17): the `DPoP` header and the
/// endpoint's URL under `--public-url`, which its `htu` must name.
#[derive(Debug, Clone, Copy)]
pub struct LoginProof<'a> {
    /// The `DPoP` header.
    pub proof: &'a str,
    /// The endpoint's URL, e.g. `https://auth.example.com/oauth/token`.
    pub url: &'a str,
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: Scopes,
    /// Bound to the key of the login's DPoP proof (`token_type` `DPoP`).
    pub bound: bool,
}

/// A fresh `jti`: 128 random bits, base64url without padding, from the
/// thread-local CSPRNG (ChaCha12 seeded and reseeded from the OS), which
/// spares a system call per token.
pub fn new_jti() -> String {
    use rand::Rng as _;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

impl Service {
    /// Checks a login guess against a user's secrets valid at `now` (None:
    /// unknown user) with the work of two hashes of the guess's scheme,
    /// however many secrets the user holds ([`LoginCheck`], SPEC §4 and
    /// §15). Argon2id runs on the bounded hash pool and is counted only if
    /// it runs; the fast scheme runs here. Answers which secret matched.
    async fn check_login(
        &self,
        user: Option<&User>,
        guess: &str,
        now: u64,
    ) -> Result<Option<Which>, IssueError> {
        let check = LoginCheck::plan(
            user.map(|u| &u.password),
            user.and_then(|u| u.valid_previous(now)).map(|p| &p.hash),
            guess,
        );
        if !check.is_slow() {
            self.metrics.password_check(check.scheme());
            return Ok(check.run(guess.as_bytes()));
        }
        // Boxed: the slow path's state (the pool job, copies of the
        // hashes) then never inflates the future of every fast login.
        Box::pin(self.check_slow(check.to_owned(), check.scheme(), guess)).await
    }

    /// The Argon2id half of [`Service::check_login`], on the bounded pool:
    /// both hashes in one job, so a login holds one thread for both.
    async fn check_slow(
        &self,
        check: OwnedLoginCheck,
        scheme: &'static str,
        guess: &str,
    ) -> Result<Option<Which>, IssueError> {
        let counter = self.metrics.password_check_counter(scheme);
        let guess = Zeroizing::new(guess.to_owned());
        self.hash_pool
            .run(move || {
                counter.inc();
                check.run(guess.as_bytes())
            })
            .await
            .map_err(|e| match e {
                PoolError::Busy => IssueError::Busy,
                PoolError::Stopped => IssueError::Internal(crypto(e)),
            })
    }

    /// Authenticates a client (a partner user) by its credentials: charges
    /// the attempt to the client's throttle, checks the password with the
    /// work of the guess's shape, refunds the charge when the password
    /// matched or was never checked, then checks that the account may hold
    /// tokens. Every login endpoint — `/generateToken`, `/oauth/token`, and
    /// the client authentication of `/oauth/introspect` and `/oauth/revoke`
    /// — goes through here, so they share one throttle, one hashing path
    /// and one set of account rules.
    pub async fn authenticate(
        &self,
        client: &Client,
        username: &str,
        password: &str,
    ) -> Result<User, IssueError> {
        let key = client.key();
        let charge = self
            .throttle
            .charge(key, Instant::now())
            .map_err(IssueError::Throttled)?;
        let user = match Username::parse(username).map(|name| self.store.user(&name)) {
            Ok(Ok(user)) => user,
            Err(_) => None,
            Ok(Err(e)) => {
                self.throttle.refund(key, charge);
                return Err(match e {
                    // Cluster mode past --db-outage-grace: "try again later".
                    crate::store::StoreError::Unavailable(_) => IssueError::Busy,
                    e => super::InternalError::from(e).into(),
                });
            }
        };
        let now = self.clock.now();
        let matched = match self.check_login(user.as_ref(), password, now).await {
            Ok(m) => m,
            Err(e) => {
                self.throttle.refund(key, charge);
                if matches!(e, IssueError::Busy) {
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                return Err(e);
            }
        };
        let (Some(user), Some(which)) = (user, matched) else {
            tracing::info!(client = %client, "failed login");
            if let Some(lockout) = charge.lockout {
                tracing::warn!(client = %client, seconds = lockout.as_secs(), "client throttled after repeated failed logins");
            }
            return Err(IssueError::InvalidCredentials);
        };
        self.throttle.refund(key, charge);
        self.note_secret_use(&user, which, now);
        user.may_get_tokens(now).map_err(IssueError::AccountState)?;
        if !user.allowed_networks.allows(client.ip()) {
            tracing::warn!(user = %user.username, client = %client, "login refused: the address is outside the user's allowed networks");
            self.metrics.login_refused("network");
            return Err(IssueError::AddressNotAllowed);
        }
        Ok(user)
    }

    /// Evidence of use (SPEC §15): counts which secret matched and, when
    /// its stored `last_used_at` is old enough to be worth a write
    /// ([`worth_noting`]), notes the use for the next batched write.
    fn note_secret_use(&self, user: &User, which: Which, now: u64) {
        self.metrics.login_matched(which == Which::Previous);
        let info = match which {
            Which::Current => &user.secret,
            Which::Previous => match &user.previous_secret {
                Some(previous) => &previous.info,
                None => return,
            },
        };
        if worth_noting(info.last_used_at, now) {
            self.pending_uses.note(&user.username, info.id, now);
        }
    }

    /// The key a login's DPoP proof binds its token to: every proof rule
    /// for `POST` to the endpoint's URL, once within its window.
    fn check_login_proof(&self, p: LoginProof<'_>) -> Result<Confirmation, IssueError> {
        let request = dpop::Request {
            method: "POST",
            url: p.url,
            access_token: None,
            now: self.clock.now(),
            leeway_secs: self.settings.clock_leeway_secs,
        };
        dpop::check_proof_once(p.proof, &request, &self.dpop_replays)
            .map(|proof| Confirmation { jkt: proof.jkt })
            .map_err(IssueError::InvalidDpopProof)
    }

    /// Takes one token from the user's token rate, if it has one (counted
    /// on this node: N nodes allow N times the rate).
    fn take_token_rate(&self, user: &User) -> Result<(), IssueError> {
        let Some(rate) = user.token_rate else {
            return Ok(());
        };
        self.token_rates
            .take_with(
                user.username.as_str(),
                rate.burst(),
                rate.refill(),
                self.clock.monotonic(),
            )
            .map_err(|wait| {
                tracing::info!(user = %user.username, rate = %rate, "login refused: token rate used up");
                self.metrics.login_refused("token_rate");
                IssueError::TokenRate(wait)
            })
    }

    /// Checks a bearer secret (the admin token, the feed token) that
    /// `client` presented at `used`: see [`super::secrets::SecretThrottles::check`].
    pub fn check_secret(
        &self,
        used: SecretUse,
        client: &ClientKey,
        matches: bool,
    ) -> Result<bool, std::time::Duration> {
        self.secret_throttles
            .check(used, client, matches, Instant::now())
    }

    /// Issues a token for credentials ([`Service::authenticate`], then sign).
    /// The token is granted `requested` (all the user's scopes when None);
    /// asking for one the user lacks is refused. With a DPoP `proof` the
    /// token is bound to its key (`cnf.jkt`); the proof is checked first,
    /// so a bad one costs no hash and no throttle charge.
    pub async fn issue_token(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        requested: Option<&Scopes>,
        proof: Option<LoginProof<'_>>,
    ) -> Result<IssuedToken, IssueError> {
        let cnf = match proof {
            None => None,
            Some(p) => Some(self.check_login_proof(p)?),
        };
        let user = self.authenticate(client, username, password).await?;
        if user.dpop_required && cnf.is_none() {
            return Err(IssueError::DpopRequired);
        }
        self.take_token_rate(&user)?;
        let granted = match requested {
            None => user.scopes.clone(),
            Some(r) => match user.scopes.first_missing(r) {
                Some(missing) => return Err(IssueError::InvalidScope(missing.to_owned())),
                None => r.clone(),
            },
        };
        let now = self.clock.now();
        let exp = user.token_exp(now, self.settings.default_ttl_secs);
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: user.username.into(),
            iat: now,
            exp,
            jti: new_jti(),
            generation: Some(user.generation),
            scope: granted.to_claim(),
            cnf,
        };
        let keys = self.keys.load();
        let active = keys.ring.active();
        Ok(IssuedToken {
            token: token::encode(&claims, &active.header_b64, active),
            expires_in: exp.saturating_sub(now),
            scope: granted,
            bound: claims.cnf.is_some(),
        })
    }
}
