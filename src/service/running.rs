//! The running service: the store, the keyring snapshot, the throttles,
//! the hash pool and the metrics every use case shares, how it starts, and
//! the minute's pruning. Each use case adds its own `impl Service` in its
//! own file.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use crate::domain::keys::Keyring;
use crate::login::hash_pool::HashPool;
use crate::login::login_check;
use crate::login::throttle::ThrottleConfig;
use crate::login::throttle::{self, Throttle};
use crate::runtime::metrics::Metrics;
use crate::runtime::time::Clock;
use crate::store::{Action, Audit, AuditEvent, Store, StoreError};

use super::error::{AdminError, InternalError, crypto};
use super::feed::CachedFeed;
use super::last_used::PendingUses;
use super::revocations::{SELF_REVOKE_BURST, SELF_REVOKE_PER_SEC};
use super::secrets::SecretThrottles;
use super::verify::KeyState;
use crate::login::rate_limit::RateLimit;
use tessera_verify::dpop::ReplayCache;

/// Users whose token rate this node tracks at once; a user forgotten
/// (one-off, past this many busier ones) starts again with a full burst.
pub const TOKEN_RATE_USERS: usize = 100_000;

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
    /// How far in the future a token's `iat` may lie (`--clock-leeway`).
    pub clock_leeway_secs: u64,
    /// How long audit events are kept (`--audit-retention`).
    pub audit_retention_secs: u64,
}

impl Settings {
    /// The longest any token can live, given the store's TTL high-water
    /// mark: the longest TTL ever in force, never less than today's
    /// default. Old keys are kept, feed subjects named and partners'
    /// self-revocations audited for this long; every such reading goes
    /// through here.
    pub fn longest_token_ttl(&self, ttl_high_water: u64) -> u64 {
        ttl_high_water.max(self.default_ttl_secs)
    }
}

/// What one round of background pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Revocations whose tokens have all expired.
    pub revocations: u64,
    /// Retired keys whose tokens have all expired.
    pub keys: usize,
    /// Audit events past the retention.
    pub audit_events: u64,
    /// Previous secrets whose grace ran out.
    pub secrets: u64,
}

/// The running service: every use case, shared by both listeners and the
/// offline CLI.
pub struct Service {
    pub(super) store: Arc<dyn Store>,
    pub(super) settings: Settings,
    pub(super) clock: Clock,
    pub(super) metrics: Metrics,
    /// Replaced whole, under `key_changes`, after each commit of keys.
    pub(super) keys: ArcSwap<KeyState>,
    pub(super) throttle: Throttle,
    /// Wrong bearer secrets (admin and feed tokens), one count per use.
    pub(super) secret_throttles: SecretThrottles,
    pub(super) hash_pool: HashPool,
    /// Serialises key changes (rotate, drop, import) from read to publish.
    pub(super) key_changes: Mutex<()>,
    /// Serialises declarative applies from plan to commit.
    pub(super) apply_lock: Mutex<()>,
    /// Each client's allowance of self-revocations (`/oauth/revoke`).
    pub(super) self_revocations: RateLimit,
    /// Each user's token rate on this node (SPEC §15), by username.
    pub(super) token_rates: RateLimit,
    /// The next key's `kid` and when this process first saw it published
    /// (monotonic), for rotation pacing that a clock step can not stall.
    pub(super) next_key_seen: parking_lot::Mutex<Option<(String, tokio::time::Instant)>>,
    /// The last full revocation feed built, and single-flight for the next.
    pub(super) full_feed: Mutex<Option<CachedFeed>>,
    /// Logins' uses of secrets not yet written (SPEC §15's `last_used_at`).
    pub(super) pending_uses: PendingUses,
    /// The DPoP proofs this node accepted lately, each accepted once
    /// within its window (SPEC §17).
    pub(super) dpop_replays: ReplayCache,
}

