//! The Ed25519 keyring: key records as stored, RFC 7638 thumbprint `kid`s,
//! the JWKS view, and the rotation schedule (next → active → retired →
//! dropped). Pure: the store persists [`KeyRecord`]s, the service swaps
//! [`Keyring`]s.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::hazmat::{self, ExpandedSecretKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use crate::token;
use tessera_verify::jwk::{Jwk, Jwks};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signs every new token.
    Active,
    /// No longer signs; verifies until `drop_after`.
    Retired,
}

/// A key as persisted. The seed is the private key: it never leaves the
/// store except in an admin export.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// RFC 7638 JWK thumbprint of the public key.
    pub kid: String,
    /// The 32-byte Ed25519 seed, base64url.
    pub seed: String,
    /// Life stage.
    pub status: KeyStatus,
    /// Unix seconds when the key was made.
    pub created_at: u64,
    /// Unix seconds when it stopped signing.
    pub retired_at: Option<u64>,
    /// Unix seconds after which no token it signed can be alive.
    pub drop_after: Option<u64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A key record whose seed could not be read.
#[derive(Debug, thiserror::Error)]
#[error("signing key {kid} in the store is corrupt (seed is not 32 base64url bytes)")]
pub struct CorruptKey {
    /// The key's id.
    pub kid: String,
}

impl KeyRecord {
    /// Makes a fresh key from the OS random source.
    pub fn generate(status: KeyStatus, now: u64) -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let signing = SigningKey::from_bytes(&seed);
        Ok(Self {
            kid: thumbprint(&signing.verifying_key()),
            seed: B64.encode(seed),
            status,
            created_at: now,
            retired_at: None,
            drop_after: None,
        })
    }

    fn signing_key(&self) -> Result<SigningKey, CorruptKey> {
        let corrupt = || CorruptKey {
            kid: self.kid.clone(),
        };
        let seed: [u8; 32] = B64
            .decode(&self.seed)
            .map_err(|_| corrupt())?
            .try_into()
            .map_err(|_| corrupt())?;
        Ok(SigningKey::from_bytes(&seed))
    }
}

impl KeyRecord {
    /// Checks a record that came from outside (an import): the seed is a
    /// key and the `kid` is its RFC 7638 thumbprint.
    pub fn validate(&self) -> Result<(), String> {
        let signing = self
            .signing_key()
            .map_err(|_| format!("key {}: seed is not 32 base64url bytes", self.kid))?;
        let expected = thumbprint(&signing.verifying_key());
        if self.kid != expected {
            return Err(format!(
                "key {}: kid is not the RFC 7638 thumbprint of its key ({expected})",
                self.kid
            ));
        }
        Ok(())
    }
}

/// Checks a whole set of records from outside: no `kid` twice, exactly one
/// active and one next key, and a keyring that loads — so that what is
/// stored always starts.
pub fn validate_records(records: &[KeyRecord]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for r in records {
        if !seen.insert(r.kid.as_str()) {
            return Err(format!("key {} appears twice", r.kid));
        }
    }
    let count = |status| records.iter().filter(|r| r.status == status).count();
    let (active, next) = (count(KeyStatus::Active), count(KeyStatus::Next));
    if active != 1 || next != 1 {
        return Err(format!(
            "a keyring needs exactly one active and one next key; this one has {active} active and {next} next"
        ));
    }
    Keyring::load(records)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub use tessera_verify::jwk::thumbprint;

/// A loaded key, ready to sign or verify. The private scalar is expanded
/// once here (not on every signature) and zeroized on drop.
pub struct LoadedKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The expanded private key (only the active key ever signs).
    expanded: ExpandedSecretKey,
    /// The public key.
    pub verifying: VerifyingKey,
    /// `encoded_header(kid)`, computed once.
    pub header_b64: String,
}

impl ed25519_dalek::Signer<Signature> for LoadedKey {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, ed25519_dalek::SignatureError> {
        Ok(hazmat::raw_sign::<Sha512>(
            &self.expanded,
            message,
            &self.verifying,
        ))
    }
}

