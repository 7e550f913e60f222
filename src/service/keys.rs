//! Signing keys: list, rotate (next → active → retired), and drop retired
//! keys once every token they signed has expired. Every change is committed
//! and the new keyring published under one lock.

use super::{AdminError, InternalError, Service, crypto};
use crate::domain::keys::{self, KeyStatus, Keyring, RotateError};
use crate::store::Action;

/// How long verifiers may cache the JWKS (its `Cache-Control: max-age`), and
/// so the shortest time between two key rotations.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// A key as the admin API lists it (no secret).
#[derive(Debug, Clone)]
pub struct KeyView {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// next, active or retired.
    pub status: KeyStatus,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds, once retired.
    pub retired_at: Option<u64>,
}

impl Service {
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
                created_at: r.created_at,
                retired_at: r.retired_at,
            })
            .collect())
    }

    /// Promotes the next key, makes a new next key, retires the old active
    /// key until its last token can have expired. Refused while the next key
    /// has been published for less than the JWKS max-age, unless `force`.
    pub async fn rotate_keys(&self, force: bool) -> Result<Vec<KeyView>, AdminError> {
        let _guard = self.key_changes.lock().await;
        let now = self.clock.now();
        let records = self.blocking(|s| s.keys()).await?;
        let high = self.blocking(|s| s.ttl_high_water()).await?;
        let max_ttl = self.settings.longest_token_ttl(high);
        let seen_for = self.next_key_seen_for(&records);
        let rotated = keys::rotate(&records, now, max_ttl, JWKS_MAX_AGE_SECS, force, seen_for)
            .map_err(|e| match e {
                RotateError::TooSoon { .. } => AdminError::Conflict(e.to_string()),
                other => AdminError::Internal(crypto(other)),
            })?;
        let ring = Keyring::load(&rotated).map_err(InternalError::from)?;
        let new_active = ring.active().kid.clone();
        let audit = self.audit(
            Action::KeyRotate,
            &new_active,
            "next key promoted to active".into(),
        );
        let to_store = rotated.clone();
        self.blocking(move |s| s.replace_keys(&to_store, Some(audit)))
            .await?;
        self.set_keyring(ring);
        self.keys()
    }

    /// How long this process has watched the current next key being
    /// published, by tokio's monotonic clock (0 when it is new to us).
    fn next_key_seen_for(&self, records: &[keys::KeyRecord]) -> u64 {
        let Some(next) = records.iter().find(|r| r.status == KeyStatus::Next) else {
            return 0;
        };
        let mut seen = self.next_key_seen.lock();
        match seen.as_ref() {
            Some((kid, since)) if *kid == next.kid => since.elapsed().as_secs(),
            _ => {
                *seen = Some((next.kid.clone(), tokio::time::Instant::now()));
                0
            }
        }
    }

    /// Drops retired keys past their retention; returns how many.
    pub(super) async fn drop_retired_keys(&self) -> Result<usize, AdminError> {
        let _guard = self.key_changes.lock().await;
        let now = self.clock.now();
        let records = self.blocking(|s| s.keys()).await?;
        let kept = keys::without_expired(&records, now);
        let dropped = records.len() - kept.len();
        if dropped > 0 {
            let ring = Keyring::load(&kept).map_err(InternalError::from)?;
            let audit = self.audit(
                Action::KeyDrop,
                "-",
                format!("{dropped} retired keys past retention"),
            );
            self.blocking(move |s| s.replace_keys(&kept, Some(audit)))
                .await?;
            self.set_keyring(ring);
        }
        Ok(dropped)
    }
}

impl Service {
    /// Cluster mode: reloads the keyring whenever another node commits a
    /// change to it (a rotation, a drop, an import), so every node signs
    /// with the active key and verifies every live one. None when this
    /// process is the only writer.
    pub fn follow_keyring_changes(
        self: &std::sync::Arc<Self>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let mut changes = self.store.keyring_changes()?;
        let service = self.clone();
        Some(tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if let Err(e) = service.reload_keyring().await {
                    service.background_failed("reload keyring", &e);
                }
            }
        }))
    }

    async fn reload_keyring(&self) -> Result<(), AdminError> {
        let _guard = self.key_changes.lock().await;
        let records = self.blocking(|s| s.keys()).await?;
        let ring = Keyring::load(&records).map_err(InternalError::from)?;
        self.set_keyring(ring);
        Ok(())
    }
}