impl Service {
    /// Loads (or on first start creates) the keyring.
    pub fn start(
        store: Arc<dyn Store>,
        settings: Settings,
        clock: Clock,
    ) -> Result<Self, InternalError> {
        let now = clock.now();
        let mut records = store.keys()?;
        if records.is_empty() {
            let fresh = crate::domain::keys::initial_records(now).map_err(crypto)?;
            records = store.init_keys(&fresh)?;
            if records.first().map(|r| &r.kid) == fresh.first().map(|r| &r.kid) {
                tracing::info!(
                    count = records.len(),
                    "created signing keys (active and next)"
                );
            }
        }
        store.raise_ttl_high_water(settings.default_ttl_secs)?;
        let keyring = Keyring::load(&records)?;
        let next_key_seen = keyring
            .next_kid()
            .map(|kid| (kid.to_owned(), tokio::time::Instant::now()));
        let hash_pool = HashPool::new(HashPool::default_threads(), settings.hash_queue);
        // Build the Argon2id dummy hash on the thread that will reuse its memory.
        hash_pool.spawn(login_check::warm_up);
        Ok(Self {
            store,
            throttle: Throttle::new(settings.throttle, throttle::DEFAULT_CAPACITY),
            secret_throttles: SecretThrottles::new(settings.throttle),
            settings,
            clock,
            metrics: Metrics::new(),
            keys: ArcSwap::from_pointee(KeyState::new(keyring)),
            hash_pool,
            key_changes: Mutex::new(()),
            apply_lock: Mutex::new(()),
            full_feed: Mutex::new(None),
            pending_uses: PendingUses::default(),
            dpop_replays: ReplayCache::new(tessera_verify::dpop::PROOFS_REMEMBERED),
            token_rates: RateLimit::new(1, 1.0, TOKEN_RATE_USERS),
            self_revocations: RateLimit::new(
                SELF_REVOKE_BURST,
                SELF_REVOKE_PER_SEC,
                throttle::DEFAULT_CAPACITY,
            ),
            next_key_seen: parking_lot::Mutex::new(next_key_seen),
        })
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The clock every rule reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Readiness: the store answers and a signing key is loaded.
    pub fn ready(&self) -> bool {
        self.store.healthy() && self.store.user_count().is_ok()
    }

    /// Whether an admin change could be made durable now (false: the disk
    /// is full, changes answer 507 until there is room).
    pub fn writable(&self) -> bool {
        self.store.writable()
    }

    /// Users and revocations held, for the metrics gauges.
    pub fn counts(&self) -> (u64, u64) {
        let users = self.store.user_count().unwrap_or(0);
        (users, self.store.revocation_count())
    }

    /// Publishes a new keyring (with an empty verified-token cache). Call
    /// with `key_changes` held, right after the keys were committed.
    pub(super) fn set_keyring(&self, ring: Keyring) {
        *self.next_key_seen.lock() = ring
            .next_kid()
            .map(|kid| (kid.to_owned(), tokio::time::Instant::now()));
        self.keys.store(Arc::new(KeyState::new(ring)));
    }

    /// The service's clock, in unix seconds (what every view of a time
    /// rule — a secret's grace, an account's expiry — is taken at).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Runs a store call on the blocking pool (writes fsync).
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(InternalError::from)??)
    }

    /// The audit event of a change, noted for the request's log line
    /// ([`crate::runtime::change_log`]).
    pub(super) fn audit(&self, action: Action, target: &str, detail: String) -> Audit {
        crate::runtime::change_log::note(action.as_str(), target);
        Audit {
            at: self.clock.now(),
            action,
            target: target.to_owned(),
            detail,
        }
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

    /// Background maintenance: forgets revocations whose tokens have expired
    /// and retired keys past their retention. Never fails to its caller:
    /// errors are logged and counted (`tessera_background_errors_total`),
    /// and the next round tries again.
    pub async fn prune(&self) -> Pruned {
        let mut pruned = Pruned::default();
        match self.prune_revocations().await {
            Ok(n) => pruned.revocations = n,
            Err(e) => self.background_failed("prune revocations", &e),
        }
        match self.drop_retired_keys().await {
            Ok(n) => pruned.keys = n,
            Err(e) => self.background_failed("drop retired keys", &e),
        }
        match self.expire_secrets().await {
            Ok(ended) => {
                for name in &ended {
                    tracing::info!(user = %name, "a previous secret's grace ran out; it no longer opens logins");
                }
                pruned.secrets = ended.len() as u64;
            }
            Err(e) => self.background_failed("expire secrets", &e),
        }
        let now = self.clock.now();
        let before = now.saturating_sub(self.settings.audit_retention_secs);
        // A partner's self-revocation matters only while the token it
        // names may live: the longest TTL ever in force, plus the leeway.
        let token_life = self
            .settings
            .longest_token_ttl(self.store.ttl_high_water().unwrap_or(u64::MAX))
            .saturating_add(self.settings.clock_leeway_secs);
        let partner_before = before.max(now.saturating_sub(token_life));
        match self
            .blocking(move |s| s.prune_audit(before, partner_before))
            .await
        {
            Ok(n) => pruned.audit_events = n,
            Err(e) => self.background_failed("prune audit", &e),
        }
        if pruned != Pruned::default() {
            tracing::info!(
                revocations = pruned.revocations,
                keys = pruned.keys,
                audit_events = pruned.audit_events,
                secrets = pruned.secrets,
                "pruned expired revocations, keys, audit events and secrets"
            );
            self.metrics
                .pruned(pruned.revocations, pruned.keys as u64, pruned.audit_events);
        }
        pruned
    }

    pub(super) fn background_failed(&self, task: &'static str, e: &AdminError) {
        tracing::warn!(task, error = %e, "background task failed; will retry");
        self.metrics.background_error(task);
    }
}
