//! A partner's secrets (SPEC §15): the current one and, during a rotation,
//! the previous one until its grace ends.
//!
//! The current secret's hash stays in [`crate::domain::user::User::password`];
//! this module holds what a secret is besides its hash ([`SecretInfo`]) and
//! the previous one ([`PreviousSecret`]), as values; the rules that move a
//! user's secrets are [`crate::domain::rotation`]'s. A user never holds
//! more than two valid secrets by construction: there is no list to grow.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::login::login_check::Which;
use crate::login::password::PasswordHash;
use crate::runtime::time;

/// The grace a rotation gives the previous secret when none is asked for.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace a rotation may give (30 days).
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A secret's id: 32 random bits shown as 8 hex digits. Opaque and never
/// derived from the secret; unique among a user's secrets. 0 is the id of
/// a secret set before secrets had ids (records from before SPEC §15).
///
/// Stored as its number in binary records and as its 8 hex digits in JSON
/// (exports, PostgreSQL), so an export's size never depends on the draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SecretId(u32);

impl Serialize for SecretId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_string())
        } else {
            serializer.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for SecretId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Self::parse(&text)
                .ok_or_else(|| serde::de::Error::custom("a secret id is 8 hex digits"))
        } else {
            u32::deserialize(deserializer).map(Self)
        }
    }
}

impl SecretId {
    /// A fresh random id, never 0 and never `other`.
    pub fn random_except(other: Option<SecretId>) -> Self {
        use rand::Rng as _;
        let mut rng = rand::rng();
        Self::first_fit(
            || {
                let mut bytes = [0u8; 4];
                rng.fill_bytes(&mut bytes);
                u32::from_le_bytes(bytes)
            },
            other,
        )
    }

    /// The first drawn id that is neither 0 nor `other`.
    fn first_fit(mut draw: impl FnMut() -> u32, other: Option<SecretId>) -> Self {
        loop {
            let id = Self(draw());
            if id.0 != 0 && Some(id) != other {
                return id;
            }
        }
    }

    /// Parses the 8 hex digits of [`SecretId`]'s `Display`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(Self)
    }
}

impl std::fmt::Display for SecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// What a secret is besides its hash. Times are unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretInfo {
    /// Its id.
    pub id: SecretId,
    /// When it was set.
    pub created_at: u64,
    /// The last login it matched (recorded within a minute, batched).
    pub last_used_at: Option<u64>,
}

impl SecretInfo {
    /// A secret set at `now`, with an id other than `other`'s.
    pub fn new(now: u64, other: Option<SecretId>) -> Self {
        Self {
            id: SecretId::random_except(other),
            created_at: now,
            last_used_at: None,
        }
    }
}

/// The secret a rotation replaced, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSecret {
    /// Its hash.
    pub hash: PasswordHash,
    /// Its id and times.
    pub info: SecretInfo,
    /// It matches no login from this second on.
    pub expires_at: u64,
}

/// A grace: how long the previous secret stays valid after a rotation,
/// `0s` to 30 days (`0s`: it ends at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace(Duration);

impl Default for Grace {
    fn default() -> Self {
        Self(DEFAULT_GRACE)
    }
}

impl Grace {
    /// Parses `0s`, `90s`, `15m`, `24h`, `7d`…; longer than 30 days is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let d = if text == "0" || text == "0s" {
            Duration::ZERO
        } else {
            time::parse_duration(text)?
        };
        if d > MAX_GRACE {
            return Err(format!("{text} is longer than the longest grace, 30d"));
        }
        Ok(Self(d))
    }

    /// The grace in seconds.
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// Why a secret could not be ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndError {
    /// No valid secret of the user has this id.
    #[error("no such secret")]
    Unknown,
    /// It is the user's only valid secret (change the password instead).
    #[error(
        "this is the user's only secret; rotate first, or set a new password with POST /admin/users/{{u}}/password"
    )]
    OnlyOne,
}

/// One secret as the admin API shows it (SPEC §15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretView {
    /// 8 hex digits.
    pub id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, or null for the current secret.
    pub expires_at: Option<String>,
    /// RFC 3339 UTC, or null when no login used it yet.
    pub last_used_at: Option<String>,
}

impl SecretView {
    /// The view of a secret that ends at `expires_at` (None: current).
    pub fn of(info: &SecretInfo, expires_at: Option<u64>) -> Self {
        Self {
            id: info.id.to_string(),
            created_at: time::rfc3339(info.created_at),
            expires_at: expires_at.map(time::rfc3339),
            last_used_at: info.last_used_at.map(time::rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eight_hex_digits_random_and_never_the_others() {
        let a = SecretId::random_except(None);
        assert_eq!(a.to_string().len(), 8);
        assert_eq!(SecretId::parse(&a.to_string()), Some(a));
        assert_ne!(SecretId::random_except(Some(a)), a);
        assert_eq!(SecretId::default().to_string(), "00000000");
        for bad in ["", "1234567", "123456789", "1234567g", "+1234567"] {
            assert_eq!(SecretId::parse(bad), None, "{bad}");
        }
        assert_eq!(SecretId::parse("000000ff"), Some(SecretId(255)));
        // JSON: the 8 digits; binary (postcard): the number.
        assert_eq!(
            serde_json::to_string(&SecretId(255)).unwrap(),
            "\"000000ff\""
        );
        assert_eq!(
            serde_json::from_str::<SecretId>("\"000000ff\"").unwrap(),
            SecretId(255)
        );
        assert!(serde_json::from_str::<SecretId>("255").is_err());
        let bytes = postcard::to_allocvec(&SecretId(255)).unwrap();
        assert_eq!(
            postcard::from_bytes::<SecretId>(&bytes).unwrap(),
            SecretId(255)
        );
        let mut draws = [0, 7, 0, 9].into_iter();
        let id = SecretId::first_fit(|| draws.next().unwrap(), Some(SecretId(7)));
        assert_eq!(id, SecretId(9), "neither 0 nor the other secret's");
    }

    #[test]
    fn grace_is_zero_to_thirty_days() {
        assert_eq!(Grace::default().secs(), 86_400);
        assert_eq!(Grace::parse("0s").unwrap().secs(), 0);
        assert_eq!(Grace::parse("0").unwrap().secs(), 0);
        assert_eq!(Grace::parse("90s").unwrap().secs(), 90);
        assert_eq!(Grace::parse("30d").unwrap().secs(), MAX_GRACE.as_secs());
        assert!(Grace::parse("30d 1s").is_err());
        assert!(Grace::parse("soon").is_err());
        assert!(Grace::parse("-1s").is_err());
    }
}