/// The in-memory keyring every request reads: one active key, lookups by
/// `kid`, and the serialised JWKS. Immutable; replaced whole on rotation.
pub struct Keyring {
    active: String,
    next: Option<String>,
    keys: HashMap<String, LoadedKey>,
    jwks: String,
}

/// The keyring could not be built from the stored records.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// A seed is unreadable.
    #[error(transparent)]
    Corrupt(#[from] CorruptKey),
    /// The records hold no active key (or more than one).
    #[error("the store holds {0} active signing keys, expected exactly one")]
    ActiveCount(usize),
}

impl Keyring {
    /// Loads every record; exactly one must be active.
    pub fn load(records: &[KeyRecord]) -> Result<Self, KeyringError> {
        let actives: Vec<&KeyRecord> = records
            .iter()
            .filter(|r| r.status == KeyStatus::Active)
            .collect();
        if actives.len() != 1 {
            return Err(KeyringError::ActiveCount(actives.len()));
        }
        let mut keys = HashMap::new();
        let mut jwks = Vec::new();
        for record in records {
            let signing = record.signing_key()?;
            let verifying = signing.verifying_key();
            let expanded = ExpandedSecretKey::from(signing.as_bytes());
            jwks.push(Jwk::ed25519(&record.kid, &verifying));
            keys.insert(
                record.kid.clone(),
                LoadedKey {
                    kid: record.kid.clone(),
                    header_b64: token::encoded_header(&record.kid),
                    expanded,
                    verifying,
                },
            );
        }
        Ok(Self {
            active: actives[0].kid.clone(),
            next: records
                .iter()
                .find(|r| r.status == KeyStatus::Next)
                .map(|r| r.kid.clone()),
            keys,
            jwks: serde_json::to_string(&Jwks { keys: jwks }).unwrap_or_default(),
        })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &LoadedKey {
        // `load` guarantees the active kid is in the map.
        &self.keys[&self.active]
    }

    /// The published key that signs after the next rotation, if any.
    pub fn next_kid(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// The public key for `kid`, if it may still verify.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid).map(|k| &k.verifying)
    }

    /// The JWKS document, serialised.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }
}

/// The records of a brand-new keyring: an active key and a published next key.
pub fn initial_records(now: u64) -> Result<Vec<KeyRecord>, getrandom::Error> {
    Ok(vec![
        KeyRecord::generate(KeyStatus::Active, now)?,
        KeyRecord::generate(KeyStatus::Next, now)?,
    ])
}

/// Why a rotation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The next key was published less than `min_published` seconds ago.
    #[error(
        "the next key was published {published_secs}s ago; verifiers cache the JWKS for {min_secs}s, so rotate again in {wait_secs}s (or pass ?force=true)"
    )]
    TooSoon {
        /// Seconds since the next key appeared.
        published_secs: u64,
        /// The JWKS cache lifetime.
        min_secs: u64,
        /// Seconds left to wait.
        wait_secs: u64,
    },
    /// The records have no next key to promote.
    #[error("the keyring has no next key to promote")]
    NoNextKey,
    /// The OS random source failed.
    #[error("could not generate a key: {0}")]
    Random(#[from] getrandom::Error),
}

/// Plans a rotation: the next key becomes active, a new next key is made, the
/// old active key retires and is kept until `now + max_token_ttl` (no token it
/// signed can live longer). Refused while the next key is younger than
/// `min_published` seconds unless `force`. Its age is the larger of what
/// the wall clock says and `seen_for`, how long this process has watched
/// it being published by a clock that never steps: a wall clock that
/// stepped back then delays a rotation by the JWKS max-age at most, never
/// by the size of the step.
pub fn rotate(
    records: &[KeyRecord],
    now: u64,
    max_token_ttl: u64,
    min_published: u64,
    force: bool,
    seen_for: u64,
) -> Result<Vec<KeyRecord>, RotateError> {
    let next = records
        .iter()
        .find(|r| r.status == KeyStatus::Next)
        .ok_or(RotateError::NoNextKey)?;
    let age = now.saturating_sub(next.created_at).max(seen_for);
    if !force && age < min_published {
        return Err(RotateError::TooSoon {
            published_secs: age,
            min_secs: min_published,
            wait_secs: min_published - age,
        });
    }
    let mut out: Vec<KeyRecord> = records
        .iter()
        .cloned()
        .map(|mut r| {
            match r.status {
                KeyStatus::Active => {
                    r.status = KeyStatus::Retired;
                    r.retired_at = Some(now);
                    r.drop_after = Some(now.saturating_add(max_token_ttl));
                }
                KeyStatus::Next => r.status = KeyStatus::Active,
                KeyStatus::Retired => {}
            }
            r
        })
        .collect();
    out.push(KeyRecord::generate(KeyStatus::Next, now)?);
    Ok(out)
}

/// The records left once retired keys past `drop_after` are dropped.
pub fn without_expired(records: &[KeyRecord], now: u64) -> Vec<KeyRecord> {
    records
        .iter()
        .filter(|r| r.drop_after.is_none_or(|d| now < d))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037 Appendix A.3: the thumbprint of the A.2 public key.
        let x = B64
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let vk = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        assert_eq!(
            thumbprint(&vk),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn keyring_needs_exactly_one_active_key() {
        let mut recs = initial_records(100).unwrap();
        let ring = Keyring::load(&recs).unwrap();
        assert_eq!(ring.active().kid, recs[0].kid);
        assert!(ring.verifying_key(&recs[1].kid).is_some());
        let jwks: serde_json::Value = serde_json::from_str(ring.jwks()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        recs[1].status = KeyStatus::Active;
        assert!(matches!(
            Keyring::load(&recs),
            Err(KeyringError::ActiveCount(2))
        ));
    }

    #[test]
    fn debug_shows_the_kid_never_the_seed() {
        let r = KeyRecord::generate(KeyStatus::Next, 1).unwrap();
        let shown = format!("{r:?}");
        assert!(shown.contains(&r.kid) && shown.contains("Next"), "{shown}");
        assert!(!shown.contains(&r.seed), "{shown}");
    }

    #[test]
    fn imported_keyrings_are_checked() {
        let recs = initial_records(100).unwrap();
        assert_eq!(validate_records(&recs), Ok(()));
        assert!(recs.iter().all(|r| r.validate().is_ok()));
        let mut wrong_kid = recs[0].clone();
        wrong_kid.kid = recs[1].kid.clone();
        assert!(wrong_kid.validate().unwrap_err().contains("thumbprint"));
        let mut bad_seed = recs[0].clone();
        bad_seed.seed = "short".into();
        assert!(bad_seed.validate().unwrap_err().contains("seed"));
        let mut twice = recs.clone();
        let mut dup = recs[0].clone();
        dup.status = KeyStatus::Retired;
        twice.push(dup);
        assert!(validate_records(&twice).unwrap_err().contains("twice"));
        let mut two_next = recs.clone();
        two_next.push(KeyRecord::generate(KeyStatus::Next, 100).unwrap());
        assert!(validate_records(&two_next).unwrap_err().contains("2 next"));
        assert!(validate_records(&recs[..1]).unwrap_err().contains("0 next"));
        assert!(
            validate_records(&recs[1..])
                .unwrap_err()
                .contains("0 active")
        );
    }

    #[test]
    fn rotation_promotes_next_and_retires_active() {
        let recs = initial_records(100).unwrap();
        assert!(matches!(
            rotate(&recs, 200, 3600, 300, false, 0),
            Err(RotateError::TooSoon { wait_secs: 200, .. })
        ));
        assert!(
            rotate(&recs, 50, 3600, 300, false, 300).is_ok(),
            "watched for the max-age though the clock says otherwise"
        );
        assert!(rotate(&recs, 50, 3600, 300, false, 299).is_err());
        let rotated = rotate(&recs, 400, 3600, 300, false, 0).unwrap();
        assert_eq!(rotated.len(), 3);
        assert_eq!(rotated[0].status, KeyStatus::Retired);
        assert_eq!(rotated[0].drop_after, Some(4000));
        assert_eq!(rotated[1].status, KeyStatus::Active);
        assert_eq!(rotated[2].status, KeyStatus::Next);
        assert_eq!(without_expired(&rotated, 3999).len(), 3);
        assert_eq!(without_expired(&rotated, 4000).len(), 2);
    }
}
